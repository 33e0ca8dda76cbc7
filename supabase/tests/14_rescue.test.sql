-- rescue_jobs: a worker that stops heartbeating, or a provider that never calls back, does not
-- strand a job. Acted out by the pg_cron sweep and job-worker (service_role).
begin;
select plan(16);

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

select pg_temp.create_users('alice');
update spool.settings set backoff_base_seconds = 5, backoff_max_seconds = 3600;
select pg_temp.travel_to(pg_temp.t());
select pg_temp.authenticate_as_service_role();

-- An expired lease --------------------------------------------------------------------------------

select id as job from public.create_job(pg_temp.uid('alice'), 'roto', '{}', 0, 3) \gset
select lease_token as old_token from public.claim_jobs('worker-old', 1, 30) \gset

select pg_temp.travel_to(pg_temp.t('29 seconds'));
select is(public.rescue_jobs(), 0, 'a lease that has not expired is not rescued');
select is((select lease_token from public.jobs where id = :'job'), :'old_token'::uuid,
  'the worker still holds an unexpired lease');

select pg_temp.travel_to(pg_temp.t('31 seconds'));
select is(public.rescue_jobs(), 1, 'rescue reports the one job whose lease expired');
select is(
  (select jsonb_build_object('status', status, 'lease', lease_token, 'code', error ->> 'code',
                             'message', error ->> 'message', 'dead', error -> 'dead') from public.jobs where id = :'job'),
  jsonb_build_object('status', 'pending', 'lease', null, 'code', 'lease_expired',
                     'message', 'worker worker-old stopped heartbeating', 'dead', false),
  'a job whose lease expired goes back to pending with a lease_expired error naming the worker');
select ok((select run_at between pg_temp.t('31 seconds') + interval '2.5 seconds' and pg_temp.t('31 seconds') + interval '5 seconds'
           from public.jobs where id = :'job'),
  'the rescued job is retried after the backoff for its attempt');
select is(public.rescue_jobs(), 0, 'rescuing again finds nothing more to do');

select is_empty($$ select id from public.claim_jobs('worker-new', 1) $$,
  'the rescued job is not claimable during its backoff');
select pg_temp.travel_to(pg_temp.t('1 minute'));
select lease_token as new_token from public.claim_jobs('worker-new', 1) \gset
select is((select jsonb_build_object('worker', worker_id, 'attempts', attempts) from public.jobs where id = :'job'),
  '{"worker": "worker-new", "attempts": 2}'::jsonb, 'the rescued job is claimed again later as its second attempt');
select is(
  (select count(*) from public.complete_jobs(jsonb_build_array(
     jsonb_build_object('id', :'job', 'lease_token', :'old_token', 'output', '{"by": "old"}'::jsonb),
     jsonb_build_object('id', :'job', 'lease_token', :'new_token', 'output', '{"by": "new"}'::jsonb)))),
  1::bigint, 'when both workers report, the job completes exactly once');
select is((select output from public.jobs where id = :'job'), '{"by": "new"}'::jsonb,
  'the completion that counts is the new lease holder''s');

-- Rescue on the last attempt ---------------------------------------------------------------------------

select id as last from public.create_job(pg_temp.uid('alice'), 'roto', '{}', 0, 1) \gset
select from public.claim_jobs('worker-old', 1, 30);
select pg_temp.travel_to(pg_temp.t('2 minutes'));
select from public.rescue_jobs();
select is(
  (select jsonb_build_object('status', status, 'code', error ->> 'code', 'dead', error -> 'dead',
                             'finished_at', finished_at) from public.jobs where id = :'last'),
  jsonb_build_object('status', 'failed', 'code', 'lease_expired', 'dead', true, 'finished_at', pg_temp.t('2 minutes')),
  'a job whose lease expires on its last attempt fails for good');

-- A provider that never calls back ---------------------------------------------------------------------

select id as slow from public.create_job(pg_temp.uid('alice'), 'roto', '{}', 0, 3) \gset
select lease_token as token from public.claim_jobs('worker-1', 1) \gset
select from public.await_job(:'slow', :'token', 'replicate', 'pred-slow', 600);
select id as slow_last from public.create_job(pg_temp.uid('alice'), 'roto', '{}', 0, 1) \gset
select lease_token as token from public.claim_jobs('worker-1', 1) \gset
select from public.await_job(:'slow_last', :'token', 'replicate', 'pred-slow-last', 900);

-- Handed over at t + 2 minutes: deadlines at t + 12 and t + 17 minutes.
select pg_temp.travel_to(pg_temp.t('13 minutes'));
select is(public.rescue_jobs(), 1, 'only the waiting job past its deadline is rescued');
select is(
  (select jsonb_build_object('status', status, 'code', error ->> 'code', 'message', error ->> 'message')
   from public.jobs where id = :'slow'),
  jsonb_build_object('status', 'pending', 'code', 'external_timeout', 'message', 'replicate did not answer in time'),
  'a waiting job past its deadline is retried with an external_timeout error');
select is((select status from public.jobs where id = :'slow_last'), 'waiting'::public.job_status,
  'a waiting job before its deadline keeps waiting');

select pg_temp.travel_to(pg_temp.t('18 minutes'));
select from public.rescue_jobs();
select is(
  (select jsonb_build_object('status', status, 'code', error ->> 'code', 'dead', error -> 'dead')
   from public.jobs where id = :'slow_last'),
  '{"status": "failed", "code": "external_timeout", "dead": true}'::jsonb,
  'a waiting job past its deadline on its last attempt fails for good');

-- Several at once -----------------------------------------------------------------------------------

select from generate_series(1, 3) n, lateral public.create_job(pg_temp.uid('alice'), 'batch', jsonb_build_object('n', n));
select from public.claim_jobs('worker-2', 3, 10, array['batch']);
select pg_temp.travel_to(pg_temp.t('19 minutes'));
select is(public.rescue_jobs(), 3, 'rescue counts every job it recovered in one call');

select * from finish();
rollback;
