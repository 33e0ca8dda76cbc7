-- claim_jobs: which runnable jobs a worker is leased, in what order, and what a claim writes.
-- Acted out by job-worker (service_role) over jobs queued for named users.
begin;
select plan(29);

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

select pg_temp.create_users('alice', 'bob', 'carol', 'dave', 'erin', 'gina', 'hugo', 'pat');
update spool.settings set fair_slot = '1 second', default_lease_seconds = 60, max_running_per_user = 10;
-- Claims below take only their own scenario's job type, so scenarios do not see each other's jobs.
-- The empty-queue check starts from no jobs at all (deleted here, restored by the final rollback).
delete from public.jobs;
select pg_temp.travel_to(pg_temp.t());
select pg_temp.authenticate_as_service_role();

select is_empty($$ select id from public.claim_jobs('worker-1', 10) $$,
  'claiming from an empty queue leases nothing');

-- Priority first ---------------------------------------------------------------------------------------

select id as low from public.create_job(pg_temp.uid('pat'), 'prio', '{"p": "low"}', 0) \gset
select id as high from public.create_job(pg_temp.uid('pat'), 'prio', '{"p": "high"}', 10) \gset
select is((select id from public.claim_jobs('worker-1', 1, p_types => array['prio'])), :'high'::uuid,
  'a higher-priority job is claimed before an older lower-priority one');

-- Fairness: a later, smaller burst interleaves with a big one -----------------------------------------

select from generate_series(1, 6) n, lateral public.create_job(pg_temp.uid('alice'), 'fair', jsonb_build_object('n', n));
select pg_temp.travel_to(pg_temp.t('500 milliseconds'));
select from generate_series(1, 2) n, lateral public.create_job(pg_temp.uid('bob'), 'fair', jsonb_build_object('n', n));
create temp table fair_batch as select * from public.claim_jobs('worker-1', 4, p_types => array['fair']);
select is(
  (select array_agg(case user_id when pg_temp.uid('alice') then 'alice' else 'bob' end order by fair_at, id)
   from fair_batch),
  array['alice', 'bob', 'alice', 'bob'],
  'when alice queues 6 jobs and bob then queues 2, a claim of 4 interleaves alice, bob, alice, bob');
select is((select count(*) from public.jobs where type = 'fair' and user_id = pg_temp.uid('alice') and status = 'pending'),
  4::bigint, 'alice''s remaining 4 jobs stay pending for later claims');

-- Per-user running cap ---------------------------------------------------------------------------------

update spool.settings set max_running_per_user = 2;
select pg_temp.travel_to(pg_temp.t('1 minute'));
select from generate_series(1, 5) n, lateral public.create_job(pg_temp.uid('carol'), 'capped', jsonb_build_object('n', n), 10);
select pg_temp.travel_to(pg_temp.t('1 minute 10 seconds'));
select id as dave_job from public.create_job(pg_temp.uid('dave'), 'capped', '{"n": 1}') \gset
create temp table cap_batch as select * from public.claim_jobs('worker-1', 10, p_types => array['capped']);
select is((select count(*) from cap_batch where user_id = pg_temp.uid('carol')), 2::bigint,
  'a claim of 10 leases only 2 of carol''s 5 jobs when 2 may run per user');
select ok(exists (select 1 from cap_batch where id = :'dave_job'),
  'the same claim also leases dave''s later, lower-priority job');

select id as erin_job from public.create_job(pg_temp.uid('erin'), 'capped', '{"n": 1}', -10) \gset
select is((select array_agg(id) from public.claim_jobs('worker-1', 1, p_types => array['capped'])), array[:'erin_job'::uuid],
  'a user at the cap does not starve others: erin''s later, lowest-priority job is claimed next');
select is((select count(*) from public.jobs where user_id = pg_temp.uid('carol') and status = 'running'), 2::bigint,
  'carol stays at her cap of 2 running jobs');

select from cap_batch c, lateral public.complete_job(c.id, c.lease_token, '{}')
where c.id = (select id from cap_batch where user_id = pg_temp.uid('carol') order by id limit 1);
select is((select array_agg(user_id) from public.claim_jobs('worker-1', 10, p_types => array['capped'])),
  array[pg_temp.uid('carol')],
  'when one of carol''s jobs finishes, exactly one more of hers is claimed');

-- A user with room for one job and a deep backlog ahead of everyone must not crowd the others out.
select from generate_series(1, 30) n, lateral public.create_job(pg_temp.uid('gina'), 'crowd', jsonb_build_object('n', n), 50);
select from public.claim_jobs('worker-1', 1, p_types => array['crowd']);
select id as hugo_job from public.create_job(pg_temp.uid('hugo'), 'crowd', '{"n": 1}') \gset
create temp table crowd_batch as select * from public.claim_jobs('worker-1', 5, p_types => array['crowd']);
select is((select count(*) from crowd_batch where user_id = pg_temp.uid('gina')), 1::bigint,
  'a user one job below the cap gets exactly one more job in a batch');
select ok(exists (select 1 from crowd_batch where id = :'hugo_job'),
  'a deep backlog of a user near the cap does not crowd other users out of the batch');
update spool.settings set max_running_per_user = 10;

-- Types filter ----------------------------------------------------------------------------------------

select id as grade_job from public.create_job(pg_temp.uid('pat'), 'color-grade') \gset
select id as clean_job from public.create_job(pg_temp.uid('pat'), 'audio-clean') \gset
select is((select array_agg(id) from public.claim_jobs('worker-1', 10, p_types => array['audio-clean'])),
  array[:'clean_job'::uuid], 'a claim filtered by type leases only jobs of that type');
select is((select status from public.jobs where id = :'grade_job'), 'pending'::public.job_status,
  'jobs of other types stay pending');

-- CPU budget: a claim takes only jobs whose estimates fit what the worker has left ----------------

select pg_temp.travel_to(pg_temp.t('2 minutes'));
select id as big_job from public.create_job(pg_temp.uid('pat'), 'cpu', '{"n": 1}', p_cpu_ms => 1200) \gset
select pg_temp.travel_to(pg_temp.t('2 minutes 1 second'));
select id as small_1 from public.create_job(pg_temp.uid('pat'), 'cpu', '{"n": 2}', p_cpu_ms => 40) \gset
select pg_temp.travel_to(pg_temp.t('2 minutes 2 seconds'));
select id as small_2 from public.create_job(pg_temp.uid('pat'), 'cpu', '{"n": 3}', p_cpu_ms => 50) \gset
select is((select cpu_ms from public.jobs where id = :'big_job'), 1200, 'create_job stores the CPU estimate');
select is((select cpu_ms from public.create_job(pg_temp.uid('pat'), 'cpu-none')), 0,
  'a job created without an estimate costs 0 (negligible)');
select is(
  (select array_agg(id order by fair_at) from public.claim_jobs('worker-1', 10, p_types => array['cpu'], p_cpu_budget_ms => 100)),
  array[:'small_1'::uuid, :'small_2'::uuid],
  'with 100 ms left, a claim passes over the older 1200 ms job and takes the small ones that fit together');
select is((select row(status, attempts)::text from public.jobs where id = :'big_job'), '(pending,0)',
  'the job that did not fit stays pending with no attempt spent');
select is(public.cheapest_pending_cpu(array['cpu']), 1200,
  'cheapest_pending_cpu tells a worker what the cheapest waiting job needs');
select is(public.cheapest_pending_cpu(array['no-such-type']), null::integer,
  'cheapest_pending_cpu is null when nothing of those types waits');
select is(pg_temp.error_of($$ select public.claim_jobs('worker-1', 1, p_cpu_budget_ms => -1) $$), 'PT400 invalid_argument',
  'a negative CPU budget is refused');

-- What a claim writes -----------------------------------------------------------------------------------

select pg_temp.travel_to(pg_temp.t('5 minutes'));
create temp table lease_batch as select * from public.claim_jobs('worker-7', 3, 30, array['color-grade', 'prio']);
select is(
  (select jsonb_agg(jsonb_build_object('status', status, 'attempts', attempts, 'worker_id', worker_id,
                                       'lease_expires_at', lease_expires_at, 'started_at', started_at)
                    order by id) from lease_batch),
  (select jsonb_agg(jsonb_build_object('status', 'running', 'attempts', 1, 'worker_id', 'worker-7',
                                       'lease_expires_at', pg_temp.t('5 minutes 30 seconds'),
                                       'started_at', pg_temp.t('5 minutes'))) from lease_batch),
  'each claimed job is running for the worker, attempt 1, leased until now + lease seconds');
select is((select count(distinct lease_token) from lease_batch where lease_token is not null), 2::bigint,
  'every job claimed in one batch gets its own lease token');
select is((select lease_expires_at from public.claim_jobs('worker-8', 1, p_types => array['audio-clean', 'fair']) limit 1),
  pg_temp.t('6 minutes'), 'without a lease length the claim leases for default_lease_seconds');

select id as reclaimed, lease_token as first_token from lease_batch where id = :'grade_job' \gset
select from public.fail_job(:'reclaimed', :'first_token', '{"message": "flaky"}');
select pg_temp.travel_to(pg_temp.t('1 hour'));
select isnt((select lease_token from public.claim_jobs('worker-9', 1, p_types => array['color-grade'])), :'first_token'::uuid,
  'claiming the same job again issues a fresh lease token');
select is((select attempts from public.jobs where id = :'reclaimed'), 2,
  'claiming the same job again counts a second attempt');

-- Arguments ------------------------------------------------------------------------------------------

select is(pg_temp.error_of($$ select public.claim_jobs('worker-1', 0) $$), 'PT400 invalid_argument',
  'a claim limit below 1 is refused');
select is(pg_temp.error_of($$ select public.claim_jobs('worker-1', 1001) $$), 'PT400 invalid_argument',
  'a claim limit above 1000 is refused');
select is(pg_temp.error_of($$ select public.claim_jobs('', 10) $$), 'PT400 invalid_argument',
  'an empty worker id is refused');
select is(pg_temp.error_of($$ select public.claim_jobs(null, 10) $$), 'PT400 invalid_argument',
  'a missing worker id is refused');

select * from finish();
rollback;
