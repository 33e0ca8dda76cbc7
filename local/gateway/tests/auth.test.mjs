// Contract tests of the Auth stand-in (local/gateway/auth.mjs), driven by the official supabase-js
// the way Spool's browser client uses it: anonymous sign-in, get user, refresh, sign-out.
// Run: node --test local/gateway/tests/auth.test.mjs

import assert from 'node:assert/strict';
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

  it('requires an API key, as the Supabase gateway does', async () => {
    const res = await fetch(`${stack.url}/auth/v1/signup`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{}',
    });
    assert.equal(res.status, 401);
    assert.equal((await res.json()).code, 'no_api_key');
  });
});
