-- Run history: every attempt of a job is kept (job_attempts) across automatic retries and
-- retry_job, with its worker, times, outcome, error and steps; get_job_run tells time queued, time
-- waiting for a media slot and time running apart; job_position puts a pending job in line.
-- Acted out by the workers and the sweep (service_role), alice and bob (authenticated) and anon.
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

select pg_temp.create_users('alice', 'bob', 'carol');
update spool.settings set backoff_base_seconds = 5, backoff_max_seconds = 3600, fair_slot = '1 second',
  max_running_per_user = 100, max_active_jobs_per_user = 100, max_jobs_per_minute_per_user = 1000;
select pg_temp.travel_to(pg_temp.t());
select pg_temp.authenticate_as_service_role();

-- A job that fails once, then succeeds ---------------------------------------------------------

select id as flaky from public.create_job(pg_temp.uid('alice'), 'roto', '{"n": 1}', 0, 3) \gset
select lease_token as tok from public.claim_jobs('worker-a', 1) \gset
select pg_temp.travel_to(pg_temp.t('1 second'));
select public.heartbeat_job(:'flaky', :'tok', 30, 'keying') is not null as beat \gset
select pg_temp.travel_to(pg_temp.t('2 seconds'));
select public.heartbeat_job(:'flaky', :'tok', 40, 'keying') is not null as beat \gset
select pg_temp.travel_to(pg_temp.t('3 seconds'));
select status as s from public.fail_job(:'flaky', :'tok', '{"message": "the model server said 503"}', true) \gset
select is(
  (select jsonb_build_object('attempt', attempt, 'run', run, 'worker', worker_id, 'claimed', claimed_at,
                             'started', started_at, 'ended', ended_at, 'outcome', outcome,
                             'retried', retried, 'message', error ->> 'message', 'steps', steps)
     from public.job_attempts where job_id = :'flaky'),
  jsonb_build_object('attempt', 1, 'run', 1, 'worker', 'worker-a', 'claimed', pg_temp.t(),
                     'started', pg_temp.t(), 'ended', pg_temp.t('3 seconds'), 'outcome', 'failed',
                     'retried', true, 'message', 'the model server said 503',
                     'steps', jsonb_build_array(jsonb_build_object('step', 'keying', 'progress', 30,
                                                                   'at', pg_temp.t('1 second')))),
  'a failed attempt is kept with its worker, times, outcome, error and its step (recorded once: the step did not change)');

select pg_temp.travel_to(pg_temp.t('1 minute'));
select lease_token as tok from public.claim_jobs('worker-b', 1) \gset
select pg_temp.travel_to(pg_temp.t('1 minute 2 seconds'));
select count(*) as n from public.complete_jobs(jsonb_build_array(
  jsonb_build_object('id', :'flaky', 'lease_token', :'tok', 'output', '{"report": {"peak": 0.9}}'))) \gset
select results_eq(
  format($$select attempt, worker_id, outcome, retried from public.job_attempts where job_id = %L order by attempt$$, :'flaky'),
  $$values (1, 'worker-a', 'failed', true), (2, 'worker-b', 'done', false)$$,
  'the retry after backoff is a second attempt by its own worker, and completing it closes it as done');
select ok((select a.ready_at = j.run_at and a.ready_at > pg_temp.t('3 seconds')
           from public.job_attempts a join public.jobs j on j.id = a.job_id
           where a.job_id = :'flaky' and a.attempt = 2),
  'the second attempt was ready at the end of its backoff (the job''s run_at), not at the job''s creation');

select pg_temp.authenticate_as('alice');
select is(
  (select jsonb_build_object('outcomes', (select jsonb_agg(a -> 'outcome') from jsonb_array_elements(r -> 'attempts') a),
                             'first_error', r -> 'attempts' -> 0 -> 'error' ->> 'message',
                             'status', r -> 'job' ->> 'status',
                             'worker_id_hidden', r -> 'job' -> 'worker_id' = 'null'::jsonb,
                             'worker_label', r -> 'attempts' -> 0 ->> 'worker' ~ '^worker [0-9a-f]{6}$',
                             'running_ms', r -> 'timings' -> 'running_ms')
     from public.get_job_run(:'flaky') r),
  jsonb_build_object('outcomes', '["failed", "done"]'::jsonb, 'first_error', 'the model server said 503',
                     'status', 'done', 'worker_id_hidden', true, 'worker_label', true, 'running_ms', 5000),
  'get_job_run shows alice both attempts with their outcomes, the first one''s error, worker labels instead of worker ids, and 3 s + 2 s running');
select pg_temp.authenticate_as_service_role();

-- History survives retry_job -----------------------------------------------------------------------

select pg_temp.travel_to(pg_temp.t('2 minutes'));
select id as once from public.create_job(pg_temp.uid('alice'), 'roto', '{"n": 2}', 0, 1) \gset
select lease_token as tok from public.claim_jobs('worker-c', 1) \gset
select status as s from public.fail_job(:'once', :'tok', '{"message": "flaky network"}', true) \gset
select pg_temp.authenticate_as('alice');
select status as s from public.retry_job(:'once') \gset
select pg_temp.authenticate_as_service_role();
select pg_temp.travel_to(pg_temp.t('2 minutes 10 seconds'));
select lease_token as tok from public.claim_jobs('worker-d', 1) \gset
select results_eq(
  format($$select attempt, run, outcome, retried from public.job_attempts where job_id = %L order by attempt$$, :'once'),
  $$values (1, 1, 'failed'::text, false), (2, 2, null, null)$$,
  'after retry_job the first run''s attempt is still there (failed, not retried automatically) and the new claim is attempt 2 of run 2');
select is(
  (select jsonb_build_object('attempts', jsonb_array_length(r -> 'attempts'), 'runs', jsonb_array_length(r -> 'runs'),
                             'queued_ms', r -> 'timings' -> 'queued_ms')
     from public.get_job_run(:'once') r),
  '{"attempts": 2, "runs": 1, "queued_ms": 10000}'::jsonb,
  'get_job_run lists both attempts and the archived run, and counts the 10 s the retried job waited in line');
select status as s from public.complete_jobs(jsonb_build_array(
  jsonb_build_object('id', :'once', 'lease_token', :'tok'))) s(status) \gset

-- A lease that expired, and a timeout ----------------------------------------------------------------

select pg_temp.travel_to(pg_temp.t('3 minutes'));
select id as lost from public.create_job(pg_temp.uid('alice'), 'roto', '{"n": 3}', 0, 3) \gset
select lease_token as tok from public.claim_jobs('worker-e', 1, 30) \gset
select pg_temp.travel_to(pg_temp.t('3 minutes 31 seconds'));
select is(public.rescue_jobs(), 1, 'the sweep rescues the job whose worker stopped heartbeating');
select is(
  (select jsonb_build_object('outcome', outcome, 'retried', retried, 'code', error ->> 'code', 'ended', ended_at)
     from public.job_attempts where job_id = :'lost'),
  jsonb_build_object('outcome', 'lease_expired', 'retried', true, 'code', 'lease_expired', 'ended', pg_temp.t('3 minutes 31 seconds')),
  'the rescued attempt ends as lease_expired, and the job will be retried');
select status as s from public.cancel_job(:'lost') \gset

select pg_temp.travel_to(pg_temp.t('4 minutes'));
select id as slow from public.create_job(pg_temp.uid('alice'), 'roto', '{"n": 4}', 0, 1) \gset
select lease_token as tok, timeout_at as deadline from public.claim_jobs('worker-f', 1, 3600) \gset
select pg_temp.travel_to(:'deadline'::timestamptz + interval '1 second');
select is(public.rescue_jobs(), 1, 'the sweep rescues the job that ran past its timeout');
select is(
  (select jsonb_build_object('outcome', outcome, 'retried', retried, 'code', error ->> 'code')
     from public.job_attempts where job_id = :'slow'),
  '{"outcome": "timed_out", "retried": false, "code": "timeout"}'::jsonb,
  'an attempt that ran past its timeout ends as timed_out (its last: the job failed)');

-- Waiting for a media slot is not running -------------------------------------------------------------

select pg_temp.travel_to(pg_temp.t('1 hour'));
select id as media from public.create_job(pg_temp.uid('alice'), 'audio-clean', '{"n": 5}', 0, 3) \gset
select pg_temp.travel_to(pg_temp.t('1 hour 1 second'));
select lease_token as tok from public.claim_jobs('worker-g', 1) \gset
select public.heartbeat_job(:'media', :'tok', 0, 'queued') is not null as beat \gset
select is((select started_at from public.job_attempts where job_id = :'media'), null,
  'an attempt whose worker waits for a media slot (step queued) has not started');
select pg_temp.travel_to(pg_temp.t('1 hour 18 seconds'));
select public.heartbeat_job(:'media', :'tok', 0, 'queued') is not null as beat \gset
select public.heartbeat_job(:'media', :'tok', 15, 'decoding') is not null as beat \gset
select pg_temp.travel_to(pg_temp.t('1 hour 22.7 seconds'));
select count(*) as n from public.complete_jobs(jsonb_build_array(
  jsonb_build_object('id', :'media', 'lease_token', :'tok'))) \gset
select pg_temp.authenticate_as('alice');
select is(
  (select jsonb_build_object('timings', r -> 'timings', 'started', r -> 'attempts' -> 0 -> 'started_at',
                             'steps', (select jsonb_agg(s -> 'step') from jsonb_array_elements(r -> 'attempts' -> 0 -> 'steps') s))
     from public.get_job_run(:'media') r),
  jsonb_build_object(
    'timings', '{"queued_ms": 1000, "waiting_for_slot_ms": 17000, "running_ms": 4700, "total_ms": 22700}'::jsonb,
    'started', to_jsonb(pg_temp.t('1 hour 18 seconds')), 'steps', '["queued", "decoding"]'::jsonb),
  'a job that waited 17 s for a media slot ran for 4.7 s, not 21.7 s: queued, waiting and running are told apart');
select pg_temp.authenticate_as_service_role();

-- Cancelled while running --------------------------------------------------------------------------

select pg_temp.travel_to(pg_temp.t('2 hours'));
select id as stopped from public.create_job(pg_temp.uid('alice'), 'roto', '{"n": 6}', 0, 3) \gset
select lease_token as tok from public.claim_jobs('worker-h', 1) \gset
select pg_temp.travel_to(pg_temp.t('2 hours 5 seconds'));
select pg_temp.authenticate_as('alice');
select status as s from public.cancel_job(:'stopped') \gset
select pg_temp.authenticate_as_service_role();
select is(
  (select jsonb_build_object('outcome', outcome, 'retried', retried, 'ended', ended_at)
     from public.job_attempts where job_id = :'stopped'),
  jsonb_build_object('outcome', 'cancelled', 'retried', false, 'ended', pg_temp.t('2 hours 5 seconds')),
  'cancelling a running job ends its attempt as cancelled');

-- Handed to a provider -------------------------------------------------------------------------------

select pg_temp.travel_to(pg_temp.t('2 hours 10 minutes'));
select id as handed from public.create_job(pg_temp.uid('alice'), 'roto', '{"n": 13}', 0, 3) \gset
select lease_token as tok from public.claim_jobs('worker-p', 1) \gset
select status as s from public.await_job(:'handed', :'tok', 'replicate', 'pred-31', 600) \gset
select is(
  (select jsonb_build_object('open', ended_at is null, 'last_step', steps -> -1 ->> 'step')
     from public.job_attempts where job_id = :'handed'),
  '{"open": true, "last_step": "waiting for replicate"}'::jsonb,
  'a job handed to a provider keeps its attempt open, with the hand-off as a step');
select pg_temp.travel_to(pg_temp.t('2 hours 11 minutes'));
select status as s from public.resume_job('replicate', 'pred-31', 'done', '{"ok": true}') \gset
select status as s from public.resume_job('replicate', 'pred-31', 'done', '{"ok": true}') \gset
select is(
  (select jsonb_build_object('outcome', outcome, 'ended', ended_at) from public.job_attempts where job_id = :'handed'),
  jsonb_build_object('outcome', 'done', 'ended', pg_temp.t('2 hours 11 minutes')),
  'the provider''s answer closes the attempt as done, once (a duplicate webhook changes nothing)');

-- Owners only ----------------------------------------------------------------------------------------

select pg_temp.authenticate_as('bob');
select is_empty($$select 1 from public.job_attempts$$, 'bob sees none of alice''s attempts');
select is(pg_temp.error_of(format('select public.get_job_run(%L)', :'flaky')), 'PT404 job_not_found',
  'get_job_run of another user''s job is a 404');
select is(pg_temp.error_of(format('select public.job_position(%L)', :'flaky')), 'PT404 job_not_found',
  'job_position of another user''s job is a 404');
select pg_temp.authenticate_as('alice');
select is((select count(*)::int from public.job_attempts), 9, 'alice sees her own nine attempts');
select is(pg_temp.error_of('select worker_id from public.job_attempts'), '42501 -',
  'owners cannot read worker ids from job_attempts (they stay server-side, as on jobs)');
select is(pg_temp.error_of(format(
  'insert into public.job_attempts (job_id, attempt, run, user_id, ready_at, claimed_at) values (%L, 9, 1, %L, now(), now())',
  :'flaky', pg_temp.uid('alice'))), '42501 -', 'owners cannot write attempts');
select pg_temp.authenticate_as_service_role();
select is(pg_temp.error_of(format('update public.job_attempts set outcome = ''done'' where job_id = %L', :'flaky')),
  '42501 -', 'service_role cannot write attempts directly either: only the API does');
select pg_temp.clear_authentication();

-- Position in line -----------------------------------------------------------------------------------

select pg_temp.authenticate_as_service_role();
select pg_temp.travel_to(pg_temp.t('3 hours'));
select id as b1 from public.create_job(pg_temp.uid('bob'), 'roto', '{"n": 7}') \gset
select id as b2 from public.create_job(pg_temp.uid('bob'), 'roto', '{"n": 8}') \gset
-- A moment apart, so no two fair turns tie (a tie would fall to the ids' random bits).
select pg_temp.travel_to(pg_temp.t('3 hours 100 milliseconds'));
select id as c1 from public.create_job(pg_temp.uid('carol'), 'roto', '{"n": 9}') \gset
select pg_temp.travel_to(pg_temp.t('3 hours 200 milliseconds'));
select id as a1 from public.create_job(pg_temp.uid('alice'), 'roto', '{"n": 10}') \gset
select id as urgent from public.create_job(pg_temp.uid('alice'), 'roto', '{"n": 11}', 5) \gset
select id as later from public.create_job(pg_temp.uid('carol'), 'roto', '{"n": 12}', 10, 3, pg_temp.t('4 hours')) \gset
select results_eq(
  format($$select (public.job_position(id) ->> 'position')::int from unnest(array[%L, %L, %L, %L, %L]::uuid[]) with ordinality u(id, n) order by n$$,
         :'urgent', :'b1', :'c1', :'a1', :'b2'),
  $$values (1), (2), (3), (4), (5)$$,
  'positions follow claim order: priority first, then fair turns across owners (bob''s second job after carol''s and alice''s first)');
select is(
  (select p -> 'position' from public.job_position(:'later') p), 'null'::jsonb,
  'a job not runnable yet (run_at ahead) is not in line');
select lease_token as tok, id as claimed from public.claim_jobs('worker-i', 1) \gset
select is(:'claimed'::uuid, :'urgent'::uuid, 'the job in position 1 is the one the next claim takes');
select is((public.job_position(:'b2') ->> 'position')::int, 4, 'the others move up as jobs are claimed');
select pg_temp.travel_to(pg_temp.t('3 hours 2.2 seconds'));
select count(*) as n from public.complete_jobs(jsonb_build_array(
  jsonb_build_object('id', :'urgent', 'lease_token', :'tok'))) \gset
select is(
  (select jsonb_build_object('ahead', p -> 'ahead', 'start_ms', p -> 'start_ms', 'estimate_ms', p -> 'estimate_ms',
                             'basis', p ->> 'basis' like '%roto%')
     from public.job_position(:'b1') p),
  '{"ahead": 0, "start_ms": 0, "estimate_ms": 2000, "basis": true}'::jsonb,
  'the next job in line starts now and should take about as long as the last roto attempt (2 s), and says so');

-- Privileges -----------------------------------------------------------------------------------------

select pg_temp.clear_authentication();
set local role anon;
select throws_ok(format('select public.get_job_run(%L)', :'flaky'), '42501',
  'permission denied for function get_job_run', 'anon cannot read a run');
select throws_ok(format('select public.job_position(%L)', :'flaky'), '42501',
  'permission denied for function job_position', 'anon cannot ask for a position');
select throws_ok('select 1 from public.job_attempts', '42501',
  'permission denied for table job_attempts', 'anon cannot read attempts');
reset role;

select * from finish();
rollback;
