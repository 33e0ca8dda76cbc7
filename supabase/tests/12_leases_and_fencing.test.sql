-- Leases and fencing: heartbeats extend a lease, and a worker that lost its lease can never write
-- the job again (complete, fail, heartbeat, await), whoever holds it now.
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
grant execute on all functions in schema pg_temp to authenticated, service_role;

select pg_temp.create_users('alice');
update spool.settings set default_lease_seconds = 60, backoff_base_seconds = 5, backoff_max_seconds = 3600;
select pg_temp.travel_to(pg_temp.t());
select pg_temp.authenticate_as_service_role();

select id as job from public.create_job(pg_temp.uid('alice'), 'roto', '{"clip": "a.mp4"}') \gset
select lease_token as old_token from public.claim_jobs('worker-old', 1) \gset

-- Heartbeats ---------------------------------------------------------------------------------------

select pg_temp.travel_to(pg_temp.t('30 seconds'));
select is(
  (select jsonb_build_object('progress', progress, 'step', step, 'lease_expires_at', lease_expires_at)
   from public.heartbeat_job(:'job', :'old_token', 40, 'tracking', 120)),
  jsonb_build_object('progress', 40, 'step', 'tracking', 'lease_expires_at', pg_temp.t('2 minutes 30 seconds')),
  'a heartbeat records progress and step and extends the lease to now + lease seconds');
select pg_temp.travel_to(pg_temp.t('1 minute'));
select is(
  (select jsonb_build_object('progress', progress, 'step', step, 'lease_expires_at', lease_expires_at)
   from public.heartbeat_job(:'job', :'old_token', 20, 'matting')),
  jsonb_build_object('progress', 40, 'step', 'matting', 'lease_expires_at', pg_temp.t('2 minutes')),
  'progress never goes backwards, while the step and the default-length lease still update');
select is((select progress from public.heartbeat_job(:'job', :'old_token')), 40::smallint,
  'a heartbeat without progress keeps the progress reported so far');
select is(pg_temp.error_of(format('select public.heartbeat_job(%L, %L, 101)', :'job', :'old_token')),
  'PT400 invalid_argument', 'progress above 100 is refused');
select is(pg_temp.error_of(format('select public.heartbeat_job(%L, %L, -1)', :'job', :'old_token')),
  'PT400 invalid_argument', 'negative progress is refused');
select is(pg_temp.error_of(format('select public.heartbeat_job(%L, %L)', pg_temp.uid('no-such-job'), :'old_token')),
  'PT404 job_not_found', 'a heartbeat for an unknown job is not found');

-- The old worker goes silent; its lease expires, the job is rescued and a new worker claims it. ----

select pg_temp.travel_to(pg_temp.t('3 minutes'));
select from public.rescue_jobs();
select pg_temp.travel_to(pg_temp.t('1 hour'));
select lease_token as new_token from public.claim_jobs('worker-new', 1) \gset
select to_jsonb(j) as held from public.jobs j where id = :'job' \gset

select is(pg_temp.error_of(format($$ select public.complete_job(%L, %L, '{"path": "stale"}') $$, :'job', :'old_token')),
  'PT409 lease_lost', 'the old worker cannot complete the job');
select is(pg_temp.error_of(format($$ select public.fail_job(%L, %L, '{"message": "stale"}', false) $$, :'job', :'old_token')),
  'PT409 lease_lost', 'the old worker cannot fail the job');
select is(pg_temp.error_of(format('select public.heartbeat_job(%L, %L, 99)', :'job', :'old_token')),
  'PT409 lease_lost', 'the old worker cannot heartbeat the job');
select is(pg_temp.error_of(format($$ select public.await_job(%L, %L, 'replicate', 'stale-1') $$, :'job', :'old_token')),
  'PT409 lease_lost', 'the old worker cannot hand the job to a provider');
select is((select to_jsonb(j) from public.jobs j where id = :'job'), :'held'::jsonb,
  'the job stays exactly as its new holder has it');
select is(pg_temp.error_of(format($$ select public.complete_job(%L, null, '{}') $$, :'job')),
  'PT409 lease_lost', 'a completion without a lease token is refused');

-- complete_jobs: a batch completes only entries whose token still holds -----------------------------

select from generate_series(1, 2) n, lateral public.create_job(pg_temp.uid('alice'), 'color-grade', jsonb_build_object('n', n));
create temp table batch as select id, lease_token from public.claim_jobs('worker-new', 2, p_types => array['color-grade']);
create temp table results as
  select jsonb_agg(jsonb_build_object('id', id, 'lease_token', lease_token, 'output', jsonb_build_object('ok', true)))
         || jsonb_build_array(jsonb_build_object('id', :'job', 'lease_token', :'old_token', 'output', '{"path": "stale"}'::jsonb))
         as entries
  from batch;
select is((select array_agg(x order by x) from public.complete_jobs((select entries from results)) x),
  (select array_agg(id order by id) from batch),
  'a batch completion returns only the jobs it completed and skips the stale entry');
select is((select status from public.jobs where id = :'job'), 'running'::public.job_status,
  'the job named by the stale entry keeps running for its new holder');
select is(
  (select jsonb_agg(jsonb_build_object('status', status, 'output', output, 'progress', progress,
                                       'lease', lease_token, 'finished_at', finished_at)) from public.jobs
   where id in (select id from batch)),
  (select jsonb_agg(jsonb_build_object('status', 'done', 'output', '{"ok": true}'::jsonb, 'progress', 100,
                                       'lease', null, 'finished_at', pg_temp.t('1 hour'))) from batch),
  'completed jobs are done with their output, full progress, no lease and a finishing time');
select is_empty($$ select public.complete_jobs((select entries from results)) $$,
  'completing the same batch again completes nothing');
select is(pg_temp.error_of(format($$ select public.complete_job(%L, %L) $$,
                                  (select id from batch limit 1), (select lease_token from batch limit 1))),
  'PT409 lease_lost', 'completing a done job again with its old token is refused');
select is((select count(*) from public.notifications where job_id in (select id from batch)), 2::bigint,
  'each completed job notified its owner once');
select is(pg_temp.error_of($$ select public.complete_jobs('{"id": "x"}') $$), 'PT400 invalid_argument',
  'a batch that is not a JSON array is refused');

-- Cancellation fences a running worker ------------------------------------------------------------------

select pg_temp.authenticate_as('alice');
select from public.cancel_job(:'job');
select pg_temp.authenticate_as_service_role();
select is(pg_temp.error_of(format('select public.heartbeat_job(%L, %L, 60)', :'job', :'new_token')),
  'PT409 lease_lost', 'after its owner cancels a running job, the worker''s next heartbeat finds the lease lost');
select is(pg_temp.error_of(format($$ select public.complete_job(%L, %L, '{"path": "late"}') $$, :'job', :'new_token')),
  'PT409 lease_lost', 'the worker cannot complete a job that was cancelled under it');
select is((select jsonb_build_object('status', status, 'output', output) from public.jobs where id = :'job'),
  jsonb_build_object('status', 'cancelled', 'output', null),
  'the cancelled job stays cancelled without output');

select * from finish();
rollback;
