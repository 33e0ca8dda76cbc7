// Jobs at the documented size limits fit the Edge limits: the largest colour grade and the longest
// audio clean the kinds accept, created together through the public creators (which estimate each
// job's CPU from its input's header) on the running stack (npm test's gateway, whose local Edge
// Runtime enforces hosted's CPU-time and memory limits: local/standins/functions.mjs), both end
// done on their first attempt and no worker is killed for CPU time or memory.
//
// The gateway's log (SPOOL_TEST_GATEWAY_LOG, set by npm test) tells which limits were in force
// and whether any worker was killed; without it this test fails, it is never skipped.
import assert from 'node:assert/strict';
import { AUDIO_LIMITS } from '../_jobs/media/audio.ts';
import { GRADE_LIMITS } from '../_jobs/media/grade.ts';
import { encodeJpeg } from '../_jobs/media/image.ts';
import { encodeWav } from '../_jobs/media/wav.ts';
import {
  createUser,
  integration,
  sql,
  type TestUser,
  theStack,
  uploadInput,
} from './support/api-stack.ts';
import { waitForStatus } from './support/worker.ts';
import { CPU_AT_LIMITS_MS } from '../_jobs/files.ts';

/** Creates a job through its creator Edge Function, as the user; returns the job row. */
async function create(user: TestUser, type: string, body: Record<string, unknown>) {
  const { url, anonKey } = theStack();
  const res = await fetch(`${url}/functions/v1/${type}`, {
    method: 'POST',
    headers: {
      apikey: anonKey,
      authorization: `Bearer ${user.token}`,
      'content-type': 'application/json',
    },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  assert.equal(res.status, 202, `${type}: ${text}`);
  const { job } = JSON.parse(text) as { job: { id: string } };
  return job;
}

/** The gateway log's JSON lines (from line `from` on). */
function gatewayLog(from = 0): Record<string, unknown>[] {
  const file = Deno.env.get('SPOOL_TEST_GATEWAY_LOG');
  if (!file) {
    throw new Error(
      'SPOOL_TEST_GATEWAY_LOG is not set: run this test through `npm test`, whose gateway logs to a file',
    );
  }
  return Deno.readTextFileSync(file).split('\n').filter(Boolean).slice(from).map((l) =>
    JSON.parse(l)
  );
}

/** A photo-like picture (smooth colour fields plus grain, so it does not compress to nothing). */
function photo(width: number, height: number) {
  const data = new Uint8ClampedArray(width * height * 4);
  let seed = 7;
  const grain = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) % 24) - 12;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = (y * width + x) * 4;
      data[i] = 40 + 180 * (x / width) + grain();
      data[i + 1] = 60 + 120 * Math.sin((Math.PI * y) / height) + grain();
      data[i + 2] = 200 - 150 * (y / height) + grain();
      data[i + 3] = 255;
    }
  }
  return { width, height, data };
}

/** Speech-like stereo audio: a warbling tone with an envelope and a little noise. */
function voice(seconds: number, sampleRate: number, channels: number) {
  const n = Math.round(seconds * sampleRate);
  let seed = 3;
  const noise = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff - 0.5);
  const out = Array.from({ length: channels }, () => new Float32Array(n));
  for (let i = 0; i < n; i++) {
    const t = i / sampleRate;
    const envelope = 0.5 + 0.5 * Math.sin(2 * Math.PI * 3 * t);
    const s = 0.05 * envelope * Math.sin(2 * Math.PI * (200 + 40 * Math.sin(2 * Math.PI * t)) * t);
    for (const ch of out) ch[i] = s + 0.003 * noise();
  }
  return encodeWav({
    sampleRate,
    channels: out,
    sourceFormat: { bitsPerSample: 24, float: false },
  });
}

Deno.test(
  'the largest colour grade and the longest audio clean, started together, both end done and no worker is killed for CPU time or memory',
  integration,
  async () => {
    theStack();
    const limits = gatewayLog().filter((l) => l.event === 'edge_limits');
    assert.ok(limits.length > 0, 'the gateway logged the Edge limits in force');
    for (const l of limits) {
      assert.deepEqual(
        [l.cpuTimeMs, l.cpuSoftMs, l.memoryMb],
        [2000, 1000, 256],
        "hosted's limits are enforced",
      );
    }

    // 2000 x 1500 = 3.0 MP, the most colour-grade runs in the function (GRADE_LIMITS); JPEG in
    // and out is its costliest path. 30 s of 48 kHz stereo 24-bit is AUDIO_LIMITS.maxSamples.
    const width = 2000;
    const height = 1500;
    assert.equal((width * height) / 1e6, GRADE_LIMITS.maxMegapixels);
    const sampleRate = 48_000;
    const seconds = AUDIO_LIMITS.maxSamples / (sampleRate * 2);
    const user = await createUser();
    const [imagePath, audioPath] = await Promise.all([
      uploadInput(user, 'large.jpg', encodeJpeg(photo(width, height), 92), 'image/jpeg'),
      uploadInput(user, 'long.wav', voice(seconds, sampleRate, 2), 'audio/wav'),
    ]);

    const logFrom = gatewayLog().length;
    const [grade, clean] = await Promise.all([
      create(user, 'color-grade', { input_path: imagePath, preset: 'teal-orange' }),
      create(user, 'audio-clean', { input_path: audioPath, target_lufs: -16 }),
    ]);
    const estimates = await sql<{ cpu_ms: number }>(
      'select cpu_ms from public.jobs where id = any($1) order by type',
      [[clean.id, grade.id]],
    );
    assert.deepEqual(
      estimates.map((r) => r.cpu_ms),
      [CPU_AT_LIMITS_MS, CPU_AT_LIMITS_MS],
      'the creators estimated both at the size limits',
    );
    const [graded, cleaned] = await Promise.all([
      waitForStatus(grade.id, ['done', 'failed'], 180_000),
      waitForStatus(clean.id, ['done', 'failed'], 180_000),
    ]);
    const log = gatewayLog(logFrom);
    const killed = log.filter((l) =>
      l.event === 'worker_killed' && (l.reason === 'cpu_time' || l.reason === 'memory')
    );
    assert.deepEqual(killed, [], 'no worker was killed for CPU time or memory');
    assert.equal(graded.status, 'done', JSON.stringify(graded.error));
    assert.equal(cleaned.status, 'done', JSON.stringify(cleaned.error));
    assert.equal(graded.attempts, 1, 'the grade needed one attempt');
    assert.equal(cleaned.attempts, 1, 'the clean needed one attempt');
  },
);
