-- Two workers at once: claims in two independent sessions never block each other and never share a
-- job (FOR UPDATE SKIP LOCKED), and a worker whose lease was taken over cannot complete the job even
-- when its completion races the takeover.
--
-- pgTAP's own transaction is invisible to other sessions, so the jobs here are committed through a
-- dblink session ("setup") and deleted again at the end; the two workers are two more dblink
-- sessions ("s1", "s2"). The test users are used by no other suite, and every row this file commits
-- is deleted before it starts and after it ends.
--
-- Connection string: the local cluster's `postgres` role (password 'postgres') over TCP, which is
-- also what works inside the Supabase CLI's local database (`supabase test db`). Override it without
-- editing this file with PGOPTIONS='-c spool_test.dsn=<libpq connection string>'.
--
-- Jobs are created runnable from 2030-01-01 (the test clock), while the setup session runs on real
-- time: inserting them rings no doorbell, and a real worker or the pg_cron sweep on this database
-- sees nothing runnable. Only the two test sessions move their clocks (spool.now) to 2030.
begin;
select plan(13);

-- Helpers for acting out behaviour, temporary so they vanish with the session:
--   uid(name) / create_users(names) named test users with fixed uuids, inserted into auth.users
--   authenticate_as(name)           act as that user (role authenticated, their JWT claims)
--   authenticate_as_service_role()  act as the workers and Edge Functions (role service_role)
--   clear_authentication()          back to the connecting role
--   t(offset) / travel_to(at)       the test clock: 2030-01-01 00:00 UTC + offset; spool.now()
--   error_of(sql)                   '<SQLSTATE> <HINT>' of the error sql raises, or 'no error'
create function pg_temp.uid(p_name text) returns uuid language sql immutable
  as $$ select md5('spool-test:' || p_name)::uuid $$;
create function pg_temp.create_users(variadic p_names text[]) returns void language sql
  as $$ insert into auth.users (id, aud, role, email)
        select pg_temp.uid(n), 'authenticated', 'authenticated', n || '@spool.test'
        from unnest(p_names) n $$;
create function pg_temp.authenticate_as(p_name text) returns void language plpgsql as $$
begin
  perform set_config('role', 'authenticated', true);
  perform set_config('request.jwt.claims',
    json_build_object('sub', pg_temp.uid(p_name), 'role', 'authenticated')::text, true);
end $$;
create function pg_temp.authenticate_as_service_role() returns void language plpgsql as $$
begin
  perform set_config('role', 'service_role', true);
  perform set_config('request.jwt.claims', '{"role":"service_role"}', true);
end $$;
create function pg_temp.clear_authentication() returns void language plpgsql as $$
begin
  perform set_config('request.jwt.claims', '', true);
  reset role;
end $$;
create function pg_temp.t(p_offset interval default '0') returns timestamptz language sql immutable
  as $$ select '2030-01-01 00:00:00+00'::timestamptz + p_offset $$;
create function pg_temp.travel_to(p_at timestamptz) returns void language sql
  as $$ select set_config('spool.now', p_at::text, true) $$;
create function pg_temp.error_of(p_sql text) returns text language plpgsql as $$
declare
  v_state text;
  v_hint text;
begin
  execute p_sql;
  return 'no error';
exception when others then
  get stacked diagnostics v_state = returned_sqlstate, v_hint = pg_exception_hint;
  return v_state || ' ' || coalesce(nullif(v_hint, ''), '-');
end $$;
grant execute on all functions in schema pg_temp to authenticated, service_role;

set local client_min_messages = warning;
create extension if not exists dblink with schema extensions;
reset client_min_messages;
select set_config('spool_test.dsn',
  coalesce(nullif(current_setting('spool_test.dsn', true), ''),
           'dbname=' || current_database() || ' host=127.0.0.1 port=' || current_setting('port')
           || ' user=postgres password=postgres'),
  true) is not null as configured \gset

-- remote_ids(session, sql): the ids a remote query returns (sorted), or null if it failed.
create function pg_temp.remote_ids(p_conn text, p_sql text) returns uuid[] language plpgsql as $$
declare
  v_ids uuid[];
begin
  select coalesce(array_agg(r.id order by r.id), '{}') into v_ids
  from extensions.dblink(p_conn, p_sql) as r(id uuid);
  return v_ids;
exception when others then
  raise warning 'session %: %', p_conn, sqlerrm;
  return null;
end $$;

-- cleanup(): deletes every row this file commits (through the setup session).
create function pg_temp.cleanup() returns void language sql as $$
  select extensions.dblink_exec('setup', format($q$
    delete from public.jobs where user_id in (%1$L, %2$L);
    delete from public.notifications where user_id in (%1$L, %2$L);
    delete from spool.user_slots where user_id in (%1$L, %2$L);
    delete from auth.users where id in (%1$L, %2$L);
  $q$, pg_temp.uid('two-sessions-ann'), pg_temp.uid('two-sessions-ben')));
$$;

select from extensions.dblink_connect('setup', current_setting('spool_test.dsn'));
select from extensions.dblink_connect('s1', current_setting('spool_test.dsn'));
select from extensions.dblink_connect('s2', current_setting('spool_test.dsn'));
select from unnest(array['s1', 's2']) s, lateral extensions.dblink_exec(s, $$
  set role service_role;
  set request.jwt.claims = '{"role": "service_role"}';
  set spool.now = '2030-01-01 00:00:00+00';
  set statement_timeout = '10s';
$$);

select from pg_temp.cleanup();
select from extensions.dblink_exec('setup', format($q$
  insert into auth.users (id, aud, role, email) values
    (%L, 'authenticated', 'authenticated', 'two-sessions-ann@spool.test'),
    (%L, 'authenticated', 'authenticated', 'two-sessions-ben@spool.test')
$q$, pg_temp.uid('two-sessions-ann'), pg_temp.uid('two-sessions-ben')));
select from extensions.dblink('setup', format($q$
  select j.id from unnest(array[%L, %L]::uuid[]) u, generate_series(1, 5) n,
    lateral public.create_job(u, 'two-session-probe', jsonb_build_object('n', n), p_run_at => %L) j
$q$, pg_temp.uid('two-sessions-ann'), pg_temp.uid('two-sessions-ben'), pg_temp.t())) as r(id uuid);

select to_jsonb(d) as doorbell_before from spool.doorbell d \gset
select is((select count(*) from public.jobs where type = 'two-session-probe' and status = 'pending'), 10::bigint,
  'ten committed jobs are pending before the workers start');

-- Session 1 claims 5 and keeps its transaction open; session 2 claims 10 meanwhile. --------------------
-- A claimer locks only the rows it claims, so the other 5 are free for session 2.

select from extensions.dblink_exec('s1', 'begin');
create temp table s1_claim as
  select pg_temp.remote_ids('s1', $$ select id from public.claim_jobs('worker-s1', 5, 60, array['two-session-probe']) $$) as ids;
create temp table s2_claim as
  select pg_temp.remote_ids('s2', $$ select id from public.claim_jobs('worker-s2', 10, 60, array['two-session-probe']) $$) as ids;

select is((select cardinality(ids) from s1_claim), 5, 'session 1 claims 5 of the 10 jobs');
select ok((select ids is not null from s2_claim),
  'session 2 claims without waiting for session 1''s open transaction');
select is((select cardinality(ids) from s2_claim), 5,
  'session 2 gets exactly the 5 jobs session 1 did not claim');
select ok((select not (a.ids && b.ids) from s1_claim a, s2_claim b),
  'no job is claimed by both sessions');
select from extensions.dblink_exec('s1', 'commit');

select is(
  (select array_agg(id order by id) from public.jobs where type = 'two-session-probe' and status = 'running'),
  (select array(select unnest(a.ids || b.ids) order by 1) from s1_claim a, s2_claim b),
  'after session 1 commits, exactly the jobs the two sessions claimed are running');
select ok(
  (select bool_and(attempts = 1 and worker_id = case when id = any (a.ids) then 'worker-s1' else 'worker-s2' end)
   from public.jobs, s1_claim a where type = 'two-session-probe' and status = 'running'),
  'every running job is held once, by the session that claimed it');
select is(
  (select count(distinct lease_token) from public.jobs where type = 'two-session-probe' and status = 'running'),
  (select count(*) from public.jobs where type = 'two-session-probe' and status = 'running'),
  'every running job has its own lease token');

-- A stale completion racing a takeover ------------------------------------------------------------------
-- Session 1 holds job X. In an open transaction, session 2 (as an admin) cancels and re-runs X and
-- claims it; session 1's completion with its old token then waits on X's row lock, and once session
-- 2 commits it finds the lease lost. Cancel and retry rather than rescue_jobs, which would touch
-- every running job on the database; and while session 2 works, the setup session holds the
-- doorbell row, so retry_job's ring skips (its documented contract) instead of committing a ring
-- stamped with the 2030 test clock, which would debounce the real doorbell until 2030.

select from extensions.dblink('setup', format($q$
  select id from public.create_job(%L, 'two-session-fence', '{}', p_run_at => %L)
$q$, pg_temp.uid('two-sessions-ann'), pg_temp.t())) as r(id uuid);
select id as x, lease_token as old_token
from extensions.dblink('s1', $$ select id, lease_token from public.claim_jobs('worker-s1', 1, 60, array['two-session-fence']) $$)
  as r(id uuid, lease_token uuid) \gset

select from extensions.dblink_exec('setup', 'begin');
select from extensions.dblink('setup', 'select 1 from spool.doorbell for update') as r(one integer);
select from extensions.dblink_exec('s2', 'begin');
select from extensions.dblink('s2', format($q$
  select 1 from public.cancel_job(%1$L), public.retry_job(%1$L)
$q$, :'x')) as r(one integer);
select lease_token as new_token
from extensions.dblink('s2', $$ select lease_token from public.claim_jobs('worker-s2', 1, 60, array['two-session-fence']) $$)
  as r(lease_token uuid) \gset

select from extensions.dblink_send_query('s1', format($q$
  select id from public.complete_job(%L, %L, '{"by": "worker-s1"}')
$q$, :'x', :'old_token'));
select is(extensions.dblink_is_busy('s1'), 1,
  'the old holder''s completion waits while the takeover is uncommitted');
select from extensions.dblink_exec('s2', 'commit');
select from extensions.dblink_exec('setup', 'rollback');
select is(pg_temp.error_of($$ select * from extensions.dblink_get_result('s1') as r(id uuid) $$),
  'PT409 lease_lost', 'once the takeover commits, the old holder''s completion is refused');
select from extensions.dblink_get_result('s1') as r(id uuid);

select is(
  (select jsonb_build_object('status', status, 'worker_id', worker_id, 'lease_token', lease_token, 'output', output)
   from public.jobs where id = :'x'),
  jsonb_build_object('status', 'running', 'worker_id', 'worker-s2', 'lease_token', :'new_token'::uuid, 'output', null),
  'the job stays running for its new holder, without the stale output');
select is(
  pg_temp.remote_ids('s2', format($q$ select id from public.complete_job(%L, %L, '{"by": "worker-s2"}') $q$, :'x', :'new_token')),
  array[:'x'::uuid], 'the new holder completes the job');

select is((select to_jsonb(d) from spool.doorbell d), :'doorbell_before'::jsonb,
  'the test committed no doorbell ring');

-- Clean up what was committed. ------------------------------------------------------------------------------

select from extensions.dblink_disconnect('s1');
select from extensions.dblink_disconnect('s2');
select from pg_temp.cleanup();
select from extensions.dblink_disconnect('setup');

select * from finish();
rollback;
