// Contract tests of the Auth stand-in (local/standins/auth.mjs), driven by the official supabase-js
// the way Spool's browser client uses it: anonymous sign-in, get user, refresh, sign-out, and the
// JWKS its access tokens verify against. They run in the key mode of SPOOL_KEYS (npm test runs
// both): with the new keys the client holds the sb_publishable_ key and tokens are ES256.
// Run: node --test local/standins/tests/auth.test.mjs

import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import http from 'node:http';
import { after, before, describe, it } from 'node:test';
import { createClient } from '@supabase/supabase-js';
import { startStack } from './helpers.mjs';

let stack;

/** A fresh browser-like client: anon key, session kept in memory, no auto refresh timer. */
function browserClient() {
  const memory = new Map();
  return createClient(stack.url, stack.keys.anonKey, {
    auth: {
      persistSession: true,
      autoRefreshToken: false,
      detectSessionInUrl: false,
      storage: {
        getItem: (k) => memory.get(k) ?? null,
        setItem: (k, v) => void memory.set(k, v),
        removeItem: (k) => void memory.delete(k),
      },
    },
    realtime: globalThis.WebSocket ? {} : { transport: class { constructor() { throw new Error('no realtime'); } } },
  });
}

function claimsOf(jwt) {
  return JSON.parse(Buffer.from(jwt.split('.')[1], 'base64url').toString('utf8'));
}

function headerOf(jwt) {
  return JSON.parse(Buffer.from(jwt.split('.')[0], 'base64url').toString('utf8'));
}

/** Whether `jwt` is an ES256 token a key of `jwks` signed (node:crypto, no JWT library). */
function verifiesWith(jwt, jwks) {
  const [head, payload, sig] = jwt.split('.');
  const jwk = jwks.keys.find((k) => k.kid === headerOf(jwt).kid);
  if (!jwk) return false;
  const key = crypto.createPublicKey({ key: jwk, format: 'jwk' });
  return crypto.verify('sha256', Buffer.from(`${head}.${payload}`), { key, dsaEncoding: 'ieee-p1363' }, Buffer.from(sig, 'base64url'));
}

before(async () => {
  stack = await startStack();
});
after(async () => {
  await stack?.close();
});

describe('auth stand-in', () => {
  it('signs in anonymously with a session and claims shaped as Supabase Auth issues them', async () => {
    const supabase = browserClient();
    const { data, error } = await supabase.auth.signInAnonymously();
    assert.equal(error, null);
    assert.ok(data.session.access_token);
    assert.ok(data.session.refresh_token);
    assert.equal(data.session.token_type, 'bearer');
    assert.equal(data.user.is_anonymous, true);
    const claims = claimsOf(data.session.access_token);
    assert.equal(claims.sub, data.user.id);
    assert.equal(claims.role, 'authenticated');
    assert.equal(claims.aud, 'authenticated');
    assert.equal(claims.is_anonymous, true);
    assert.equal(claims.amr[0].method, 'anonymous');
    assert.ok(claims.exp > claims.iat);
    assert.ok(claims.session_id);
    const { rows } = await stack.admin.query('select is_anonymous from auth.users where id = $1', [data.user.id]);
    assert.deepEqual(rows, [{ is_anonymous: true }]);
  });

  it('returns the signed-in user from getUser and refuses a forged token', async () => {
    const supabase = browserClient();
    const { data: signIn } = await supabase.auth.signInAnonymously();
    const { data, error } = await supabase.auth.getUser();
    assert.equal(error, null);
    assert.equal(data.user.id, signIn.user.id);

    const token = signIn.session.access_token;
    const forged = token.slice(0, token.lastIndexOf('.') + 1) + 'AAAA';
    const refused = await supabase.auth.getUser(forged);
    assert.equal(refused.data.user, null);
    assert.equal(refused.error.status, 403);
    assert.equal(refused.error.code, 'bad_jwt');
  });

  it('refreshes a session once: the new token works and the used refresh token is refused', async () => {
    const supabase = browserClient();
    const { data: signIn } = await supabase.auth.signInAnonymously();
    const { data, error } = await supabase.auth.refreshSession();
    assert.equal(error, null);
    assert.notEqual(data.session.refresh_token, signIn.session.refresh_token);
    assert.equal(data.user.id, signIn.user.id);
    assert.equal(claimsOf(data.session.access_token).session_id, claimsOf(signIn.session.access_token).session_id);

    const reuse = await fetch(`${stack.url}/auth/v1/token?grant_type=refresh_token`, {
      method: 'POST',
      headers: { apikey: stack.keys.anonKey, 'content-type': 'application/json' },
      body: JSON.stringify({ refresh_token: signIn.session.refresh_token }),
    });
    assert.equal(reuse.status, 400);
    assert.equal((await reuse.json()).code, 'refresh_token_already_used');
  });

  it('signs out: the session is gone and its refresh token no longer works', async () => {
    const supabase = browserClient();
    const { data: signIn } = await supabase.auth.signInAnonymously();
    const { error } = await supabase.auth.signOut();
    assert.equal(error, null);
    assert.equal((await supabase.auth.getSession()).data.session, null);
    const res = await fetch(`${stack.url}/auth/v1/token?grant_type=refresh_token`, {
      method: 'POST',
      headers: { apikey: stack.keys.anonKey, 'content-type': 'application/json' },
      body: JSON.stringify({ refresh_token: signIn.session.refresh_token }),
    });
    assert.equal(res.status, 400);
    assert.equal((await res.json()).code, 'refresh_token_not_found');
  });

  it('serves the JWKS its access tokens verify against (ES256 with the new keys, empty with legacy)', async () => {
    const res = await fetch(`${stack.url}/auth/v1/.well-known/jwks.json`, { headers: { apikey: stack.keys.anonKey } });
    assert.equal(res.status, 200);
    const jwks = await res.json();
    const { data } = await browserClient().auth.signInAnonymously();
    const token = data.session.access_token;
    if (stack.keys.mode === 'legacy') {
      assert.deepEqual(jwks, { keys: [] }, 'GoTrue never publishes the HMAC secret');
      assert.equal(headerOf(token).alg, 'HS256');
      return;
    }
    assert.equal(jwks.keys.length, 1);
    const [key] = jwks.keys;
    assert.deepEqual(
      { kty: key.kty, crv: key.crv, alg: key.alg, use: key.use, key_ops: key.key_ops },
      { kty: 'EC', crv: 'P-256', alg: 'ES256', use: 'sig', key_ops: ['verify'] },
    );
    assert.equal(key.d, undefined, 'only the public half');
    assert.deepEqual(headerOf(token), { alg: 'ES256', kid: key.kid, typ: 'JWT' });
    assert.equal(verifiesWith(token, jwks), true);
    const other = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ format: 'jwk' });
    assert.equal(verifiesWith(token, { keys: [{ ...other, kid: key.kid }] }), false, 'another key does not verify it');
  });

  it('supabase-js signs in anonymously and calls through REST, Storage and a function with the publishable key', async () => {
    if (stack.keys.mode === 'new') assert.match(stack.keys.anonKey, /^sb_publishable_/);
    const supabase = browserClient();
    const { data: signIn, error } = await supabase.auth.signInAnonymously();
    assert.equal(error, null);
    const me = signIn.user.id;

    const rows = await supabase.from('jobs').select('id');
    assert.equal(rows.error, null);
    assert.deepEqual(rows.data, [], 'a new user has no jobs (RLS as the authenticated user)');

    const path = `${me}/hello.png`;
    const bytes = Buffer.from('89504e470d0a1a0a', 'hex'); // the PNG signature is enough here
    const up = await supabase.storage.from('inputs').upload(path, bytes, { contentType: 'image/png' });
    assert.equal(up.error, null);
    const down = await supabase.storage.from('inputs').download(path);
    assert.equal(down.error, null);
    assert.deepEqual(Buffer.from(await down.data.arrayBuffer()), bytes);
    const { rows: owners } = await stack.admin.query(
      `select owner_id from storage.objects where bucket_id = 'inputs' and name = $1`,
      [path],
    );
    assert.deepEqual(owners, [{ owner_id: me }], 'Storage saw the user, not the key');

    // The jobs function: verify_jwt at the gateway, then the function's own check of the user.
    const listed = await supabase.functions.invoke('jobs', { method: 'GET' });
    assert.equal(listed.error, null);
    assert.deepEqual(listed.data.jobs, []);

    // Without a session the same key is the anon role, and a function with verify_jwt refuses it.
    const anon = createClient(stack.url, stack.keys.anonKey, {
      auth: { persistSession: false },
      realtime: globalThis.WebSocket ? {} : { transport: class NoWebSocket {} },
    });
    const denied = await anon.functions.invoke('jobs', { method: 'GET' });
    assert.equal(denied.error?.context?.status, 401);
  });

  it('requires an API key, as the Supabase gateway does', async () => {
    const res = await fetch(`${stack.url}/auth/v1/signup`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{}',
    });
    assert.equal(res.status, 401);
    assert.equal((await res.json()).code, 'no_api_key');
  });

  it('refuses a body over 64 KiB in its own error shape', async () => {
    const res = await fetch(`${stack.url}/auth/v1/signup`, {
      method: 'POST',
      headers: { apikey: stack.keys.anonKey, 'content-type': 'application/json' },
      body: JSON.stringify({ data: { pad: 'x'.repeat(70 * 1024) } }),
    });
    assert.equal(res.status, 413);
    assert.equal((await res.json()).code, 'request_too_large');
  });

  it('answers CORS preflights and lets browsers read the API version', async () => {
    const pre = await fetch(`${stack.url}/auth/v1/signup`, {
      method: 'OPTIONS',
      headers: {
        Origin: 'http://127.0.0.1:5173',
        'Access-Control-Request-Method': 'POST',
        'Access-Control-Request-Headers': 'apikey, x-supabase-api-version',
      },
    });
    assert.equal(pre.status, 200);
    assert.equal(pre.headers.get('access-control-allow-origin'), '*');
    assert.match(pre.headers.get('access-control-allow-headers'), /x-supabase-api-version/);
    const res = await fetch(`${stack.url}/auth/v1/.well-known/jwks.json`, {
      headers: { apikey: stack.keys.anonKey, Origin: 'http://127.0.0.1:5173' },
    });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('access-control-allow-origin'), '*');
    assert.match(res.headers.get('access-control-expose-headers'), /X-Supabase-Api-Version/i);
    assert.equal(res.headers.get('x-supabase-api-version'), '2024-01-01');
  });

  it('refuses an API key that is not in force, on sign-up and every other route', async () => {
    for (const apikey of ['sb_publishable_not-ours', 'anything', stack.keys.jwtSecret]) {
      const res = await fetch(`${stack.url}/auth/v1/signup`, {
        method: 'POST',
        headers: { apikey, 'content-type': 'application/json' },
        body: '{}',
      });
      assert.equal(res.status, 401, apikey);
      assert.equal((await res.json()).message, 'Invalid API key');
    }
    const { rows } = await stack.admin.query('select count(*)::int as n from auth.users where is_anonymous');
    const user = await fetch(`${stack.url}/auth/v1/user?apikey=nope`, { headers: { authorization: 'Bearer x' } });
    assert.equal(user.status, 401);
    const after = await stack.admin.query('select count(*)::int as n from auth.users where is_anonymous');
    assert.equal(after.rows[0].n, rows[0].n, 'no user was made');
  });

  it('after logout (global) the old access token is refused: /user 403 session_not_found, functions 401', async () => {
    const supabase = browserClient();
    const other = browserClient();
    const { data: signIn } = await supabase.auth.signInAnonymously();
    const token = signIn.session.access_token;
    const user = () => fetch(`${stack.url}/auth/v1/user`, {
      headers: { apikey: stack.keys.anonKey, authorization: `Bearer ${token}` },
    });
    const jobs = () => fetch(`${stack.url}/functions/v1/jobs`, {
      headers: { apikey: stack.keys.anonKey, authorization: `Bearer ${token}` },
    });
    assert.equal((await user()).status, 200);
    assert.equal((await jobs()).status, 200);
    // A second session of the same user (a refresh elsewhere keeps the session; global ends all).
    await other.auth.setSession({ access_token: token, refresh_token: signIn.session.refresh_token });
    const out = await fetch(`${stack.url}/auth/v1/logout?scope=global`, {
      method: 'POST',
      headers: { apikey: stack.keys.anonKey, authorization: `Bearer ${token}` },
    });
    assert.equal(out.status, 204);

    const refused = await user();
    assert.equal(refused.status, 403);
    assert.deepEqual(await refused.json(), {
      code: 'session_not_found',
      message: 'Session from session_id claim in JWT does not exist',
    });
    // auth-js turns session_not_found into AuthSessionMissingError (what requireUser sees).
    const viaJs = await supabase.auth.getUser(token);
    assert.equal(viaJs.data.user, null);
    assert.equal(viaJs.error?.name, 'AuthSessionMissingError');
    const fn = await jobs();
    assert.equal(fn.status, 401);
    const body = await fn.json();
    assert.equal(body.error.code, 'invalid_token');
    assert.equal(typeof body.error.message, 'string');
    // Logging out again with it is refused the same way (GoTrue authenticates logout too).
    const again = await fetch(`${stack.url}/auth/v1/logout`, {
      method: 'POST',
      headers: { apikey: stack.keys.anonKey, authorization: `Bearer ${token}` },
    });
    assert.equal(again.status, 403);
    assert.equal((await again.json()).code, 'session_not_found');
  });

  it('refuses a validly signed token that is not valid yet (nbf) or expired, as GoTrue does', async () => {
    const { id, token: good } = await stack.makeUser();
    const claims = claimsOf(good);
    const now = Math.floor(Date.now() / 1000);
    const cases = [
      ['future nbf', { ...claims, nbf: now + 3600 }, 'token is not valid yet'],
      ['expired', { ...claims, exp: now - 1 }, 'token is expired'],
    ];
    for (const [label, c, why] of cases) {
      const res = await fetch(`${stack.url}/auth/v1/user`, {
        headers: { apikey: stack.keys.anonKey, authorization: `Bearer ${await stack.keys.sign(c)}` },
      });
      assert.equal(res.status, 403, label);
      const body = await res.json();
      assert.equal(body.code, 'bad_jwt', label);
      assert.match(body.message, new RegExp(why), label);
    }
    const ok = await fetch(`${stack.url}/auth/v1/user`, {
      headers: { apikey: stack.keys.anonKey, authorization: `Bearer ${await stack.keys.sign({ ...claims, nbf: now - 5 })}` },
    });
    assert.equal(ok.status, 200);
    assert.equal((await ok.json()).id, id);
  });

  it('limits anonymous sign-ups to 30 per client address, as GoTrue does by default (429 over_request_rate_limit)', async () => {
    // From 127.0.0.7: its own bucket, apart from the other tests' sign-ups from 127.0.0.1.
    const signUp = (localAddress) => new Promise((resolve, reject) => {
      const req = http.request(`${stack.url}/auth/v1/signup`, {
        method: 'POST',
        localAddress,
        headers: { apikey: stack.keys.anonKey, 'content-type': 'application/json' },
      }, (res) => {
        let text = '';
        res.on('data', (d) => { text += d; });
        res.on('end', () => resolve({ status: res.statusCode, body: JSON.parse(text) }));
      });
      req.on('error', reject);
      req.end('{}');
    });
    const before = (await stack.admin.query('select count(*)::int as n from auth.users')).rows[0].n;
    for (let i = 0; i < 30; i++) {
      const res = await signUp('127.0.0.7');
      assert.equal(res.status, 200, `sign-up ${i + 1}: ${JSON.stringify(res.body)}`);
    }
    const over = await signUp('127.0.0.7');
    assert.equal(over.status, 429);
    assert.deepEqual(over.body, { code: 'over_request_rate_limit', message: 'Request rate limit reached' });
    const after = (await stack.admin.query('select count(*)::int as n from auth.users')).rows[0].n;
    assert.equal(after - before, 30, 'the refused sign-up made no user');
    assert.equal((await signUp('127.0.0.8')).status, 200, 'another address has its own bucket');
  });
});
