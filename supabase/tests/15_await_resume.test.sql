-- await_job / resume_job: a running job handed to an external provider waits without a lease, and
-- the provider's answer (webhook or poll) finishes it, once. Acted out by job-worker and
-- job-callback (service_role) and the job's owner.
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
update spool.settings set backoff_base_seconds = 5, backoff_max_seconds = 3600;
select pg_temp.travel_to(pg_temp.t());
select pg_temp.authenticate_as_service_role();

-- Handing over ----------------------------------------------------------------------------------------

select id as job from public.create_job(pg_temp.uid('alice'), 'roto', '{"clip": "a.mp4"}') \gset
select lease_token as token from public.claim_jobs('worker-1', 1) \gset
select from public.heartbeat_job(:'job', :'token', 10, 'uploading');
select pg_temp.travel_to(pg_temp.t('5 seconds'));
select is(
  (select jsonb_build_object('status', status, 'lease_token', lease_token, 'provider', external_provider,
                             'external_id', external_id, 'deadline', lease_expires_at, 'progress', progress)
   from public.await_job(:'job', :'token', 'replicate', 'pred-1', 600)),
  jsonb_build_object('status', 'waiting', 'lease_token', null, 'provider', 'replicate', 'external_id', 'pred-1',
                     'deadline', pg_temp.t('10 minutes 5 seconds'), 'progress', 10),
  'await hands the job over: waiting, lease released, provider handle and callback deadline recorded');
select is(pg_temp.error_of(format('select public.heartbeat_job(%L, %L)', :'job', :'token')),
  'PT409 lease_lost', 'the worker that handed the job over no longer holds it');
select is_empty($$ select id from public.claim_jobs('worker-2', 10) $$,
  'a waiting job is not claimable');

-- The provider answers "done", twice ----------------------------------------------------------------

select pg_temp.travel_to(pg_temp.t('4 minutes'));
select is(
  (select jsonb_build_object('status', status, 'output', output, 'progress', progress,
                             'deadline', lease_expires_at, 'finished_at', finished_at)
   from public.resume_job('replicate', 'pred-1', 'done', '{"path": "outputs/a.mp4"}')),
  jsonb_build_object('status', 'done', 'output', '{"path": "outputs/a.mp4"}'::jsonb, 'progress', 100,
                     'deadline', null, 'finished_at', pg_temp.t('4 minutes')),
  'resume with done completes the job with the provider''s output');
select to_jsonb(j) as finished from public.jobs j where id = :'job' \gset
select pg_temp.travel_to(pg_temp.t('5 minutes'));
select is((select to_jsonb(r) from public.resume_job('replicate', 'pred-1', 'done', '{"path": "outputs/other.mp4"}') r),
  :'finished'::jsonb, 'a duplicate callback returns the finished job unchanged');
select is((select to_jsonb(j) from public.jobs j where id = :'job'), :'finished'::jsonb,
  'a duplicate callback writes nothing');
select is((select count(*) from public.notifications where job_id = :'job'), 1::bigint,
  'the owner is notified once, however many callbacks arrive');

-- The provider answers "retry" and "failed" ---------------------------------------------------------

select id as flaky from public.create_job(pg_temp.uid('alice'), 'roto', '{"clip": "b.mp4"}') \gset
select lease_token as token from public.claim_jobs('worker-1', 1) \gset
select from public.await_job(:'flaky', :'token', 'replicate', 'pred-2');
select pg_temp.travel_to(pg_temp.t('6 minutes'));
select from public.resume_job('replicate', 'pred-2', 'retry', null, '{"message": "GPU out of memory"}');
select is(
  (select jsonb_build_object('status', status, 'lease_token', lease_token, 'deadline', lease_expires_at, 'error', error)
   from public.jobs where id = :'flaky'),
  jsonb_build_object('status', 'pending', 'lease_token', null, 'deadline', null,
                     'error', '{"code": "provider_error", "message": "GPU out of memory", "attempt": 1, "retryable": true, "dead": false}'::jsonb),
  'resume with retry puts the job back to pending with a provider_error');
select ok((select run_at between pg_temp.t('6 minutes') + interval '2.5 seconds' and pg_temp.t('6 minutes') + interval '5 seconds'
           from public.jobs where id = :'flaky'),
  'a job the provider asked to retry waits out the backoff for its attempt');
select is((select to_jsonb(r) from public.resume_job('replicate', 'pred-2', 'done', '{}') r),
  (select to_jsonb(j) from public.jobs j where id = :'flaky'),
  'a late "done" for a job already sent back to the queue changes nothing');
select is((select status from public.jobs where id = :'flaky'), 'pending'::public.job_status,
  'the job sent back to the queue stays pending');

select id as broken from public.create_job(pg_temp.uid('alice'), 'roto', '{"clip": "c.mp4"}') \gset
select lease_token as token from public.claim_jobs('worker-1', 1, p_types => array['roto']) \gset
select from public.await_job(:'broken', :'token', 'replicate', 'pred-3');
select from public.resume_job('replicate', 'pred-3', 'failed', null, '{"code": "nsfw", "message": "refused by the model"}');
select is(
  (select jsonb_build_object('status', status, 'finished_at', finished_at, 'code', error ->> 'code', 'dead', error -> 'dead')
   from public.jobs where id = :'broken'),
  jsonb_build_object('status', 'failed', 'finished_at', pg_temp.t('6 minutes'), 'code', 'nsfw', 'dead', true),
  'resume with failed fails the job for good, keeping the provider''s error code');

-- Refusals --------------------------------------------------------------------------------------------

select is(pg_temp.error_of($$ select public.resume_job('replicate', 'pred-unknown', 'done', '{}') $$),
  'PT404 job_not_found', 'a callback for an unknown provider handle is not found');
select is(pg_temp.error_of($$ select public.resume_job('replicate', 'pred-1', 'finished', '{}') $$),
  'PT400 invalid_argument', 'an unknown outcome is refused');
select is(pg_temp.error_of($$ select public.resume_job('replicate', 'pred-1', 'failed') $$),
  'PT400 invalid_argument', 'a failure without an error object is refused');

select id as other from public.create_job(pg_temp.uid('alice'), 'image', '{}') \gset
select lease_token as token from public.claim_jobs('worker-1', 1, p_types => array['image']) \gset
select is(pg_temp.error_of(format($$ select public.await_job(%L, %L, 'Replicate!', 'p') $$, :'other', :'token')),
  'PT400 invalid_argument', 'a provider name that is not a lowercase slug is refused');
select is(pg_temp.error_of(format($$ select public.await_job(%L, %L, 'replicate', 'p', 5) $$, :'other', :'token')),
  'PT400 invalid_argument', 'a callback deadline under 10 seconds is refused');

-- A cancelled waiting job ignores its late callback -------------------------------------------------

select from public.await_job(:'other', :'token', 'openai', 'img-9');
select pg_temp.authenticate_as('alice');
select from public.cancel_job(:'other');
select pg_temp.authenticate_as_service_role();
select is(
  (select jsonb_build_object('status', status, 'output', output)
   from public.resume_job('openai', 'img-9', 'done', '{"path": "outputs/late.png"}')),
  '{"status": "cancelled", "output": null}'::jsonb,
  'a late callback for a cancelled waiting job leaves it cancelled without output');
select is((select array_agg(status) from public.notifications where job_id = :'other'),
  array['cancelled'::public.job_status], 'the owner hears only that the job was cancelled');

select * from finish();
rollback;
