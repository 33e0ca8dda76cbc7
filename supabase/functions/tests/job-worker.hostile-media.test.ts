// Hostile and cut-off input files through the real drain loop and the real media kinds (fake
// queue, fake Storage, virtual clock): a decompression bomb and truncated files end `failed` and
// not retryable, with a clear code, and a bomb never gets to inflate what it holds.
import assert from 'node:assert/strict';
import { readProviderConfig } from '../_jobs/providers.ts';
import { EnvReader } from '../_shared/env.ts';
import { runnableKind } from '../job-worker/kinds.ts';
import type { WorkerConfig } from '../job-worker/config.ts';
import { drain, type DrainDeps, type WorkerStorage } from '../job-worker/run.ts';
import { FakeQueue } from './support/fake-queue.ts';
import { jpeg, png, pngWithIdat, wav, zerosZlib } from './support/media-fixtures.ts';
import { VirtualScheduler } from './support/virtual-scheduler.ts';

const UID = '11111111-1111-4111-8111-111111111111'; // FakeQueue's owner

const CONFIG: WorkerConfig = {
  batchSize: 10,
  concurrency: 4,
  leaseSeconds: 60,
  heartbeatMs: 20_000,
  budgetMs: 10_000,
  drainMs: 2_000,
  lingerMs: 0,
  idlePollMs: 5,
  jobLogs: true,
  types: null,
  mediaConcurrency: 2,
  mediaBudgetMs: 0,
  callCpuMs: 0,
};

function setup(files: Record<string, { bytes: Uint8Array; contentType: string }>) {
  const clock = new VirtualScheduler();
  const queue = new FakeQueue(() => clock.date());
  const uploads: string[] = [];
  const storage: WorkerStorage = {
    download: (_bucket, path) => {
      const f = files[path];
      return f ? Promise.resolve(f) : Promise.reject(new Error(`no object ${path}`));
    },
    upload: (_bucket, path) => {
      uploads.push(path);
      return Promise.resolve();
    },
    signedUrl: () => Promise.reject(new Error('no signed URLs here')),
  };
  const logs: Record<string, unknown>[] = [];
  const deps: DrainDeps = {
    rpc: queue.rpc,
    storage,
    scheduler: clock,
    kindOf: (type) => runnableKind(type, { noop: false }),
    providers: readProviderConfig(new EnvReader(() => undefined), {}),
    types: ['color-grade', 'audio-clean', 'roto'],
    config: CONFIG,
    workerId: 'jw-hostile',
    ring: () => Promise.resolve(),
    log: (line) => logs.push(line),
  };
  const run = () => clock.run(drain(deps, 'test'));
  /** fail_job's arguments for a job. */
  const failure = (id: string) => {
    const call = queue.callsOf('fail_job').find((c) => c.args.p_id === id);
    assert.ok(call, `fail_job was called for ${id}`);
    return call.args as {
      p_retryable: boolean;
      p_error: { code: string; message: string; details?: Record<string, number> };
    };
  };
  return { queue, run, failure, uploads };
}

const grade = (path: string) => ({
  input_path: path,
  preset: 'warm',
  exposure: 0,
  contrast: 0,
  saturation: 0,
  temperature: 0,
  tint: 0,
});

Deno.test('a PNG decompression bomb fails its job for good as decompression_bomb, without inflating it', async () => {
  // 1 MB on disk, 1 GiB inflated, 40,100 bytes declared by its 100x100 RGBA header.
  const bomb = pngWithIdat(100, 100, zerosZlib(1024));
  const { queue, run, failure, uploads } = setup({
    [`${UID}/bomb.png`]: { bytes: bomb, contentType: 'image/png' },
    [`${UID}/fine.png`]: { bytes: png(16, 12), contentType: 'image/png' },
  });
  const job = queue.add('color-grade', grade(`${UID}/bomb.png`));
  const fine = queue.add('color-grade', grade(`${UID}/fine.png`));
  const rss = Deno.memoryUsage().rss;
  await run();
  const grown = Deno.memoryUsage().rss - rss;

  assert.equal(queue.jobs.get(job.id)!.status, 'failed');
  const { p_retryable, p_error } = failure(job.id);
  assert.equal(p_retryable, false, 'a hostile file is never retried');
  assert.equal(p_error.code, 'decompression_bomb');
  assert.equal(p_error.details!.declared_bytes, 40_100);
  assert.ok(grown < 128 * 2 ** 20, `the worker grew by ${grown} bytes, not by the gigabyte`);
  assert.equal(queue.jobs.get(fine.id)!.status, 'done', 'the next job is unaffected');
  assert.deepEqual(uploads, [`${UID}/${fine.id}/fine-graded.png`]);
});

Deno.test('truncated WAV, PNG and JPEG inputs fail their jobs for good as truncated_file', async () => {
  // The first 2,000 bytes of a 7.8 s WAV used to come out `done` with 13 ms of audio.
  const longWav = wav(7.8);
  const fullPng = png(64, 64);
  const fullJpeg = jpeg(64, 64);
  const { queue, run, failure, uploads } = setup({
    [`${UID}/cut.wav`]: { bytes: longWav.slice(0, 2000), contentType: 'audio/wav' },
    [`${UID}/cut.png`]: { bytes: fullPng.slice(0, fullPng.length - 12), contentType: 'image/png' },
    [`${UID}/cut.jpg`]: {
      bytes: fullJpeg.slice(0, fullJpeg.length >> 1),
      contentType: 'image/jpeg',
    },
  });
  const audio = queue.add('audio-clean', { input_path: `${UID}/cut.wav` });
  const image = queue.add('roto', { input_path: `${UID}/cut.png`, mode: 'color' });
  const photo = queue.add('color-grade', grade(`${UID}/cut.jpg`));
  await run();

  for (const job of [audio, image, photo]) {
    assert.equal(queue.jobs.get(job.id)!.status, 'failed');
    const { p_retryable, p_error } = failure(job.id);
    assert.equal(p_retryable, false);
    assert.equal(p_error.code, 'truncated_file', p_error.message);
  }
  assert.match(failure(audio.id).p_error.message, /truncated WAV/);
  assert.deepEqual(uploads, [], 'nothing was written');
});
