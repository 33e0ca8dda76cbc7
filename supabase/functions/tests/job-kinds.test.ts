// The job kinds registry: schemas and their defaults, provider configuration, the noop gate, and
// where each kind's work is routed (pure: no stack needed).
import assert from 'node:assert/strict';
import { EnvError, EnvReader } from '../_shared/env.ts';
import { CPU_AT_LIMITS_MS, cpuEstimateMs } from '../_jobs/files.ts';
import { type InputFile, isRefusal, type Refusal, type Route } from '../_jobs/kind.ts';
import { kindOf, KINDS_BY_TYPE as KINDS, REPLICATE_VERSION_VARS } from '../_jobs/kinds/index.ts';
import { type ProviderConfig, readProviderConfig } from '../_jobs/providers.ts';
import { routeJob } from '../_jobs/route.ts';
import { HANDLERS } from '../job-worker/handlers/index.ts';
import { jpeg, png, pngHeader, wav, wav8bit, wavHeader } from './support/media-fixtures.ts';

const UID = '7d3f0a52-3a4f-4c38-9e7e-2b1f6f0c9a10';

function providers(env: Record<string, string> = {}): ProviderConfig {
  const reader = new EnvReader((name) => env[name]);
  const config = readProviderConfig(reader, REPLICATE_VERSION_VARS);
  reader.done();
  return config;
}

const REPLICATE_ALL = {
  REPLICATE_API_TOKEN: 'r8_test',
  REPLICATE_WEBHOOK_SECRET: 'whsec_test',
  SPOOL_REPLICATE_ROTO_VERSION: 'v-roto',
  SPOOL_REPLICATE_COLOR_GRADE_VERSION: 'v-grade',
  SPOOL_REPLICATE_AUDIO_CLEAN_VERSION: 'v-audio',
};

function file(contentType: string, head: Uint8Array): InputFile {
  return { path: `${UID}/in`, size: head.length, contentType, head };
}

async function route(
  type: string,
  input: Record<string, unknown>,
  f: InputFile | null,
  config = providers(),
): Promise<Route | Refusal> {
  const kind = KINDS[type];
  const parsed = kind.schema.parse({ ...(kind.file ? { input_path: `${UID}/in` } : {}), ...input });
  return await routeJob(kind, parsed, f, config);
}

function refused(result: Route | Refusal, status: number, code: string): Refusal {
  assert.ok(
    isRefusal(result),
    `expected a ${status} ${code} refusal, got ${JSON.stringify(result)}`,
  );
  assert.equal(result.status, status);
  assert.equal(result.code, code);
  return result;
}

/** The route runs the job in the function (whatever CPU estimate it carries). */
function inFunction(result: Route | Refusal) {
  assert.ok(!isRefusal(result), `expected an in-function route, got ${JSON.stringify(result)}`);
  assert.equal(result.provider, 'in-function');
}

Deno.test('registry: has the five production kinds and the test-only noop', () => {
  assert.deepEqual(Object.keys(KINDS).sort(), [
    'audio-clean',
    'color-grade',
    'image',
    'noop',
    'roto',
    'text',
  ]);
  for (const [type, kind] of Object.entries(KINDS)) {
    assert.equal(kind.type, type);
    assert.ok(kind.label.length > 0 && kind.summary.length > 0, `${type} is labelled`);
  }
  assert.deepEqual(
    Object.keys(HANDLERS).sort(),
    Object.keys(KINDS).sort(),
    'every kind has a handler in the worker, and every handler a kind',
  );
  assert.equal(KINDS.noop.testOnly, true);
  assert.ok(Object.values(KINDS).filter((k) => k.testOnly).length === 1);
});

Deno.test('registry: noop is hidden unless SPOOL_ENABLE_NOOP is true', () => {
  assert.equal(kindOf('noop', providers()), undefined);
  assert.equal(kindOf('noop', providers({ SPOOL_ENABLE_NOOP: 'false' })), undefined);
  assert.equal(kindOf('noop', providers({ SPOOL_ENABLE_NOOP: 'true' })), KINDS.noop);
  assert.equal(kindOf('roto', providers()), KINDS.roto);
  assert.equal(kindOf('toString', providers()), undefined);
  assert.equal(kindOf('nope', providers({ SPOOL_ENABLE_NOOP: 'true' })), undefined);
});

Deno.test('registry: file kinds read input_path; image has no file and uses openai', () => {
  for (const type of ['color-grade', 'audio-clean', 'roto']) {
    const kind = KINDS[type];
    assert.ok(kind.file, type);
    assert.equal(kind.file.path({ input_path: `${UID}/a.png` }), `${UID}/a.png`);
    assert.equal(kind.file.maxBytes, 50 * 1024 * 1024);
  }
  assert.equal(KINDS.image.file, undefined);
  assert.equal(KINDS.image.provider, 'openai');
});

Deno.test('schemas: fill in documented defaults', () => {
  assert.deepEqual(KINDS['color-grade'].schema.parse({ input_path: `${UID}/a.png` }), {
    input_path: `${UID}/a.png`,
    preset: 'none',
    exposure: 0,
    contrast: 0,
    saturation: 0,
    temperature: 0,
    tint: 0,
  });
  assert.deepEqual(KINDS['audio-clean'].schema.parse({ input_path: `${UID}/a.wav` }), {
    input_path: `${UID}/a.wav`,
    target_lufs: -16,
    noise_reduction: 0.5,
    highpass_hz: 80,
  });
  assert.deepEqual(KINDS.roto.schema.parse({ input_path: `${UID}/a.png` }), {
    input_path: `${UID}/a.png`,
    mode: 'color',
    key_color: '#00b140',
    tolerance: 0.3,
    feather: 2,
    invert: false,
  });
  assert.deepEqual(KINDS.image.schema.parse({ prompt: '  a cat  ' }), {
    prompt: 'a cat',
    size: '1024x1024',
    quality: 'auto',
    n: 1,
  });
  assert.deepEqual(KINDS.noop.schema.parse({}), { sleep_ms: 0, fail: 'never' });
});

Deno.test('schemas: refuse paths outside a user folder, traversal and odd characters', () => {
  const schema = KINDS.roto.schema;
  for (
    const bad of [
      'a.png',
      `/${UID}/a.png`,
      `${UID}/`,
      `${UID}/../x/a.png`,
      `${UID}/./a.png`,
      `${UID}//a.png`,
      `${UID}/ a.png`,
      `${UID}/a.png `,
      `${UID}/a\tb.png`,
      `${UID}/a?.png`,
      `${UID}/a#.png`,
      `${UID}/a%2e.png`,
      `${UID}\\a.png`,
      'not-a-uuid-at-all-not-a-uuid-at-all1/a.png',
    ]
  ) {
    assert.equal(schema.safeParse({ input_path: bad }).success, false, bad);
  }
  for (
    const good of [`${UID}/a.png`, `${UID}/sub/dir/a-b_c (1).png`, `${UID.toUpperCase()}/a.png`]
  ) {
    assert.equal(schema.safeParse({ input_path: good }).success, true, good);
  }
});

Deno.test('providers: Replicate counts per type only with token, secret and that version', () => {
  assert.equal(providers().replicate('roto'), false);
  assert.equal(providers(REPLICATE_ALL).replicate('roto'), true);
  assert.equal(providers(REPLICATE_ALL).replicate('image'), false);
  const noSecret = providers({ ...REPLICATE_ALL, REPLICATE_WEBHOOK_SECRET: '' });
  assert.equal(noSecret.replicate('roto'), false);
  assert.equal(noSecret.replicateVersion('roto'), null);
  const onlyRoto = providers({
    REPLICATE_API_TOKEN: 't',
    REPLICATE_WEBHOOK_SECRET: 's',
    SPOOL_REPLICATE_ROTO_VERSION: 'v1',
  });
  assert.equal(onlyRoto.replicate('roto'), true);
  assert.equal(onlyRoto.replicateVersion('roto'), 'v1');
  assert.equal(onlyRoto.replicate('color-grade'), false);
  assert.equal(onlyRoto.replicate('constructor'), false);
  assert.equal(providers({ OPENAI_API_KEY: ' sk-x ' }).openai, true);
  assert.equal(providers({ OPENAI_API_KEY: ' sk-x ' }).openaiApiKey, 'sk-x');
  assert.equal(providers().openai, false);
});

Deno.test('providers: a malformed SPOOL_ENABLE_NOOP fails fast', () => {
  const reader = new EnvReader((name) => (name === 'SPOOL_ENABLE_NOOP' ? 'maybe' : undefined));
  readProviderConfig(reader, REPLICATE_VERSION_VARS);
  assert.throws(() => reader.done(), EnvError);
});

Deno.test('route color-grade: small PNG and JPEG run in the function', async () => {
  inFunction(await route('color-grade', {}, file('image/png', png())));
  inFunction(await route('color-grade', {}, file('image/jpeg', jpeg())));
});

Deno.test('route: an in-function job carries a CPU estimate that grows with its input, 1200 ms at the size limits', async () => {
  // Headers only, of files whose whole size is larger: nothing is judged truncated.
  const cpuOf = async (type: string, f: InputFile) => {
    const r = await route(type, {}, { ...f, size: Math.max(f.size, 50_000_000) });
    inFunction(r);
    return (r as Route).cpuMs;
  };
  // colour grade: up to 3.0 MP (GRADE_LIMITS); roto: its own limit.
  const tiny = await cpuOf('color-grade', file('image/png', pngHeader(16, 16)));
  const mid = await cpuOf('color-grade', file('image/png', pngHeader(1000, 750)));
  const max = await cpuOf('color-grade', file('image/png', pngHeader(2000, 1500)));
  assert.equal(tiny, 41, 'a tiny image costs about the floor, 40 ms');
  assert.equal(mid, 40 + Math.ceil(1160 * 0.25), 'a quarter of the limit, a quarter of the range');
  assert.equal(max, CPU_AT_LIMITS_MS);
  assert.ok((await cpuOf('roto', file('image/png', pngHeader(64, 64))))! < 100);
  // audio: 60 s (mono) or 30 s of 48 kHz stereo is the limit; 1 s of 16 kHz mono is 1/60 of it.
  assert.equal(
    await cpuOf('audio-clean', file('audio/wav', wavHeader(1))),
    Math.ceil(40 + 1160 / 60),
  );
  assert.equal(
    await cpuOf('audio-clean', file('audio/wav', wavHeader(60))),
    CPU_AT_LIMITS_MS,
    '60 s of mono, the longest accepted, is at the limit',
  );
  assert.equal(
    cpuEstimateMs(Number.NaN),
    CPU_AT_LIMITS_MS,
    'an unknown size is priced at the limit',
  );
});

Deno.test('route color-grade: a large image goes to Replicate, or 413 image_too_large', async () => {
  const big = file('image/png', pngHeader(4000, 4000));
  refused(await route('color-grade', {}, big), 413, 'image_too_large');
  assert.deepEqual(await route('color-grade', {}, big, providers(REPLICATE_ALL)), {
    provider: 'replicate',
  });
});

Deno.test('route color-grade: video and webp need Replicate, else 422 unsupported_format', async () => {
  const video = file('video/mp4', new Uint8Array(64));
  refused(await route('color-grade', {}, video), 422, 'unsupported_format');
  assert.deepEqual(await route('color-grade', {}, video, providers(REPLICATE_ALL)), {
    provider: 'replicate',
  });
  refused(
    await route('color-grade', {}, file('image/webp', new Uint8Array(64))),
    422,
    'unsupported_format',
  );
});

Deno.test('route color-grade: audio is refused even with Replicate', async () => {
  const audio = file('audio/wav', wav());
  refused(
    await route('color-grade', {}, audio, providers(REPLICATE_ALL)),
    422,
    'unsupported_format',
  );
});

Deno.test('route color-grade: a "PNG" that is not one is 422 unreadable_file', async () => {
  const junk = file('image/png', new TextEncoder().encode('definitely not an image'));
  refused(await route('color-grade', {}, junk), 422, 'unreadable_file');
});

Deno.test('route color-grade: a JPEG whose frame header lies past the head is let through', async () => {
  // SOI, then 5 APP1 segments of 64 KiB: the frame header is beyond INPUT_HEAD_BYTES.
  const segment = new Uint8Array(65537);
  segment.set([0xff, 0xe1, 0xff, 0xff]);
  const head = new Uint8Array(256 * 1024);
  head.set([0xff, 0xd8]);
  for (let at = 2; at + segment.length <= head.length; at += segment.length) head.set(segment, at);
  const partial = { path: `${UID}/big.jpg`, size: 400_000, contentType: 'image/jpeg', head };
  assert.deepEqual(await route('color-grade', {}, partial), {
    provider: 'in-function',
    cpuMs: CPU_AT_LIMITS_MS, // its size is not known until the worker reads the whole file
  });
  // The whole file, or a head that is not a JPEG at all, is judged as it is.
  refused(
    await route('color-grade', {}, { ...partial, size: head.length }),
    422,
    'unreadable_file',
  );
  const junk = { ...partial, head: new Uint8Array(head.length).fill(7) };
  refused(await route('color-grade', {}, junk), 422, 'unreadable_file');
});

Deno.test('route audio-clean: a short WAV runs in the function', async () => {
  inFunction(await route('audio-clean', {}, file('audio/wav', wav())));
  // The head of a 30 s file: the route reads its header, the size says the data is all there.
  const head = wavHeader(30);
  const whole = { ...file('audio/x-wav', head), size: 44 + 30 * 16000 * 2 };
  inFunction(await route('audio-clean', {}, whole));
});

Deno.test('route audio-clean: a WAV shorter than its data chunk declares is 422 truncated_file', async () => {
  // The first 2,000 bytes of a 7.8 s file: the header promises 7.8 s, the file holds 61 ms.
  const head = wavHeader(7.8).subarray(0, 2000);
  const cut = { ...file('audio/wav', head), size: 2000 };
  const refusal = refused(await route('audio-clean', {}, cut), 422, 'truncated_file');
  assert.match(refusal.message, /cut short \(truncated WAV: its data chunk ends at byte 249644/);
  // Even with Replicate configured: no route can process the missing data.
  refused(await route('audio-clean', {}, cut, providers(REPLICATE_ALL)), 422, 'truncated_file');
  // A streamed WAV with an unsized data chunk promises nothing and is let through.
  const streamed = wav().slice();
  new DataView(streamed.buffer).setUint32(40, 0xffffffff, true);
  inFunction(await route('audio-clean', {}, file('audio/wav', streamed)));
});

Deno.test('route color-grade: a PNG or JPEG cut short is 422 truncated_file', async () => {
  const whole = png(64, 64);
  const cutPng = whole.slice(0, whole.length - 30); // IDAT runs past the end, no IEND
  refused(await route('color-grade', {}, file('image/png', cutPng)), 422, 'truncated_file');
  const noIend = whole.slice(0, whole.length - 12);
  refused(await route('roto', { mode: 'color' }, file('image/png', noIend)), 422, 'truncated_file');
  const fullJpeg = jpeg(64, 64);
  const cutJpeg = fullJpeg.slice(0, fullJpeg.length - 40);
  refused(await route('color-grade', {}, file('image/jpeg', cutJpeg)), 422, 'truncated_file');
  // A head of a larger file cannot show a missing trailer: the worker judges the whole file.
  const headOnly = { ...file('image/jpeg', cutJpeg), size: fullJpeg.length };
  inFunction(await route('color-grade', {}, headOnly));
});

Deno.test('route audio-clean: long WAV goes to Replicate, or 413 audio_too_long', async () => {
  const long = file('audio/wav', wavHeader(3600));
  refused(await route('audio-clean', {}, long), 413, 'audio_too_long');
  assert.deepEqual(await route('audio-clean', {}, long, providers(REPLICATE_ALL)), {
    provider: 'replicate',
  });
});

Deno.test('route audio-clean: mp3/m4a/flac and 8-bit WAV need Replicate', async () => {
  for (const type of ['audio/mpeg', 'audio/mp4', 'audio/flac']) {
    const f = file(type, new Uint8Array(64));
    refused(await route('audio-clean', {}, f), 422, 'unsupported_format');
    assert.deepEqual(await route('audio-clean', {}, f, providers(REPLICATE_ALL)), {
      provider: 'replicate',
    });
  }
  refused(await route('audio-clean', {}, file('audio/wav', wav8bit())), 422, 'unsupported_format');
});

Deno.test('route audio-clean: images and broken WAVs are refused', async () => {
  refused(
    await route('audio-clean', {}, file('image/png', png()), providers(REPLICATE_ALL)),
    422,
    'unsupported_format',
  );
  const broken = new Uint8Array(wavHeader(1).subarray(0, 30));
  refused(await route('audio-clean', {}, file('audio/wav', broken)), 422, 'unreadable_file');
});

Deno.test('route roto: an image in color or luma mode runs in the function', async () => {
  for (const mode of ['color', 'luma']) {
    inFunction(await route('roto', { mode }, file('image/png', png())));
  }
});

Deno.test('route roto: ai mode and video need Replicate, else 503 provider_not_configured', async () => {
  refused(
    await route('roto', { mode: 'ai' }, file('image/png', png())),
    503,
    'provider_not_configured',
  );
  refused(
    await route('roto', {}, file('video/mp4', new Uint8Array(64))),
    503,
    'provider_not_configured',
  );
  assert.deepEqual(
    await route('roto', { mode: 'ai' }, file('image/png', png()), providers(REPLICATE_ALL)),
    { provider: 'replicate' },
  );
  assert.deepEqual(
    await route('roto', {}, file('video/quicktime', new Uint8Array(64)), providers(REPLICATE_ALL)),
    { provider: 'replicate' },
  );
});

Deno.test('route roto: audio is 422 unsupported_format; huge images 413', async () => {
  refused(await route('roto', {}, file('audio/wav', wav())), 422, 'unsupported_format');
  refused(
    await route('roto', {}, file('image/png', pngHeader(5000, 5000))),
    413,
    'image_too_large',
  );
});

Deno.test('route image: needs OPENAI_API_KEY, else 503 provider_not_configured', async () => {
  refused(await route('image', { prompt: 'a cat' }, null), 503, 'provider_not_configured');
  assert.deepEqual(
    await route('image', { prompt: 'a cat' }, null, providers({ OPENAI_API_KEY: 'sk-test' })),
    { provider: 'openai' },
  );
});

Deno.test('route noop: always in the function', async () => {
  assert.deepEqual(await route('noop', {}, null), { provider: 'in-function' });
});
