// The media handlers with a fake HandlerContext (no stack): outputs and steps, media errors as
// permanent failures, and files too large for the function handed to Replicate when it is
// configured for the type, refused for good when it is not.
import assert from 'node:assert/strict';
import type { JobRow } from '../_shared/clients.ts';
import { type HandlerContext, JobError, type JobOutput } from '../_jobs/kind.ts';
import { isolateCpu } from '../job-worker/cpu-budget.ts';
import colorGrade from '../job-worker/handlers/color-grade.ts';
import roto from '../job-worker/handlers/roto.ts';
import { decodeImage } from '../_jobs/media/image.ts';
import { FakeProviders, solidPng } from './support/fake-providers.ts';
import { pngHeader } from './support/media-fixtures.ts';
import { REPLICATE_VERSION_VARS } from '../_jobs/kinds/index.ts';
import { readProviderConfig } from '../_jobs/providers.ts';
import { EnvReader } from '../_shared/env.ts';

const UID = '7d3f0a52-3a4f-4c38-9e7e-2b1f6f0c9a10';

/** A handler's context over one input file, with providers read from `env` as job-worker would. */
function fakeContext<I>(
  input: I,
  file: { bytes: Uint8Array; contentType: string },
  env: Record<string, string> = {},
  job: Partial<JobRow> = {},
) {
  const reader = new EnvReader((name) => env[name]);
  const providers = readProviderConfig(reader, REPLICATE_VERSION_VARS, env.SUPABASE_URL ?? null);
  reader.done();
  const written = new Map<string, { bytes: Uint8Array; contentType: string }>();
  const steps: [number, string | undefined][] = [];
  const ctx: HandlerContext<I> = {
    job: { id: 'job-1', user_id: UID, ...job } as JobRow,
    input,
    providers,
    mediaSlot: (work) => work(),
    cpuStage: (work) => isolateCpu.charge('job-1', work),
    outputPrefix: `${UID}/job-1/`,
    readInput: () => Promise.resolve(file),
    writeOutput: (name, bytes, contentType) => {
      written.set(`${UID}/job-1/${name}`, { bytes, contentType });
      return Promise.resolve(`${UID}/job-1/${name}`);
    },
    inputUrl: (path) => Promise.resolve(`https://storage.test/sign/inputs/${path}?token=t`),
    progress: (percent, step) => {
      steps.push([percent, step]);
      return Promise.resolve();
    },
    signal: new AbortController().signal,
  };
  return { ctx, written, steps };
}

const gradeInput = (over: Record<string, unknown> = {}) => ({
  input_path: `${UID}/photo.png`,
  preset: 'warm' as const,
  exposure: 0,
  contrast: 0,
  saturation: 0,
  temperature: 0,
  tint: 0,
  ...over,
});

Deno.test("a media handler charges each stage to the isolate's CPU meter, against the job's reservation", async () => {
  const { ctx } = fakeContext(gradeInput(), {
    bytes: solidPng(64, 48, [120, 90, 60]),
    contentType: 'image/png',
  });
  const spent = isolateCpu.spent;
  const reserved = isolateCpu.reserved;
  const hold = isolateCpu.reserve(1_000_000, 1_000_000)!; // as the drain reserves at claim
  isolateCpu.assign('job-1', hold);
  try {
    await colorGrade(ctx);
    const charged = isolateCpu.spent - spent;
    assert.ok(charged > 0, 'decode, grade and encode were charged');
    const held = isolateCpu.reserved - reserved;
    assert.ok(
      Math.abs(held - (1_000_000 - charged)) < 1e-6,
      `what was spent came out of the reservation (${held} held)`,
    );
  } finally {
    isolateCpu.finish('job-1');
  }
  assert.equal(isolateCpu.reserved, reserved, 'the rest is given back when the job ends');
});

Deno.test('color-grade writes the graded image and reports its steps', async () => {
  const { ctx, written, steps } = fakeContext(gradeInput(), {
    bytes: solidPng(20, 10, [120, 120, 120]),
    contentType: 'image/png',
  });
  const result = await colorGrade(ctx);
  assert.ok('output' in result);
  const output = result.output as JobOutput;
  assert.deepEqual(output.files.map((f) => [f.path, f.content_type, f.width, f.height]), [
    [`${UID}/job-1/photo-graded.png`, 'image/png', 20, 10],
  ]);
  const image = decodeImage(written.get(output.files[0].path)!.bytes, 'image/png');
  assert.ok(image.data[0] > image.data[2], 'warm: more red than blue');
  assert.deepEqual(steps.map(([, s]) => s), [
    'downloading',
    'decoding',
    'grading',
    'encoding',
    'uploading',
  ]);
});

Deno.test('color-grade writes a JPEG when asked to', async () => {
  const { ctx } = fakeContext(gradeInput({ output_format: 'jpeg' }), {
    bytes: solidPng(8, 8, [10, 20, 30]),
    contentType: 'image/png',
  });
  const result = await colorGrade(ctx);
  assert.ok('output' in result);
  const [file] = (result.output as JobOutput).files;
  assert.equal(file.content_type, 'image/jpeg');
  assert.match(file.path, /photo-graded\.jpg$/);
});

Deno.test('an input that is not a readable image fails permanently', async () => {
  const { ctx } = fakeContext(gradeInput(), {
    bytes: new TextEncoder().encode('not a png at all'),
    contentType: 'image/png',
  });
  await assert.rejects(colorGrade(ctx), (err: JobError) => {
    assert.ok(err instanceof JobError);
    assert.equal(err.retryable, false);
    assert.equal(err.code, 'unreadable_file');
    return true;
  });
});

Deno.test('a PNG that breaks while decoding is a permanent media failure', async () => {
  const bytes = solidPng(16, 16, [1, 2, 3]).slice(0, 60); // header intact, data cut off
  const { ctx } = fakeContext(gradeInput(), { bytes, contentType: 'image/png' });
  await assert.rejects(
    colorGrade(ctx),
    (err: JobError) => err instanceof JobError && !err.retryable,
  );
});

Deno.test('an image too large for the function fails permanently when Replicate is not configured', async () => {
  const { ctx } = fakeContext(gradeInput(), {
    bytes: pngHeader(4000, 4000),
    contentType: 'image/png',
  });
  await assert.rejects(colorGrade(ctx), (err: JobError) => {
    assert.equal(err.code, 'image_too_large');
    assert.equal(err.retryable, false);
    return true;
  });
});

Deno.test('an image too large for the function is handed to Replicate when it is configured', async () => {
  const fake = new FakeProviders();
  const env = {
    SUPABASE_URL: 'https://project.supabase.test',
    REPLICATE_API_TOKEN: 'r8_test',
    REPLICATE_WEBHOOK_SECRET: 'whsec_dGVzdA==',
    REPLICATE_API_BASE: fake.replicateBase,
    SPOOL_REPLICATE_COLOR_GRADE_VERSION: 'grade-version',
  };
  try {
    const { ctx } = fakeContext(gradeInput({ preset: 'noir' }), {
      bytes: pngHeader(4000, 4000),
      contentType: 'image/png',
    }, env);
    const result = await colorGrade(ctx);
    assert.ok('await' in result);
    const [prediction] = fake.predictions.values();
    assert.deepEqual(result.await, {
      provider: 'replicate',
      externalId: prediction.id,
      timeoutSeconds: 3600,
    });
    assert.equal(prediction.version, 'grade-version');
    assert.equal(
      prediction.webhook,
      'https://project.supabase.test/functions/v1/job-callback?provider=replicate',
    );
    assert.equal(
      prediction.input!.image,
      `https://storage.test/sign/inputs/${UID}/photo.png?token=t`,
    );
    assert.equal(prediction.input!.preset, 'noir');
  } finally {
    await fake.close();
  }
});

Deno.test('the worker runs the route its creator stored: a small image stored for Replicate is handed over, not routed again', async () => {
  const fake = new FakeProviders();
  const env = {
    SUPABASE_URL: 'https://project.supabase.test',
    REPLICATE_API_TOKEN: 'r8_test',
    REPLICATE_WEBHOOK_SECRET: 'whsec_dGVzdA==',
    REPLICATE_API_BASE: fake.replicateBase,
    SPOOL_REPLICATE_COLOR_GRADE_VERSION: 'grade-version',
  };
  try {
    const { ctx, written } = fakeContext(
      gradeInput(),
      {
        bytes: solidPng(8, 8, [1, 2, 3]),
        contentType: 'image/png',
      },
      env,
      { route: 'replicate' } as Partial<JobRow>,
    );
    const result = await colorGrade(ctx);
    assert.ok('await' in result, 'handed over, although the function could grade it');
    assert.equal(fake.predictions.size, 1);
    assert.equal(written.size, 0);
  } finally {
    await fake.close();
  }
});

Deno.test('roto keys out the green and reports the matte coverage', async () => {
  const data = new Uint8ClampedArray(10 * 10 * 4);
  for (let i = 0; i < 100; i++) data.set(i < 50 ? [0, 177, 64, 255] : [200, 30, 30, 255], i * 4);
  const { encodePng } = await import('../_jobs/media/image.ts');
  const { ctx, written } = fakeContext(
    {
      input_path: `${UID}/s.png`,
      mode: 'color' as const,
      key_color: '#00b140',
      tolerance: 0.3,
      feather: 0,
      invert: false,
    },
    { bytes: encodePng({ width: 10, height: 10, data }), contentType: 'image/png' },
  );
  const result = await roto(ctx);
  assert.ok('output' in result);
  const matte = result.output.matte as { transparent: number; opaque: number };
  assert.deepEqual([matte.transparent, matte.opaque], [0.5, 0.5]);
  const [file] = (result.output as JobOutput).files;
  const out = decodeImage(written.get(file.path)!.bytes, 'image/png');
  assert.deepEqual([out.data[3], out.data[99 * 4 + 3]], [0, 255]);
});
