-- cancel_job / retry_job: owners (and admins through service_role) stop jobs that have not ended
-- and run ended ones again. Acted out by alice and bob (authenticated) and service_role.
begin;
select plan(22);

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
--   owners_part(row jsonb)          a job row without the columns authenticated may not select
create function pg_temp.owners_part(p_row jsonb) returns jsonb language sql stable as $$
  select p_row - coalesce(array_agg(a.attname::text), '{}') from pg_attribute a
   where a.attrelid = 'public.jobs'::regclass and a.attnum > 0 and not a.attisdropped
     and not has_column_privilege('authenticated', a.attrelid, a.attnum, 'SELECT') $$;
grant execute on all functions in schema pg_temp to authenticated, service_role;

select pg_temp.create_users('alice', 'bob');
select pg_temp.travel_to(pg_temp.t());

-- alice's jobs in every state, set up by the workers.
select pg_temp.authenticate_as_service_role();
select id as pending from public.create_job(pg_temp.uid('alice'), 'color-grade', '{"n": 1}') \gset
select id as running from public.create_job(pg_temp.uid('alice'), 'roto', '{"n": 2}') \gset
select lease_token as running_token from public.claim_jobs('worker-1', 1, p_types => array['roto']) \gset
select id as waiting from public.create_job(pg_temp.uid('alice'), 'roto', '{"n": 3}') \gset
select lease_token as token from public.claim_jobs('worker-1', 1, p_types => array['roto']) \gset
select from public.await_job(:'waiting', :'token', 'replicate', 'pred-w');
select id as done from public.create_job(pg_temp.uid('alice'), 'image', '{"n": 4}') \gset
select lease_token as token from public.claim_jobs('worker-1', 1, p_types => array['image']) \gset
select from public.complete_job(:'done', :'token', '{"path": "outputs/x.png"}');
-- Out of attempts after a retryable failure (its one attempt timed out): it may run again.
select id as failed from public.create_job(pg_temp.uid('alice'), 'image', '{"n": 5}', 0, 1) \gset
select lease_token as token from public.claim_jobs('worker-1', 1, p_types => array['image']) \gset
select from public.fail_job(:'failed', :'token', '{"message": "provider timed out"}', true);
select id as bobs from public.create_job(pg_temp.uid('bob'), 'upscale', '{"n": 6}') \gset

-- Cancelling ------------------------------------------------------------------------------------------

select pg_temp.travel_to(pg_temp.t('1 minute'));
select pg_temp.authenticate_as('alice');
select is(
  (select jsonb_build_object('status', status, 'finished_at', finished_at, 'error', error)
   from public.cancel_job(:'pending')),
  jsonb_build_object('status', 'cancelled', 'finished_at', pg_temp.t('1 minute'),
                     'error', '{"code": "cancelled", "message": "cancelled by its owner"}'::jsonb),
  'an owner cancels her pending job');
select is(
  (select jsonb_build_object('status', status, 'lease_token', lease_token, 'lease_expires_at', lease_expires_at)
   from public.cancel_job(:'running')),
  '{"status": "cancelled", "lease_token": null, "lease_expires_at": null}'::jsonb,
  'an owner cancels her running job, which revokes the worker''s lease');
select is((select status from public.cancel_job(:'waiting')), 'cancelled'::public.job_status,
  'an owner cancels her job waiting on a provider');
select is(pg_temp.error_of(format('select public.cancel_job(%L)', :'done')), 'PT409 invalid_transition',
  'a done job cannot be cancelled');
select is(pg_temp.error_of(format('select public.cancel_job(%L)', :'failed')), 'PT409 invalid_transition',
  'a failed job cannot be cancelled');

-- (Compared by the columns the owner may select: her calls return the others as null.)
select pg_temp.clear_authentication();
select pg_temp.owners_part(to_jsonb(j)) as cancelled_row from public.jobs j where id = :'pending' \gset
select pg_temp.authenticate_as('alice');
select pg_temp.travel_to(pg_temp.t('2 minutes'));
select is((select pg_temp.owners_part(to_jsonb(j)) from public.cancel_job(:'pending') j), :'cancelled_row'::jsonb,
  'cancelling a cancelled job again returns it unchanged');
select is((select count(*) from public.notifications where job_id = :'pending'), 1::bigint,
  'cancelling twice notifies the owner once');

select is(pg_temp.error_of(format('select public.cancel_job(%L)', :'bobs')), 'PT404 job_not_found',
  'a user cannot cancel someone else''s job: it is not found');
select pg_temp.authenticate_as_service_role();
select is((select status from public.jobs where id = :'bobs'), 'pending'::public.job_status,
  'the other user''s job is untouched');

-- Retrying -------------------------------------------------------------------------------------------

select pg_temp.travel_to(pg_temp.t('3 minutes'));
select pg_temp.authenticate_as('alice');
select is(
  (select jsonb_build_object('status', status, 'attempts', attempts, 'max_attempts', max_attempts,
                             'run_at', run_at, 'output', output, 'error', error,
                             'progress', progress, 'worker_id', worker_id, 'started_at', started_at,
                             'finished_at', finished_at, 'lease_token', lease_token)
   from public.retry_job(:'failed')),
  jsonb_build_object('status', 'pending', 'attempts', 1, 'max_attempts', 2, 'run_at', pg_temp.t('3 minutes'),
                     'output', null, 'error', null, 'progress', 0, 'worker_id', null, 'started_at', null,
                     'finished_at', null, 'lease_token', null),
  'retrying a failed job makes it pending now with a fresh run: attempts kept, one more allowed, its error cleared');
select is((select jsonb_build_object('status', status, 'attempts', attempts, 'max_attempts', max_attempts, 'run_at', run_at)
           from public.retry_job(:'running')),
  jsonb_build_object('status', 'pending', 'attempts', 1, 'max_attempts', 4, 'run_at', pg_temp.t('3 minutes')),
  'retrying a cancelled job makes it pending now with its attempts kept and three more allowed');
select pg_temp.clear_authentication();
select pg_temp.owners_part(to_jsonb(j)) as retried_row from public.jobs j where id = :'failed' \gset
select pg_temp.authenticate_as('alice');
select is((select pg_temp.owners_part(to_jsonb(j)) from public.retry_job(:'failed') j), :'retried_row'::jsonb,
  'retrying a job that is already pending again changes nothing');
select pg_temp.authenticate_as_service_role();
select is((select array_agg(id order by id) from public.claim_jobs('worker-2', 10, p_types => array['image', 'roto'])
           where user_id = pg_temp.uid('alice')),
  (select array_agg(id order by id) from public.jobs where id in (:'failed', :'running')),
  'retried jobs are claimable again');
select is((select attempts from public.jobs where id = :'failed'), 2,
  'a retried job keeps counting its attempts');

select pg_temp.authenticate_as('alice');
select is(pg_temp.error_of(format('select public.retry_job(%L)', :'failed')), 'PT409 invalid_transition',
  'a running job cannot be retried');
select is(pg_temp.error_of(format('select public.retry_job(%L)', :'done')), 'PT409 invalid_transition',
  'a done job cannot be retried');
select is(pg_temp.error_of(format('select public.retry_job(%L)', :'bobs')), 'PT404 job_not_found',
  'a user cannot retry someone else''s job: it is not found');

-- alice has 2 running jobs; with 2 active allowed, retrying a third one would exceed her quota.
select pg_temp.clear_authentication();
update spool.settings set max_active_jobs_per_user = 2;
select pg_temp.authenticate_as('alice');
select is(pg_temp.error_of(format('select public.retry_job(%L)', :'waiting')), 'PT429 quota_active_jobs',
  'a retry that would exceed the owner''s active-job quota is refused');
select is((select status from public.jobs where id = :'waiting'), 'cancelled'::public.job_status,
  'a retry refused by the quota leaves the job cancelled');

-- Admins -----------------------------------------------------------------------------------------------

select pg_temp.authenticate_as_service_role();
select is(
  (select jsonb_build_object('status', status, 'message', error ->> 'message') from public.cancel_job(:'bobs')),
  '{"status": "cancelled", "message": "cancelled by an admin"}'::jsonb,
  'service_role may cancel anyone''s job');
select is((select status from public.retry_job(:'bobs')), 'pending'::public.job_status,
  'service_role may retry anyone''s job');
select pg_temp.authenticate_as('bob');
select is((select status from public.jobs where id = :'bobs'), 'pending'::public.job_status,
  'the owner sees the job an admin retried as pending');

select * from finish();
rollback;
