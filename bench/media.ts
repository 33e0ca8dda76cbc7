/**
 * CPU cost of the media jobs' pure work (decode + process + encode), to set GRADE_LIMITS,
 * MATTE_LIMITS and AUDIO_LIMITS. Each measurement runs in a fresh Deno process (a cold isolate,
 * as an Edge Function invocation may get) and reports that process's CPU time (user + system,
 * which includes GC threads) for the work only, plus its peak RSS (the Deno CLI alone is ~140 MB
 * of that) and the largest V8 heap + ArrayBuffer memory seen between stages.
 *
 *   node_modules/.bin/deno run -A bench/media.ts [--quick] [--repeats N]
 *
 * Results: a table on stdout and bench/results/media-<timestamp>.json. Speed is reported, never
 * asserted.
 */
import process from 'node:process';
import {
  decodeImage,
  encodeJpeg,
  encodePng,
} from '../supabase/functions/_jobs/media/image.ts';
import { gradeImage } from '../supabase/functions/_jobs/media/grade.ts';
import { pullMatte } from '../supabase/functions/_jobs/media/matte.ts';
import { decodeWav, encodeWav } from '../supabase/functions/_jobs/media/wav.ts';
import { cleanAudio } from '../supabase/functions/_jobs/media/audio.ts';
import { greenScreen, noisyVoice, photoLike } from '../supabase/functions/tests/media/_media.ts';

type Scenario = 'grade-jpeg' | 'grade-png' | 'matte-png' | 'clean-wav';

interface ChildResult {
  scenario: Scenario;
  cpuMs: number;
  wallMs: number;
  stages: Record<string, number>;
  maxRssMb: number;
  /** Largest V8 heap + external (ArrayBuffer) memory seen at the stage boundaries. */
  peakHeapMb: number;
  inputBytes: number;
  outputBytes: number;
}

const cpuNow = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};

/** Child: run one scenario on the input file and print a JSON result. */
function child(scenario: Scenario, file: string): void {
  const bytes = Deno.readFileSync(file);
  const stages: Record<string, number> = {};
  const c0 = cpuNow(), t0 = performance.now();
  let last = c0;
  let peakHeap = 0;
  const lap = (name: string) => {
    const m = Deno.memoryUsage();
    peakHeap = Math.max(peakHeap, m.heapUsed + m.external);
    const c = cpuNow();
    stages[name] = Math.round(c - last);
    last = c;
  };
  let out: Uint8Array;
  if (scenario === 'clean-wav') {
    const audio = decodeWav(bytes);
    lap('decode');
    const { audio: cleaned } = cleanAudio(audio, {});
    lap('process');
    out = encodeWav(cleaned);
    lap('encode');
  } else {
    const img = decodeImage(bytes);
    lap('decode');
    const processed = scenario === 'matte-png'
      ? pullMatte(img, { mode: 'color', tolerance: 0.35, feather: 50 })
      : gradeImage(img, { preset: 'teal-orange', exposure: 0.3 });
    lap('process');
    out = scenario === 'grade-jpeg' ? encodeJpeg(processed, 90) : encodePng(processed);
    lap('encode');
  }
  const result: ChildResult = {
    scenario,
    cpuMs: Math.round(cpuNow() - c0),
    wallMs: Math.round(performance.now() - t0),
    stages,
    maxRssMb: Math.round(process.resourceUsage().maxRSS / 1024),
    peakHeapMb: Math.round(peakHeap / 1048576),
    inputBytes: bytes.length,
    outputBytes: out.length,
  };
  console.log(JSON.stringify(result));
}

async function runChild(scenario: Scenario, file: string): Promise<ChildResult> {
  const cmd = new Deno.Command(Deno.execPath(), {
    args: ['run', '-A', new URL(import.meta.url).pathname, '--child', scenario, file],
    stdout: 'piped',
    stderr: 'inherit',
  });
  const { code, stdout } = await cmd.output();
  if (code !== 0) throw new Error(`${scenario} child exited ${code}`);
  const line = new TextDecoder().decode(stdout).trim().split('\n').at(-1)!;
  return JSON.parse(line);
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

async function main(): Promise<void> {
  const args = Deno.args;
  const quick = args.includes('--quick');
  const ri = args.indexOf('--repeats');
  const repeats = ri >= 0 ? Number(args[ri + 1]) : quick ? 1 : 3;
  const megapixels = quick ? [1] : [1, 2, 3, 4];
  const seconds = quick ? [10] : [15, 30, 45, 60];
  const dir = Deno.makeTempDirSync({ prefix: 'spool-media-bench-' });
  const rows: Record<string, unknown>[] = [];
  try {
    for (const mp of megapixels) {
      const w = Math.round(Math.sqrt(mp * 1e6 * 1.5)), h = Math.round((mp * 1e6) / w);
      const photo = photoLike(w, h);
      const jpg = `${dir}/photo-${mp}.jpg`, png = `${dir}/photo-${mp}.png`;
      Deno.writeFileSync(jpg, encodeJpeg(photo, 90));
      Deno.writeFileSync(png, encodePng(photo));
      const gs = greenScreen(w, h).img;
      const gsJpg = `${dir}/green-${mp}.jpg`;
      Deno.writeFileSync(gsJpg, encodeJpeg(gs, 90));
      for (
        const [scenario, file] of [
          ['grade-jpeg', jpg],
          ['grade-png', png],
          ['matte-png', gsJpg],
        ] as [Scenario, string][]
      ) {
        const runs: ChildResult[] = [];
        for (let r = 0; r < repeats; r++) runs.push(await runChild(scenario, file));
        rows.push(summarise(runs, `${mp} MP (${w}x${h})`, mp, 'MP'));
      }
    }
    for (const s of seconds) {
      const fs = 48000;
      const l = noisyVoice(s, fs, { seed: 3 }).x, r = noisyVoice(s, fs, { seed: 4 }).x;
      const file = `${dir}/voice-${s}.wav`;
      Deno.writeFileSync(
        file,
        encodeWav({
          sampleRate: fs,
          channels: [l, r],
          sourceFormat: { bitsPerSample: 24, float: false },
        }),
      );
      const runs: ChildResult[] = [];
      for (let k = 0; k < repeats; k++) runs.push(await runChild('clean-wav', file));
      rows.push(summarise(runs, `${s} s 48k stereo 24-bit`, s, 's'));
    }
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
  console.table(rows);
  const outDir = new URL('./results/', import.meta.url);
  Deno.mkdirSync(outDir, { recursive: true });
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  Deno.writeTextFileSync(
    new URL(`media-${stamp}.json`, outDir),
    JSON.stringify({ repeats, rows }, null, 2),
  );
}

function summarise(runs: ChildResult[], input: string, size: number, unit: string) {
  const cpu = median(runs.map((r) => r.cpuMs));
  const stageNames = Object.keys(runs[0].stages);
  const stages = Object.fromEntries(
    stageNames.map((n) => [n, median(runs.map((r) => r.stages[n]))]),
  );
  return {
    scenario: runs[0].scenario,
    input,
    cpuMs: cpu,
    [`msPer${unit}`]: Math.round(cpu / size),
    ...stages,
    wallMs: median(runs.map((r) => r.wallMs)),
    maxRssMb: Math.max(...runs.map((r) => r.maxRssMb)),
    heapMb: Math.max(...runs.map((r) => r.peakHeapMb)),
    inKB: Math.round(runs[0].inputBytes / 1024),
    outKB: Math.round(runs[0].outputBytes / 1024),
  };
}

if (Deno.args[0] === '--child') child(Deno.args[1] as Scenario, Deno.args[2]);
else await main();
