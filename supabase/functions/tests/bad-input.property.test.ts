// Generated bad input (fast-check) against every creator (roto, color-grade, audio-clean, image)
// and the jobs API, run in this process against the local stack: whatever the body, the token or
// the path, the answer is a 4xx in the one error shape (or a 2xx when the input happens to be
// valid), never a 5xx. Strings include NUL and lone surrogates, which jsonb refuses; tokens are
// validly signed with arbitrary claims (future nbf, unusual roles, odd subs and session ids).
import { readProviderConfig } from '../_jobs/providers.ts';
import assert from 'node:assert/strict';
import fc from 'npm:fast-check@4.11.0';
import { createJobHandler } from '../_jobs/create.ts';
import { KINDS_BY_TYPE } from '../_jobs/kinds/index.ts';
import { decodeJwt } from '../_shared/deps.ts';
import { EnvReader, readSupabaseEnv } from '../_shared/env.ts';
import { HttpError, readJsonObject, unstorableTextPath } from '../_shared/http.ts';
import { jobsHandler } from '../jobs/api.ts';
import {
  call,
  type CallOptions,
  createUser,
  functionEnv,
  integration,
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
/** Runs per property (fast-check prints the seed and the shrunk counterexample of a failure). */
const RUNS = 250;

interface World {
  alice: TestUser;
  paths: Record<string, string>;
}

/** A new user with one PNG and one WAV input (a user per test: the quotas are per user). */
async function newWorld(): Promise<World> {
  const alice = await createUser();
  const paths = {
    png: await uploadInput(alice, 'p.png', png(), 'image/png'),
    wav: await uploadInput(alice, 'w.wav', wav(), 'audio/wav'),
  };
  return { alice, paths };
}

const handlers = new Map<string, ReturnType<typeof createJobHandler>>();
function creator(type: string) {
  if (!handlers.has(type)) {
    handlers.set(type, createJobHandler(KINDS_BY_TYPE[type], { reader: functionEnv(VARS) }));
  }
  return handlers.get(type)!;
}

let jobsFn: ReturnType<typeof jobsHandler> | null = null;
function jobs() {
  if (!jobsFn) {
    const reader = functionEnv();
    const env = readSupabaseEnv(reader);
    reader.done();
    jobsFn = jobsHandler(env, readProviderConfig(new EnvReader(() => undefined), {}));
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

/** Any string, surrogate halves and control characters included, often around a hostile one. */
const HOSTILE = ['\u0000', 'a\u0000b', '\ud800', 'x\udfff', '\udc00\ud800', '\u202e', ''];
const hostileString = fc.tuple(
  fc.string({ maxLength: 10 }),
  fc.constantFrom(...HOSTILE),
  fc.string({ maxLength: 10 }),
).map((parts) => parts.join(''));
const anyString = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.string({ unit: 'grapheme', maxLength: 40 }),
  fc.constantFrom(...HOSTILE),
  hostileString,
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

/** Each creator's valid input and its fields (_jobs/kinds/). */
const FIELDS: Record<(typeof CREATORS)[number], string[]> = {
  roto: ['input_path', 'input_name', 'mode', 'key_color', 'tolerance', 'feather', 'invert'],
  'color-grade': [
    'input_path',
    'input_name',
    'preset',
    'exposure',
    'contrast',
    'saturation',
    'temperature',
    'tint',
    'output_format',
  ],
  'audio-clean': ['input_path', 'input_name', 'target_lufs', 'noise_reduction', 'highpass_hz'],
  image: ['prompt', 'size', 'quality', 'n'],
};

/**
 * Bodies for `type`: mostly its valid input with up to two fields (or an unknown one) set to
 * arbitrary values, so the bad value reaches as far as it can; sometimes anything at all.
 */
function bodies(type: (typeof CREATORS)[number], paths: Record<string, string>) {
  const base: Record<string, unknown> = type === 'image'
    ? { prompt: 'a fox' }
    : { input_path: type === 'audio-clean' ? paths.wav : paths.png };
  const value = fc.oneof(
    { arbitrary: anyString, weight: 3 },
    { arbitrary: hostileString, weight: 2 },
    { arbitrary: anyJson, weight: 1 },
    {
      arbitrary: fc.constantFrom(
        ...Object.values(paths),
        `${paths.png}\u0000`,
        'a fox',
        'png',
        'ai',
      ),
      weight: 1,
    },
  );
  const key = fc.oneof(
    { arbitrary: fc.constantFrom(...FIELDS[type]), weight: 4 },
    { arbitrary: anyString, weight: 1 },
  );
  const mutated = fc.dictionary(key, value, { minKeys: 0, maxKeys: 2 })
    .map((changes) => JSON.stringify({ ...base, ...changes }));
  const wild = fc.oneof(
    anyJson.map((v) => JSON.stringify(v)),
    anyString,
    fc.json(),
    fc.uint8Array({ maxLength: 64 }).map((b) => new TextDecoder().decode(b)),
  );
  return fc.oneof({ arbitrary: mutated, weight: 4 }, { arbitrary: wild, weight: 1 });
}

/** Mostly undefined (the default), sometimes one of `values`. */
const rarely = <T>(values: fc.Arbitrary<T>) =>
  fc.oneof(
    { arbitrary: fc.constant(undefined), weight: 6 },
    { arbitrary: values, weight: 1 },
  );

const headerValue = fc.string({
  unit: fc.integer({ min: 0x20, max: 0x7e }).map(String.fromCharCode),
  maxLength: 60,
});

for (const type of CREATORS) {
  Deno.test({
    name: `${type}: generated bodies get a 2xx or a 4xx in the error shape, never a 5xx`,
    ...integration,
    async fn() {
      const { alice, paths } = await newWorld();
      const seen = new Map<string | number, number>();
      await fc.assert(
        fc.asyncProperty(
          bodies(type, paths),
          rarely(headerValue),
          rarely(fc.constantFrom('application/json', 'text/plain', 'application/x+json', '')),
          async (body, key, contentType) => {
            const options: CallOptions = { token: alice.token, body };
            if (key !== undefined) options.headers = { 'idempotency-key': key };
            if (contentType !== undefined) options.contentType = contentType;
            const res = await call(creator(type), `/${type}`, options);
            assertAnswer(res, `${type} ${body}`);
            const code = (res.json?.error as { code?: string } | undefined)?.code ?? res.status;
            seen.set(code, (seen.get(code) ?? 0) + 1);
          },
        ),
        { numRuns: RUNS },
      );
      // The generator reaches past the JSON and schema checks: some bodies are accepted.
      assert.ok((seen.get(202) ?? 0) > 0, `no body was accepted: ${JSON.stringify([...seen])}`);
    },
  });
}

Deno.test({
  name: 'image: a prompt with NUL or a lone surrogate is 400 invalid_body, not a 500',
  ...integration,
  async fn() {
    const { alice } = await newWorld();
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

/** One or two of Auth's claims replaced with arbitrary values (the signature stays valid). */
const OVERRIDES: Record<string, fc.Arbitrary<unknown>> = {
  role: fc.oneof(
    fc.constantFrom('anon', 'service_role', 'postgres', 'authenticator', 'x', undefined),
    anyString,
  ),
  nbf: fc.oneof(
    fc.integer({ min: 600, max: 3600 * 24 * 365 }).map((d) => Math.floor(Date.now() / 1000) + d),
    anyJson,
  ),
  sub: fc.oneof(anyString, fc.uuid(), anyJson),
  session_id: fc.oneof(anyString, fc.uuid(), anyJson),
  aud: anyJson,
  exp: anyJson,
  iat: anyJson,
  is_anonymous: anyJson,
  app_metadata: anyJson,
};
const oneOverride = fc.oneof(
  ...Object.entries(OVERRIDES).map(([k, arb]) => arb.map((v) => ({ [k]: v }))),
);
const claimOverrides = fc.oneof(
  { arbitrary: oneOverride, weight: 3 },
  { arbitrary: fc.tuple(oneOverride, oneOverride).map(([a, b]) => ({ ...a, ...b })), weight: 1 },
);

Deno.test({
  name:
    'jobs: validly signed tokens with a future nbf, an unusual role or a NUL in a claim are 401, not 500',
  ...integration,
  async fn() {
    const { alice } = await newWorld();
    const now = Math.floor(Date.now() / 1000);
    const cases: [string, Record<string, unknown>][] = [
      ['future nbf', { nbf: now + 3600 }],
      ['role postgres', { role: 'postgres' }],
      ['role x', { role: 'x' }],
      ['role service_role', { role: 'service_role' }],
      ['no role', { role: undefined }],
      // Found by the property below: the claims reach Postgres, which refuses NUL.
      ['a claim holding NUL', { is_anonymous: '\u0000' }],
    ];
    for (const [label, overrides] of cases) {
      const claims: Record<string, unknown> = { ...decodeJwt(alice.token), ...overrides };
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
    const { alice } = await newWorld();
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
      { arbitrary: fc.constant(alice.token), weight: 1 },
      {
        arbitrary: claimOverrides.map((o) => ({ ...decodeJwt(alice.token), ...o })),
        weight: 4,
      },
      { arbitrary: headerValue.filter((t) => t.trim() !== '' && !/\s/.test(t)), weight: 1 },
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
