// Two workers at once, in two real database sessions: claims never block each other and never
// share a job (FOR UPDATE SKIP LOCKED), and a worker whose lease was taken over cannot complete
// the job even when its completion races the takeover.
//
// This was supabase/tests/20_two_sessions.test.sql, which opened its sessions with dblink. Under
// `supabase test db` that cannot work: the supabase/postgres image trusts 127.0.0.1, so dblink
// refuses the non-superuser postgres ("password is required"), and the CLI hands pg_prove only
// PGHOST/PGPORT/PGUSER/PGPASSWORD/PGDATABASE. Here each session is its own pg connection.
//
// Needs SUPABASE_DB_URL (the postgres role), as npm test (local/tools/test.mjs) sets it; without it
// every test fails, naming it. Jobs are created runnable from 2030-01-01 while the setup session
// runs on real time, so a real worker or the pg_cron sweep on the same database sees nothing
// runnable, and only the two worker sessions move their clock (spool.now) to 2030. The test users
// are used by nobody else; every row committed here is deleted before and after.
//
//   npm test                                         everything, with a database
//   SUPABASE_DB_URL=postgresql://… node --test local/tools/tests/queue-two-sessions.test.mjs

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import pg from 'pg';

const DB_URL = process.env.SUPABASE_DB_URL;
const T0 = '2030-01-01 00:00:00+00';
const USERS = ['two-sessions-ann', 'two-sessions-ben'];
// The per-type limit tests' own owners: the tests above spend ann's jobs-per-minute quota.
const TYPE_USERS = ['two-sessions-cid', 'two-sessions-dee'];

let setup; // postgres, real time: creates and deletes what the tests commit
let watcher; // postgres: looks at the other sessions' locks
let s1;
let s2;

async function connect() {
  const client = new pg.Client({ connectionString: DB_URL });
  await client.connect();
  return client;
}

/** A worker session: service_role, as job-worker calls the SQL API, on the 2030 test clock. */
async function workerSession() {
  const client = await connect();
  await client.query(`set role service_role`);
  await client.query(`set request.jwt.claims = '{"role": "service_role"}'`);
  await client.query(`set spool.now = '${T0}'`);
  return client;
}

// Job types with limits that only these tests use (deleting a row deletes its spool.type_slots).
const LIMITED_TYPES = ['two-session-capped', 'two-session-rated', 'two-session-timed'];

async function cleanup() {
  await setup.query('delete from spool.job_types where type = any ($1::text[])', [LIMITED_TYPES]);
  await setup.query(
    `with u as (select md5('spool-test:' || n)::uuid as id from unnest($1::text[]) n),
          j as (delete from public.jobs where user_id in (select id from u)),
          n as (delete from public.notifications where user_id in (select id from u)),
          s as (delete from spool.user_slots where user_id in (select id from u))
     delete from auth.users where id in (select id from u)`,
    [[...USERS, ...TYPE_USERS]],
  );
}

/** Tracks whether a promise has settled, without consuming its outcome. */
function track(promise) {
  const tracked = { promise, settled: false };
  promise.then(() => (tracked.settled = true), () => (tracked.settled = true));
  return tracked;
}

/**
 * Waits for one of two states: the tracked query settled, or the session running it waits for a
 * lock (a pg_locks row of its backend that is not granted). Resolves to 'settled' or 'blocked'.
 */
async function settledOrBlocked(tracked, session) {
  for (;;) {
    if (tracked.settled) return 'settled';
    const { rows: [{ waiting }] } = await watcher.query(
      'select exists (select 1 from pg_locks where pid = $1 and not granted) as waiting',
      [session.processID],
    );
    if (waiting) return 'blocked';
  }
}

const ids = (rows) => rows.map((r) => r.id).sort();

/** Commits `count` jobs of `type` for each of `users`, runnable from the test clock's 2030. */
async function createJobs(type, count, users = USERS) {
  const { rows } = await setup.query(
    `select j.id from unnest($1::text[]) u, generate_series(1, $2::int) n,
       lateral public.create_job(md5('spool-test:' || u)::uuid, $3, jsonb_build_object('n', n),
                                 p_run_at => $4::timestamptz) j`,
    [users, count, type, T0],
  );
  return ids(rows);
}

before(async () => {
  assert.ok(DB_URL, 'SUPABASE_DB_URL is not set: run npm test, or set it to the postgres role\'s URL');
  setup = await connect();
  watcher = await connect();
  s1 = await workerSession();
  s2 = await workerSession();
  await cleanup();
  await setup.query(
    `insert into auth.users (id, aud, role, email)
     select md5('spool-test:' || n)::uuid, 'authenticated', 'authenticated', n || '@spool.test'
       from unnest($1::text[]) n`,
    [[...USERS, ...TYPE_USERS]],
  );
});

after(async () => {
  for (const client of [s1, s2]) await client?.end().catch(() => {});
  if (setup) await cleanup();
  for (const client of [setup, watcher]) await client?.end().catch(() => {});
});

test('two sessions claiming at once never wait for each other and never share a job', async () => {
  const created = await createJobs('two-session-probe', 5);
  assert.equal(created.length, 10, 'ten committed jobs are pending before the workers start');

  // Session 1 claims 5 and keeps its transaction open; session 2 claims up to 10 meanwhile.
  await s1.query('begin');
  const claim1 = ids((await s1.query(
    `select id from public.claim_jobs('worker-s1', 5, 60, array['two-session-probe'])`,
  )).rows);
  const second = track(s2.query(
    `select id from public.claim_jobs('worker-s2', 10, 60, array['two-session-probe'])`,
  ));
  const state = await settledOrBlocked(second, s2);
  if (state === 'blocked') await s1.query('rollback');
  assert.equal(state, 'settled', 'session 2 claims without waiting for session 1\'s open transaction');
  const claim2 = ids((await second.promise).rows);
  await s1.query('commit');

  assert.equal(claim1.length, 5, 'session 1 claims 5 of the 10 jobs');
  assert.equal(claim2.length, 5, 'session 2 gets exactly the 5 jobs session 1 did not claim');
  assert.deepEqual(claim1.filter((id) => claim2.includes(id)), [], 'no job is claimed by both sessions');

  const { rows } = await setup.query(
    `select id, worker_id, attempts, lease_token from public.jobs
      where type = 'two-session-probe' and status = 'running' order by id`,
  );
  assert.deepEqual(ids(rows), [...claim1, ...claim2].sort(),
    'after session 1 commits, exactly the jobs the two sessions claimed are running');
  for (const row of rows) {
    assert.equal(row.attempts, 1, `job ${row.id} was claimed once`);
    assert.equal(row.worker_id, claim1.includes(row.id) ? 'worker-s1' : 'worker-s2',
      `job ${row.id} is held by the session that claimed it`);
  }
  assert.equal(new Set(rows.map((r) => r.lease_token)).size, rows.length,
    'every running job has its own lease token');
});

test('a stale completion racing a takeover waits for it, then is refused with lease_lost', async () => {
  const doorbellBefore = (await setup.query('select to_jsonb(d) as d from spool.doorbell d')).rows;
  const [x] = await createJobs('two-session-fence', 1, [USERS[0]]);
  const { rows: [held] } = await s1.query(
    `select id, lease_token from public.claim_jobs('worker-s1', 1, 60, array['two-session-fence'])`,
  );
  assert.equal(held?.id, x, 'session 1 holds the job');

  // While session 2 works, the setup session holds the doorbell row, so retry_job's ring skips
  // (its documented contract) instead of committing a ring stamped with the 2030 test clock.
  await setup.query('begin');
  await setup.query('select 1 from spool.doorbell for update');
  // Session 2 (as an admin) cancels and re-runs the job and claims it, in an open transaction.
  await s2.query('begin');
  await s2.query('select 1 from public.cancel_job($1), public.retry_job($1)', [held.id]);
  const { rows: [taken] } = await s2.query(
    `select id, lease_token from public.claim_jobs('worker-s2', 1, 60, array['two-session-fence'])`,
  );
  assert.equal(taken?.id, held.id, 'session 2 claims the job it re-ran');

  const stale = track(s1.query(`select id from public.complete_job($1, $2, '{"by": "worker-s1"}')`,
    [held.id, held.lease_token]));
  const state = await settledOrBlocked(stale, s1);
  await s2.query('commit');
  await setup.query('rollback');
  assert.equal(state, 'blocked', 'the old holder\'s completion waits while the takeover is uncommitted');

  const refused = await stale.promise.then(() => null, (err) => err);
  assert.ok(refused, 'the old holder\'s completion is refused once the takeover commits');
  assert.deepEqual({ code: refused.code, hint: refused.hint }, { code: 'PT409', hint: 'lease_lost' });

  const { rows: [job] } = await setup.query(
    'select status, worker_id, lease_token, output from public.jobs where id = $1', [held.id]);
  assert.deepEqual(job, { status: 'running', worker_id: 'worker-s2', lease_token: taken.lease_token, output: null },
    'the job stays running for its new holder, without the stale output');

  const { rows: done } = await s2.query(`select id from public.complete_job($1, $2, '{"by": "worker-s2"}')`,
    [held.id, taken.lease_token]);
  assert.deepEqual(ids(done), [held.id], 'the new holder completes the job');

  const doorbellAfter = (await setup.query('select to_jsonb(d) as d from spool.doorbell d')).rows;
  assert.deepEqual(doorbellAfter, doorbellBefore, 'the test committed no doorbell ring');
});

test('bulk creates for the same users serialise on them, in one order, and keep the quota exact', async () => {
  const uid = (name) => `md5('spool-test:' || '${name}')::uuid`;
  const batch = (counts) =>
    `select count(*)::int as n from public.create_jobs((
       select jsonb_agg(jsonb_build_object('user_id', u.id, 'type', 'two-session-bulk',
                                           'run_at', '2031-01-01T00:00:00Z', 'input', jsonb_build_object('n', g)))
       from (values ${counts.map(([name, n]) => `(${uid(name)}, ${n})`).join(', ')}) u(id, n),
            generate_series(1, u.n) g))`;
  const [ann, ben] = USERS;

  // Opposite user orders in the two batches: each call locks its users in user_id order, so
  // the second waits for the first instead of deadlocking with it.
  await s1.query('begin');
  assert.equal((await s1.query(batch([[ann, 10], [ben, 10]]))).rows[0].n, 20);
  const second = track(s2.query(batch([[ben, 20], [ann, 20]])));
  const state = await settledOrBlocked(second, s2);
  await s1.query('commit');
  assert.equal(state, 'blocked', 'the second batch waits for the first, which holds its users');
  assert.equal((await second.promise).rows[0].n, 40, 'then it is created whole');

  // ann has created 30 this minute (of 60). Two batches of 20 race: the first fits (50), the
  // second, counted after the first commits, would make 70 and is refused whole.
  await s1.query('begin');
  assert.equal((await s1.query(batch([[ann, 20]]))).rows[0].n, 20);
  const racing = track(s2.query(batch([[ann, 20]])));
  const raced = await settledOrBlocked(racing, s2);
  await s1.query('commit');
  assert.equal(raced, 'blocked', 'the racing batch waits for the user');
  const refused = await racing.promise.then(() => null, (err) => err);
  assert.ok(refused, 'the racing batch is refused once the first commits');
  assert.deepEqual({ code: refused.code, hint: refused.hint }, { code: 'PT429', hint: 'quota_rate' });

  const { rows } = await setup.query(
    `select user_id = ${uid(ann)} as is_ann, count(*)::int as n from public.jobs
      where type = 'two-session-bulk' group by 1 order by 1`,
  );
  assert.deepEqual(rows, [{ is_ann: false, n: 30 }, { is_ann: true, n: 50 }],
    'exactly the accepted batches were written: ann 50 (at most 60 a minute), ben 30');
});

test('pruning deletes finished history in batches, each committed on its own', async () => {
  const [ann] = USERS;
  // Five done jobs that finished 20 days ago (past retention_done, 14 days), on the real clock.
  await setup.query(
    `insert into public.jobs (user_id, type, status, finished_at, created_at, updated_at, started_at, attempts)
     select md5('spool-test:' || $1)::uuid, 'two-session-prune', 'done', t, t, t, t, 1
       from generate_series(1, 5) g, lateral (select now() - interval '20 days' - g * interval '1 second' as t) x`,
    [ann],
  );
  const inBlock = await setup.query('begin').then(() => setup.query('call spool.prune_history(2, 50)'))
    .then(() => null, (err) => err);
  await setup.query('rollback');
  assert.equal(inBlock?.message, 'invalid transaction termination',
    'inside a transaction block it cannot commit: it commits between its batches');
  await setup.query('call spool.prune_history(2, 50)');
  const { rows: [left] } = await setup.query(
    `select count(*)::int as n from public.jobs where type = 'two-session-prune'`);
  assert.equal(left.n, 0, 'batches of 2 went on until one came back short: all 5 are gone');
});

/** Counts the committed jobs of a type in a state. */
async function countOf(type, status) {
  const { rows: [r] } = await setup.query(
    'select count(*)::int as n from public.jobs where type = $1 and status = $2', [type, status]);
  return r.n;
}

const claimOf = (type, limit, worker) =>
  `select id from public.claim_jobs('${worker}', ${limit}, 60, array['${type}'])`;

test('two sessions claiming a capped type at once never exceed its project-wide cap', async () => {
  const type = 'two-session-capped';
  await setup.query(`insert into spool.job_types (type, max_running) values ($1, 3)`, [type]);
  await createJobs(type, 5, TYPE_USERS);

  // Session 1 claims 3 (so it locks just those 3 rows) and keeps its transaction open; session 2
  // finds the other 7, waits for the type's row, then counts session 1's committed claims: full.
  await s1.query('begin');
  const first = ids((await s1.query(claimOf(type, 3, 'worker-s1'))).rows);
  const second = track(s2.query(claimOf(type, 10, 'worker-s2')));
  const state = await settledOrBlocked(second, s2);
  await s1.query('commit');
  assert.equal(first.length, 3, 'session 1 claims 3 of the 10, the cap');
  assert.equal(state, 'blocked', 'session 2 waits for session 1, which holds the type, instead of counting without it');
  assert.deepEqual(ids((await second.promise).rows), [], 'then it claims none: 3 run already');
  assert.equal(await countOf(type, 'running'), 3, 'exactly 3 jobs of the type run');

  // Two finish; then both sessions claim at the same instant, several times over: never above 3.
  await setup.query(
    `select public.complete_jobs(jsonb_agg(jsonb_build_object('id', id, 'lease_token', lease_token)))
       from (select id, lease_token from public.jobs where id = any ($1::uuid[]) limit 2) j`, [first]);
  let claimed = 0;
  for (let round = 0; round < 5; round++) {
    const [a, b] = await Promise.all([
      s1.query(claimOf(type, 10, 'worker-s1')), s2.query(claimOf(type, 10, 'worker-s2'))]);
    claimed += a.rows.length + b.rows.length;
    assert.ok(await countOf(type, 'running') <= 3, `round ${round}: at most 3 of the type run`);
  }
  assert.equal(claimed, 2, 'the two racing sessions together fill exactly the 2 freed slots');
  assert.equal(await countOf(type, 'running'), 3, 'and the type is at its cap again');
});

test('two sessions claiming a rate-limited type at once never start more than its rate', async () => {
  const type = 'two-session-rated';
  await setup.query(`insert into spool.job_types (type, rate_per_minute) values ($1, 4)`, [type]);
  await createJobs(type, 5, TYPE_USERS);

  await s1.query('begin');
  const first = ids((await s1.query(claimOf(type, 3, 'worker-s1'))).rows);
  const second = track(s2.query(claimOf(type, 10, 'worker-s2')));
  const state = await settledOrBlocked(second, s2);
  await s1.query('commit');
  assert.equal(first.length, 3, 'session 1 starts 3');
  assert.equal(state, 'blocked', 'session 2 waits for the type\'s row');
  assert.equal((await second.promise).rows.length, 1, 'then starts 1: 4 a minute');

  const [a, b] = await Promise.all([
    s1.query(claimOf(type, 10, 'worker-s1')), s2.query(claimOf(type, 10, 'worker-s2'))]);
  assert.equal(a.rows.length + b.rows.length, 0, 'racing claims in the same minute start none');
  assert.equal(await countOf(type, 'running'), 4, 'exactly 4 started, on the sessions\' shared 2030 clock');
});

test('a completion racing the rescue of a timed-out attempt: whichever commits first decides, once', async () => {
  const type = 'two-session-timed';
  await setup.query(`insert into spool.job_types (type, timeout_seconds) values ($1, 30)`, [type]);
  const [a, b] = await createJobs(type, 2, TYPE_USERS.slice(0, 1));
  const claimOne = async () =>
    (await s1.query(
      `select id, lease_token from public.claim_jobs('worker-s1', 1, 600, array['${type}'])`,
    )).rows[0];
  const rescueAt = async (time) => {
    await s2.query(`set spool.now = '${time}'`); // past the 30 s timeout, inside the 10 min lease
    return track(s2.query('select public.rescue_jobs() as rescued'));
  };
  await setup.query('begin');
  await setup.query('select 1 from spool.doorbell for update'); // no ring on the 2030 clock
  // rescue_jobs takes every running job past its lease or timeout, and on 2030's clock that is
  // anyone's job running on the real clock; it passes over locked rows (SKIP LOCKED), so the setup
  // session holds every running job but this test's until the end.
  await setup.query(
    `select 1 from public.jobs where status = 'running' and type <> $1 for update`, [type]);

  // The rescue commits first: the worker's completion waits for it, then is refused.
  const first = await claimOne();
  await s2.query('begin');
  const rescue = await rescueAt('2030-01-01 00:00:31+00');
  assert.equal((await rescue.promise).rows[0].rescued, 1, 'the attempt ran past its timeout');
  const stale = track(s1.query(`select id from public.complete_job($1, $2, '{}')`,
    [first.id, first.lease_token]));
  const state = await settledOrBlocked(stale, s1);
  await s2.query('commit');
  assert.equal(state, 'blocked', 'the completion waits while the rescue is uncommitted');
  const refused = await stale.promise.then(() => null, (err) => err);
  assert.deepEqual({ code: refused?.code, hint: refused?.hint }, { code: 'PT409', hint: 'lease_lost' });
  const { rows: [timedOut] } = await setup.query(
    `select status, attempts, error ->> 'code' as code, lease_token from public.jobs where id = $1`,
    [first.id]);
  assert.deepEqual(timedOut, { status: 'pending', attempts: 1, code: 'timeout', lease_token: null },
    'the attempt failed as timeout, to be retried');

  // The completion commits first: the rescue, late as it is, leaves the job done.
  const second = await claimOne();
  assert.deepEqual(ids([first, second]), [a, b].sort(), 'the other job');
  await s1.query('begin');
  await s1.query(`select id from public.complete_job($1, $2, '{}')`, [second.id, second.lease_token]);
  const late = await rescueAt('2030-01-01 00:00:40+00');
  await settledOrBlocked(late, s2);
  await s1.query('commit');
  await late.promise;
  await s2.query(`set spool.now = '${T0}'`);
  await setup.query('rollback');
  const { rows: [done] } = await setup.query(
    `select status, error from public.jobs where id = $1`, [second.id]);
  assert.deepEqual(done, { status: 'done', error: null }, 'the completed job stays done');
});
