// Test helpers for the API tests against the throwaway local stack that `npm test` starts
// (local/tools/stack.mjs): its URL and keys come from the environment. Without them, every integration
// test fails with an error naming the missing variables (run them through `npm test`); nothing
// is skipped or ignored. The pure tests need none of them.
//
//   SUPABASE_URL, SUPABASE_ANON_KEY, SUPABASE_SERVICE_ROLE_KEY   the gateway and its keys
//   SPOOL_TEST_SUPERUSER_URL    Postgres as superuser: mint users, read rows, change settings
//   SPOOL_TEST_JWT_SECRET       the stack's HS256 secret: sign users' access tokens (legacy keys)
//   SPOOL_TEST_SIGNING_KEY, SUPABASE_JWKS   with the new API keys (SPOOL_KEYS=new): the private
//                               signing JWK users' tokens are signed with, and its JWKS
import assert from 'node:assert/strict';
import pg from 'npm:pg@8.23.1';
import type { Db } from '../../_shared/clients.ts';
import type { Database } from '../../_shared/database.types.ts';
import { createClient } from '../../_shared/deps.ts';
import { EnvReader } from '../../_shared/env.ts';
import type { Handler } from '../../_shared/http.ts';

export interface Stack {
  url: string;
  anonKey: string;
  serviceKey: string;
  superuserUrl: string;
  jwtSecret: string;
}

/** Where each field of Stack comes from. */
const STACK_ENV: Record<keyof Stack, string> = {
  url: 'SUPABASE_URL',
  anonKey: 'SUPABASE_ANON_KEY',
  serviceKey: 'SUPABASE_SERVICE_ROLE_KEY',
  superuserUrl: 'SPOOL_TEST_SUPERUSER_URL',
  jwtSecret: 'SPOOL_TEST_JWT_SECRET',
};

/** The stack from the environment, or the names of the variables that are missing. */
function readStack(): { stack: Stack; missing: [] } | { stack: null; missing: string[] } {
  const get = (name: string) => Deno.env.get(name)?.trim() ?? '';
  const missing = Object.values(STACK_ENV).filter((name) => get(name) === '');
  if (missing.length > 0) return { stack: null, missing };
  const stack = Object.fromEntries(
    Object.entries(STACK_ENV).map(([field, name]) => [field, get(name)]),
  ) as unknown as Stack;
  stack.url = stack.url.replace(/\/+$/, '');
  return { stack, missing: [] };
}

const found = readStack();

/**
 * Deno.test options for a test that needs the stack. Such a test always runs: without the stack
 * it fails (theStack() throws), it is never ignored. Sanitizers are off: supabase-js and pg keep
 * connections alive across awaits in ways the sanitizers report.
 */
export const integration = {
  sanitizeOps: false,
  sanitizeResources: false,
};

/** The stack in the environment; throws, naming the missing variables, when there is none. */
export function theStack(): Stack {
  if (!found.stack) {
    throw new Error(
      `this test needs the local stack, but ${found.missing.join(', ')} ${
        found.missing.length === 1 ? 'is' : 'are'
      } not set: run it through \`npm test\`, which starts a throwaway stack and sets them`,
    );
  }
  return found.stack;
}

// Database ---------------------------------------------------------------------------------------

/** Runs one statement as the superuser and returns its rows. */
export async function sql<T = Record<string, unknown>>(
  text: string,
  params: unknown[] = [],
): Promise<T[]> {
  const client = new pg.Client({ connectionString: theStack().superuserUrl });
  await client.connect();
  try {
    return (await client.query(text, params)).rows as T[];
  } finally {
    await client.end();
  }
}

/** Runs statements in one transaction as the superuser; returns the last statement's rows. */
export async function transaction<T = Record<string, unknown>>(
  steps: [string, unknown[]?][],
): Promise<T[]> {
  const client = new pg.Client({ connectionString: theStack().superuserUrl });
  await client.connect();
  try {
    await client.query('begin');
    let rows: T[] = [];
    for (const [text, params] of steps) rows = (await client.query(text, params ?? [])).rows as T[];
    await client.query('commit');
    return rows;
  } catch (err) {
    await client.query('rollback').catch(() => {});
    throw err;
  } finally {
    await client.end();
  }
}

/**
 * Runs `text` as the service role in a transaction whose clock (spool.now) is `at`, so that time
 * moves for the SQL API without sleeping, while only the jobs in `own` can be taken: a second
 * session locks every other pending, running or waiting job until the transaction ends, and the
 * API's pickers (claim_jobs, claim_waiting_polls, rescue_jobs) skip locked rows. Jobs of other
 * tests, and of the stack's own worker, are left alone even though the clock is far ahead of
 * theirs. Should another job still change (it was busy, or not yet active, when the lock was
 * taken), the transaction is rolled back and run again with that job locked too. Returns the rows.
 */
export async function asOf<T = Record<string, unknown>>(
  at: Date | string,
  own: string[],
  text: string,
  params: unknown[] = [],
): Promise<T[]> {
  const clock = new Date(at).toISOString();
  for (let attempt = 1;; attempt++) {
    const fence = new pg.Client({ connectionString: theStack().superuserUrl });
    const client = new pg.Client({ connectionString: theStack().superuserUrl });
    await Promise.all([fence.connect(), client.connect()]);
    try {
      await fence.query('begin');
      await fence.query(
        `select 1 from public.jobs
          where status in ('pending', 'running', 'waiting') and id <> all ($1::uuid[])
          for update skip locked`,
        [own],
      );
      await client.query('begin');
      await client.query('set local role service_role');
      await client.query(`select set_config('spool.now', $1, true)`, [clock]);
      const rows = (await client.query(text, params)).rows as T[];
      await client.query('reset role');
      // Rows this transaction wrote carry its transaction id in xmin.
      const strays = (await client.query(
        `select id from public.jobs
          where xmin::text::bigint = txid_current() % 4294967296 and id <> all ($1::uuid[])`,
        [own],
      )).rows as { id: string }[];
      if (strays.length === 0) {
        await client.query('commit');
        return rows;
      }
      await client.query('rollback');
      if (attempt >= 3) {
        throw new Error(
          `as of ${clock}, "${text}" kept changing jobs that are not the test's own: ${
            strays.map((r) => r.id).join(', ')
          }`,
        );
      }
    } catch (err) {
      await client.query('rollback').catch(() => {});
      throw err;
    } finally {
      await fence.query('rollback').catch(() => {});
      await Promise.all([fence.end(), client.end()]);
    }
  }
}

export async function countJobs(userId?: string): Promise<number> {
  const rows = userId
    ? await sql<{ n: number }>('select count(*)::int as n from public.jobs where user_id = $1', [
      userId,
    ])
    : await sql<{ n: number }>('select count(*)::int as n from public.jobs');
  return rows[0].n;
}

/**
 * Changes spool.settings for the duration of `fn`, then restores them. Values are numbers or, for
 * intervals, Postgres interval text ('1 day').
 */
export async function withSettings<T>(
  settings: Record<string, number | string>,
  fn: () => Promise<T>,
): Promise<T> {
  const names = Object.keys(settings);
  const [before] = await sql<Record<string, string>>(
    `select ${names.map((n) => `${n}::text as ${n}`).join(', ')} from spool.settings`,
  );
  const set = (values: Record<string, number | string>) =>
    sql(
      `update spool.settings set ${names.map((n, i) => `${n} = $${i + 1}`).join(', ')}`,
      names.map((n) => values[n]),
    );
  await set(settings);
  try {
    return await fn();
  } finally {
    await set(before);
  }
}

// Users and tokens -------------------------------------------------------------------------------

const b64url = (bytes: Uint8Array) =>
  btoa(String.fromCharCode(...bytes)).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
const b64json = (value: unknown) => b64url(new TextEncoder().encode(JSON.stringify(value)));

/**
 * Signs claims as the stack's Auth signs access tokens: ES256 with its signing key
 * (SPOOL_TEST_SIGNING_KEY, when the stack runs the new API keys) or HS256 with its JWT secret
 * (legacy keys). With `secret`, a forgery: HS256 with that secret (legacy), or ES256 with a fresh
 * key under the stack key's kid (new).
 */
export async function signJwt(claims: Record<string, unknown>, secret?: string) {
  const signingKey = Deno.env.get('SPOOL_TEST_SIGNING_KEY')?.trim();
  if (signingKey) {
    const jwk = JSON.parse(signingKey);
    const key = secret === undefined
      ? await crypto.subtle.importKey('jwk', jwk, { name: 'ECDSA', namedCurve: 'P-256' }, false, [
        'sign',
      ])
      : (await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign']))
        .privateKey;
    const unsigned = `${b64json({ alg: 'ES256', kid: jwk.kid, typ: 'JWT' })}.${b64json(claims)}`;
    const sig = new Uint8Array(
      await crypto.subtle.sign(
        { name: 'ECDSA', hash: 'SHA-256' },
        key,
        new TextEncoder().encode(unsigned),
      ),
    );
    return `${unsigned}.${b64url(sig)}`;
  }
  const unsigned = `${b64json({ alg: 'HS256', typ: 'JWT' })}.${b64json(claims)}`;
  const key = await crypto.subtle.importKey(
    'raw',
    new TextEncoder().encode(secret ?? theStack().jwtSecret),
    { name: 'HMAC', hash: 'SHA-256' },
    false,
    ['sign'],
  );
  const sig = new Uint8Array(
    await crypto.subtle.sign('HMAC', key, new TextEncoder().encode(unsigned)),
  );
  return `${unsigned}.${b64url(sig)}`;
}

export interface TestUser {
  id: string;
  email: string;
  /** A valid access token (1 h). */
  token: string;
  /** A supabase-js client acting as this user. */
  db: Db;
}

/** The access-token claims Supabase Auth puts in a user's session JWT. */
export function sessionClaims(
  id: string,
  { admin = false, expiresIn = 3600 }: { admin?: boolean; expiresIn?: number } = {},
) {
  const now = Math.floor(Date.now() / 1000);
  return {
    iss: `${theStack().url}/auth/v1`,
    sub: id,
    aud: 'authenticated',
    role: 'authenticated',
    iat: now - 10,
    exp: now + expiresIn,
    email: `${id}@spool.test`,
    phone: '',
    app_metadata: admin ? { provider: 'email', spool_admin: true } : { provider: 'email' },
    user_metadata: {},
    aal: 'aal1',
    amr: [{ method: 'password', timestamp: now - 10 }],
    session_id: crypto.randomUUID(),
    is_anonymous: false,
  };
}

/** Inserts a user into auth.users and a session (as Auth would on sign-up) and signs its token. */
export async function createUser({ admin = false } = {}): Promise<TestUser> {
  const id = crypto.randomUUID();
  const email = `${id}@spool.test`;
  const appMeta = admin ? { provider: 'email', spool_admin: true } : { provider: 'email' };
  await sql(
    `insert into auth.users (instance_id, id, aud, role, email, email_confirmed_at,
       raw_app_meta_data, raw_user_meta_data, created_at, updated_at, last_sign_in_at)
     values ('00000000-0000-0000-0000-000000000000', $1, 'authenticated', 'authenticated', $2,
       now(), $3, '{}', now(), now(), now())`,
    [id, email, JSON.stringify(appMeta)],
  );
  // The session the token names: Auth (and so requireUser) refuses one that was signed out.
  const claims = sessionClaims(id, { admin });
  await sql('insert into auth.sessions (id, user_id) values ($1, $2)', [claims.session_id, id]);
  const token = await signJwt(claims);
  return { id, email, token, db: userDb(token) };
}

/** A supabase-js client that sends `token` as the user's session. */
export function userDb(token: string): Db {
  const s = theStack();
  return createClient<Database>(s.url, s.anonKey, {
    auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false },
    global: { headers: { Authorization: `Bearer ${token}` } },
  });
}

/** A supabase-js client with the secret key. */
export function serviceDb(): Db {
  const s = theStack();
  return createClient<Database>(s.url, s.serviceKey, {
    auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false },
  });
}

/** Uploads a file into the user's inputs folder, as the user; returns its path. */
export async function uploadInput(
  user: TestUser,
  name: string,
  bytes: Uint8Array,
  contentType: string,
): Promise<string> {
  const path = `${user.id}/${name}`;
  const { error } = await user.db.storage.from('inputs').upload(path, bytes, {
    contentType,
    upsert: true,
  });
  if (error) throw new Error(`upload of ${path} as ${contentType} failed: ${error.message}`);
  return path;
}

// Functions in process ---------------------------------------------------------------------------

/**
 * An EnvReader for a function under test: the stack's URL and keys plus `vars`; nothing else
 * from the test process, so provider settings are exactly what each test says.
 */
export function functionEnv(vars: Record<string, string> = {}): EnvReader {
  const s = theStack();
  // What the gateway injects (local/standins/functions.mjs workerEnv): the named new keys and the
  // JWKS when the stack runs the new API keys, the legacy key names otherwise.
  const jwks = Deno.env.get('SUPABASE_JWKS')?.trim();
  const env: Record<string, string> = jwks
    ? {
      SUPABASE_URL: s.url,
      SUPABASE_PUBLISHABLE_KEYS: JSON.stringify({ default: s.anonKey }),
      SUPABASE_SECRET_KEYS: JSON.stringify({ default: s.serviceKey }),
      SUPABASE_JWKS: jwks,
      ...vars,
    }
    : {
      SUPABASE_URL: s.url,
      SUPABASE_ANON_KEY: s.anonKey,
      SUPABASE_SERVICE_ROLE_KEY: s.serviceKey,
      ...vars,
    };
  return new EnvReader((name) => env[name]);
}

export interface CallOptions {
  method?: string;
  token?: string | null;
  headers?: Record<string, string>;
  /** A JSON value, or a string sent as is. */
  body?: unknown;
  contentType?: string | null;
}

/** Calls a handler in process as the functions gateway would (path without /functions/v1). */
export async function call(handler: Handler, path: string, options: CallOptions = {}) {
  const headers = new Headers(options.headers ?? {});
  headers.set('apikey', theStack().anonKey);
  if (options.token !== null && options.token !== undefined) {
    headers.set('authorization', `Bearer ${options.token}`);
  }
  let body: string | undefined;
  if (options.body !== undefined) {
    body = typeof options.body === 'string' ? options.body : JSON.stringify(options.body);
  }
  const contentType = options.contentType === undefined ? 'application/json' : options.contentType;
  if (body !== undefined && contentType !== null) headers.set('content-type', contentType);
  const res = await handler(
    new Request(`http://127.0.0.1${path}`, { method: options.method ?? 'POST', headers, body }),
  );
  const text = await res.text();
  let json: Record<string, unknown> | null = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = null;
  }
  return { status: res.status, headers: res.headers, json, text };
}

/** Asserts the one error shape with this status and code. */
export function assertError(
  res: { status: number; json: Record<string, unknown> | null; text: string },
  status: number,
  code: string,
  label = '',
) {
  const error = (res.json?.error ?? null) as { code?: string; message?: string } | null;
  assert.equal(
    `${res.status} ${error?.code}`,
    `${status} ${code}`,
    `${label}: expected ${status} ${code}, got ${res.status} ${res.text.slice(0, 300)}`,
  );
  assert.equal(typeof error?.message, 'string', `${label}: error.message`);
}
