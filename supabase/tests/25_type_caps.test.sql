-- Per-type limits in claim_jobs: a project-wide running cap and a start rate per job type
-- (spool.job_types.max_running, rate_per_minute), together with the per-user cap, fair order,
-- priority and the CPU budget; each claimed attempt's deadline (timeout_at); the sweep's
-- claimable_exists leaving out types with no room; job_type_stats for the admin page.
-- Concurrent claims in two sessions: local/tools/tests/queue-two-sessions.test.mjs (dblink cannot
-- connect under `supabase test db`). Time is spool.now, moved by setting it; nothing sleeps.
begin;
select plan(36);

create function pg_temp.uid(p_name text) returns uuid language sql immutable
  as $$ select md5('spool-test:' || p_name)::uuid $$;
create function pg_temp.name_of(p_id uuid) returns text language sql immutable
  as $$ select n from unnest(array['ann', 'bob', 'cal', 'dan', 'eve', 'fay']) n where pg_temp.uid(n) = p_id $$;
create function pg_temp.t(p_seconds double precision) returns timestamptz language sql immutable
  as $$ select '2030-01-01 00:00:00+00'::timestamptz + make_interval(secs => p_seconds) $$;
create function pg_temp.at(p_seconds double precision) returns void language sql
  as $$ select set_config('spool.now', pg_temp.t(p_seconds)::text, true) $$;
-- Claims as job-worker does, as service_role, keeping the batch in claimed_<n> for the checks.
create function pg_temp.claim(p_types text[], p_limit integer default 10, p_cpu integer default null)
returns setof public.jobs language plpgsql as $$
begin
  perform set_config('role', 'service_role', true);
  return query select * from public.claim_jobs('w-25', p_limit, null, p_types, p_cpu);
  perform set_config('role', 'none', true);
end $$;
-- Completes the given running jobs, as a worker reports them.
create function pg_temp.complete(p_ids uuid[]) returns integer language sql as $$
  select count(*)::integer from public.complete_jobs((
    select coalesce(jsonb_agg(jsonb_build_object('id', j.id, 'lease_token', j.lease_token, 'output', '{}'::jsonb)), '[]')
    from public.jobs j where j.id = any (p_ids) and j.status = 'running'))
$$;
create function pg_temp.running(p_type text) returns integer language sql as $$
  select count(*)::integer from public.jobs where type = p_type and status = 'running'
$$;
grant execute on all functions in schema pg_temp to service_role;

insert into auth.users (id, aud, role, email)
select pg_temp.uid(n), 'authenticated', 'authenticated', n || '@spool.test'
from unnest(array['ann', 'bob', 'cal', 'dan', 'eve', 'fay']) n;
select vault.create_secret('http://127.0.0.1:54321', 'spool_project_url')
 where not exists (select 1 from vault.secrets where name = 'spool_project_url');
select vault.create_secret('spool-test-worker-secret', 'spool_worker_secret')
 where not exists (select 1 from vault.secrets where name = 'spool_worker_secret');
-- Only this suite's jobs (restored by the final rollback): claimable_exists sees every pending job.
delete from public.jobs;
update spool.settings set max_running_per_user = 10, fair_slot = '1 second', doorbell_debounce = '1 second',
                         max_active_jobs_per_user = 1000, max_jobs_per_minute_per_user = 1000;
update spool.doorbell set rung_at = '-infinity';

-- ---------------------------------------------------------------------------------------------
-- A project-wide cap of 2, three users each wanting 5
-- ---------------------------------------------------------------------------------------------
insert into spool.job_types (type, max_running, timeout_seconds) values ('capped', 2, 45);
-- ann queues first, then bob, then cal: fair order ann 1, bob 1, cal 1, ann 2, bob 2, ...
select pg_temp.at(0);
select count(*) from generate_series(1, 5) g, lateral public.create_job(pg_temp.uid('ann'), 'capped', jsonb_build_object('n', g));
select pg_temp.at(0.1);
select count(*) from generate_series(1, 5) g, lateral public.create_job(pg_temp.uid('bob'), 'capped', jsonb_build_object('n', g));
select pg_temp.at(0.2);
select count(*) from generate_series(1, 5) g, lateral public.create_job(pg_temp.uid('cal'), 'capped', jsonb_build_object('n', g));

select pg_temp.at(10);
create temp table claimed_1 on commit drop as select * from pg_temp.claim(array['capped']);
select results_eq(
  $$select pg_temp.name_of(user_id), (input ->> 'n')::integer from claimed_1 order by fair_at$$,
  $$values ('ann', 1), ('bob', 1)$$,
  'a claim of 10 takes 2 of the 15 (the type''s cap), in fair order: ann''s first job, then bob''s');
select is(
  (select row(timeout_at, lease_expires_at)::text from claimed_1 limit 1),
  row(pg_temp.t(55), pg_temp.t(70))::text,
  'each claimed attempt times out at claim time + the type''s timeout_seconds (45 s), apart from its lease');
select is(spool.claimable_exists(), false,
  'with 2 running, nothing is claimable (the 13 wait for the type, not for their owners)');
select is(spool.sweep() -> 'rung', 'null'::jsonb,
  'and the sweep does not ring for the 13 jobs no claim could take');
select is((select count(*)::integer from pg_temp.claim(array['capped'])), 0,
  'and a claim takes none: the cap is project-wide, though every user has room of their own');

select is(pg_temp.complete(array(select id from claimed_1 where user_id = pg_temp.uid('ann'))), 1,
  'ann''s job finishes');
select is(spool.claimable_exists(), true, 'which frees a slot of the type');
select results_eq(
  $$select pg_temp.name_of(user_id), (input ->> 'n')::integer from pg_temp.claim(array['capped'])$$,
  $$values ('cal', 1)$$,
  'the next claim takes exactly one job, cal''s first: fair across users inside the type''s cap');
select is(pg_temp.running('capped'), 2, 'the type is back at its cap of 2 running');

-- A wider type cap and one running job per user: now the per-user cap binds.
update spool.job_types set max_running = 5 where type = 'capped';
update spool.settings set max_running_per_user = 1;
select results_eq(
  $$select pg_temp.name_of(user_id), (input ->> 'n')::integer from pg_temp.claim(array['capped'])$$,
  $$values ('ann', 2)$$,
  'with room 3 in the type, only ann (no job running) gets one: bob and cal stay at their own cap of 1');
select is(
  (select array_agg(n order by n) from (select count(*)::integer as n from public.jobs
                                         where type = 'capped' and status = 'running' group by user_id) x),
  array[1, 1, 1], 'one running job per user, 3 of the type''s 5');

-- ---------------------------------------------------------------------------------------------
-- A capped type ahead of unlimited ones: the batch fills from behind it
-- ---------------------------------------------------------------------------------------------
delete from public.jobs;
update spool.settings set max_running_per_user = 10;
insert into spool.job_types (type, max_running, timeout_seconds) values ('capped-first', 1, 30);
insert into spool.job_types (type, timeout_seconds) values ('timed', 90);
select pg_temp.at(20);
select count(*) from generate_series(1, 4) g,
  lateral public.create_job(pg_temp.uid('dan'), 'capped-first', jsonb_build_object('n', g), 5);
select count(*) from generate_series(1, 3) g, lateral public.create_job(pg_temp.uid('eve'), 'free', jsonb_build_object('n', g));
select pg_temp.at(30);
create temp table claimed_2 on commit drop as select * from pg_temp.claim(null, 3);
select results_eq(
  $$select type, count(*)::integer from claimed_2 group by type order by type$$,
  $$values ('capped-first', 1), ('free', 2)$$,
  'a claim of 3 with 4 higher-priority jobs of a type capped at 1 ahead takes 1 of them and 2 of the unlimited type behind');
select is(
  (select array_agg(timeout_at order by type) from (select distinct type, timeout_at from claimed_2) x),
  array[pg_temp.t(60), pg_temp.t(630)],
  'timeout_at is claim time + 30 s for the capped type and + 600 s for a type without a row');
select results_eq(
  $$select type, count(*)::integer from pg_temp.claim(null, 10) group by type order by type$$,
  $$values ('free', 1)$$,
  'the next claim takes the last unlimited job and none of the capped type');
select count(*) from public.create_job(pg_temp.uid('eve'), 'timed');
select is((select timeout_at from pg_temp.claim(array['timed'])), pg_temp.t(120),
  'an unlimited type with a row (the fast path) times out after its own timeout_seconds (90 s)');
-- The CPU budget still holds on the limited path.
insert into spool.job_types (type, max_running) values ('cpu-capped', 2);
select count(*) from generate_series(1, 3) g,
  lateral public.create_job(pg_temp.uid('eve'), 'cpu-capped', jsonb_build_object('n', g), p_cpu_ms => 60);
select is(
  array[(select count(*)::integer from pg_temp.claim(array['cpu-capped'], 10, 100)),
        (select count(*)::integer from pg_temp.claim(array['cpu-capped'], 10, 1000))],
  array[1, 1],
  'jobs of 60 ms of a type capped at 2: with 100 ms of CPU left a claim takes 1 (the budget binds), with 1000 ms the next takes 1 (the cap binds)');
select is(public.cheapest_pending_cpu(array['cpu-capped']), null::integer,
  'cheapest_pending_cpu then says no job of the type waits for CPU: the third waits for the type, and a fresh worker would not take it');

-- ---------------------------------------------------------------------------------------------
-- A rate of 3 a minute: a sliding 60 s window of starts
-- ---------------------------------------------------------------------------------------------
delete from public.jobs;
insert into spool.job_types (type, rate_per_minute) values ('rated', 3);
update spool.settings set max_running_per_user = 100;
select pg_temp.at(100);
select count(*) from generate_series(1, 60) g, lateral public.create_job(pg_temp.uid('fay'), 'rated', jsonb_build_object('n', g));
update spool.doorbell set rung_at = '-infinity';

create temp table claimed_3 on commit drop as select 0 as at, * from pg_temp.claim(array['rated'], 1);
select pg_temp.at(120);
insert into claimed_3 select 20, * from pg_temp.claim(array['rated']);
select is((select array_agg(n order by at) from (select at, count(*)::integer as n from claimed_3 group by at) x),
  array[1, 2],
  'of 60 queued, 1 starts at 0 s and a claim of 10 at 20 s starts 2: the 4th start of the minute waits');
select is(pg_temp.complete(array(select id from public.jobs where type = 'rated' and status = 'running')), 3,
  'all 3 finish');
select pg_temp.at(130);
select is((select count(*)::integer from pg_temp.claim(array['rated'])), 0,
  'at 30 s nothing starts, although nothing runs: the rate counts starts (a token bucket would have refilled one by now)');
select is(spool.claimable_exists(), false, 'out of rate, nothing is claimable');
select is(spool.sweep() -> 'rung', 'null'::jsonb, 'and the sweep does not ring');
select pg_temp.at(159.9);
select is((select count(*)::integer from pg_temp.claim(array['rated'])), 0,
  'at 59.9 s the first start is still in the window: nothing starts');
select pg_temp.at(160);
select is(spool.claimable_exists(), true, 'at 60 s the first start has left the window: claimable again');
select isnt(spool.sweep() -> 'rung', 'null'::jsonb, 'so the sweep rings for the backlog');
select is((select count(*)::integer from pg_temp.claim(array['rated'])), 1,
  'and a claim of 10 starts exactly 1 (the two of 20 s still count)');
select pg_temp.at(179.5);
select is((select count(*)::integer from pg_temp.claim(array['rated'])), 0, 'at 79.5 s nothing starts');
select pg_temp.at(180);
select is((select count(*)::integer from pg_temp.claim(array['rated'])), 2, 'at 80 s the two of 20 s are out: 2 start');
select is(
  (select max(n) from (
     select count(*) over (order by s.started_at range between interval '59.999 seconds' preceding and current row) as n
     from public.jobs s where s.type = 'rated' and s.started_at is not null) w)::integer,
  3, 'no 60 s window holds more than 3 starts');

-- Cap and rate together: the smaller room wins.
insert into spool.job_types (type, max_running, rate_per_minute) values ('both', 1, 2);
select count(*) from generate_series(1, 4) g, lateral public.create_job(pg_temp.uid('fay'), 'both', jsonb_build_object('n', g));
create function pg_temp.finish_then_claim(p_type text) returns integer language sql as $$
  select pg_temp.complete(array(select id from public.jobs where type = p_type and status = 'running'));
  select count(*)::integer from pg_temp.claim(array[p_type]);
$$;
select is(
  array[(select count(*)::integer from pg_temp.claim(array['both'])),
        pg_temp.finish_then_claim('both'), pg_temp.finish_then_claim('both')],
  array[1, 1, 0],
  'a cap of 1 with a rate of 2: 1 starts; when it finishes the 2nd; when that finishes none (the rate is spent)');

-- ---------------------------------------------------------------------------------------------
-- job_type_stats: one row per type with a row or with jobs not ended
-- ---------------------------------------------------------------------------------------------
select count(*) from public.create_job(pg_temp.uid('eve'), 'no-row-type');
select pg_temp.at(190);
select results_eq(
  $$select type, max_running, rate_per_minute, timeout_seconds, max_attempts, priority::integer,
           running, started_last_minute, pending
      from public.job_type_stats() where type in ('both', 'capped', 'no-row-type', 'rated')$$,
  $$values ('both', 1, 2, 600, 3, 0, 0, 2, 2),
           ('capped', 5, null::integer, 45, 3, 0, 0, 0, 0),
           ('no-row-type', null::integer, null::integer, 600, 3, 0, 0, 0, 1),
           ('rated', null::integer, 3, 600, 3, 0, 3, 3, 54)$$,
  'job_type_stats: limits (a type without a row: the defaults), running, starts in the last minute, due pending');
select is(
  (select array_agg(type order by type) from public.job_type_stats() where type in ('noop', 'image', 'free')),
  array['image', 'noop'],
  'the shipped kinds appear without jobs; a type with neither a row nor jobs not ended does not');

-- ---------------------------------------------------------------------------------------------
-- Privileges
-- ---------------------------------------------------------------------------------------------
select is(
  array(select r from unnest(array['anon', 'authenticated', 'service_role']) r
         where has_function_privilege(r, 'public.job_type_stats()', 'execute')),
  array['service_role'], 'only service_role may read job_type_stats');
select is(
  array(select r from unnest(array['anon', 'authenticated', 'service_role']) r
         where has_function_privilege(r, 'public.claim_jobs(text,integer,integer,text[],integer)', 'execute')),
  array['service_role'], 'claim_jobs stays service_role only');
select is(
  array(select format('%s %s', r, p) from unnest(array['anon', 'authenticated', 'service_role']) r,
               unnest(array['SELECT', 'INSERT', 'UPDATE', 'DELETE']) p
         where has_table_privilege(r, 'spool.type_slots', p)),
  '{}'::text[], 'no API role may read or write spool.type_slots');
select is(
  array(select r from unnest(array['anon', 'authenticated', 'service_role']) r
         where has_function_privilege(r, 'spool.type_room(text[],timestamptz)', 'execute')),
  '{}'::text[], 'spool.type_room is internal');

select * from finish();
rollback;
