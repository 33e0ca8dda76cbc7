-- Per-type limits beyond claiming (20261203130200_type_defaults.sql): a job created without its
-- own attempts or priority takes its type's (spool.job_types), or 3 and 0 without a row; the
-- creator stores the route; rescue_jobs fails an attempt past its timeout_at with code 'timeout'
-- and heartbeat_job refuses past it; prune keeps each type's retention. Acted out by the job
-- creators, job-worker and the pg_cron sweep and prune (service_role).
begin;
select plan(40);

-- Helpers for acting out behaviour, temporary so they vanish with the session:
--   uid(name) / create_users(names) named test users with fixed uuids, inserted into auth.users
--   authenticate_as_service_role()  act as the workers and Edge Functions (role service_role)
--   clear_authentication()          back to the connecting role
--   t(offset) / travel_to(at)       the test clock: 2030-01-01 00:00 UTC + offset; spool.now()
--   error_of(sql)                   '<SQLSTATE> <HINT>' of the error sql raises, or 'no error'
--   detail_of(sql)                  the DETAIL (jsonb) and message of the error sql raises
create function pg_temp.uid(p_name text) returns uuid language sql immutable
  as $$ select md5('spool-test:' || p_name)::uuid $$;
create function pg_temp.create_users(variadic p_names text[]) returns void language sql
  as $$ insert into auth.users (id, aud, role, email)
        select pg_temp.uid(n), 'authenticated', 'authenticated', n || '@spool.test'
        from unnest(p_names) n $$;
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
create function pg_temp.detail_of(p_sql text) returns jsonb language plpgsql as $$
declare
  v_detail text;
  v_message text;
begin
  execute p_sql;
  return null;
exception when others then
  get stacked diagnostics v_detail = pg_exception_detail, v_message = message_text;
  return coalesce(nullif(v_detail, ''), '{}')::jsonb || jsonb_build_object('message', v_message);
end $$;
grant execute on all functions in schema pg_temp to authenticated, service_role;

select pg_temp.create_users('alice', 'bob');
update spool.settings set backoff_base_seconds = 5, backoff_max_seconds = 3600,
  retention_done = '14 days', retention_failed = '30 days';
-- Types of this suite (admins edit spool.job_types; 'no-row' deliberately has none).
insert into spool.job_types (type, max_attempts, priority, timeout_seconds) values
  ('tuned', 7, 5, 600),
  ('slow', 2, 0, 30),
  ('slow-ext', 2, 0, 30);
insert into spool.job_types (type, retention_done, retention_failed) values
  ('brief', '1 hour', '2 hours'),
  ('kept', '60 days', null);
select pg_temp.travel_to(pg_temp.t());
select pg_temp.authenticate_as_service_role();

-- Defaults at create ---------------------------------------------------------------------------------

select is((select array[priority, max_attempts] from public.create_job(pg_temp.uid('alice'), 'tuned')),
  array[5, 7], 'create_job without priority or attempts takes the type''s row');
select is((select array[priority, max_attempts] from public.create_job(pg_temp.uid('alice'), 'no-row')),
  array[0, 3], 'a type without a row gets priority 0 and 3 attempts');
select is((select array[priority, max_attempts] from public.create_job(pg_temp.uid('alice'), 'tuned', '{"n": 1}', -2, 1)),
  array[-2, 1], 'explicit priority and attempts win over the type''s row');
select is((select array[priority, max_attempts] from public.create_job(pg_temp.uid('alice'), 'tuned', '{"n": 2}', p_max_attempts => 4)),
  array[5, 4], 'each field defaults on its own: explicit attempts, the row''s priority');
select is((select array[priority, max_attempts] from public.create_job(pg_temp.uid('alice'), 'no-row', '{"n": 1}', 9)),
  array[9, 3], 'an explicit priority on a type without a row keeps the default attempts');
select is(pg_temp.error_of($$ select public.create_job(pg_temp.uid('alice'), 'tuned', '{}', 101) $$),
  'PT400 invalid_argument', 'an explicit priority out of range is still refused');
select is(pg_temp.error_of($$ select public.create_job(pg_temp.uid('alice'), 'tuned', '{}', null, 0) $$),
  'PT400 invalid_argument', 'explicit max_attempts out of range is still refused');

select results_eq(
  $$select priority::integer, max_attempts from public.create_jobs(jsonb_build_array(
      jsonb_build_object('user_id', pg_temp.uid('bob'), 'type', 'tuned'),
      jsonb_build_object('user_id', pg_temp.uid('bob'), 'type', 'tuned', 'priority', null, 'max_attempts', null, 'input', '{"n": 1}'::jsonb),
      jsonb_build_object('user_id', pg_temp.uid('bob'), 'type', 'tuned', 'priority', 1, 'max_attempts', 2, 'input', '{"n": 2}'::jsonb),
      jsonb_build_object('user_id', pg_temp.uid('bob'), 'type', 'no-row'),
      jsonb_build_object('user_id', pg_temp.uid('bob'), 'type', 'no-row', 'max_attempts', 5, 'input', '{"n": 1}'::jsonb)))$$,
  $$values (5, 7), (5, 7), (1, 2), (0, 3), (0, 5)$$,
  'create_jobs takes each element''s missing or null priority and attempts from its type''s row (0 and 3 without one)');

-- The route ------------------------------------------------------------------------------------------

select is((select route from public.create_job(pg_temp.uid('alice'), 'no-row', '{"r": 1}', p_route => 'replicate')),
  'replicate', 'create_job stores the route its creator chose');
select is((select route from public.jobs where user_id = pg_temp.uid('alice') and input = '{"r": 1}'),
  'replicate', 'and the job row keeps it for the worker');
select is((select route from public.create_job(pg_temp.uid('alice'), 'no-row', '{"r": 2}')),
  null, 'a job created without a route has none (the worker routes it)');
select is(pg_temp.detail_of($$ select public.create_job(pg_temp.uid('alice'), 'no-row', '{"r": 3}', p_route => 'Open AI') $$),
  '{"message": "route must be a lowercase slug like \"openai\" (at most 31 characters)"}',
  'create_job refuses a route that is not a slug (PT400 invalid_argument)');
select is(pg_temp.error_of($$ select public.create_job(pg_temp.uid('alice'), 'no-row', '{"r": 3}', p_route => repeat('a', 32)) $$),
  'PT400 invalid_argument', 'and a route longer than 31 characters');
select results_eq(
  $$select route from public.create_jobs(jsonb_build_array(
      jsonb_build_object('user_id', pg_temp.uid('bob'), 'type', 'no-row', 'input', '{"r": 1}'::jsonb, 'route', 'openai'),
      jsonb_build_object('user_id', pg_temp.uid('bob'), 'type', 'no-row', 'input', '{"r": 2}'::jsonb, 'route', null),
      jsonb_build_object('user_id', pg_temp.uid('bob'), 'type', 'no-row', 'input', '{"r": 3}'::jsonb, 'route', 'in-function')))$$,
  $$values ('openai'), (null), ('in-function')$$,
  'create_jobs stores each element''s route');
select is(pg_temp.detail_of($$ select public.create_jobs(jsonb_build_array(
      jsonb_build_object('user_id', pg_temp.uid('bob'), 'type', 'no-row'),
      jsonb_build_object('user_id', pg_temp.uid('bob'), 'type', 'no-row', 'route', 'x_y'))) $$),
  '{"index": 1, "message": "job 1: route must be a lowercase slug like \"openai\" (at most 31 characters)"}',
  'create_jobs refuses an element whose route is not a slug, naming it');
select is(pg_temp.detail_of($$ select public.create_jobs(jsonb_build_array(
      jsonb_build_object('user_id', pg_temp.uid('bob'), 'type', 'no-row', 'route', 5))) $$),
  '{"index": 0, "message": "job 0: route must be a lowercase slug like \"openai\" (at most 31 characters)"}',
  'and a route that is not a string');

-- Timeouts -------------------------------------------------------------------------------------------

-- claim_jobs gives an attempt its deadline (20261203130100_type_caps.sql: claim time + the type's
-- timeout_seconds); the coalesce keeps this suite about rescue and heartbeat whichever way claim
-- sets it.
create function pg_temp.claim_one(p_type text, p_worker text, p_lease integer, p_timeout interval)
returns uuid language plpgsql as $$
declare
  v_job public.jobs;
begin
  select * into v_job from public.claim_jobs(p_worker, 1, p_lease, array[p_type]);
  perform pg_temp.clear_authentication();
  update public.jobs j set timeout_at = coalesce(j.timeout_at, j.started_at + p_timeout) where j.id = v_job.id;
  perform pg_temp.authenticate_as_service_role();
  return v_job.lease_token;
end $$;
grant execute on function pg_temp.claim_one(text, text, integer, interval) to service_role;

select id as slow from public.create_job(pg_temp.uid('alice'), 'slow', '{"n": 1}') \gset
select pg_temp.claim_one('slow', 'worker-stuck', 60, '30 seconds') as token \gset
select is((select timeout_at from public.jobs where id = :'slow'), pg_temp.t('30 seconds'),
  'the attempt of a type with a 30 s timeout must end by claim time + 30 s');

select pg_temp.travel_to(pg_temp.t('20 seconds'));
select is(pg_temp.error_of(format($$ select public.heartbeat_job(%L, %L, 10) $$, :'slow', :'token')),
  'no error', 'a heartbeat before the timeout is accepted (the lease now runs to t + 80 s)');
select pg_temp.travel_to(pg_temp.t('29 seconds'));
select is(public.rescue_jobs(), 0, 'an attempt within its timeout and lease is not rescued');

select pg_temp.travel_to(pg_temp.t('31 seconds'));
select is(pg_temp.detail_of(format($$ select public.heartbeat_job(%L, %L, 20) $$, :'slow', :'token')),
  format('{"status": "running", "reason": "timeout", "timeout_at": "%s", "timeout_seconds": 30,
           "message": "this worker no longer holds the lease on job %s (the attempt ran past its 30 s timeout)"}',
         to_jsonb(pg_temp.t('30 seconds')) #>> '{}', :'slow')::jsonb,
  'past its timeout, a heartbeat is refused as a lost lease (the worker stops), with the reason');
select is(pg_temp.error_of(format($$ select public.heartbeat_job(%L, %L, 20) $$, :'slow', :'token')),
  'PT409 lease_lost', 'with the lease_lost error every other lost lease gives');
select is((select array[progress::text, lease_expires_at::text] from public.jobs where id = :'slow'),
  array['10', pg_temp.t('80 seconds')::text], 'and the refused heartbeat changed nothing');
select is(public.rescue_jobs(), 1, 'rescue fails the attempt that ran past its timeout while its lease was valid');
select is(
  (select error - 'timeout_at' from public.jobs where id = :'slow'),
  '{"code": "timeout", "message": "the attempt ran past its 30 s timeout", "timeout_seconds": 30,
    "worker_id": "worker-stuck", "attempt": 1, "retryable": true, "dead": false}'::jsonb,
  'with code timeout, its limit, the worker, and a retry since attempts remain');
select ok((select status = 'pending' and lease_token is null
                  and run_at between pg_temp.t('31 seconds') + interval '2.5 seconds' and pg_temp.t('31 seconds') + interval '5 seconds'
           from public.jobs where id = :'slow'),
  'a timed-out attempt goes back to pending after the backoff, as an expired lease does');

select pg_temp.travel_to(pg_temp.t('1 minute'));
select pg_temp.claim_one('slow', 'worker-stuck', 600, '30 seconds') as token \gset
select pg_temp.travel_to(pg_temp.t('1 minute 31 seconds'));
select is(public.rescue_jobs(), 1, 'the second attempt times out too');
select is((select array[status::text, error ->> 'code', error ->> 'dead'] from public.jobs where id = :'slow'),
  array['failed', 'timeout', 'true'], 'and with its attempts spent the job is dead');
select is((select count(*) from public.notifications where job_id = :'slow'), 1::bigint,
  'its owner is told it failed');

-- A worker that stopped heartbeating before its timeout lost its lease: lease_expired, not timeout.
select id as gone from public.create_job(pg_temp.uid('alice'), 'slow', '{"n": 2}') \gset
select pg_temp.travel_to(pg_temp.t('2 minutes'));
select pg_temp.claim_one('slow', 'worker-gone', 10, '30 seconds') as token \gset
select pg_temp.travel_to(pg_temp.t('2 minutes 40 seconds'));
select is(public.rescue_jobs(), 1, 'an attempt past both its lease and its timeout is rescued once');
select is((select error ->> 'code' from public.jobs where id = :'gone'), 'lease_expired',
  'and named by the deadline that came first: the lease');

-- A job handed to a provider has no worker: its attempt's timeout no longer applies.
select id as ext from public.create_job(pg_temp.uid('alice'), 'slow-ext', '{"n": 4}') \gset
select pg_temp.travel_to(pg_temp.t('4 minutes'));
select pg_temp.claim_one('slow-ext', 'worker-ext', 600, '30 seconds') as token \gset
select from public.await_job(:'ext', :'token', 'replicate', 'pred-timeout-1', 600);
select pg_temp.travel_to(pg_temp.t('5 minutes'));
select is(public.rescue_jobs(), 0, 'a waiting job past its attempt''s timeout but within its callback deadline is left waiting');

-- Retention per type -----------------------------------------------------------------------------

-- finished(type, status) finishes a job of that type now, through the API.
create function pg_temp.finished(p_type text, p_status text) returns uuid language plpgsql as $$
declare
  v_id uuid := (public.create_job(pg_temp.uid('bob'), p_type, jsonb_build_object('s', p_status, 'r', random()))).id;
  v_token uuid;
begin
  if p_status = 'cancelled' then
    perform public.cancel_job(v_id);
    return v_id;
  end if;
  select c.lease_token into v_token from public.claim_jobs('worker-prune', 1, p_types => array[p_type]) c;
  if p_status = 'done' then
    perform public.complete_job(v_id, v_token, '{}');
  else
    perform public.fail_job(v_id, v_token, '{"message": "broken"}', false);
  end if;
  return v_id;
end $$;
grant execute on function pg_temp.finished(text, text) to service_role;
-- Only this section's jobs (the final rollback restores the rest).
select pg_temp.clear_authentication();
delete from public.jobs;
select pg_temp.authenticate_as_service_role();

select pg_temp.travel_to(pg_temp.t('10 days'));
select pg_temp.finished('brief', 'done') as brief_done_old, pg_temp.finished('brief', 'failed') as brief_failed_old,
       pg_temp.finished('brief', 'cancelled') as brief_cancelled_old,
       pg_temp.finished('kept', 'done') as kept_done, pg_temp.finished('kept', 'failed') as kept_failed,
       pg_temp.finished('no-row', 'done') as plain_done, pg_temp.finished('no-row', 'failed') as plain_failed \gset
select pg_temp.travel_to(pg_temp.t('10 days 01:30'));
select pg_temp.finished('brief', 'done') as brief_done_new, pg_temp.finished('brief', 'failed') as brief_failed_new \gset

-- At 10 days 02:10: the brief type's done jobs older than 1 hour and failed ones older than 2 go.
select pg_temp.travel_to(pg_temp.t('10 days 02:10'));
select is(public.prune_jobs(), 3, 'prune deletes the brief type''s jobs past its own retention, nothing else');
select is(
  array(select (case id when :'brief_done_new' then 'brief_done_new' when :'brief_failed_new' then 'brief_failed_new'
                        when :'kept_done' then 'kept_done' when :'kept_failed' then 'kept_failed'
                        when :'plain_done' then 'plain_done' when :'plain_failed' then 'plain_failed' end)
        from public.jobs order by 1),
  array['brief_done_new', 'brief_failed_new', 'kept_done', 'kept_failed', 'plain_done', 'plain_failed'],
  'a done job within its type''s retention_done (40 min) and a failed one within retention_failed (40 min of 2 h) are kept');
select pg_temp.travel_to(pg_temp.t('10 days 04:00'));
select is(public.prune_jobs(1), 1, 'a call still deletes at most p_limit jobs');
select is(public.prune_jobs(), 1, 'and the next call the rest that is due');

-- 15 days after they finished: plain done jobs (settings: 14 days) go, the kept type's stay.
select pg_temp.travel_to(pg_temp.t('25 days'));
select is(public.prune_jobs(), 1, 'past 14 days only the done job of a type without its own retention goes');
select ok(exists (select 1 from public.jobs where id = :'kept_done'),
  'a done job of a type that keeps 60 days is kept past the settings'' 14 days');
select pg_temp.travel_to(pg_temp.t('41 days'));
select is(public.prune_jobs(), 2,
  'past 30 days the failed jobs go, the kept type''s too: its retention_failed is null, so the settings'' hold');
select is(array(select id from public.jobs), array[:'kept_done'::uuid], 'leaving only the kept type''s done job');
select pg_temp.travel_to(pg_temp.t('71 days'));
select is(public.prune_jobs(), 1, 'which goes once its type''s 60 days have passed');

select * from finish();
rollback;
