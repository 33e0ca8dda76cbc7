-- Run times count work, never waiting: the console's series (job_series) and the health document
-- (get_queue_stats) take a job's run time from when its last attempt's work began
-- (job_attempts.started_at), so a job a worker held while it waited for a free media slot (step
-- 'queued') has that wait counted as waiting, not as work.
begin;
select plan(6);

-- Helpers for acting out behaviour, temporary so they vanish with the session:
--   uid(name) / create_users(names) named test users with fixed uuids, inserted into auth.users
--   authenticate_as(name)           act as that user (role authenticated, their JWT claims)
--   authenticate_as_service_role()  act as the workers and Edge Functions (role service_role)
--   clear_authentication()          back to the connecting role
--   t(offset) / travel_to(at)       the test clock: 2030-01-01 00:00 UTC + offset; spool.now()
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
grant execute on all functions in schema pg_temp to authenticated, service_role;

select pg_temp.create_users('alice');
update spool.settings set max_running_per_user = 100, max_active_jobs_per_user = 100,
  max_jobs_per_minute_per_user = 1000;
select pg_temp.travel_to(pg_temp.t());
select pg_temp.authenticate_as_service_role();

-- A roto job that waits 17 s for a media slot, then works 4.7 s; a colour grade that works 2 s
-- from its claim (it never waited, and reports no step).
select id as slow from public.create_job(pg_temp.uid('alice'), 'roto', '{"n": 1}') \gset
select id as quick from public.create_job(pg_temp.uid('alice'), 'color-grade', '{"n": 2}') \gset
select count(*) as claimed from public.claim_jobs('worker-a', 2) \gset
select lease_token as slow_tok from public.jobs where id = :'slow' \gset
select lease_token as quick_tok from public.jobs where id = :'quick' \gset
select public.heartbeat_job(:'slow', :'slow_tok', 0, 'queued') is not null as beat \gset
select pg_temp.travel_to(pg_temp.t('2 seconds'));
select status as s from public.complete_job(:'quick', :'quick_tok', '{}') \gset
select pg_temp.travel_to(pg_temp.t('17 seconds'));
select public.heartbeat_job(:'slow', :'slow_tok', 10, 'keying') is not null as beat \gset
select pg_temp.travel_to(pg_temp.t('21.7 seconds'));
select status as s from public.complete_job(:'slow', :'slow_tok', '{}') \gset
select pg_temp.travel_to(pg_temp.t('30 seconds'));

select is(:claimed::integer, 2, 'both jobs were claimed at once');
select is(
  (select run_p50_ms from public.job_series(60) where type = 'roto' and status = 'done'),
  4700.0,
  'job_series: the run time of a job that waited for a slot is its work, 4.7 s, not 21.7 s');
select is(
  (select wait_p50_ms from public.job_series(60) where type = 'roto' and status = 'done'),
  17000.0,
  'job_series: its 17 s of waiting for a slot count as waiting');
select is(
  (select run_p50_ms from public.job_series(60) where type = 'color-grade' and status = 'done'),
  2000.0,
  'job_series: a job that never waited runs from its claim');
select is(
  (select (e ->> 'p50_ms')::numeric from jsonb_array_elements(public.get_queue_stats('1 hour') -> 'by_type') e
    where e ->> 'type' = 'roto'),
  4700.0,
  'get_queue_stats: the same work time per type');
select is(
  (select a.started_at from public.job_attempts a where a.job_id = :'slow'),
  pg_temp.t('17 seconds'),
  'the attempt records when the work began');

select * from finish();
rollback;
