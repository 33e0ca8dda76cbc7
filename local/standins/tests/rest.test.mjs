// Contract tests of the PostgREST stand-in (local/standins/rest.mjs), driven by the official
// supabase-js as Spool's Edge Functions (service role key) and browser client (anon key + user
// JWT) use it. Run: node --test local/standins/tests/rest.test.mjs

import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { startStack } from './helpers.mjs';

let stack;
let service; // supabase-js with the service_role key
let alice; // { id, token }
let bob;
/** A job type no other suite uses, so claims here never touch anyone else's jobs. */
const TYPE = `gw-rest-${crypto.randomBytes(4).toString('hex')}`;
const LATER = new Date(Date.now() + 24 * 3600 * 1000).toISOString(); // never claimable during the run

async function createJob(userId, input = {}, extra = {}) {
  const { data, error } = await service.rpc('create_job', {
    p_user_id: userId,
    p_type: TYPE,
    p_input: input,
    p_run_at: LATER,
    ...extra,
  });
  assert.equal(error, null);
  return data;
}

async function raw(path, { method = 'GET', headers = {}, body } = {}) {
  const res = await fetch(`${stack.url}/rest/v1${path}`, { method, headers, body });
  const text = await res.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = text;
  }
  return { status: res.status, headers: res.headers, json };
}

before(async () => {
  stack = await startStack();
  service = stack.serviceClient();
  alice = await stack.makeUser();
  bob = await stack.makeUser();
}, { timeout: 180_000 });

after(async () => {
  await stack?.close();
});

describe('rpc', () => {
  it('calls a function with named arguments and returns its composite row as an object', async () => {
    const { data, error, status } = await service.rpc('create_job', {
      p_user_id: alice.id,
      p_type: TYPE,
      p_input: { preset: 'warm', nested: { a: [1, 2] } },
      p_priority: 5,
      p_run_at: LATER,
    });
    assert.equal(error, null);
    assert.equal(status, 200);
    assert.equal(typeof data, 'object');
    assert.ok(!Array.isArray(data));
    assert.equal(data.user_id, alice.id);
    assert.equal(data.type, TYPE);
    assert.equal(data.status, 'pending');
    assert.equal(data.priority, 5);
    assert.deepEqual(data.input, { preset: 'warm', nested: { a: [1, 2] } });
    assert.equal(data.run_at.slice(0, 19), LATER.slice(0, 19));
  });

  it('returns a set-returning function as an array', async () => {
    await service.rpc('create_job', { p_user_id: alice.id, p_type: TYPE, p_input: {} });
    const { data, error, status } = await service.rpc('claim_jobs', {
      p_worker_id: 'gw-test-worker',
      p_limit: 5,
      p_types: [TYPE],
    });
    assert.equal(error, null);
    assert.equal(status, 200);
    assert.ok(Array.isArray(data));
    for (const job of data) {
      assert.equal(job.type, TYPE);
      assert.equal(job.status, 'running');
      assert.match(job.lease_token, /^[0-9a-f-]{36}$/);
    }
  });

  it('returns setof scalar as an array of values and a scalar as the bare value', async () => {
    const none = await service.rpc('complete_jobs', { p_results: [] });
    assert.equal(none.error, null);
    assert.deepEqual(none.data, []);

    const rescued = await service.rpc('rescue_jobs');
    assert.equal(rescued.error, null);
    assert.equal(typeof rescued.data, 'number');

    const stats = await service.rpc('get_queue_stats', { p_window: '1 hour' });
    assert.equal(stats.error, null);
    assert.equal(typeof stats.data, 'object');
    assert.ok(!Array.isArray(stats.data));
  });

  it('returns an array-returning function as the array', async () => {
    const { data, error } = await stack.client(alice.token).rpc('preview_schedule', {
      p_every: '1 hour',
      p_count: 3,
      p_start_at: '2030-01-01T00:00:00Z',
    });
    assert.equal(error, null);
    assert.equal(data.length, 3);
    assert.deepEqual(data.map((t) => new Date(t).toISOString()), [
      '2030-01-01T00:00:00.000Z',
      '2030-01-01T01:00:00.000Z',
      '2030-01-01T02:00:00.000Z',
    ]);
  });

  it('answers PTxyz errors with status xyz and keeps Postgres message, details and hint', async () => {
    const bad = await service.rpc('create_job', { p_user_id: alice.id, p_type: 'Not A Slug' });
    assert.equal(bad.status, 400);
    assert.equal(bad.data, null);
    assert.equal(bad.error.code, 'PT400');
    assert.equal(bad.error.hint, 'invalid_argument');
    assert.equal(bad.error.message, 'type must be a lowercase slug like "color-grade"');
    assert.equal(bad.error.details, '');

    const nobody = await service.rpc('create_job', {
      p_user_id: crypto.randomUUID(),
      p_type: TYPE,
    });
    assert.equal(nobody.status, 404);
    assert.equal(nobody.error.code, 'PT404');
    assert.equal(nobody.error.hint, 'user_not_found');
  });

  it('maps a bad argument value to 400 with the Postgres error', async () => {
    const { status, error } = await service.rpc('create_job', {
      p_user_id: 'not-a-uuid',
      p_type: TYPE,
    });
    assert.equal(status, 400);
    assert.equal(error.code, '22P02');
    assert.match(error.message, /invalid input syntax for type uuid/);
  });

  it('refuses a service-only function with 401 to anon and 403 to a signed-in user', async () => {
    const anon = await stack.client().rpc('claim_jobs', { p_worker_id: 'intruder' });
    assert.equal(anon.status, 401);
    assert.equal(anon.error.code, '42501');
    assert.equal(anon.error.message, 'permission denied for function claim_jobs');

    const user = await stack.client(alice.token).rpc('claim_jobs', { p_worker_id: 'intruder' });
    assert.equal(user.status, 403);
    assert.equal(user.error.code, '42501');
  });

  it('answers unknown functions and unknown argument names with PGRST202', async () => {
    const unknown = await service.rpc('no_such_function', { a: 1 });
    assert.equal(unknown.status, 404);
    assert.equal(unknown.error.code, 'PGRST202');
    assert.equal(
      unknown.error.message,
      'Could not find the function public.no_such_function(a) in the schema cache',
    );

    const wrongArgs = await service.rpc('create_job', { p_user: alice.id, p_type: TYPE });
    assert.equal(wrongArgs.status, 404);
    assert.equal(wrongArgs.error.code, 'PGRST202');
    assert.equal(
      wrongArgs.error.message,
      'Could not find the function public.create_job(p_type, p_user) in the schema cache',
    );
    assert.match(
      wrongArgs.error.hint,
      /^Perhaps you meant to call the function public\.create_job\(/,
    );
  });

  it('lets the owner cancel a job through an authenticated rpc and nobody else', async () => {
    const job = await createJob(alice.id);
    const other = await stack.client(bob.token).rpc('cancel_job', { p_id: job.id });
    assert.equal(other.status, 404);
    assert.equal(other.error.hint, 'job_not_found');

    const own = await stack.client(alice.token).rpc('cancel_job', { p_id: job.id });
    assert.equal(own.error, null);
    assert.equal(own.data.status, 'cancelled');
  });

  it('runs stable functions in a read-only transaction, as PostgREST does', async () => {
    const { data, error } = await service.rpc('get_queue_stats', { p_window: '5 minutes' });
    assert.equal(error, null);
    assert.equal(typeof data, 'object');
  });
});

describe('table reads under RLS', () => {
  let aliceJobs;

  before(async () => {
    aliceJobs = [];
    for (let i = 0; i < 4; i++) {
      aliceJobs.push(await createJob(alice.id, { n: i }, { p_priority: i * 10 }));
    }
    await createJob(bob.id, { n: 100 });
  });

  it('shows a user only their own jobs', async () => {
    const { data, error } = await stack.client(alice.token).from('jobs').select('id, user_id')
      .eq('type', TYPE);
    assert.equal(error, null);
    assert.ok(data.length >= 4);
    assert.ok(data.every((j) => j.user_id === alice.id));
    const ids = new Set(data.map((j) => j.id));
    for (const j of aliceJobs) assert.ok(ids.has(j.id));
  });

  it('keeps the server-only columns of a job from its owner (column privileges, as PostgREST)', async () => {
    // authenticated selects only the public columns of jobs (20261202141000_job_columns.sql).
    const user = stack.client(alice.token);
    const { id } = await createJob(alice.id, { n: 'columns' });
    for (const column of ['lease_token', 'worker_id', 'fair_at', 'idempotency_key', '*']) {
      const { status, error } = await user.from('jobs').select(column === '*' ? '*' : `id, ${column}`)
        .eq('id', id);
      assert.equal(status, 403, column);
      assert.equal(error.code, '42501', column);
      assert.equal(error.message, 'permission denied for table jobs', column);
    }
    const filtered = await user.from('jobs').select('id').eq('worker_id', 'gw-test-worker');
    assert.equal(filtered.status, 403);
    const mine = await user.from('jobs').select('id, status, attempts, history').eq('id', id)
      .maybeSingle();
    assert.equal(mine.error, null);
    assert.deepEqual(mine.data, { id, status: 'pending', attempts: 0, history: [] });
    // The owner's RPCs return the owner's view of the row.
    const cancelled = await user.rpc('cancel_job', { p_id: id });
    assert.equal(cancelled.error, null);
    assert.equal(cancelled.data.status, 'cancelled');
    for (const column of ['lease_token', 'worker_id', 'fair_at', 'idempotency_key']) {
      assert.equal(cancelled.data[column], null, column);
    }
    // The secret key still reads every column.
    const full = await service.from('jobs').select('*').eq('id', id).maybeSingle();
    assert.equal(full.error, null);
    assert.notEqual(full.data.fair_at, null);
    const retried = await user.rpc('retry_job', { p_id: id });
    assert.equal(retried.error, null);
    assert.equal(retried.data.status, 'pending');
  });

  it('shows anon nothing (no grant on jobs)', async () => {
    const { status, error } = await stack.client().from('jobs').select('id');
    assert.equal(status, 401);
    assert.equal(error.code, '42501');
  });

  it('filters with eq and in, orders and limits as the web client and functions do', async () => {
    const ids = aliceJobs.map((j) => j.id);
    const user = stack.client(alice.token);
    const top = await user.from('jobs').select('id, priority').in('id', ids)
      .order('priority', { ascending: false }).limit(2);
    assert.equal(top.error, null);
    assert.deepEqual(top.data.map((j) => j.priority), [30, 20]);

    const one = await user.from('jobs').select('priority').eq('id', ids[1]).eq('status', 'pending');
    assert.deepEqual(one.data, [{ priority: 10 }]);

    // The notifications list (web/src/lib/notifications.ts): created_at and id both descending.
    const newest = await user.from('jobs').select('id, created_at').in('id', ids)
      .order('created_at', { ascending: false }).order('id', { ascending: false });
    const desc = (a, b) => (a < b ? 1 : a > b ? -1 : 0);
    const byHand = [...newest.data].sort((a, b) => desc(a.created_at, b.created_at) || desc(a.id, b.id));
    assert.deepEqual(newest.data, byHand);

    const none = await user.from('jobs').select('id').in('id', []);
    assert.deepEqual(none.data, []);
    const bad = await user.from('jobs').select('id').filter('id', 'nope', 'x');
    assert.equal(bad.status, 400);
    assert.equal(bad.error.code, 'PGRST100');
  });

  it('answers unknown tables and columns as PostgREST does', async () => {
    const user = stack.client(alice.token);
    const table = await user.from('jobz').select('*');
    assert.equal(table.status, 404);
    assert.equal(table.error.code, 'PGRST205');
    assert.equal(table.error.message, "Could not find the table 'public.jobz' in the schema cache");

    const column = await user.from('jobs').select('id, nope');
    assert.equal(column.status, 400);
    assert.equal(column.error.code, '42703');
    assert.equal(column.error.message, 'column jobs.nope does not exist');
  });

  it('exposes only the public schema', async () => {
    const { status, error } = await stack.client(alice.token).schema('spool').from('settings')
      .select('*');
    assert.equal(status, 406);
    assert.equal(error.code, 'PGRST106');
  });

  it('refuses what Spool does not use with 501 PGRST127, writing nothing', async () => {
    const user = stack.client(alice.token);
    const id = aliceJobs[0].id;
    const attempts = [
      user.from('jobs').update({ priority: 99 }).eq('id', id),
      user.from('jobs').delete().eq('id', id),
      user.from('jobs').insert({ type: TYPE }),
      user.from('jobs').select('id', { count: 'exact' }).eq('id', id),
      user.from('jobs').select('id').eq('id', id).single(),
      user.from('jobs').select('id').like('type', 'gw-%'),
      user.from('jobs').select('id').or(`id.eq.${id},priority.gt.5`),
      user.from('jobs').select('id, parent:jobs(id)'),
      user.rpc('get_queue_stats', {}, { get: true }),
    ];
    for (const r of await Promise.all(attempts)) {
      assert.equal(r.status, 501, JSON.stringify(r.error));
      assert.equal(r.error.code, 'PGRST127');
    }
    const still = await service.from('jobs').select('priority').eq('id', id);
    assert.deepEqual(still.data, [{ priority: 0 }]);
  });
});

describe('gateway and JWT checks', () => {
  it('requires an apikey', async () => {
    const { status, json } = await raw('/jobs');
    assert.equal(status, 401);
    assert.deepEqual(json, {
      message: 'No API key found in request',
      hint: 'No `apikey` request header or url param was found.',
    });
  });

  it('refuses an unknown apikey', async () => {
    const { status, json } = await raw('/jobs', { headers: { apikey: 'nope' } });
    assert.equal(status, 401);
    assert.equal(json.message, 'Invalid API key');
  });

  it('refuses a badly signed or expired JWT with PGRST301/PGRST303', async () => {
    const forged = `${alice.token.slice(0, -4)}AAAA`;
    const bad = await raw('/jobs', {
      headers: { apikey: stack.keys.anonKey, Authorization: `Bearer ${forged}` },
    });
    assert.equal(bad.status, 401);
    assert.equal(bad.json.code, 'PGRST301');

    const iat = Math.floor(Date.now() / 1000) - 7200;
    const expired = await stack.keys.sign({
      sub: alice.id,
      role: 'authenticated',
      aud: 'authenticated',
      iat,
      exp: iat + 3600,
    });
    const old = await raw('/jobs', {
      headers: { apikey: stack.keys.anonKey, Authorization: `Bearer ${expired}` },
    });
    assert.equal(old.status, 401);
    assert.deepEqual(old.json, {
      code: 'PGRST303',
      details: null,
      hint: null,
      message: 'JWT expired',
    });
  });

  it('answers CORS preflights and lets browsers read the answer', async () => {
    const pre = await fetch(`${stack.url}/rest/v1/jobs`, {
      method: 'OPTIONS',
      headers: {
        Origin: 'http://127.0.0.1:5173',
        'Access-Control-Request-Method': 'GET',
        'Access-Control-Request-Headers': 'apikey, authorization, prefer',
      },
    });
    assert.equal(pre.status, 200);
    assert.equal(pre.headers.get('access-control-allow-origin'), '*');
    assert.match(pre.headers.get('access-control-allow-headers'), /prefer/);
    const get = await raw('/jobs?select=id', {
      headers: {
        Origin: 'http://127.0.0.1:5173',
        apikey: stack.keys.anonKey,
        Authorization: `Bearer ${alice.token}`,
      },
    });
    assert.equal(get.headers.get('access-control-allow-origin'), '*');
    assert.match(get.headers.get('access-control-expose-headers'), /Content-Range/);
  });
});
