// The environment every function reads at boot (_shared/env.ts) in both of Supabase's key systems,
// and how a user's token is verified (_shared/auth.ts requireUser): against SUPABASE_JWKS first
// when the token is signed with an asymmetric key (forgeries never reach Auth), then always with
// Auth (GET /auth/v1/user), which refuses a signed-out session. Pure: a fake Auth on a local port
// counts the calls that reach it.
import assert from 'node:assert/strict';
import { requireUser } from '../_shared/auth.ts';
import {
  EnvError,
  EnvReader,
  type Jwks,
  readSupabaseEnv,
  type SupabaseEnv,
} from '../_shared/env.ts';
import { HttpError } from '../_shared/http.ts';

const reader = (vars: Record<string, string>) => new EnvReader((name) => vars[name]);

Deno.test('functions boot with only the new-style variables a project without legacy keys gets', () => {
  const jwks = { keys: [{ kty: 'EC', crv: 'P-256', x: 'x', y: 'y', kid: 'k1', alg: 'ES256' }] };
  const r = reader({
    SUPABASE_URL: 'https://ref.supabase.co',
    SUPABASE_DB_URL: 'postgresql://postgres:pw@db.ref.supabase.co:5432/postgres',
    SUPABASE_PUBLISHABLE_KEYS: '{"default": "sb_publishable_a", "web": "sb_publishable_b"}',
    SUPABASE_SECRET_KEYS: '{"default": "sb_secret_a", "ci": "sb_secret_b"}',
    SUPABASE_JWKS: JSON.stringify(jwks),
  });
  const env = readSupabaseEnv(r);
  r.done();
  assert.equal(env.url, 'https://ref.supabase.co');
  assert.equal(env.anonKey, 'sb_publishable_a', 'the publishable key named default');
  assert.equal(env.secretKey, 'sb_secret_a', 'the secret key named default');
  assert.deepEqual(env.acceptedSecretKeys, ['sb_secret_a', 'sb_secret_b']);
  assert.deepEqual(env.jwks, jwks);
});

Deno.test('the new keys win over the legacy ones, which a caller may still present', () => {
  const r = reader({
    SUPABASE_URL: 'https://ref.supabase.co/',
    SUPABASE_ANON_KEY: 'anon-jwt',
    SUPABASE_SERVICE_ROLE_KEY: 'service-jwt',
    SUPABASE_PUBLISHABLE_KEYS: '{"default": "sb_publishable_a"}',
    SUPABASE_SECRET_KEYS: '{"default": "sb_secret_a", "ci": "sb_secret_b"}',
  });
  const env = readSupabaseEnv(r);
  r.done();
  assert.equal(env.url, 'https://ref.supabase.co');
  assert.equal(env.anonKey, 'sb_publishable_a');
  assert.equal(env.secretKey, 'sb_secret_a');
  assert.deepEqual(env.acceptedSecretKeys, ['sb_secret_a', 'sb_secret_b', 'service-jwt']);
  assert.equal(env.jwks, null, 'no SUPABASE_JWKS: tokens are checked with Auth');
});

Deno.test('the Supabase env works with the legacy keys alone, and with the singular new ones', () => {
  let r = reader({
    SUPABASE_URL: 'https://ref.supabase.co',
    SUPABASE_ANON_KEY: 'anon-jwt',
    SUPABASE_SERVICE_ROLE_KEY: 'service-jwt',
  });
  let env = readSupabaseEnv(r);
  r.done();
  assert.equal(env.anonKey, 'anon-jwt');
  assert.equal(env.secretKey, 'service-jwt');
  assert.deepEqual(env.acceptedSecretKeys, ['service-jwt']);

  r = reader({
    SUPABASE_URL: 'https://ref.supabase.co',
    SUPABASE_PUBLISHABLE_KEY: 'sb_publishable_x',
    SUPABASE_SECRET_KEY: 'sb_secret_x',
    SUPABASE_JWKS: '{"keys": []}',
  });
  env = readSupabaseEnv(r);
  r.done();
  assert.equal(env.anonKey, 'sb_publishable_x');
  assert.equal(env.secretKey, 'sb_secret_x');
  assert.deepEqual(env.acceptedSecretKeys, ['sb_secret_x']);
  assert.equal(env.jwks, null, 'a JWKS without keys (a project on the legacy JWT secret) is none');
});

Deno.test('a missing or malformed variable fails fast, naming every problem at once', () => {
  const r = reader({
    SUPABASE_URL: 'ftp://nope',
    SUPABASE_SECRET_KEYS: '[1,2]',
    SUPABASE_JWKS: '{"kid": "not a set"}',
  });
  readSupabaseEnv(r);
  assert.throws(() => r.done(), (err: unknown) => {
    assert.ok(err instanceof EnvError);
    assert.deepEqual(err.problems, [
      'SUPABASE_URL must be an http(s) URL',
      'SUPABASE_SECRET_KEYS must be a JSON object of named keys',
      'SUPABASE_SECRET_KEYS, SUPABASE_SECRET_KEY or SUPABASE_SERVICE_ROLE_KEY is not set',
      'SUPABASE_PUBLISHABLE_KEYS, SUPABASE_PUBLISHABLE_KEY or SUPABASE_ANON_KEY is not set',
      'SUPABASE_JWKS must be a JSON Web Key Set ({"keys": [...]})',
    ]);
    return true;
  });
});

// requireUser -------------------------------------------------------------------------------------

const b64url = (bytes: Uint8Array) =>
  btoa(String.fromCharCode(...bytes)).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
const b64json = (value: unknown) => b64url(new TextEncoder().encode(JSON.stringify(value)));

interface SigningKey {
  privateKey: CryptoKey;
  publicJwk: Record<string, unknown>;
  kid: string;
}

async function signingKey(kid: string = crypto.randomUUID()): Promise<SigningKey> {
  const pair = await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, [
    'sign',
    'verify',
  ]);
  const { kty, crv, x, y } = await crypto.subtle.exportKey('jwk', pair.publicKey);
  return {
    privateKey: pair.privateKey,
    kid,
    publicJwk: { kty, crv, x, y, kid, alg: 'ES256', use: 'sig', key_ops: ['verify'] },
  };
}

/** An ES256 access token as Supabase Auth signs one with an asymmetric signing key. */
async function es256(claims: Record<string, unknown>, key: SigningKey, kid = key.kid) {
  const unsigned = `${b64json({ alg: 'ES256', kid, typ: 'JWT' })}.${b64json(claims)}`;
  const sig = await crypto.subtle.sign(
    { name: 'ECDSA', hash: 'SHA-256' },
    key.privateKey,
    new TextEncoder().encode(unsigned),
  );
  return `${unsigned}.${b64url(new Uint8Array(sig))}`;
}

/** An HS256 token (the legacy JWT secret): the JWKS cannot verify it. */
async function hs256(claims: Record<string, unknown>, secret = 'legacy-secret') {
  const unsigned = `${b64json({ alg: 'HS256', typ: 'JWT' })}.${b64json(claims)}`;
  const key = await crypto.subtle.importKey(
    'raw',
    new TextEncoder().encode(secret),
    { name: 'HMAC', hash: 'SHA-256' },
    false,
    ['sign'],
  );
  const sig = await crypto.subtle.sign('HMAC', key, new TextEncoder().encode(unsigned));
  return `${unsigned}.${b64url(new Uint8Array(sig))}`;
}

function claims(sub: string, { expiresIn = 3600, admin = false } = {}) {
  const now = Math.floor(Date.now() / 1000);
  return {
    iss: 'https://ref.supabase.co/auth/v1',
    sub,
    aud: 'authenticated',
    role: 'authenticated',
    iat: now - 5,
    exp: now + expiresIn,
    app_metadata: admin ? { provider: 'anonymous', spool_admin: true } : {},
    user_metadata: {},
    is_anonymous: true,
    session_id: crypto.randomUUID(),
  };
}

/**
 * A fake Auth: GET /auth/v1/user answers the user for `goodTokens` (with `appMetadata`), 403
 * session_not_found for `endedTokens`, 403 bad_jwt otherwise; `calls` counts what reached it.
 */
function fakeAuth(
  goodTokens: string[],
  userId: string,
  { endedTokens = [] as string[], appMetadata = {} as Record<string, unknown> } = {},
) {
  let calls = 0;
  const server = Deno.serve({ port: 0, hostname: '127.0.0.1', onListen() {} }, (req) => {
    calls++;
    const token = req.headers.get('authorization')?.replace(/^Bearer /, '') ?? '';
    const headers = { 'x-supabase-api-version': '2024-01-01' };
    if (new URL(req.url).pathname === '/auth/v1/user' && goodTokens.includes(token)) {
      return Response.json({
        id: userId,
        aud: 'authenticated',
        role: 'authenticated',
        app_metadata: appMetadata,
        user_metadata: {},
        is_anonymous: false,
      }, { headers });
    }
    if (endedTokens.includes(token)) {
      return Response.json({
        code: 'session_not_found',
        message: 'Session from session_id claim in JWT does not exist',
      }, { status: 403, headers });
    }
    return Response.json({ code: 'bad_jwt', message: 'invalid JWT' }, { status: 403, headers });
  });
  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    get calls() {
      return calls;
    },
    close: () => server.shutdown(),
  };
}

const userRequest = (token: string) =>
  new Request('http://127.0.0.1/jobs', {
    headers: { apikey: 'sb_publishable_a', authorization: `Bearer ${token}` },
  });

async function refusal(promise: Promise<unknown>) {
  const err = await promise.then(() => null, (e) => e);
  assert.ok(err instanceof HttpError, `expected an HttpError, got ${err}`);
  return { status: err.status, code: err.code };
}

const INVALID = { status: 401, code: 'invalid_token' };

Deno.test('a JWKS token is verified there first: forgeries, expired, not-yet-valid and non-user tokens never reach Auth', async () => {
  const key = await signingKey();
  const other = await signingKey(key.kid); // same kid, another key: a forgery
  const jwks: Jwks = { keys: [key.publicJwk] };
  const userId = crypto.randomUUID();
  const auth = fakeAuth([], userId);
  try {
    const env: SupabaseEnv = {
      url: auth.url,
      anonKey: 'sb_publishable_a',
      secretKey: 'sb_secret_a',
      acceptedSecretKeys: ['sb_secret_a'],
      jwks,
    };
    const now = Math.floor(Date.now() / 1000);
    const valid = await es256(claims(userId), key);
    const forged = await es256(claims(userId), other);
    const refused: [string, string][] = [
      ['forged', forged],
      ['expired', await es256(claims(userId, { expiresIn: -60 }), key)],
      ['unknown kid', await es256(claims(userId), key, 'another-kid')],
      ['tampered', valid.slice(0, valid.lastIndexOf('.')) + '.' + forged.split('.')[2]],
      ['future nbf', await es256({ ...claims(userId), nbf: now + 3600 }, key)],
      ['role postgres', await es256({ ...claims(userId), role: 'postgres' }, key)],
      ['role service_role', await es256({ ...claims(userId), role: 'service_role' }, key)],
      ['role anon', await es256({ ...claims(userId), role: 'anon' }, key)],
      ['no role', await es256({ ...claims(userId), role: undefined }, key)],
      ['no sub', await es256({ ...claims(userId), sub: undefined }, key)],
      ['a secret key', 'sb_secret_a'],
    ];
    for (const [label, token] of refused) {
      assert.deepEqual(await refusal(requireUser(userRequest(token), env)), INVALID, label);
    }
    assert.equal(auth.calls, 0, 'the JWKS (and the claims) decided every one of these');
  } finally {
    await auth.close();
  }
});

Deno.test("a valid token is still checked with Auth: a signed-out session is refused, admin is Auth's word now", async () => {
  const key = await signingKey();
  const jwks: Jwks = { keys: [key.publicJwk] };
  const userId = crypto.randomUUID();
  const live = await es256(claims(userId, { admin: true }), key);
  const ended = await es256(claims(userId), key);
  const legacy = await hs256(claims(userId));
  const legacyEnded = await hs256(claims(userId));
  const auth = fakeAuth([live, legacy], userId, {
    endedTokens: [ended, legacyEnded],
    appMetadata: { spool_admin: true },
  });
  try {
    const base = {
      url: auth.url,
      anonKey: 'sb_publishable_a',
      secretKey: 'sb_secret_a',
      acceptedSecretKeys: ['sb_secret_a'],
    };
    const withJwks: SupabaseEnv = { ...base, jwks };
    assert.deepEqual(await requireUser(userRequest(live), withJwks), {
      kind: 'user',
      userId,
      jwt: live,
      isAnonymous: false,
      isAdmin: true,
    }, 'is_anonymous and app_metadata from the user Auth returned');
    assert.equal(auth.calls, 1, 'Auth checked the session of a token the JWKS verified');
    assert.deepEqual(await refusal(requireUser(userRequest(ended), withJwks)), INVALID);
    assert.equal(auth.calls, 2);

    // An HS256 token (legacy secret): the JWKS has no say, Auth decides alone.
    assert.equal((await requireUser(userRequest(legacy), withJwks)).userId, userId);
    assert.deepEqual(await refusal(requireUser(userRequest(legacyEnded), withJwks)), INVALID);
    const withoutJwks: SupabaseEnv = { ...base, jwks: null };
    assert.equal((await requireUser(userRequest(live), withoutJwks)).userId, userId);
    assert.deepEqual(await refusal(requireUser(userRequest(ended), withoutJwks)), INVALID);
    assert.equal(auth.calls, 6, 'every one of these went to Auth');

    // Claims Auth would never vouch for are refused before asking it, whoever signed them.
    const oddRole = await hs256({ ...claims(userId), role: 'postgres' });
    assert.deepEqual(await refusal(requireUser(userRequest(oddRole), withoutJwks)), INVALID);
    assert.deepEqual(await refusal(requireUser(userRequest('not.a.jwt'), withoutJwks)), INVALID);
    assert.deepEqual(await refusal(requireUser(userRequest('sb_publishable_a'), withJwks)), {
      status: 401,
      code: 'unauthorized',
    });
    assert.equal(auth.calls, 6, 'none of these reached Auth');
  } finally {
    await auth.close();
  }
});
