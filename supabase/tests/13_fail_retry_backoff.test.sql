-- fail_job: retryable failures come back after exponential backoff with equal jitter; permanent
-- failures and exhausted attempts are dead. Acted out by job-worker (service_role).
begin;
select plan(19);

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
update spool.settings set backoff_max_seconds = 3600;
select backoff_base_seconds as base from spool.settings \gset
select pg_temp.travel_to(pg_temp.t());
select pg_temp.authenticate_as_service_role();

-- Retryable failures: attempt n waits between base * 2^(n-1) / 2 and base * 2^(n-1) ------------------

select id as job from public.create_job(pg_temp.uid('alice'), 'color-grade', '{}', 0, 5) \gset
select lease_token as token from public.claim_jobs('worker-1', 1) \gset
select run_at as retry_1 from public.fail_job(:'job', :'token', '{"code": "upstream_503", "message": "storage hiccup"}') \gset
select is((select status from public.jobs where id = :'job'), 'pending'::public.job_status,
  'a retryable failure with attempts left puts the job back to pending');
select ok(:'retry_1'::timestamptz between pg_temp.t() + make_interval(secs => :base / 2.0)
                                      and pg_temp.t() + make_interval(secs => :base),
  'after attempt 1 the job waits between base/2 and base seconds');
select is((select error from public.jobs where id = :'job'),
  '{"code": "upstream_503", "message": "storage hiccup", "attempt": 1, "retryable": true, "dead": false}'::jsonb,
  'the error records its code, message and attempt, and that the job is not dead');
select ok((select lease_token is null and lease_expires_at is null and finished_at is null from public.jobs where id = :'job'),
  'a job waiting for its retry holds no lease and has not finished');

select is_empty($$ select id from public.claim_jobs('worker-1', 1) $$,
  'a backed-off job is not claimable before its run_at');
select pg_temp.travel_to(:'retry_1'::timestamptz);
select lease_token as token from public.claim_jobs('worker-1', 1) \gset
select ok(:'token' is not null, 'a backed-off job is claimable once its run_at has come');

select pg_temp.travel_to(pg_temp.t('1 hour'));
select run_at as retry_2 from public.fail_job(:'job', :'token', '{"message": "still down"}') \gset
select ok(:'retry_2'::timestamptz between pg_temp.t('1 hour') + make_interval(secs => :base)
                                      and pg_temp.t('1 hour') + make_interval(secs => 2 * :base),
  'after attempt 2 the job waits between base and 2 * base seconds');
select is((select error ->> 'code' from public.jobs where id = :'job'), 'handler_error',
  'a failure without a code is recorded as handler_error');

select pg_temp.travel_to(pg_temp.t('2 hours'));
select lease_token as token from public.claim_jobs('worker-1', 1) \gset
select run_at as retry_3 from public.fail_job(:'job', :'token', '{"message": "still down"}') \gset
select ok(:'retry_3'::timestamptz between pg_temp.t('2 hours') + make_interval(secs => 2 * :base)
                                      and pg_temp.t('2 hours') + make_interval(secs => 4 * :base),
  'after attempt 3 the job waits between 2 * base and 4 * base seconds');

update spool.settings set backoff_max_seconds = 3;
select pg_temp.travel_to(pg_temp.t('3 hours'));
select lease_token as token from public.claim_jobs('worker-1', 1) \gset
select run_at as retry_4 from public.fail_job(:'job', :'token', '{"message": "still down"}') \gset
select ok(:'retry_4'::timestamptz between pg_temp.t('3 hours') + interval '1.5 seconds'
                                      and pg_temp.t('3 hours') + interval '3 seconds',
  'the backoff never exceeds backoff_max_seconds (jitter still halves at most)');
update spool.settings set backoff_max_seconds = 3600;

-- spool.backoff_delay is internal (not granted to any API role), so ask it as the owner.
select pg_temp.clear_authentication();
select is(
  (select count(*) from generate_series(1, 200)
   where spool.backoff_delay(2) not between make_interval(secs => :base) and make_interval(secs => 2 * :base)),
  0::bigint, 'the jittered delay for attempt 2 always lies in [base, 2 * base] seconds');
select pg_temp.authenticate_as_service_role();

-- Out of attempts: the fifth failure is dead --------------------------------------------------------

select pg_temp.travel_to(pg_temp.t('4 hours'));
select lease_token as token from public.claim_jobs('worker-1', 1) \gset
select from public.fail_job(:'job', :'token', '{"message": "gave up"}');
select is(
  (select jsonb_build_object('status', status, 'attempts', attempts, 'finished_at', finished_at,
                             'dead', error -> 'dead', 'attempt', error -> 'attempt') from public.jobs where id = :'job'),
  jsonb_build_object('status', 'failed', 'attempts', 5, 'finished_at', pg_temp.t('4 hours'),
                     'dead', true, 'attempt', 5),
  'a retryable failure on the last of max_attempts fails the job for good (dead)');
select is((select array_agg(message) from public.notifications where job_id = :'job'),
  array['Your color-grade job failed: gave up'], 'the owner is notified once, with the last error, when the job dies');

-- Permanent failures --------------------------------------------------------------------------------

select id as doomed from public.create_job(pg_temp.uid('alice'), 'image', '{}', 0, 3) \gset
select lease_token as token from public.claim_jobs('worker-1', 1) \gset
select from public.fail_job(:'doomed', :'token', '{"code": "bad_input", "message": "not an image"}', false);
select is(
  (select jsonb_build_object('status', status, 'attempts', attempts, 'finished_at', finished_at, 'error', error,
                             'lease', lease_token) from public.jobs where id = :'doomed'),
  jsonb_build_object('status', 'failed', 'attempts', 1, 'finished_at', pg_temp.t('4 hours'), 'lease', null,
                     'error', '{"code": "bad_input", "message": "not an image", "attempt": 1, "retryable": false, "dead": true}'::jsonb),
  'a permanent failure fails the job at once, with attempts left unused');
select is_empty($$ select id from public.claim_jobs('worker-1', 1) $$,
  'a failed job is never claimed again');

-- Arguments -----------------------------------------------------------------------------------------

select id as other from public.create_job(pg_temp.uid('alice'), 'image', '{}') \gset
select lease_token as token from public.claim_jobs('worker-1', 1) \gset
select is(pg_temp.error_of(format($$ select public.fail_job(%L, %L, '{"code": "x"}') $$, :'other', :'token')),
  'PT400 invalid_argument', 'an error without a message is refused');
select is(pg_temp.error_of(format($$ select public.fail_job(%L, %L, '"boom"') $$, :'other', :'token')),
  'PT400 invalid_argument', 'an error that is not a JSON object is refused');
select is(pg_temp.error_of(format($$ select public.fail_job(%L, %L, '{"message": "x"}', null) $$, :'other', :'token')),
  'PT400 invalid_argument', 'a failure that does not say whether it is retryable is refused');
select is((select status from public.jobs where id = :'other'), 'running'::public.job_status,
  'a refused failure report leaves the job running');

select * from finish();
rollback;
