// The job creators (roto, color-grade, audio-clean, image) and their one shared create path:
// the happy paths, and for each creator a table of bad requests that must each get their exact
// status and error code and write no row. The creators run in this process against the local
// stack, each with the provider environment its test names.
import assert from 'node:assert/strict';
import { createJobHandler, MAX_BODY_BYTES, readIdempotencyKey } from '../_jobs/create.ts';
import { EnvError, EnvReader } from '../_shared/env.ts';
import { HttpError, readJsonObject } from '../_shared/http.ts';
import { inFolderOf } from '../_shared/input-file.ts';
import { KINDS_BY_TYPE } from '../_jobs/kinds/index.ts';
import { PUBLIC_JOB_FIELDS } from '../_shared/job-view.ts';
import {
  assertError,
  call,
  type CallOptions,
  countJobs,
  createUser,
  functionEnv,
  integration,
  sessionClaims,
  signJwt,
  sql,
  type TestUser,
  theStack,
  transaction,
  uploadInput,
  withSettings,
} from './support/api-stack.ts';
import { jpeg, png, pngHeader, wav, wavHeader } from './support/media-fixtures.ts';

// Pure parts ---------------------------------------------------------------------------------------

async function rejects(p: Promise<unknown>, status: number, code: string) {
  await assert.rejects(p, (err) => {
    assert.ok(err instanceof HttpError);
    assert.equal(`${err.status} ${err.code}`, `${status} ${code}`);
    return true;
  });
}

const jsonRequest = (body: BodyInit, headers: Record<string, string> = {}) =>
  new Request('http://x/', {
    method: 'POST',
    body,
    headers: { 'content-type': 'application/json', ...headers },
  });

Deno.test('idempotency key: optional, 1..200 printable ASCII characters', () => {
  const req = (key?: string) =>
    new Request('http://x/', { headers: key === undefined ? {} : { 'idempotency-key': key } });
  assert.equal(readIdempotencyKey(req()), null);
  assert.equal(readIdempotencyKey(req('order-42 / try 1')), 'order-42 / try 1');
  assert.equal(readIdempotencyKey(req('k'.repeat(200))), 'k'.repeat(200));
  for (const bad of ['', 'k'.repeat(201), 'caf\u00e9']) {
    assert.throws(() => readIdempotencyKey(req(bad)), (err) => {
      assert.ok(err instanceof HttpError);
      assert.equal(`${err.status} ${err.code}`, '400 invalid_idempotency_key');
      return true;
    });
  }
});

Deno.test('json body: objects only, application/json only, capped without reading it all', async () => {
  assert.deepEqual(await readJsonObject(jsonRequest('{"a":1}')), { a: 1 });
  assert.deepEqual(
    await readJsonObject(jsonRequest('{}', { 'content-type': 'application/json; charset=utf-8' })),
    {},
  );
  await rejects(
    readJsonObject(jsonRequest('{}', { 'content-type': 'text/plain' })),
    415,
    'unsupported_media_type',
  );
  await rejects(
    readJsonObject(jsonRequest('{}', { 'content-type': 'application/jsonx' })),
    415,
    'unsupported_media_type',
  );
  await rejects(readJsonObject(jsonRequest('[1]')), 400, 'invalid_body');
  await rejects(readJsonObject(jsonRequest('"x"')), 400, 'invalid_body');
  await rejects(readJsonObject(jsonRequest('')), 400, 'invalid_json');
  await rejects(readJsonObject(jsonRequest('{"a":')), 400, 'invalid_json');
  await rejects(
    readJsonObject(jsonRequest(new Uint8Array([0x7b, 0xff, 0x7d]))),
    400,
    'invalid_json',
  );
  await rejects(
    readJsonObject(jsonRequest('x'.repeat(MAX_BODY_BYTES + 1)), MAX_BODY_BYTES),
    413,
    'body_too_large',
  );
  // A stream that never ends is cut off at the cap.
  let sent = 0;
  const endless = new ReadableStream<Uint8Array>({
    pull(controller) {
      sent += 1024;
      controller.enqueue(new Uint8Array(1024).fill(0x20));
    },
  });
  await rejects(readJsonObject(jsonRequest(endless), 4096), 413, 'body_too_large');
  assert.ok(sent <= 8 * 1024, `read ${sent} bytes of an endless body`);
});

Deno.test('input folders: only "<own id>/<name>" is the caller\'s', () => {
  const id = '7d3f0a52-3a4f-4c38-9e7e-2b1f6f0c9a10';
  assert.equal(inFolderOf(`${id}/a.png`, id), true);
  assert.equal(inFolderOf(`${id.toUpperCase()}/a/b.png`, id), true);
  assert.equal(inFolderOf(`${id}/`, id), false);
  assert.equal(inFolderOf(`${id}x/a.png`, id), false);
  assert.equal(inFolderOf(`other/${id}/a.png`, id), false);
});

Deno.test('creators: there is none for noop, even when noop is enabled', () => {
  assert.throws(
    () =>
      createJobHandler(KINDS_BY_TYPE.noop, {
        reader: functionEnvFor({ SPOOL_ENABLE_NOOP: 'true' }),
      }),
    /no creator/,
  );
});

Deno.test('creators: a missing variable stops the function at load', () => {
  assert.throws(
    () => createJobHandler(KINDS_BY_TYPE.roto, { reader: new EnvReader(() => undefined) }),
    EnvError,
  );
});

/** An environment for load-time checks that need no stack. */
function functionEnvFor(vars: Record<string, string> = {}) {
  const env: Record<string, string> = {
    SUPABASE_URL: 'http://127.0.0.1:9',
    SUPABASE_ANON_KEY: 'anon',
    SUPABASE_SERVICE_ROLE_KEY: 'service',
    ...vars,
  };
  return new EnvReader((name) => env[name]);
}

// Fixtures -----------------------------------------------------------------------------------------

const REPLICATE = {
  REPLICATE_API_TOKEN: 'r8_test',
  REPLICATE_WEBHOOK_SECRET: 'whsec_test',
  SPOOL_REPLICATE_ROTO_VERSION: 'v-roto',
  SPOOL_REPLICATE_COLOR_GRADE_VERSION: 'v-grade',
  SPOOL_REPLICATE_AUDIO_CLEAN_VERSION: 'v-audio',
};
const OPENAI = { OPENAI_API_KEY: 'sk-test' };

interface World {
  alice: TestUser;
  bob: TestUser;
  paths: Record<string, string>;
  /**
   * Uploads alice's files again: a creator removes a file it refuses (413, 422), so a test that
   * was refused one puts it back for the next.
   */
  restore: () => Promise<void>;
}

let world: Promise<World> | null = null;

/** Two users; alice has one input of every sort, bob one image. Made once per file. */
function theWorld(): Promise<World> {
  world ??= (async () => {
    const [alice, bob] = await Promise.all([createUser(), createUser()]);
    const files: [string, Uint8Array, string][] = [
      ['ok.png', png(), 'image/png'],
      ['ok.jpg', jpeg(), 'image/jpeg'],
      ['ok.wav', wav(), 'audio/wav'],
      ['big.png', pngHeader(4000, 4000), 'image/png'],
      ['long.wav', wavHeader(3600), 'audio/wav'],
      ['junk.png', new TextEncoder().encode('not a png at all'), 'image/png'],
      ['broken.wav', wavHeader(1).subarray(0, 30), 'audio/wav'],
      [
        'clip.mp4',
        new Uint8Array([0, 0, 0, 24, 0x66, 0x74, 0x79, 0x70, 0x69, 0x73, 0x6f, 0x6d, 0, 0, 2, 0]),
        'video/mp4',
      ],
      [
        'song.mp3',
        new Uint8Array([0x49, 0x44, 0x33, 4, 0, 0, 0, 0, 0, 0, 0xff, 0xfb, 0x90, 0x64]),
        'audio/mpeg',
      ],
      ['My Photo (1).png', png(8, 8), 'image/png'],
      ['empty.png', new Uint8Array(0), 'image/png'],
    ];
    const paths: Record<string, string> = {};
    const restore = async () => {
      for (const [name, bytes, type] of files) {
        paths[name] = await uploadInput(alice, name, bytes, type);
      }
    };
    await restore();
    paths['bob.png'] = await uploadInput(bob, 'bob.png', png(), 'image/png');
    paths.missing = `${alice.id}/missing.png`;
    return { alice, bob, paths, restore };
  })();
  return world;
}

const handlers = new Map<string, ReturnType<typeof createJobHandler>>();
/** The creator of `type` with exactly these provider variables (cached per combination). */
function creator(type: string, vars: Record<string, string> = {}) {
  const key = `${type} ${JSON.stringify(vars)}`;
  if (!handlers.has(key)) {
    handlers.set(key, createJobHandler(KINDS_BY_TYPE[type], { reader: functionEnv(vars) }));
  }
  return handlers.get(key)!;
}

/** Posts to a creator as `user` (unless options say otherwise). */
function post(
  type: string,
  body: unknown,
  options: CallOptions & { user?: TestUser; vars?: Record<string, string> } = {},
) {
  const { user, vars, ...rest } = options;
  return call(creator(type, vars), `/${type}`, { token: user?.token, body, ...rest });
}

// Happy paths --------------------------------------------------------------------------------------

/** max_attempts of each type's row in spool.job_types (20261203130000_job_types.sql). */
const ATTEMPTS: Record<string, number> = { 'color-grade': 3, 'audio-clean': 3, roto: 3, image: 2 };

async function expectCreated(
  res: Awaited<ReturnType<typeof call>>,
  user: TestUser,
  type: string,
  input: Record<string, unknown>,
) {
  assert.equal(res.status, 202, res.text);
  const job = res.json!.job as Record<string, unknown>;
  assert.deepEqual(Object.keys(job), [...PUBLIC_JOB_FIELDS]);
  assert.equal(job.type, type);
  assert.equal(job.status, 'pending');
  assert.equal(job.progress, 0);
  assert.equal(job.attempts, 0);
  assert.equal(job.max_attempts, ATTEMPTS[type], "the type's row in spool.job_types");
  assert.deepEqual(job.input, input);
  assert.equal(res.headers.get('location'), `/functions/v1/jobs/${job.id}`);
  assert.equal(res.headers.get('content-type'), 'application/json');
  const [row] = await sql<Record<string, unknown>>(
    'select user_id, type, input, max_attempts, idempotency_key from public.jobs where id = $1',
    [job.id],
  );
  assert.ok(row, 'the job row exists');
  assert.equal(row.user_id, user.id);
  assert.equal(row.type, type);
  assert.deepEqual(row.input, input);
  assert.equal(row.max_attempts, ATTEMPTS[type]);
  return { job, row };
}

Deno.test({
  name: 'color-grade: a PNG in my folder is queued with the validated defaults',
  ...integration,
  async fn() {
    const { alice, paths } = await theWorld();
    const res = await post('color-grade', { input_path: paths['ok.png'] }, { user: alice });
    await expectCreated(res, alice, 'color-grade', {
      input_path: paths['ok.png'],
      preset: 'none',
      exposure: 0,
      contrast: 0,
      saturation: 0,
      temperature: 0,
      tint: 0,
    });
  },
});

Deno.test({
  name: 'color-grade: a JPEG with settings, a file name with spaces, and big images via Replicate',
  ...integration,
  async fn() {
    const { alice, paths } = await theWorld();
    const input = {
      input_path: paths['ok.jpg'],
      preset: 'teal-orange',
      exposure: -1.5,
      contrast: 0.25,
      saturation: -1,
      temperature: 1,
      tint: -0.5,
      output_format: 'png',
    };
    await expectCreated(
      await post('color-grade', input, { user: alice }),
      alice,
      'color-grade',
      input,
    );
    const spaced = await post('color-grade', { input_path: paths['My Photo (1).png'] }, {
      user: alice,
    });
    assert.equal(spaced.status, 202, spaced.text);
    const big = await post('color-grade', { input_path: paths['big.png'] }, {
      user: alice,
      vars: REPLICATE,
    });
    assert.equal(big.status, 202, big.text);
    const video = await post('color-grade', { input_path: paths['clip.mp4'] }, {
      user: alice,
      vars: REPLICATE,
    });
    assert.equal(video.status, 202, video.text);
  },
});

Deno.test({
  name: 'audio-clean: a short WAV is queued with the validated defaults; mp3 via Replicate',
  ...integration,
  async fn() {
    const { alice, paths } = await theWorld();
    const res = await post('audio-clean', { input_path: paths['ok.wav'] }, { user: alice });
    await expectCreated(res, alice, 'audio-clean', {
      input_path: paths['ok.wav'],
      target_lufs: -16,
      noise_reduction: 0.5,
      highpass_hz: 80,
    });
    const mp3 = await post('audio-clean', { input_path: paths['song.mp3'] }, {
      user: alice,
      vars: REPLICATE,
    });
    assert.equal(mp3.status, 202, mp3.text);
    const long = await post('audio-clean', { input_path: paths['long.wav'] }, {
      user: alice,
      vars: REPLICATE,
    });
    assert.equal(long.status, 202, long.text);
  },
});

Deno.test({
  name: 'roto: an image is queued with the validated defaults; ai mode and video via Replicate',
  ...integration,
  async fn() {
    const { alice, paths } = await theWorld();
    const res = await post('roto', { input_path: paths['ok.png'] }, { user: alice });
    await expectCreated(res, alice, 'roto', {
      input_path: paths['ok.png'],
      mode: 'color',
      key_color: '#00b140',
      tolerance: 0.3,
      feather: 2,
      invert: false,
    });
    const luma = {
      input_path: paths['ok.jpg'],
      mode: 'luma',
      key_color: '#FFFFFF',
      tolerance: 1,
      feather: 0,
      invert: true,
    };
    await expectCreated(await post('roto', luma, { user: alice }), alice, 'roto', luma);
    const ai = await post('roto', { input_path: paths['ok.png'], mode: 'ai' }, {
      user: alice,
      vars: REPLICATE,
    });
    assert.equal(ai.status, 202, ai.text);
    const video = await post('roto', { input_path: paths['clip.mp4'] }, {
      user: alice,
      vars: REPLICATE,
    });
    assert.equal(video.status, 202, video.text);
  },
});

Deno.test({
  name: 'image: a prompt is queued with the validated defaults when OpenAI is configured',
  ...integration,
  async fn() {
    const { alice } = await theWorld();
    const res = await post('image', { prompt: '  a lighthouse at dusk ' }, {
      user: alice,
      vars: OPENAI,
    });
    await expectCreated(res, alice, 'image', {
      prompt: 'a lighthouse at dusk',
      size: '1024x1024',
      quality: 'auto',
      n: 1,
    });
    const full = { prompt: 'a fox', size: '1536x1024', quality: 'high', n: 4 };
    await expectCreated(
      await post('image', full, { user: alice, vars: OPENAI }),
      alice,
      'image',
      full,
    );
  },
});

Deno.test({
  name: 'idempotency: the same key and body return the same job and write one row',
  ...integration,
  async fn() {
    const { alice, paths } = await theWorld();
    const key = `grade-${crypto.randomUUID()}`;
    const body = { input_path: paths['ok.png'], preset: 'warm' };
    const first = await post('color-grade', body, {
      user: alice,
      headers: { 'idempotency-key': key },
    });
    assert.equal(first.status, 202, first.text);
    const before = await countJobs();
    const again = await post('color-grade', body, {
      user: alice,
      headers: { 'idempotency-key': key },
    });
    assert.equal(again.status, 202, again.text);
    assert.equal((again.json!.job as { id: string }).id, (first.json!.job as { id: string }).id);
    assert.equal(await countJobs(), before);
    const [row] = await sql<{ idempotency_key: string }>(
      'select idempotency_key from public.jobs where id = $1',
      [
        (first.json!.job as { id: string }).id,
      ],
    );
    assert.equal(row.idempotency_key, key);
  },
});

Deno.test({
  name: 'gateway: a creator answers through /functions/v1 and its Location serves the job',
  ...integration,
  async fn() {
    const { alice, paths } = await theWorld();
    const s = theStack();
    const headers = { apikey: s.anonKey, 'content-type': 'application/json' };
    const res = await fetch(`${s.url}/functions/v1/roto`, {
      method: 'POST',
      headers: { ...headers, authorization: `Bearer ${alice.token}` },
      body: JSON.stringify({ input_path: paths['ok.png'], mode: 'luma' }),
    });
    const body = await res.json();
    assert.equal(res.status, 202, JSON.stringify(body));
    const location = res.headers.get('location')!;
    assert.equal(location, `/functions/v1/jobs/${body.job.id}`);
    const got = await fetch(`${s.url}${location}`, {
      headers: { apikey: s.anonKey, authorization: `Bearer ${alice.token}` },
    });
    const gotBody = await got.json();
    assert.equal(got.status, 200, JSON.stringify(gotBody));
    assert.equal(gotBody.job.id, body.job.id);
    const before = await countJobs();
    const anonymous = await fetch(`${s.url}/functions/v1/roto`, {
      method: 'POST',
      headers,
      body: JSON.stringify({ input_path: paths['ok.png'] }),
    });
    await anonymous.body?.cancel();
    assert.equal(anonymous.status, 401);
    assert.equal(await countJobs(), before);
  },
});

// Bad requests -------------------------------------------------------------------------------------

interface BadRequest {
  name: string;
  status: number;
  code: string;
  /** The request; `body` defaults to the creator's valid body. */
  request: (
    w: World,
  ) =>
    | Promise<CallOptions & { user?: TestUser; vars?: Record<string, string> }>
    | (CallOptions & { user?: TestUser; vars?: Record<string, string> });
}

/** Rows every creator shares; `valid` is a body that would be accepted. */
function commonRows(valid: (w: World) => Record<string, unknown>): BadRequest[] {
  const as = (w: World) => ({ user: w.alice, body: valid(w) });
  return [
    {
      name: 'no token',
      status: 401,
      code: 'unauthorized',
      request: (w) => ({ ...as(w), user: undefined }),
    },
    {
      name: 'the anon key as token',
      status: 401,
      code: 'unauthorized',
      request: (w) => ({ ...as(w), user: undefined, token: theStack().anonKey }),
    },
    {
      name: 'an expired token',
      status: 401,
      code: 'invalid_token',
      request: async (w) => ({
        ...as(w),
        user: undefined,
        token: await signJwt(sessionClaims(w.alice.id, { expiresIn: -60 })),
      }),
    },
    {
      name: 'a token signed with another secret',
      status: 401,
      code: 'invalid_token',
      request: async (w) => ({
        ...as(w),
        user: undefined,
        token: await signJwt(sessionClaims(w.alice.id), 'not-the-secret'),
      }),
    },
    // Auth refuses the token of a user that does not exist. With the new keys the function
    // verifies tokens against the JWKS instead, as Supabase's services do: a validly signed token
    // passes, and what follows depends on the request (env.test.ts covers that path).
    ...(Deno.env.get('SUPABASE_JWKS') ? [] : [{
      name: 'a token of a user that does not exist',
      status: 401,
      code: 'invalid_token',
      request: async (w: World) => ({
        ...as(w),
        user: undefined,
        token: await signJwt(sessionClaims(crypto.randomUUID())),
      }),
    }]),
    {
      name: 'the secret key as token',
      status: 401,
      code: 'invalid_token',
      request: (w) => ({ ...as(w), user: undefined, token: theStack().serviceKey }),
    },
    {
      name: 'GET',
      status: 405,
      code: 'method_not_allowed',
      request: (w) => ({ user: w.alice, method: 'GET' }),
    },
    {
      name: 'a text/plain body',
      status: 415,
      code: 'unsupported_media_type',
      request: (w) => ({ ...as(w), contentType: 'text/plain' }),
    },
    {
      name: 'no content type',
      status: 415,
      code: 'unsupported_media_type',
      request: (w) => ({ ...as(w), contentType: null }),
    },
    {
      name: 'malformed JSON',
      status: 400,
      code: 'invalid_json',
      request: (w) => ({ user: w.alice, body: '{"input_path": ' }),
    },
    {
      name: 'an array body',
      status: 400,
      code: 'invalid_body',
      request: (w) => ({ user: w.alice, body: [valid(w)] }),
    },
    {
      name: 'a null body',
      status: 400,
      code: 'invalid_body',
      request: (w) => ({ user: w.alice, body: 'null' }),
    },
    {
      name: 'an unknown field',
      status: 400,
      code: 'invalid_body',
      request: (w) => ({ user: w.alice, body: { ...valid(w), priority: 100 } }),
    },
    {
      name: 'a body over 64 KiB',
      status: 413,
      code: 'body_too_large',
      request: (w) => ({
        user: w.alice,
        body: { ...valid(w), padding: 'x'.repeat(MAX_BODY_BYTES) },
      }),
    },
    {
      name: 'an Idempotency-Key over 200 characters',
      status: 400,
      code: 'invalid_idempotency_key',
      request: (w) => ({ ...as(w), headers: { 'idempotency-key': 'k'.repeat(201) } }),
    },
    {
      name: 'an empty Idempotency-Key',
      status: 400,
      code: 'invalid_idempotency_key',
      request: (w) => ({ ...as(w), headers: { 'idempotency-key': '' } }),
    },
    {
      name: 'a non-ASCII Idempotency-Key',
      status: 400,
      code: 'invalid_idempotency_key',
      request: (w) => ({ ...as(w), headers: { 'idempotency-key': 'caf\u00e9' } }),
    },
  ];
}

/** Rows of the creators that take an input file. */
function fileRows(
  valid: (w: World) => Record<string, unknown>,
  wrongType: string,
  unreadable: string,
): BadRequest[] {
  const body = (w: World, input_path: unknown) => ({
    user: w.alice,
    body: { ...valid(w), input_path },
  });
  return [
    {
      name: 'no input_path',
      status: 400,
      code: 'invalid_body',
      request: (w) => ({ user: w.alice, body: { ...valid(w), input_path: undefined } }),
    },
    {
      name: 'input_path not a string',
      status: 400,
      code: 'invalid_body',
      request: (w) => body(w, 42),
    },
    {
      name: 'input_path outside any user folder',
      status: 400,
      code: 'invalid_body',
      request: (w) => body(w, 'ok.png'),
    },
    {
      name: "another user's folder",
      status: 403,
      code: 'forbidden_input',
      request: (w) => body(w, w.paths['bob.png']),
    },
    {
      name: 'path traversal',
      status: 400,
      code: 'invalid_body',
      request: (w) => body(w, `${w.alice.id}/../${w.bob.id}/bob.png`),
    },
    {
      name: 'a file that does not exist',
      status: 404,
      code: 'input_not_found',
      request: (w) => body(w, w.paths.missing),
    },
    {
      name: 'an empty file',
      status: 422,
      code: 'empty_file',
      request: (w) => body(w, w.paths['empty.png']),
    },
    {
      name: 'an unsupported file type',
      status: 422,
      code: 'unsupported_format',
      request: (w) => body(w, w.paths[wrongType]),
    },
    {
      name: 'a file that is not what its type says',
      status: 422,
      code: 'unreadable_file',
      request: (w) => body(w, w.paths[unreadable]),
    },
  ];
}

const TABLES: Record<
  string,
  {
    valid: (w: World) => Record<string, unknown>;
    vars?: Record<string, string>;
    rows: BadRequest[];
  }
> = {
  'color-grade': {
    valid: (w) => ({ input_path: w.paths['ok.png'] }),
    rows: [
      {
        name: 'exposure above 3',
        status: 400,
        code: 'invalid_body',
        request: (w) => ({ user: w.alice, body: { input_path: w.paths['ok.png'], exposure: 5 } }),
      },
      {
        name: 'contrast below -1',
        status: 400,
        code: 'invalid_body',
        request: (w) => ({ user: w.alice, body: { input_path: w.paths['ok.png'], contrast: -2 } }),
      },
      {
        name: 'an unknown preset',
        status: 400,
        code: 'invalid_body',
        request: (w) => ({
          user: w.alice,
          body: { input_path: w.paths['ok.png'], preset: 'sepia' },
        }),
      },
      {
        name: 'exposure as a string',
        status: 400,
        code: 'invalid_body',
        request: (w) => ({ user: w.alice, body: { input_path: w.paths['ok.png'], exposure: '1' } }),
      },
      {
        name: 'an unknown output format',
        status: 400,
        code: 'invalid_body',
        request: (w) => ({
          user: w.alice,
          body: { input_path: w.paths['ok.png'], output_format: 'gif' },
        }),
      },
      {
        name: 'an image over the in-function limit, no provider',
        status: 413,
        code: 'image_too_large',
        request: (w) => ({ user: w.alice, body: { input_path: w.paths['big.png'] } }),
      },
      {
        name: 'a video, no provider',
        status: 422,
        code: 'unsupported_format',
        request: (w) => ({ user: w.alice, body: { input_path: w.paths['clip.mp4'] } }),
      },
    ],
  },
  'audio-clean': {
    valid: (w) => ({ input_path: w.paths['ok.wav'] }),
    rows: [
      {
        name: 'target_lufs above -10',
        status: 400,
        code: 'invalid_body',
        request: (w) => ({
          user: w.alice,
          body: { input_path: w.paths['ok.wav'], target_lufs: -5 },
        }),
      },
      {
        name: 'highpass_hz below 20',
        status: 400,
        code: 'invalid_body',
        request: (w) => ({
          user: w.alice,
          body: { input_path: w.paths['ok.wav'], highpass_hz: 10 },
        }),
      },
      {
        name: 'noise_reduction as a word',
        status: 400,
        code: 'invalid_body',
        request: (w) => ({
          user: w.alice,
          body: { input_path: w.paths['ok.wav'], noise_reduction: 'high' },
        }),
      },
      {
        name: 'noise_reduction above 1',
        status: 400,
        code: 'invalid_body',
        request: (w) => ({
          user: w.alice,
          body: { input_path: w.paths['ok.wav'], noise_reduction: 1.5 },
        }),
      },
      {
        name: 'audio over the in-function limit, no provider',
        status: 413,
        code: 'audio_too_long',
        request: (w) => ({ user: w.alice, body: { input_path: w.paths['long.wav'] } }),
      },
      {
        name: 'an mp3, no provider',
        status: 422,
        code: 'unsupported_format',
        request: (w) => ({ user: w.alice, body: { input_path: w.paths['song.mp3'] } }),
      },
    ],
  },
  'roto': {
    valid: (w) => ({ input_path: w.paths['ok.png'] }),
    rows: [
      {
        name: 'tolerance above 1',
        status: 400,
        code: 'invalid_body',
        request: (w) => ({ user: w.alice, body: { input_path: w.paths['ok.png'], tolerance: 2 } }),
      },
      {
        name: 'feather below 0',
        status: 400,
        code: 'invalid_body',
        request: (w) => ({ user: w.alice, body: { input_path: w.paths['ok.png'], feather: -1 } }),
      },
      {
        name: 'an unknown mode',
        status: 400,
        code: 'invalid_body',
        request: (w) => ({ user: w.alice, body: { input_path: w.paths['ok.png'], mode: 'magic' } }),
      },
      {
        name: 'a key colour by name',
        status: 400,
        code: 'invalid_body',
        request: (w) => ({
          user: w.alice,
          body: { input_path: w.paths['ok.png'], key_color: 'green' },
        }),
      },
      {
        name: 'invert as a string',
        status: 400,
        code: 'invalid_body',
        request: (w) => ({ user: w.alice, body: { input_path: w.paths['ok.png'], invert: 'yes' } }),
      },
      {
        name: 'ai mode without Replicate',
        status: 503,
        code: 'provider_not_configured',
        request: (w) => ({ user: w.alice, body: { input_path: w.paths['ok.png'], mode: 'ai' } }),
      },
      {
        name: 'a video without Replicate',
        status: 503,
        code: 'provider_not_configured',
        request: (w) => ({ user: w.alice, body: { input_path: w.paths['clip.mp4'] } }),
      },
      {
        name: 'an image over the in-function limit, no provider',
        status: 413,
        code: 'image_too_large',
        request: (w) => ({ user: w.alice, body: { input_path: w.paths['big.png'] } }),
      },
    ],
  },
  'image': {
    valid: () => ({ prompt: 'a cat' }),
    vars: OPENAI,
    rows: [
      {
        name: 'no prompt',
        status: 400,
        code: 'invalid_body',
        request: (w) => ({ user: w.alice, body: { size: 'auto' } }),
      },
      {
        name: 'an empty prompt',
        status: 400,
        code: 'invalid_body',
        request: (w) => ({ user: w.alice, body: { prompt: '' } }),
      },
      {
        name: 'a blank prompt',
        status: 400,
        code: 'invalid_body',
        request: (w) => ({ user: w.alice, body: { prompt: '   ' } }),
      },
      {
        name: 'a prompt over 4000 characters',
        status: 400,
        code: 'invalid_body',
        request: (w) => ({ user: w.alice, body: { prompt: 'a'.repeat(4001) } }),
      },
      {
        name: 'a prompt that is a number',
        status: 400,
        code: 'invalid_body',
        request: (w) => ({ user: w.alice, body: { prompt: 42 } }),
      },
      {
        name: 'n = 0',
        status: 400,
        code: 'invalid_body',
        request: (w) => ({ user: w.alice, body: { prompt: 'a cat', n: 0 } }),
      },
      {
        name: 'n = 5',
        status: 400,
        code: 'invalid_body',
        request: (w) => ({ user: w.alice, body: { prompt: 'a cat', n: 5 } }),
      },
      {
        name: 'n = 1.5',
        status: 400,
        code: 'invalid_body',
        request: (w) => ({ user: w.alice, body: { prompt: 'a cat', n: 1.5 } }),
      },
      {
        name: 'an unknown size',
        status: 400,
        code: 'invalid_body',
        request: (w) => ({ user: w.alice, body: { prompt: 'a cat', size: '10x10' } }),
      },
      {
        name: 'an unknown quality',
        status: 400,
        code: 'invalid_body',
        request: (w) => ({ user: w.alice, body: { prompt: 'a cat', quality: 'ultra' } }),
      },
      {
        name: 'an input file it does not take',
        status: 400,
        code: 'invalid_body',
        request: (w) => ({
          user: w.alice,
          body: { prompt: 'a cat', input_path: w.paths['ok.png'] },
        }),
      },
      {
        name: 'OpenAI not configured',
        status: 503,
        code: 'provider_not_configured',
        request: (w) => ({ user: w.alice, body: { prompt: 'a cat' }, vars: {} }),
      },
    ],
  },
};
TABLES['color-grade'].rows.unshift(
  ...commonRows(TABLES['color-grade'].valid),
  ...fileRows(TABLES['color-grade'].valid, 'ok.wav', 'junk.png'),
);
TABLES['audio-clean'].rows.unshift(
  ...commonRows(TABLES['audio-clean'].valid),
  ...fileRows(TABLES['audio-clean'].valid, 'ok.png', 'broken.wav'),
);
TABLES['roto'].rows.unshift(
  ...commonRows(TABLES['roto'].valid),
  ...fileRows(TABLES['roto'].valid, 'ok.wav', 'junk.png'),
);
TABLES['image'].rows.unshift(...commonRows(TABLES['image'].valid));

for (const [type, table] of Object.entries(TABLES)) {
  Deno.test({
    name:
      `${type}: each of ${table.rows.length} bad requests gets its exact status and code and writes no row`,
    ...integration,
    async fn(t) {
      assert.ok(table.rows.length >= 20, `${type} has ${table.rows.length} bad requests`);
      const w = await theWorld();
      for (const row of table.rows) {
        await t.step(`${row.name} -> ${row.status} ${row.code}`, async () => {
          const { user, vars, ...options } = await row.request(w);
          const before = await countJobs();
          const res = await call(creator(type, vars ?? table.vars ?? {}), `/${type}`, {
            token: user?.token,
            ...options,
          });
          assertError(res, row.status, row.code, `${type}: ${row.name}`);
          assert.equal(await countJobs(), before, `${type}: ${row.name} wrote a row`);
          if (row.status === 413 || row.status === 422) await w.restore();
        });
      }
    },
  });
}

// Refused files -----------------------------------------------------------------------------------

/** Whether the user's inputs bucket holds `path` (as Storage's table says). */
async function stored(path: string): Promise<boolean> {
  const rows = await sql<{ n: number }>(
    `select count(*)::int as n from storage.objects where bucket_id = 'inputs' and name = $1`,
    [path],
  );
  return rows[0].n === 1;
}

Deno.test({
  name:
    'a file the creator refuses is removed; one another job reads, or refused for its settings only, is kept',
  ...integration,
  async fn() {
    const alice = await createUser();
    const junk = await uploadInput(
      alice,
      'junk.png',
      new TextEncoder().encode('no png'),
      'image/png',
    );
    const refused = await post('color-grade', { input_path: junk }, { user: alice });
    assertError(refused, 422, 'unreadable_file', 'a PNG that is not one');
    assert.equal(await stored(junk), false, 'the refused file was removed');

    const long = await uploadInput(alice, 'long.wav', wavHeader(3600), 'audio/wav');
    assertError(
      await post('audio-clean', { input_path: long }, { user: alice }),
      413,
      'audio_too_long',
    );
    assert.equal(await stored(long), false, 'a file too long is removed too');

    const ok = await uploadInput(alice, 'ok.png', png(), 'image/png');
    const settings = await post('color-grade', { input_path: ok, exposure: 99 }, { user: alice });
    assertError(settings, 400, 'invalid_body', 'a setting out of range');
    assert.equal(await stored(ok), true, 'a settings refusal keeps the file');

    assert.equal((await post('color-grade', { input_path: ok }, { user: alice })).status, 202);
    const asAudio = await post('audio-clean', { input_path: ok }, { user: alice });
    assertError(asAudio, 422, 'unsupported_format', 'a PNG as audio');
    assert.equal(await stored(ok), true, 'a file another job reads is kept');

    // Only the caller's own folder is ever touched: another user's path is 403 and stays.
    const bob = await createUser();
    const bobs = await uploadInput(
      bob,
      'junk.png',
      new TextEncoder().encode('no png'),
      'image/png',
    );
    assertError(
      await post('color-grade', { input_path: bobs }, { user: alice }),
      403,
      'forbidden_input',
    );
    assert.equal(await stored(bobs), true);
  },
});

// Conflicts and quotas ----------------------------------------------------------------------------

/** A change to each creator's valid body that is still valid. */
const CHANGED: Record<string, Record<string, unknown>> = {
  'color-grade': { exposure: 1 },
  'audio-clean': { target_lufs: -20 },
  'roto': { invert: true },
  'image': { n: 2 },
};

for (const type of Object.keys(TABLES)) {
  const vars = TABLES[type].vars ?? {};
  Deno.test({
    name: `${type}: an Idempotency-Key reused for another input is 409 idempotency_conflict`,
    ...integration,
    async fn() {
      const w = await theWorld();
      const key = `conflict-${crypto.randomUUID()}`;
      const valid = TABLES[type].valid(w);
      const first = await post(type, valid, {
        user: w.alice,
        vars,
        headers: { 'idempotency-key': key },
      });
      assert.equal(first.status, 202, first.text);
      const changed = { ...valid, ...CHANGED[type] };
      const before = await countJobs();
      const res = await post(type, changed, {
        user: w.alice,
        vars,
        headers: { 'idempotency-key': key },
      });
      assertError(res, 409, 'idempotency_conflict', type);
      assert.equal(await countJobs(), before);
    },
  });

  Deno.test({
    name: `${type}: past the jobs-per-minute quota is 429 quota_rate with Retry-After`,
    ...integration,
    async fn() {
      const w = await theWorld();
      const user = await createUser();
      let valid = TABLES[type].valid(w);
      if ('input_path' in valid) {
        const name = type === 'audio-clean' ? 'ok.wav' : 'ok.png';
        const bytes = type === 'audio-clean' ? wav() : png();
        valid = {
          ...valid,
          input_path: await uploadInput(
            user,
            name,
            bytes,
            type === 'audio-clean' ? 'audio/wav' : 'image/png',
          ),
        };
      }
      await withSettings({ max_jobs_per_minute_per_user: 1 }, async () => {
        const first = await post(type, valid, { user, vars });
        assert.equal(first.status, 202, first.text);
        const before = await countJobs();
        const res = await post(type, valid, { user, vars });
        assertError(res, 429, 'quota_rate', type);
        assert.equal(res.headers.get('retry-after'), '60');
        assert.equal(await countJobs(), before);
      });
    },
  });

  Deno.test({
    name: `${type}: past the active-jobs quota is 429 quota_active_jobs`,
    ...integration,
    async fn() {
      const w = await theWorld();
      const user = await createUser();
      // One active job that stays pending (it runs tomorrow), created through the SQL API.
      await transaction([
        ['set local role service_role'],
        [`select public.create_job($1, 'noop', '{}', 0, 3, now() + interval '1 day')`, [user.id]],
      ]);
      let valid = TABLES[type].valid(w);
      if ('input_path' in valid) {
        const isAudio = type === 'audio-clean';
        valid = {
          ...valid,
          input_path: await uploadInput(
            user,
            isAudio ? 'ok.wav' : 'ok.png',
            isAudio ? wav() : png(),
            isAudio ? 'audio/wav' : 'image/png',
          ),
        };
      }
      await withSettings({ max_active_jobs_per_user: 1 }, async () => {
        const before = await countJobs();
        const res = await post(type, valid, { user, vars });
        assertError(res, 429, 'quota_active_jobs', type);
        assert.equal(res.headers.get('retry-after'), '30');
        assert.equal(await countJobs(), before);
      });
    },
  });
}
