-- create_job: what a job creator gets back, what it is refused, idempotency, quotas, fair slots.
-- Acted out by the job creators (service_role) on behalf of named users; time is spool.now().
begin;
select plan(30);

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

select pg_temp.create_users('alice', 'bob', 'carol', 'dave', 'erin', 'frank');
select pg_temp.travel_to(pg_temp.t());
select pg_temp.authenticate_as_service_role();

-- A new job ---------------------------------------------------------------------------------------

select id as job from public.create_job(pg_temp.uid('alice'), 'color-grade', '{"path": "inputs/a.png"}') \gset

select is(
  (select jsonb_build_object('user_id', user_id, 'type', type, 'status', status, 'input', input,
                             'priority', priority, 'max_attempts', max_attempts, 'attempts', attempts,
                             'progress', progress, 'run_at', run_at, 'fair_at', fair_at)
   from public.jobs where id = :'job'),
  jsonb_build_object('user_id', pg_temp.uid('alice'), 'type', 'color-grade', 'status', 'pending',
                     'input', '{"path": "inputs/a.png"}'::jsonb, 'priority', 0, 'max_attempts', 3,
                     'attempts', 0, 'progress', 0, 'run_at', pg_temp.t(), 'fair_at', pg_temp.t()),
  'a new job is pending for its owner with priority 0, 3 attempts, no progress and runs now');

select ok(
  (select lease_token is null and worker_id is null and lease_expires_at is null and output is null
          and error is null and started_at is null and finished_at is null
   from public.jobs where id = :'job'),
  'a new job has no lease, no output, no error and has not started');

-- Validation: refused with PT400 invalid_argument, nothing written ---------------------------------

select is(pg_temp.error_of($$ select public.create_job(pg_temp.uid('alice'), 'Color Grade') $$),
  'PT400 invalid_argument', 'a job type that is not a lowercase slug is refused');
select is(pg_temp.error_of($$ select public.create_job(pg_temp.uid('alice'), 'color-grade', '[1, 2]') $$),
  'PT400 invalid_argument', 'an input that is not a JSON object is refused');
select is(pg_temp.error_of($$ select public.create_job(pg_temp.uid('alice'), 'color-grade', '{}', 101) $$),
  'PT400 invalid_argument', 'a priority above 100 is refused');
select is(pg_temp.error_of($$ select public.create_job(pg_temp.uid('alice'), 'color-grade', '{}', -101) $$),
  'PT400 invalid_argument', 'a priority below -100 is refused');
select is(pg_temp.error_of($$ select public.create_job(pg_temp.uid('alice'), 'color-grade', '{}', 0, 0) $$),
  'PT400 invalid_argument', 'zero max_attempts is refused');
select is(pg_temp.error_of($$ select public.create_job(pg_temp.uid('alice'), 'color-grade', '{}', 0, 26) $$),
  'PT400 invalid_argument', 'more than 25 max_attempts is refused');
select is(pg_temp.error_of($$ select public.create_job(pg_temp.uid('alice'), 'color-grade',
                                jsonb_build_object('blob', repeat('x', 65536))) $$),
  'PT400 invalid_argument', 'an input larger than 64 KiB is refused');
select is(pg_temp.error_of($$ select public.create_job(pg_temp.uid('alice'), 'color-grade', '{}', 0, 3, null,
                                repeat('k', 201)) $$),
  'PT400 invalid_argument', 'an idempotency key longer than 200 characters is refused');
select is(pg_temp.error_of($$ select public.create_job(pg_temp.uid('nobody'), 'color-grade') $$),
  'PT404 user_not_found', 'a job for an unknown user is refused as not found');
select is(pg_temp.error_of(format($$ select public.create_job(%L, 'color-grade', '{}', 0, 3, null, null, %L) $$,
                                  pg_temp.uid('bob'), :'job')),
  'PT404 job_not_found', 'a parent job that belongs to another user is refused as not found');
select is((select count(*) from public.jobs), 1::bigint,
  'refused jobs leave no row behind');

-- Idempotency ---------------------------------------------------------------------------------------

select id as keyed from public.create_job(pg_temp.uid('alice'), 'image', '{"prompt": "a fox"}',
                                          p_idempotency_key => 'upload-42') \gset
select is((select id from public.create_job(pg_temp.uid('alice'), 'image', '{"prompt": "a fox"}',
                                              p_idempotency_key => 'upload-42')),
  :'keyed'::uuid, 'the same idempotency key returns the job it created first');
select is((select count(*) from public.jobs where idempotency_key = 'upload-42'), 1::bigint,
  'a repeated idempotency key writes one row');
select is(pg_temp.error_of($$ select public.create_job(pg_temp.uid('alice'), 'image', '{"prompt": "a cat"}',
                                p_idempotency_key => 'upload-42') $$),
  'PT409 idempotency_conflict', 'the same idempotency key with a different input is a conflict');
select isnt((select id from public.create_job(pg_temp.uid('bob'), 'image', '{"prompt": "a fox"}',
                                               p_idempotency_key => 'upload-42')),
  :'keyed'::uuid, 'different users may use the same idempotency key for their own jobs');

-- Quota: active jobs per user ---------------------------------------------------------------------

update spool.settings set max_active_jobs_per_user = 3;
select from generate_series(1, 3) n,
  lateral public.create_job(pg_temp.uid('carol'), 'transcode', jsonb_build_object('n', n), p_idempotency_key => 'c' || n);
select is(pg_temp.error_of($$ select public.create_job(pg_temp.uid('carol'), 'transcode', '{"n": 4}') $$),
  'PT429 quota_active_jobs', 'a fourth active job is refused when three are allowed');
select is((select id from public.create_job(pg_temp.uid('carol'), 'transcode', '{"n": 1}', p_idempotency_key => 'c1')),
  (select id from public.jobs where user_id = pg_temp.uid('carol') and idempotency_key = 'c1'),
  'replaying an idempotency key at the quota returns the existing job');
select id as carol_job, lease_token as carol_token
from public.claim_jobs('worker-1', 1, p_types => array['transcode']) \gset
select from public.complete_job(:'carol_job', :'carol_token', '{}');
select lives_ok($$ select public.create_job(pg_temp.uid('carol'), 'transcode', '{"n": 4}') $$,
  'after one of the three finishes, another job can be created');
update spool.settings set max_active_jobs_per_user = 100;

-- Quota: jobs per minute --------------------------------------------------------------------------
-- Counted from created_at on the queue's clock (spool.now(), frozen here at 2030-01-01).

update spool.settings set max_jobs_per_minute_per_user = 2;
select from generate_series(1, 2) n,
  lateral public.create_job(pg_temp.uid('dave'), 'audio-clean', jsonb_build_object('n', n), p_idempotency_key => 'd' || n);
select is(pg_temp.error_of($$ select public.create_job(pg_temp.uid('dave'), 'audio-clean', '{"n": 3}') $$),
  'PT429 quota_rate', 'a third job within one minute is refused when two per minute are allowed');
select is((select id from public.create_job(pg_temp.uid('dave'), 'audio-clean', '{"n": 1}', p_idempotency_key => 'd1')),
  (select id from public.jobs where user_id = pg_temp.uid('dave') and idempotency_key = 'd1'),
  'replaying an idempotency key is not rate limited');
select pg_temp.travel_to(pg_temp.t('1 minute'));
select lives_ok($$ select public.create_job(pg_temp.uid('dave'), 'audio-clean', '{"n": 3}') $$,
  'one minute later the user may create jobs again');
update spool.settings set max_jobs_per_minute_per_user = 60;
select pg_temp.travel_to(pg_temp.t());

-- Fair slots: a user's burst is spread out so other users interleave --------------------------------

update spool.settings set fair_slot = '5 seconds';
select from generate_series(1, 3) n, lateral public.create_job(pg_temp.uid('erin'), 'roto', jsonb_build_object('n', n));
select is(
  (select array_agg(fair_at order by input ->> 'n') from public.jobs where user_id = pg_temp.uid('erin')),
  array[pg_temp.t(), pg_temp.t('5 seconds'), pg_temp.t('10 seconds')],
  'a user''s three jobs queued at once get fair slots t, t + slot and t + 2 slots');
select is(
  (select array_agg(run_at order by input ->> 'n') from public.jobs where user_id = pg_temp.uid('erin')),
  array[pg_temp.t(), pg_temp.t(), pg_temp.t()],
  'fair slots order the burst without delaying when its jobs may run');

-- Delayed jobs ---------------------------------------------------------------------------------------

select id as delayed, run_at as delayed_run_at
from public.create_job(pg_temp.uid('frank'), 'report', '{"when": "later"}', p_run_at => pg_temp.t('10 minutes')) \gset
select is(:'delayed_run_at'::timestamptz, pg_temp.t('10 minutes'), 'a delayed job runs at the requested time');
select is_empty($$ select id from public.claim_jobs('worker-1', 10, p_types => array['report']) $$,
  'a delayed job is not claimable before its run_at');
-- frank's next immediate job must not queue behind every other user's work until the delayed one runs.
select id as soon from public.create_job(pg_temp.uid('frank'), 'report', '{"when": "now"}') \gset
select cmp_ok((select fair_at from public.jobs where id = :'soon'), '<', :'delayed_run_at'::timestamptz,
  'a job scheduled for later does not push its owner''s immediate jobs back behind it');
select pg_temp.travel_to(pg_temp.t('10 minutes'));
select is(
  (select array_agg(id order by id) from public.claim_jobs('worker-1', 10, p_types => array['report'])),
  (select array_agg(id order by id) from public.jobs where id in (:'delayed', :'soon')),
  'a delayed job is claimable once its run_at has come');
select is((select status from public.jobs where id = :'delayed'), 'running'::public.job_status,
  'the claimed delayed job is running');

select * from finish();
rollback;
