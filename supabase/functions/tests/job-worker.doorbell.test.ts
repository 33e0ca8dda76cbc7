// job-worker end to end on the throwaway stack: a job created through the SQL API rings the
// doorbell (pg_net stand-in → gateway → job-worker in the local Edge Runtime), the real handler
// processes the real file, and the output lands in Storage — without waiting for pg_cron.
import assert from 'node:assert/strict';
import type { JobOutput } from '../_jobs/kind.ts';
import { measureLoudness } from '../_jobs/media/audio.ts';
import { decodeImage, encodePng } from '../_jobs/media/image.ts';
import { decodeWav, encodeWav } from '../_jobs/media/wav.ts';
import { createUser, integration, theStack, uploadInput } from './support/api-stack.ts';
import { downloadOutput, enqueue, waitForStatus } from './support/worker.ts';

/**
 * How long a job may take to settle. Usually a second or two; but the stack's job-worker isolate
 * may have spent its media CPU budget on earlier tests (job-worker/cpu-budget.ts) and then hands
 * media work over until the local Edge Runtime retires it (at its 1 s CPU soft limit, or at half
 * of its 150 s wall clock at the latest).
 */
const SETTLED_WITHIN_MS = 120_000;

/** A colourful test picture: hue across, brightness down. */
function photo(width = 96, height = 64) {
  const data = new Uint8ClampedArray(width * height * 4);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = (y * width + x) * 4;
      data[i] = 255 * (x / width);
      data[i + 1] = 255 * (1 - x / width) * (1 - y / height);
      data[i + 2] = 255 * (y / height);
      data[i + 3] = 255;
    }
  }
  return { width, height, data };
}

/** A subject (red square) on a chroma-key green screen. */
function greenScreen(width = 80, height = 60) {
  const data = new Uint8ClampedArray(width * height * 4);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = (y * width + x) * 4;
      const subject = x > 25 && x < 55 && y > 15 && y < 45;
      data.set(subject ? [200, 40, 30, 255] : [0, 177, 64, 255], i);
    }
  }
  return { width, height, data };
}

/** Speech-like test audio, quiet: a warbling tone with a little noise, 4 s of 16 kHz mono. */
function quietVoice(seconds = 4, sampleRate = 16_000): Uint8Array {
  const n = seconds * sampleRate;
  const samples = new Float32Array(n);
  let seed = 1;
  const noise = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff - 0.5);
  for (let i = 0; i < n; i++) {
    const t = i / sampleRate;
    const envelope = 0.5 + 0.5 * Math.sin(2 * Math.PI * 3 * t);
    samples[i] =
      0.03 * envelope * Math.sin(2 * Math.PI * (220 + 30 * Math.sin(2 * Math.PI * t)) * t) +
      0.002 * noise();
  }
  return encodeWav({
    sampleRate,
    channels: [samples],
    sourceFormat: { bitsPerSample: 16, float: false },
  });
}

Deno.test(
  'a color-grade job reaches done through the real doorbell and its noir output is greyscale',
  integration,
  async () => {
    theStack();
    const user = await createUser();
    const path = await uploadInput(user, 'photo.png', encodePng(photo()), 'image/png');
    const created = await enqueue(user.id, 'color-grade', { input_path: path, preset: 'noir' });
    const done = await waitForStatus(created.id, ['done', 'failed'], SETTLED_WITHIN_MS);
    assert.equal(done.status, 'done', JSON.stringify(done.error));

    const output = done.output as unknown as JobOutput;
    assert.equal(output.files.length, 1);
    const [file] = output.files;
    assert.equal(file.path, `${user.id}/${created.id}/photo-graded.png`);
    assert.equal(file.content_type, 'image/png');
    assert.deepEqual([file.width, file.height], [96, 64]);
    const bytes = await downloadOutput(file.path);
    assert.equal(bytes.length, file.size);
    const graded = decodeImage(bytes, 'image/png');
    let coloured = 0;
    for (let i = 0; i < graded.data.length; i += 4) {
      if (graded.data[i] !== graded.data[i + 1] || graded.data[i + 1] !== graded.data[i + 2]) {
        coloured++;
      }
    }
    assert.equal(coloured, 0, 'every pixel of the noir grade is grey (R = G = B)');
    assert.equal(done.progress, 100);
    assert.equal(done.attempts, 1);
  },
);

Deno.test(
  'an audio-clean job brings a quiet WAV to its loudness target within 1 LU',
  integration,
  async () => {
    const user = await createUser();
    const path = await uploadInput(user, 'voice.wav', quietVoice(), 'audio/wav');
    const created = await enqueue(user.id, 'audio-clean', { input_path: path, target_lufs: -16 });
    const done = await waitForStatus(created.id, ['done', 'failed'], SETTLED_WITHIN_MS);
    assert.equal(done.status, 'done', JSON.stringify(done.error));

    const output = done.output as unknown as JobOutput & {
      loudness: { input_lufs: number; output_lufs: number };
    };
    const [file] = output.files;
    assert.equal(file.content_type, 'audio/wav');
    assert.ok(
      Math.abs((file.duration_seconds ?? 0) - 4) < 0.01,
      `duration ${file.duration_seconds}`,
    );
    const cleaned = decodeWav(await downloadOutput(file.path));
    const lufs = measureLoudness(cleaned);
    assert.ok(Math.abs(lufs - -16) <= 1, `output loudness ${lufs.toFixed(2)} LUFS, target -16`);
    assert.ok(
      output.loudness.input_lufs < -30,
      `the input was quiet (${output.loudness.input_lufs} LUFS)`,
    );
    assert.ok(
      Math.abs(output.loudness.output_lufs - lufs) < 0.5,
      'the reported loudness is the measured one',
    );
  },
);

Deno.test(
  'a roto job on a green screen gives a matte with transparent and opaque pixels',
  integration,
  async () => {
    const user = await createUser();
    const path = await uploadInput(user, 'screen.png', encodePng(greenScreen()), 'image/png');
    const created = await enqueue(user.id, 'roto', {
      input_path: path,
      mode: 'color',
      key_color: '#00b140',
      feather: 0,
    });
    const done = await waitForStatus(created.id, ['done', 'failed'], SETTLED_WITHIN_MS);
    assert.equal(done.status, 'done', JSON.stringify(done.error));

    const output = done.output as unknown as JobOutput & {
      matte: { transparent: number; opaque: number };
    };
    const [file] = output.files;
    assert.equal(file.content_type, 'image/png');
    const matte = decodeImage(await downloadOutput(file.path), 'image/png');
    let transparent = 0;
    let opaque = 0;
    for (let i = 3; i < matte.data.length; i += 4) {
      if (matte.data[i] === 0) transparent++;
      if (matte.data[i] === 255) opaque++;
    }
    assert.ok(transparent > 0 && opaque > 0, `transparent ${transparent}, opaque ${opaque}`);
    // The subject is 29 x 29 of 80 x 60 pixels: about 17.5% opaque.
    assert.ok(
      Math.abs(opaque / (80 * 60) - (29 * 29) / (80 * 60)) < 0.03,
      `opaque share ${opaque / 4800}`,
    );
    assert.ok(
      Math.abs(output.matte.transparent - transparent / 4800) < 0.001,
      'reported coverage matches',
    );
  },
);

Deno.test(
  'a job whose input file is missing fails permanently as input_not_found',
  integration,
  async () => {
    const user = await createUser();
    const created = await enqueue(user.id, 'color-grade', { input_path: `${user.id}/nowhere.png` });
    const failed = await waitForStatus(created.id, ['done', 'failed'], SETTLED_WITHIN_MS);
    assert.equal(failed.status, 'failed');
    assert.equal((failed.error as { code: string }).code, 'input_not_found');
    assert.equal(failed.attempts, 1, 'no retry for a file that is not there');
  },
);
