// The local stack's two API-key systems (local/standins/keys.mjs, SPOOL_KEYS) whatever SPOOL_KEYS
// this run has: each mode is started explicitly. What the new keys change at the gateway:
//   - the keys are random sb_publishable_/sb_secret_ strings per stack, kept in keys.json;
//   - `apikey` must be one of them (the legacy JWT keys are off), and a request with only the key
//     reaches PostgREST as that key's role (anon / service_role), also when Authorization repeats
//     the same key; another sb_ key as the bearer is refused as "not a JWT";
//   - user tokens are ES256 (the JWKS), and HS256 tokens are refused;
//   - Edge Functions get only SUPABASE_PUBLISHABLE_KEYS / SUPABASE_SECRET_KEYS / SUPABASE_JWKS,
//     and verify_jwt takes user JWTs only, never an sb_ key.
// Run: node --test local/standins/tests/keys.test.mjs

import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ROOT } from '../../tools/db.mjs';
import { createFunctionsRuntime } from '../functions.mjs';
import {
  generateSigningKey,
  keyModeFromEnv,
  loadKeys,
  signEs256,
  signJwt,
  TokenError,
  verifyToken,
} from '../keys.mjs';
import { startStack } from './helpers.mjs';

const tmp = (prefix) => fs.mkdtempSync(path.join(os.tmpdir(), prefix));
const now = () => Math.floor(Date.now() / 1000);
const reasonOf = async (promise) => {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof TokenError, String(err));
    return err.reason;
  }
  return null;
};

describe('keys.mjs', () => {
  it('SPOOL_KEYS is new by default, legacy on request, and nothing else', () => {
    assert.equal(keyModeFromEnv({}), 'new');
    assert.equal(keyModeFromEnv({ SPOOL_KEYS: 'legacy' }), 'legacy');
    assert.throws(() => keyModeFromEnv({ SPOOL_KEYS: 'jwt' }), /SPOOL_KEYS must be "new" or "legacy"/);
  });

  it('issues random sb_ keys and an ES256 signing key per stack, kept in keys.json', async () => {
    const dir = tmp('spool-keys-');
    const other = tmp('spool-keys-');
    try {
      const keys = await loadKeys(dir, { mode: 'new' });
      assert.match(keys.publishableKey, /^sb_publishable_[A-Za-z0-9_-]{32}$/);
      assert.match(keys.secretKey, /^sb_secret_[A-Za-z0-9_-]{32}$/);
      assert.equal(keys.anonKey, keys.publishableKey);
      assert.equal(keys.serviceRoleKey, keys.secretKey);
      assert.equal(keys.jwks.keys.length, 1);
      assert.equal(keys.jwks.keys[0].d, undefined);
      assert.equal(fs.statSync(path.join(dir, 'keys.json')).mode & 0o777, 0o600);
      const again = await loadKeys(dir, { mode: 'new' });
      assert.equal(again.secretKey, keys.secretKey, 'the same stack keeps its keys');
      assert.deepEqual(again.jwks, keys.jwks);
      const theirs = await loadKeys(other, { mode: 'new' });
      assert.notEqual(theirs.secretKey, keys.secretKey, 'another stack has its own');
      assert.notEqual(theirs.jwks.keys[0].kid, keys.jwks.keys[0].kid);

      const legacy = await loadKeys(dir, { mode: 'legacy' });
      assert.equal(legacy.jwtSecret, keys.jwtSecret, 'switching modes keeps the JWT secret');
      assert.equal(legacy.jwks, null);
      assert.equal((await legacy.verify(legacy.serviceRoleKey)).role, 'service_role');
      assert.equal(keys.apiKeyRole(legacy.anonKey), null, 'the legacy keys are off in new mode');
      assert.equal(legacy.apiKeyRole(keys.publishableKey), null, 'and the new ones in legacy mode');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
      fs.rmSync(other, { recursive: true, force: true });
    }
  });

  it('verifies ES256 tokens against the JWKS and refuses forged, unknown-kid and HS256 ones', async () => {
    const dir = tmp('spool-keys-');
    try {
      const keys = await loadKeys(dir, { mode: 'new' });
      const claims = { sub: crypto.randomUUID(), role: 'authenticated', exp: now() + 60 };
      assert.equal((await keys.verify(await keys.sign(claims))).sub, claims.sub);
      const kid = keys.signingKey.kid;
      const forged = await signEs256(claims, { ...generateSigningKey().privateJwk, kid });
      assert.equal(await reasonOf(keys.verify(forged)), 'signature');
      const stranger = await signEs256(claims, generateSigningKey().privateJwk);
      assert.equal(await reasonOf(keys.verify(stranger)), 'signature');
      assert.equal(await reasonOf(keys.verify(await signJwt(claims, keys.jwtSecret))), 'alg', 'no HS256 in new mode');
      assert.equal(await reasonOf(keys.verify(await keys.sign({ ...claims, exp: now() - 1 }))), 'expired');
      assert.equal(await reasonOf(keys.verify(keys.publishableKey)), 'parts', 'an sb_ key is no JWT');

      const legacy = await loadKeys(dir, { mode: 'legacy' });
      assert.equal(await reasonOf(verifyToken(await keys.sign(claims), legacy.verifier)), 'alg', 'no JWKS in legacy mode');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('the gateway with the new API keys', () => {
  let stack;
  before(async () => {
    stack = await startStack({ keyMode: 'new' });
  });
  after(async () => {
    await stack?.close();
  });

  /** GET /rest/v1/jobs: anon has no grant on it, service_role reads every row, a user their own. */
  async function rest(headers) {
    const res = await fetch(`${stack.url}/rest/v1/jobs?select=id&limit=1`, { headers });
    return { status: res.status, body: await res.json() };
  }

  it('maps the publishable key to anon and the secret key to service_role, with or without the same key as bearer', async () => {
    const { publishableKey, secretKey } = stack.keys;
    // jobs: no grant to anon (42501 -> 401 for anon), RLS-bypassing service_role reads it.
    const asAnon = await rest({ apikey: publishableKey });
    const asAnonBearer = await rest({ apikey: publishableKey, authorization: `Bearer ${publishableKey}` });
    const asService = await rest({ apikey: secretKey });
    const asServiceBearer = await rest({ apikey: secretKey, authorization: `Bearer ${secretKey}` });
    assert.deepEqual(asAnon, {
      status: 401,
      body: { code: '42501', details: null, hint: null, message: 'permission denied for table jobs' },
    });
    assert.deepEqual(asAnonBearer, asAnon);
    assert.equal(asService.status, 200, JSON.stringify(asService));
    assert.deepEqual(asServiceBearer, asService);

    const user = await stack.makeUser();
    const asUser = await rest({ apikey: publishableKey, authorization: `Bearer ${user.token}` });
    assert.deepEqual(asUser, { status: 200, body: [] }, 'an ES256 user token: the user, under RLS');
  });

  it('refuses the legacy keys, another sb_ key as bearer and HS256 tokens', async () => {
    const { publishableKey, secretKey, jwtSecret } = stack.keys;
    const legacy = await loadKeys(stack.stateDir, { mode: 'legacy' }); // same JWT secret: real legacy keys
    let res = await rest({ apikey: legacy.anonKey });
    assert.equal(res.status, 401);
    assert.equal(res.body.message, 'Invalid API key');

    res = await rest({ apikey: publishableKey, authorization: `Bearer ${secretKey}` });
    assert.equal(res.status, 401, 'the secret key behind the publishable one is no JWT');
    assert.equal(res.body.code, 'PGRST301');
    assert.equal(res.body.message, 'Expected 3 parts in JWT; got 1');

    const user = await stack.makeUser();
    const hs = await signJwt({ ...JSON.parse(Buffer.from(user.token.split('.')[1], 'base64url')) }, jwtSecret);
    res = await rest({ apikey: publishableKey, authorization: `Bearer ${hs}` });
    assert.equal(res.status, 401, 'the legacy JWT secret no longer signs anything');
    assert.equal(res.body.message, 'Wrong or unsupported encoding algorithm');
  });

  it('Storage sees the role of a key sent alone', async () => {
    const name = `keys-test/${crypto.randomUUID()}.png`;
    const up = await fetch(`${stack.url}/storage/v1/object/outputs/${name}`, {
      method: 'POST',
      headers: { apikey: stack.keys.secretKey, 'content-type': 'image/png' },
      body: Buffer.from('89504e470d0a1a0a', 'hex'),
    });
    assert.equal(up.status, 200, await up.clone().text());
    const info = async (apikey) => {
      const res = await fetch(`${stack.url}/storage/v1/object/info/outputs/${name}`, { headers: { apikey } });
      return { status: res.status, body: await res.json() };
    };
    const asService = await info(stack.keys.secretKey);
    assert.equal(asService.status, 200, 'service_role bypasses RLS');
    assert.equal(asService.body.name, name);
    const asAnon = await info(stack.keys.publishableKey);
    assert.equal(asAnon.body.statusCode, '404', 'anon sees nothing under RLS');
  });
});

// The Edge Runtime with the new keys ---------------------------------------------------------------

const FIXTURE = {
  'config.toml': '[functions.open]\nverify_jwt = false\n',
  'env/index.ts': 'Deno.serve(() => Response.json(Deno.env.toObject()));\n',
  'open/index.ts': 'Deno.serve(() => Response.json(Deno.env.toObject()));\n',
};

describe('Edge Functions with the new API keys', () => {
  let dir;
  let stateDir;
  let server;
  let route;
  let url;
  let keys;

  before(async () => {
    dir = tmp('spool-keys-fn-');
    stateDir = tmp('spool-keys-state-');
    for (const [file, text] of Object.entries(FIXTURE)) {
      fs.mkdirSync(path.dirname(path.join(dir, file)), { recursive: true });
      fs.writeFileSync(path.join(dir, file), text);
    }
    keys = await loadKeys(stateDir, { mode: 'new' });
    server = http.createServer();
    await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${server.address().port}`;
    const ctx = { root: ROOT, stateDir, publicUrl: url, keys, dbPort: 54399, env: {}, log: () => {} };
    route = createFunctionsRuntime(ctx, { dir, configFile: path.join(dir, 'config.toml') });
    server.on('request', (req, res) => {
      route.handle(req, res, new URL(req.url, url)).catch((err) => {
        res.writeHead(500);
        res.end(String(err.stack));
      });
    });
  });
  after(async () => {
    await new Promise((resolve) => {
      server?.close(resolve);
      server?.closeAllConnections();
    });
    await route?.close();
    fs.rmSync(dir, { recursive: true, force: true });
    fs.rmSync(stateDir, { recursive: true, force: true });
  });

  it('get SUPABASE_PUBLISHABLE_KEYS, SUPABASE_SECRET_KEYS and SUPABASE_JWKS, and no legacy key', async () => {
    const env = await (await fetch(`${url}/functions/v1/open`)).json();
    assert.equal(env.SUPABASE_URL, url);
    assert.deepEqual(JSON.parse(env.SUPABASE_PUBLISHABLE_KEYS), { default: keys.publishableKey });
    assert.deepEqual(JSON.parse(env.SUPABASE_SECRET_KEYS), { default: keys.secretKey });
    assert.deepEqual(JSON.parse(env.SUPABASE_JWKS), keys.jwks);
    assert.equal(env.SUPABASE_DB_URL, 'postgresql://postgres:postgres@127.0.0.1:54399/postgres');
    for (const name of ['SUPABASE_ANON_KEY', 'SUPABASE_SERVICE_ROLE_KEY', 'SUPABASE_PUBLISHABLE_KEY', 'SUPABASE_SECRET_KEY', 'SUPABASE_JWT_SECRET']) {
      assert.equal(env[name], undefined, name);
    }
  });

  it('verify_jwt takes an ES256 user token and refuses the sb_ keys in either header', async () => {
    const call = (headers) => fetch(`${url}/functions/v1/env`, { headers });
    const token = await keys.sign({ sub: crypto.randomUUID(), role: 'authenticated', aud: 'authenticated', exp: now() + 60 });
    const ok = await call({ apikey: keys.publishableKey, authorization: `Bearer ${token}` });
    assert.equal(ok.status, 200);
    await ok.body?.cancel();

    for (const key of [keys.publishableKey, keys.secretKey]) {
      let res = await call({ apikey: key, authorization: `Bearer ${key}` });
      assert.equal(res.status, 401);
      assert.deepEqual(await res.json(), { code: 401, message: 'Invalid JWT' });
      res = await call({ apikey: key });
      assert.equal(res.status, 401);
      assert.deepEqual(await res.json(), { code: 401, message: 'Missing authorization header' });
    }
    const hs = await signJwt({ sub: crypto.randomUUID(), role: 'authenticated', exp: now() + 60 }, keys.jwtSecret);
    const res = await call({ authorization: `Bearer ${hs}` });
    assert.equal(res.status, 401, 'HS256 tokens are refused once the legacy JWT secret is off');
    await res.body?.cancel();
  });
});
