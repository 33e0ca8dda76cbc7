// Contract tests of the PostgREST stand-in (local/gateway/rest.mjs), driven by the official
// supabase-js as Spool's Edge Functions (service role key) and browser client (anon key + user
// JWT) use it. Run: node --test local/gateway/tests/rest.test.mjs

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

  it('runs stable functions read-only on GET', async () => {
    const { status, json } = await raw('/rpc/get_queue_stats?p_window=5%20minutes', {
      headers: {
        apikey: stack.keys.serviceRoleKey,
        Authorization: `Bearer ${stack.keys.serviceRoleKey}`,
      },
    });
    assert.equal(status, 200);
    assert.equal(typeof json, 'object');
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
    const { data, error } = await stack.client(alice.token).from('jobs').select('id, user_id').eq(
      'type',
      TYPE,
    );
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
      const { status, error } = await user.from('jobs').select(
        column === '*' ? '*' : `id, ${column}`,
      ).eq('id', id);
      assert.equal(status, 403, column);
      assert.equal(error.code, '42501', column);
      assert.equal(error.message, 'permission denied for table jobs', column);
    }
    const filtered = await user.from('jobs').select('id').eq('worker_id', 'gw-test-worker');
    assert.equal(filtered.status, 403);
    const mine = await user.from('jobs').select('id, status, attempts, history').eq('id', id)
      .single();
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
    const full = await service.from('jobs').select('*').eq('id', id).single();
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

  it('filters, orders, pages and counts like PostgREST', async () => {
    const ids = aliceJobs.map((j) => j.id);
    const user = stack.client(alice.token);
    const page = await user
      .from('jobs')
      .select('id, priority, n:input->>n', { count: 'exact' })
      .in('id', ids)
      .gte('priority', 10)
      .order('priority', { ascending: false })
      .range(0, 1);
    assert.equal(page.error, null);
    assert.equal(page.count, 3);
    assert.equal(page.status, 206); // partial content: 2 of 3
    assert.deepEqual(page.data.map((j) => j.priority), [30, 20]);
    assert.deepEqual(page.data.map((j) => j.n), ['3', '2']);

    const rest = await user
      .from('jobs')
      .select('priority', { count: 'exact' })
      .in('id', ids)
      .gte('priority', 10)
      .order('priority', { ascending: false })
      .range(2, 5);
    assert.equal(rest.status, 206); // PostgREST: fewer rows than the total is partial content
    assert.equal(rest.count, 3);
    assert.deepEqual(rest.data, [{ priority: 10 }]);

    const either = await user
      .from('jobs')
      .select('priority')
      .in('id', ids)
      .or('priority.eq.0,priority.eq.30')
      .order('priority');
    assert.deepEqual(either.data.map((j) => j.priority), [0, 30]);

    const notNull = await user.from('jobs').select('id').in('id', ids).is('output', null).neq(
      'status',
      'done',
    );
    assert.equal(notNull.data.length, 4);
  });

  it('sends Content-Range with and without an exact count', async () => {
    const headers = { apikey: stack.keys.anonKey, Authorization: `Bearer ${alice.token}` };
    const ids = aliceJobs.map((j) => j.id).join(',');
    const plain = await raw(`/jobs?select=id&id=in.(${ids})&limit=2`, { headers });
    assert.equal(plain.status, 200);
    assert.equal(plain.headers.get('content-range'), '0-1/*');
    const counted = await raw(`/jobs?select=id&id=in.(${ids})`, {
      headers: { ...headers, Prefer: 'count=exact', Range: '1-2', 'Range-Unit': 'items' },
    });
    assert.equal(counted.status, 206);
    assert.equal(counted.headers.get('content-range'), '1-2/4');
    const beyond = await raw(`/jobs?select=id&id=in.(${ids})&offset=10`, {
      headers: { ...headers, Prefer: 'count=exact' },
    });
    assert.equal(beyond.status, 416);
    assert.equal(beyond.json.code, 'PGRST103');
  });

  it('returns one object for .single() and PGRST116 otherwise', async () => {
    const user = stack.client(alice.token);
    const one = await user.from('jobs').select('id, status').eq('id', aliceJobs[0].id).single();
    assert.equal(one.error, null);
    assert.deepEqual(one.data, { id: aliceJobs[0].id, status: 'pending' });

    const many = await user.from('jobs').select('id').in('id', aliceJobs.map((j) => j.id)).single();
    assert.equal(many.status, 406);
    assert.equal(many.error.code, 'PGRST116');
    assert.equal(many.error.details, 'The result contains 4 rows');

    const notMine = await user.from('jobs').select('id').eq('id', (await createJob(bob.id)).id)
      .maybeSingle();
    assert.equal(notMine.error, null);
    assert.equal(notMine.data, null);
  });

  it('answers unknown tables and columns as PostgREST does', async () => {
    const user = stack.client(alice.token);
    const table = await user.from('jobz').select('*');
    assert.equal(table.status, 404);
    assert.equal(table.error.code, 'PGRST205');
    assert.equal(table.error.hint, "Perhaps you meant the table 'public.jobs'");

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
});

describe('PATCH notifications', () => {
  let notification;

  before(async () => {
    const job = await createJob(alice.id);
    const cancelled = await stack.client(alice.token).rpc('cancel_job', { p_id: job.id });
    assert.equal(cancelled.error, null);
    const { data, error } = await stack.client(alice.token).from('notifications').select('*').eq(
      'job_id',
      job.id,
    ).single();
    assert.equal(error, null);
    notification = data;
  });

  it('lets the owner mark a notification read and returns the row', async () => {
    const readAt = new Date().toISOString();
    const { data, error, status } = await stack.client(alice.token)
      .from('notifications')
      .update({ read_at: readAt })
      .eq('id', notification.id)
      .select('id, read_at, status');
    assert.equal(error, null);
    assert.equal(status, 200);
    assert.equal(data.length, 1);
    assert.equal(data[0].status, 'cancelled');
    assert.equal(new Date(data[0].read_at).toISOString(), readAt);
  });

  it('answers 204 with return=minimal', async () => {
    const { data, error, status } = await stack.client(alice.token)
      .from('notifications')
      .update({ read_at: null })
      .eq('id', notification.id);
    assert.equal(error, null);
    assert.equal(status, 204);
    assert.equal(data, null);
  });

  it('changes nothing for another user (RLS hides the row)', async () => {
    const { data, error } = await stack.client(bob.token)
      .from('notifications')
      .update({ read_at: new Date().toISOString() })
      .eq('id', notification.id)
      .select();
    assert.equal(error, null);
    assert.deepEqual(data, []);
    const row = await stack.admin.query('select read_at from public.notifications where id = $1', [
      notification.id,
    ]);
    assert.equal(row.rows[0].read_at, null);
  });

  it('refuses columns the user may not update with 403', async () => {
    const { status, error } = await stack.client(alice.token)
      .from('notifications')
      .update({ message: 'hacked' })
      .eq('id', notification.id);
    assert.equal(status, 403);
    assert.equal(error.code, '42501');
  });

  it('rolls back a .single() update that matched more than one row', async () => {
    const second = await createJob(alice.id);
    await stack.client(alice.token).rpc('cancel_job', { p_id: second.id });
    const { status, error } = await stack.client(alice.token)
      .from('notifications')
      .update({ read_at: new Date().toISOString() })
      .eq('user_id', alice.id)
      .select()
      .single();
    assert.equal(status, 406);
    assert.equal(error.code, 'PGRST116');
    const rows = await stack.admin.query(
      'select count(*)::int as n from public.notifications where user_id = $1 and read_at is not null',
      [alice.id],
    );
    assert.equal(rows.rows[0].n, 0);
  });

  it('refuses writes to jobs (no grant)', async () => {
    const { status, error } = await stack.client(alice.token).from('jobs').insert({
      user_id: alice.id,
      type: TYPE,
    });
    assert.equal(status, 403);
    assert.equal(error.code, '42501');
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
    const expired = stack.keys.sign({
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

  it('answers CORS preflights and exposes Content-Range', async () => {
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
