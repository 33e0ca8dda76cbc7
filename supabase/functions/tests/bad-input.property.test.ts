// Generated bad input (fast-check) against every creator (roto, color-grade, audio-clean, image)
// and the jobs API, run in this process against the local stack: whatever the body, the token or
// the path, the answer is a 4xx in the one error shape (or a 2xx when the input happens to be
// valid), never a 5xx. Strings include NUL and lone surrogates, which jsonb refuses; tokens are
// validly signed with arbitrary claims (future nbf, unusual roles, odd subs and session ids).
import assert from 'node:assert/strict';
import fc from 'npm:fast-check@4.11.0';
import { createJobHandler } from '../_shared/create-job.ts';
import { readSupabaseEnv } from '../_shared/env.ts';
import { HttpError, readJsonObject, unstorableTextPath } from '../_shared/http.ts';
import { jobsHandler } from '../jobs/api.ts';
import {
  call,
  type CallOptions,
  createUser,
  functionEnv,
  integration,
  sessionClaims,
  signJwt,
  type TestUser,
  uploadInput,
} from './support/api-stack.ts';
import { png, wav } from './support/media-fixtures.ts';

const VARS = {
  REPLICATE_API_TOKEN: 'r8_test',
  REPLICATE_WEBHOOK_SECRET: 'whsec_test',
  SPOOL_REPLICATE_ROTO_VERSION: 'v-roto',
  SPOOL_REPLICATE_COLOR_GRADE_VERSION: 'v-grade',
  SPOOL_REPLICATE_AUDIO_CLEAN_VERSION: 'v-audio',
  OPENAI_API_KEY: 'sk-test',
};
const CREATORS = ['roto', 'color-grade', 'audio-clean', 'image'] as const;
/** Runs per property; fixed seed per run of the suite is printed by fast-check on failure. */
const RUNS = 60;

interface World {
  alice: TestUser;
  paths: string[];
}
let world: Promise<World> | null = null;
function theWorld(): Promise<World> {
  world ??= (async () => {
    const alice = await createUser();
    const paths = [
      await uploadInput(alice, 'p.png', png(), 'image/png'),
      await uploadInput(alice, 'w.wav', wav(), 'audio/wav'),
    ];
    return { alice, paths };
  })();
  return world;
}

const handlers = new Map<string, ReturnType<typeof createJobHandler>>();
function creator(type: string) {
  if (!handlers.has(type)) {
    handlers.set(type, createJobHandler(type, { reader: functionEnv(VARS) }));
  }
  return handlers.get(type)!;
}

let jobsFn: ReturnType<typeof jobsHandler> | null = null;
function jobs() {
  if (!jobsFn) {
    const reader = functionEnv();
    const env = readSupabaseEnv(reader);
    reader.done();
    jobsFn = jobsHandler(env);
  }
  return jobsFn;
}

type Answer = Awaited<ReturnType<typeof call>>;

/** A 2xx, or a 4xx whose body is { error: { code, message, details? } }; never a 5xx. */
function assertAnswer(res: Answer, label: string) {
  assert.ok(res.status < 500, `${label}: ${res.status} ${res.text.slice(0, 300)}`);
  if (res.status >= 400) {
    const error = (res.json?.error ?? null) as Record<string, unknown> | null;
    assert.ok(error, `${label}: no error object in ${res.text.slice(0, 300)}`);
    assert.equal(typeof error.code, 'string', `${label}: error.code`);
    assert.match(error.code as string, /^[a-z][a-z0-9_]*$/, `${label}: error.code`);
    assert.equal(typeof error.message, 'string', `${label}: error.message`);
    for (const key of Object.keys(error)) {
      assert.ok(['code', 'message', 'details'].includes(key), `${label}: extra key ${key}`);
    }
  } else {
    assert.ok(res.status >= 200 && res.status < 300, `${label}: ${res.status}`);
  }
}

/** Any string, surrogate halves and control characters included. */
const anyString = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.string({ unit: 'grapheme', maxLength: 40 }),
  fc.constantFrom('\u0000', 'a\u0000b', '\ud800', 'x\udfff', '\udc00\ud800', '\u202e', ''),
);
/** Any JSON value, with those strings inside. */
const anyJson = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small' },
    anyString,
    fc.double(),
    fc.integer(),
    fc.boolean(),
    fc.constant(null),
    fc.array(tie('value'), { maxLength: 4 }),
    fc.dictionary(anyString, tie('value'), { maxKeys: 4 }),
  ),
})).value;

const FIELDS = [
  'input_path',
  'prompt',
  'mode',
  'preset',
  'size',
  'quality',
  'n',
  'key_color',
  'tolerance',
  'feather',
  'invert',
  'exposure',
  'contrast',
  'saturation',
  'temperature',
  'tint',
  'target_lufs',
  'noise_reduction',
  'highpass_hz',
  'output_format',
];

/** Bodies near the schemas (known fields with arbitrary values) and far from them. */
function bodies(paths: string[]) {
  const value = fc.oneof(anyJson, fc.constantFrom(...paths), fc.constantFrom('a fox', 'png', 'ai'));
  const near = fc.dictionary(fc.constantFrom(...FIELDS), value, { maxKeys: 6 });
  return fc.oneof(
    near.map((o) => JSON.stringify(o)),
    anyJson.map((v) => JSON.stringify(v)),
    anyString,
    fc.json(),
    fc.uint8Array({ maxLength: 64 }).map((b) => new TextDecoder().decode(b)),
  );
}

const headerValue = fc.string({
  unit: fc.integer({ min: 0x20, max: 0x7e }).map(String.fromCharCode),
  maxLength: 60,
});

for (const type of CREATORS) {
  Deno.test({
    name: `${type}: generated bodies get a 2xx or a 4xx in the error shape, never a 5xx`,
    ...integration,
    async fn() {
      const { alice, paths } = await theWorld();
      await fc.assert(
        fc.asyncProperty(
          bodies(paths),
          fc.option(headerValue, { nil: undefined }),
          fc.option(fc.constantFrom('application/json', 'text/plain', 'application/x+json', ''), {
            nil: undefined,
          }),
          async (body, key, contentType) => {
            const options: CallOptions = { token: alice.token, body };
            if (key !== undefined) options.headers = { 'idempotency-key': key };
            if (contentType !== undefined) options.contentType = contentType;
            assertAnswer(await call(creator(type), `/${type}`, options), `${type} ${body}`);
          },
        ),
        { numRuns: RUNS },
      );
    },
  });
}

Deno.test({
  name: 'image: a prompt with NUL or a lone surrogate is 400 invalid_body, not a 500',
  ...integration,
  async fn() {
    const { alice } = await theWorld();
    for (
      const prompt of ['a\u0000fox', 'a fox \ud800', '\udfff', 'ok'.repeat(3) + '\udc00\ud83d']
    ) {
      const res = await call(creator('image'), '/image', {
        token: alice.token,
        body: JSON.stringify({ prompt }),
      });
      assert.equal(res.status, 400, res.text);
      assert.equal((res.json?.error as { code: string }).code, 'invalid_body');
      assert.deepEqual((res.json?.error as { details: unknown }).details, [{
        path: 'prompt',
        message: 'text must not contain NUL characters or unpaired surrogates',
      }]);
    }
    // A well-formed pair (an emoji) is fine.
    const ok = await call(creator('image'), '/image', {
      token: alice.token,
      body: JSON.stringify({ prompt: 'a fox \ud83e\udd8a' }),
    });
    assert.equal(ok.status, 202, ok.text);
  },
});

Deno.test('json bodies: a string or key with NUL or a lone surrogate is 400 invalid_body naming its path', async () => {
  assert.equal(unstorableTextPath({ a: ['ok', { b: 'fine \ud83e\udd8a' }] }), null);
  assert.equal(unstorableTextPath({ a: ['ok', { b: 'x\u0000' }] }), 'a.1.b');
  assert.equal(unstorableTextPath({ 'k\ud800': 1 }), 'k\ud800');
  assert.equal(unstorableTextPath({ a: '\udc00x' }), 'a');
  assert.equal(unstorableTextPath('\u0000'), '');
  const err = await readJsonObject(
    new Request('http://x/', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"prompt": "a\\u0000b", "n": 1}',
    }),
  ).then(() => null, (e) => e);
  assert.ok(err instanceof HttpError);
  assert.equal(`${err.status} ${err.code}`, '400 invalid_body');
  assert.deepEqual(err.details, [{
    path: 'prompt',
    message: 'text must not contain NUL characters or unpaired surrogates',
  }]);
});

/** Claims as Auth issues them, with arbitrary overrides. */
const claimOverrides = fc.record(
  {
    role: fc.oneof(
      fc.constantFrom('anon', 'service_role', 'postgres', 'authenticator', 'x'),
      anyString,
    ),
    nbf: fc.oneof(
      fc.integer({ min: 1, max: 3600 * 24 * 365 }).map((d) =>
        Math.floor(Date.now() / 1000) + 600 + d
      ),
      anyJson,
    ),
    sub: fc.oneof(anyString, fc.uuid()),
    session_id: fc.oneof(anyString, fc.uuid(), anyJson),
    aud: anyJson,
    exp: anyJson,
    is_anonymous: anyJson,
    app_metadata: anyJson,
  },
  { requiredKeys: [] },
);

Deno.test({
  name: 'jobs: validly signed tokens with a future nbf or an unusual role are 401, not 500',
  ...integration,
  async fn() {
    const { alice } = await theWorld();
    const now = Math.floor(Date.now() / 1000);
    const cases: [string, Record<string, unknown>][] = [
      ['future nbf', { nbf: now + 3600 }],
      ['role postgres', { role: 'postgres' }],
      ['role x', { role: 'x' }],
      ['role service_role', { role: 'service_role' }],
      ['no role', { role: undefined }],
    ];
    for (const [label, overrides] of cases) {
      const claims: Record<string, unknown> = { ...sessionClaims(alice.id), ...overrides };
      const token = await signJwt(JSON.parse(JSON.stringify(claims)));
      const res = await call(jobs(), '/jobs', { method: 'GET', token });
      assert.equal(res.status, 401, `${label}: ${res.text}`);
      assert.equal((res.json?.error as { code: string }).code, 'invalid_token', label);
    }
  },
});

/** Every UTF-8 byte of `s` percent-encoded (a lone surrogate becomes U+FFFD, as in a URL). */
const percentEncoded = (s: string) =>
  [...new TextEncoder().encode(s)].map((b) => `%${b.toString(16).padStart(2, '0')}`).join('');

Deno.test({
  name: 'jobs: generated tokens, paths, queries and methods get a 4xx in the error shape or a 2xx',
  ...integration,
  async fn() {
    const { alice } = await theWorld();
    const segment = fc.oneof(
      fc.constantFrom(
        '',
        'health',
        'cancel',
        'retry',
        crypto.randomUUID(),
        '..',
        '%00',
        '%ED%A0%80',
      ),
      fc.uuid(),
      anyString.map(percentEncoded),
    );
    const query = fc.dictionary(
      fc.constantFrom('status', 'type', 'limit', 'cursor', 'x'),
      anyString,
      { maxKeys: 3 },
    ).map((q) => new URLSearchParams(q).toString());
    const token = fc.oneof(
      fc.constant(alice.token),
      claimOverrides.map((o) => ({ ...sessionClaims(alice.id), ...o })),
      headerValue.filter((t) => t.trim() !== '' && !/\s/.test(t)),
    );
    await fc.assert(
      fc.asyncProperty(
        fc.array(segment, { maxLength: 3 }),
        query,
        fc.constantFrom('GET', 'POST', 'PUT', 'DELETE'),
        token,
        async (segments, q, method, t) => {
          const bearer = typeof t === 'string' ? t : await signJwt(JSON.parse(JSON.stringify(t)));
          const path = `/jobs${segments.map((s) => `/${s}`).join('')}${q ? `?${q}` : ''}`;
          const res = await call(jobs(), path, { method, token: bearer });
          assertAnswer(res, `${method} ${path} ${typeof t === 'string' ? t : JSON.stringify(t)}`);
        },
      ),
      { numRuns: RUNS * 2 },
    );
  },
});
