// Two sweeps at once, in two real database sessions: spool.materialize_schedules creates each
// schedule slot's job exactly once. A sweep whose transaction is still open holds its schedules
// (FOR UPDATE SKIP LOCKED): the other sweep passes over them without waiting, and once the first
// commits finds them advanced. Two sweeps racing over many due schedules split them and create
// every slot once, none twice, none missing.
//
// pgTAP cannot open a second session under `supabase test db` (see queue-two-sessions.test.mjs),
// so this is a node test. Needs SUPABASE_DB_URL (the postgres role), as npm test sets it.
// Schedules are created on the 2030 test clock (spool.now) while the setup session runs on real
// time, so the real pg_cron job (spool-schedules) finds none of them due; only the two sweep
// sessions move their clock to 2030. A sweep takes every due schedule, not only this test's, so
// the test refuses to run (before touching anything) when the database holds active schedules
// of other users: on 2030's clock they would be due, and get runs. The test users are used by
// nobody else; every row committed here is deleted before and after.
//
//   SUPABASE_DB_URL=postgresql://… node --test local/tools/tests/schedules-two-sessions.test.mjs

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import pg from 'pg';

const DB_URL = process.env.SUPABASE_DB_URL;
const T0 = '2030-01-01 00:00:00+00';
const USERS = ['schedules-two-sessions-ann', 'schedules-two-sessions-ben'];

let setup; // postgres, real time
let watcher; // postgres: looks at the other sessions' locks
let s1;
let s2;

async function connect() {
  const client = new pg.Client({ connectionString: DB_URL });
  await client.connect();
  return client;
}

/** A sweep session: service_role, as an admin or pg_cron calls it, on the 2030 test clock. */
async function sweepSession() {
  const client = await connect();
  await client.query(`set role service_role`);
  await client.query(`set request.jwt.claims = '{"role": "service_role"}'`);
  return client;
}

const userIds = `(select md5('spool-test:' || n)::uuid from unnest($1::text[]) n)`;

/** The doorbell as the test found it: sweeps on the 2030 clock ring it, recording 2030. */
let doorbell = null;

async function cleanup() {
  if (doorbell) {
    await setup.query(
      'update spool.doorbell set rung_at = $1::timestamptz, rings = $2, skipped = $3 where id',
      [doorbell.rung_at, doorbell.rings, doorbell.skipped],
    );
  }
  await setup.query(
    `with u as (select md5('spool-test:' || n)::uuid as id from unnest($1::text[]) n),
          s as (delete from public.schedules where user_id in (select id from u)),
          j as (delete from public.jobs where user_id in (select id from u)),
          n as (delete from public.notifications where user_id in (select id from u)),
          l as (delete from spool.user_slots where user_id in (select id from u))
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

/** 'settled' once the tracked query settles, 'blocked' if its session waits for a lock first. */
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

/** Commits `count` minutely catch_up 'all' schedules per user, created at T0 (first slot T0+1m). */
async function createSchedules(count) {
  await setup.query('begin');
  await setup.query(`select set_config('spool.now', $1, true)`, [T0]);
  const { rows } = await setup.query(
    `select s.id from unnest($1::text[]) u, generate_series(1, $2::int) n,
       lateral public.create_schedule(p_user_id => md5('spool-test:' || u)::uuid, p_type => 'noop',
         p_input => jsonb_build_object('n', n), p_cron => '* * * * *', p_catch_up => 'all') s`,
    [USERS, count],
  );
  await setup.query('commit');
  return rows.map((r) => r.id);
}

/** Per (schedule, slot) key, how many jobs the test users have. */
async function jobsPerSlot() {
  const { rows } = await setup.query(
    `select idempotency_key as key, count(*)::int as n from public.jobs
      where user_id in ${userIds} and idempotency_key like 'schedule:%'
      group by idempotency_key order by idempotency_key`,
    [USERS],
  );
  return rows;
}

/** Deletes what earlier runs left and creates the test users again. */
async function freshUsers() {
  await cleanup();
  await setup.query(
    `insert into auth.users (id, aud, role, email)
     select md5('spool-test:' || n)::uuid, 'authenticated', 'authenticated', n || '@spool.test'
       from unnest($1::text[]) n`,
    [USERS],
  );
}

const at = (client, time) => client.query(`select set_config('spool.now', $1, false)`, [time]);
const materialize = async (client) =>
  (await client.query('select spool.materialize_schedules() as n')).rows[0].n;

before(async () => {
  assert.ok(DB_URL, 'SUPABASE_DB_URL is not set: run npm test, or set it to the postgres role\'s URL');
  setup = await connect();
  doorbell = (await setup.query('select rung_at::text as rung_at, rings, skipped from spool.doorbell')).rows[0];
  watcher = await connect();
  const { rows: [{ others }] } = await setup.query(
    `select count(*)::int as others from public.schedules
      where not paused and user_id not in ${userIds}`,
    [USERS],
  );
  assert.equal(others, 0, 'no active schedules of other users: the sweeps on 2030\'s clock would run them');
  s1 = await sweepSession();
  s2 = await sweepSession();
  await freshUsers();
});

after(async () => {
  for (const client of [s1, s2]) await client?.end().catch(() => {});
  if (setup) await cleanup();
  for (const client of [setup, watcher]) await client?.end().catch(() => {});
});

test('a sweep passes over the schedules another sweep holds, and finds them advanced after its commit', async () => {
  await freshUsers();
  const schedules = await createSchedules(1);
  assert.equal(schedules.length, 2, 'one schedule per user');

  // 00:05:30: five minutely slots (00:01 .. 00:05) are due for each schedule.
  await at(s1, '2030-01-01 00:05:30+00');
  await at(s2, '2030-01-01 00:05:30+00');
  await s1.query('begin');
  const first = await materialize(s1);
  const second = track(materialize(s2));
  const state = await settledOrBlocked(second, s2);
  if (state === 'blocked') await s1.query('rollback');
  assert.equal(state, 'settled', 'the second sweep does not wait for the first one\'s open transaction');
  assert.equal(await second.promise, 0, 'the second sweep creates nothing: the schedules are held');
  await s1.query('commit');
  assert.equal(first, 10, 'the first sweep creates the five due slots of both schedules');

  assert.equal(await materialize(s2), 0, 'after the commit, the second sweep finds nothing due');
  const slots = await jobsPerSlot();
  assert.equal(slots.length, 10, 'ten slots have a job');
  assert.deepEqual(slots.filter((s) => s.n !== 1), [], 'no slot has two jobs');
});

test('two sweeps racing over many due schedules create every slot exactly once', async () => {
  await freshUsers();
  const schedules = await createSchedules(10); // 20 schedules (the per-user limit is 20)
  let created = 0;
  // Five rounds, a minute apart, both sweeps started together each time.
  for (let minute = 1; minute <= 5; minute++) {
    const time = `2030-01-01 00:0${minute}:00+00`;
    await at(s1, time);
    await at(s2, time);
    const [a, b] = await Promise.all([materialize(s1), materialize(s2)]);
    created += a + b;
  }
  const slots = await jobsPerSlot();
  assert.equal(created, schedules.length * 5, 'the sweeps together report one job per schedule and slot');
  assert.equal(slots.length, schedules.length * 5, 'every (schedule, slot) has a job: none missing');
  assert.deepEqual(slots.filter((s) => s.n !== 1), [], 'and none has two');
});
