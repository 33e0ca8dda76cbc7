// Fan-in in two real database sessions: when the last two children of a flow complete at the same
// instant on two workers, the parent finishes exactly once (20261203160000_flows.sql). The
// statement trigger after each completion locks the parent row, then counts its unfinished
// children in a new statement: the session that locks second sees the first's child done and
// finishes the parent; the first saw the second's child still running and left it waiting.
// And two workers completing batches that share two parents, in opposite orders, do not
// deadlock: the parents are locked in id order.
//
// Needs SUPABASE_DB_URL (the postgres role), as npm test (local/tools/test.mjs) sets it; without it
// every test fails, naming it. As in queue-two-sessions.test.mjs, jobs are created runnable from
// 2030-01-01 while the setup session runs on real time, so a real worker or the pg_cron sweep on
// the same database sees nothing runnable; only the worker sessions move their clock to 2030.
// The test users are used by nobody else; every row committed here is deleted before and after.
//
//   SUPABASE_DB_URL=postgresql://… node --test local/tools/tests/flows-two-sessions.test.mjs

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import pg from 'pg';

const DB_URL = process.env.SUPABASE_DB_URL;
const T0 = '2030-01-01 00:00:00+00';
// Several owners: a user may create 60 jobs a minute, and the race below creates 60 on its own.
const USERS = ['flows-two-sessions-fay', 'flows-two-sessions-gus', 'flows-two-sessions-hal'];

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

async function cleanup() {
  await setup.query(
    `with u as (select md5('spool-test:' || n)::uuid as id from unnest($1::text[]) n),
          j as (delete from public.jobs where user_id in (select id from u)),
          n as (delete from public.notifications where user_id in (select id from u)),
          s as (delete from spool.user_slots where user_id in (select id from u))
     delete from auth.users where id in (select id from u)`,
    [USERS],
  );
}

/** Tracks whether a promise has settled, without consuming its outcome. */
function track(promise) {
  const tracked = { promise, settled: false };
  promise.then(() => (tracked.settled = true), () => (tracked.settled = true));
  return tracked;
}

/** Resolves 'settled' when the tracked query has, 'blocked' when its session waits for a lock. */
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

/** Commits `user`'s flow of `n` children of `type`, runnable from 2030; returns [parent, ...children]. */
async function createFlow(type, n, user = USERS[0]) {
  const { rows } = await setup.query(
    `select f.id from public.create_flow(md5('spool-test:' || $4::text)::uuid, 'flow-parent', '{}',
       (select jsonb_agg(jsonb_build_object('type', $1::text, 'input', jsonb_build_object('i', i),
                                            'run_at', $3::text) order by i)
          from generate_series(0, $2::int - 1) i)) with ordinality f order by f.ordinality`,
    [type, n, T0, user],
  );
  return rows.map((r) => r.id);
}

/** Claims every pending job of `type` in session s1 (committed); returns id -> lease token. */
async function claimAll(type) {
  const { rows } = await s1.query(
    `select id, lease_token from public.claim_jobs('worker-flows', 100, 60, array[$1])`, [type]);
  return new Map(rows.map((r) => [r.id, r.lease_token]));
}

const results = (leases, ids) =>
  JSON.stringify(ids.map((id) => ({ id, lease_token: leases.get(id), output: { id } })));

async function parentState(parent) {
  const { rows: [row] } = await setup.query(
    `select p.status, p.output, (select count(*)::int from public.notifications n where n.job_id = p.id) as notes
       from public.jobs p where p.id = $1`, [parent]);
  return row;
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
    [USERS],
  );
});

after(async () => {
  for (const client of [s1, s2]) await client?.end().catch(() => {});
  if (setup) await cleanup();
  for (const client of [setup, watcher]) await client?.end().catch(() => {});
});

test('the last two children completed in two sessions at once finish the parent once', async () => {
  const [parent, a, b, c] = await createFlow('flows-two-sessions-child', 3);
  const leases = await claimAll('flows-two-sessions-child');
  assert.equal(leases.size, 3, 'the three children are running');
  await s1.query(`select public.complete_jobs($1)`, [results(leases, [a])]);

  // Session 1 completes b and holds its transaction open (it holds the parent's row lock);
  // session 2 completes c meanwhile: its completion waits for the parent.
  await s1.query('begin');
  await s1.query(`select public.complete_jobs($1)`, [results(leases, [b])]);
  await s2.query('begin');
  const second = track(s2.query(`select public.complete_jobs($1)`, [results(leases, [c])]));
  const state = await settledOrBlocked(second, s2);
  assert.equal(state, 'blocked', 'session 2 waits for the parent row session 1 locked');
  const { rows: [{ status: during }] } = await s1.query(`select status from public.jobs where id = $1`, [parent]);
  assert.equal(during, 'waiting', 'session 1 saw c still running: the parent is still waiting');
  await s1.query('commit');
  await second.promise;
  await s2.query('commit');

  const row = await parentState(parent);
  assert.equal(row.status, 'done', 'the session that locked the parent second finished it');
  assert.equal(row.notes, 1, 'the parent finished exactly once: one notification');
  assert.deepEqual(row.output.children.map((ch) => [ch.id, ch.status, ch.output.id]),
    [[a, 'done', a], [b, 'done', b], [c, 'done', c]], 'its output lists the children in creation order');
  assert.equal(row.output.done, 3);
});

test('racing the last two completions 20 times finishes each parent exactly once', async () => {
  for (let round = 0; round < 20; round += 1) {
    const [parent, a, b] = await createFlow('flows-two-sessions-race', 2, USERS[1 + (round % 2)]);
    const leases = await claimAll('flows-two-sessions-race');
    // Each session commits as soon as its own completion returns (the one that waits for the
    // parent's row returns once the other has committed).
    const finish = async (session, id) => {
      await session.query('begin');
      await session.query(`select public.complete_jobs($1)`, [results(leases, [id])]);
      await session.query('commit');
    };
    await Promise.all([finish(s1, a), finish(s2, b)]);
    const row = await parentState(parent);
    assert.deepEqual([row.status, row.notes, row.output.done], ['done', 1, 2], `round ${round}: done once`);
  }
});

test('two batches sharing two parents, completed in opposite orders, do not deadlock', async () => {
  const [p1, p1a, p1b] = await createFlow('flows-two-sessions-pair', 2);
  const [p2, p2a, p2b] = await createFlow('flows-two-sessions-pair', 2);
  const leases = await claimAll('flows-two-sessions-pair');
  assert.equal(leases.size, 4);
  await Promise.all([s1.query('begin'), s2.query('begin')]);
  // Each batch holds one child of each parent, listed in opposite orders.
  await s1.query(`select public.complete_jobs($1)`, [results(leases, [p1a, p2a])]);
  const second = track(s2.query(`select public.complete_jobs($1)`, [results(leases, [p2b, p1b])]));
  await settledOrBlocked(second, s2);
  await s1.query('commit');
  await second.promise;
  await s2.query('commit');
  for (const parent of [p1, p2]) {
    const row = await parentState(parent);
    assert.deepEqual([row.status, row.notes], ['done', 1], `parent ${parent} finished once`);
  }
});

test('fail_fast while another session completes a sibling: no deadlock, the sibling it holds is left to it', async () => {
  const { rows } = await setup.query(
    `select f.id from public.create_flow(md5('spool-test:' || $1::text)::uuid, 'flow-parent', '{}',
       (select jsonb_agg(jsonb_build_object('type', 'flows-two-sessions-ff', 'run_at', $2::text, 'max_attempts', 1))
          from generate_series(1, 3))) with ordinality f order by f.ordinality`,
    [USERS[0], T0]);
  const [parent, a, b, c] = rows.map((r) => r.id);
  const leases = await claimAll('flows-two-sessions-ff');
  assert.equal(leases.size, 3);
  // Session 1 completes c (it now holds the parent's row); session 2 completes b and waits for
  // the parent, holding b; session 1 then fails a: fail_fast cancels the siblings, and b, held by
  // session 2, is skipped rather than waited for (waiting would deadlock).
  await s1.query('begin');
  await s1.query(`select public.complete_jobs($1)`, [results(leases, [c])]);
  const second = track(s2.query(`select public.complete_jobs($1)`, [results(leases, [b])]));
  assert.equal(await settledOrBlocked(second, s2), 'blocked', 'session 2 waits for the parent');
  await s1.query(`select public.fail_job($1, $2, '{"message": "provider 500"}', false)`, [a, leases.get(a)]);
  await s1.query('commit');
  await second.promise;
  const { rows: states } = await setup.query(
    `select id, status from public.jobs where id = any($1::uuid[])`, [[parent, a, b, c]]);
  const status = Object.fromEntries(states.map((r) => [r.id, r.status]));
  assert.deepEqual([status[parent], status[a], status[b], status[c]], ['failed', 'failed', 'done', 'done'],
    'the parent failed once, with a; b, completing in session 2, ended as it ended');
  const row = await parentState(parent);
  assert.equal(row.notes, 1, 'the parent is notified once');
});
