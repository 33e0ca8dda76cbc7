-- retry_job as a run like any other: retries count against the owner's jobs-per-minute rate, a
-- permanent failure is not retried unchanged, and a retried job keeps its attempts and the
-- history of its earlier runs (no error of an earlier run on a job that ends done).
-- Acted out by alice (authenticated) and the workers (service_role).
begin;
select plan(22);

-- Helpers for acting out behaviour, temporary so they vanish with the session:
--   uid(name) / create_users(names) named test users with fixed uuids, inserted into auth.users
--   authenticate_as(name)           act as that user (role authenticated, their JWT claims)
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
-- fail_all(type, retryable): the workers claim every pending job of that type and fail each attempt.
create function pg_temp.fail_all(p_type text, p_retryable boolean) returns integer language plpgsql as $$
declare
  v_job public.jobs;
  v_n integer := 0;
begin
  for v_job in select * from public.claim_jobs('worker-1', 1000, p_types => array[p_type]) loop
    perform public.fail_job(v_job.id, v_job.lease_token, '{"code": "provider_error", "message": "provider timed out"}', p_retryable);
    v_n := v_n + 1;
  end loop;
  return v_n;
end $$;
grant execute on all functions in schema pg_temp to authenticated, service_role;

select pg_temp.create_users('alice');
update spool.settings set max_running_per_user = 1000, max_active_jobs_per_user = 1000;

-- Retries count against the rate ----------------------------------------------------------------------

-- 61 image jobs, created 2 s apart (never more than 30 a minute), each failed for good after its
-- one attempt with a retryable error (the provider timed out).
select pg_temp.authenticate_as_service_role();
do $$
begin
  for i in 0..60 loop
    perform pg_temp.travel_to(pg_temp.t(make_interval(secs => 2 * i)));
    perform public.create_job(pg_temp.uid('alice'), 'image', jsonb_build_object('prompt', 'cat ' || i), 0, 1);
  end loop;
end $$;
select pg_temp.travel_to(pg_temp.t('3 minutes'));
select is(pg_temp.fail_all('image', true), 61, 'the workers fail all 61 image jobs (out of attempts)');

-- Ten minutes later, with nothing created in the last minute, alice retries them one by one.
select pg_temp.travel_to(pg_temp.t('10 minutes'));
select pg_temp.authenticate_as('alice');
create temp table tests_failed on commit drop as
  select id, row_number() over (order by id) as n from public.jobs where status = 'failed';
grant select on tests_failed to authenticated, service_role;
select is(
  (with first60 as materialized (select id from tests_failed where n <= 60 order by n),
        retried as materialized (select (public.retry_job(f.id)).status from first60 f)
   select count(*) from retried where status = 'pending'),
  60::bigint, '60 retries within a minute are accepted (60 allowed per minute)');
select is(pg_temp.error_of(format('select public.retry_job(%L)', (select id from tests_failed where n = 61))),
  'PT429 quota_rate', 'the 61st retry within the minute is refused: 429 quota_rate');
select is(
  pg_temp.detail_of(format('select public.retry_job(%L)', (select id from tests_failed where n = 61)))
    - 'message',
  '{"created_last_minute": 0, "retried_last_minute": 60, "limit": 60, "retry_after_seconds": 60}'::jsonb,
  'the refusal says the retries filled the minute');
select is((select status from public.jobs where id = (select id from tests_failed where n = 61)),
  'failed'::public.job_status, 'a retry refused by the rate leaves the job failed');
select pg_temp.authenticate_as_service_role();
select is(pg_temp.error_of(format('select public.create_job(%L, %L, %L)', pg_temp.uid('alice'), 'image', '{"prompt": "dog"}')),
  'PT429 quota_rate', 'retries and creations share one rate: creating a job in that minute is refused too');
select pg_temp.authenticate_as('alice');
select is(pg_temp.error_of(format('select public.retry_job(%L)', (select id from tests_failed where n = 1))),
  'no error', 'retrying a job that is already pending is accepted and counts nothing');
select pg_temp.travel_to(pg_temp.t('11 minutes 1 second'));
select is((select status from public.retry_job((select id from tests_failed where n = 61))),
  'pending'::public.job_status, 'a minute later the 61st retry is accepted');
select pg_temp.clear_authentication();
select is((select count(*) from spool.retries where user_id = pg_temp.uid('alice')), 1::bigint,
  'the retry ledger keeps only the last minute');

-- A permanent failure is not retried unchanged ---------------------------------------------------------

update spool.settings set max_jobs_per_minute_per_user = 1000;
select pg_temp.travel_to(pg_temp.t('20 minutes'));
select pg_temp.authenticate_as_service_role();
select id as refused from public.create_job(pg_temp.uid('alice'), 'upscale', '{"prompt": "nsfw"}') \gset
select lease_token as token from public.claim_jobs('worker-1', 1, p_types => array['upscale']) \gset
select from public.fail_job(:'refused', :'token', '{"code": "content_policy", "message": "the provider refused the prompt"}', false);
select id as broken from public.create_job(pg_temp.uid('alice'), 'color-grade',
  jsonb_build_object('input_path', pg_temp.uid('alice') || '/broken.png')) \gset
select lease_token as token from public.claim_jobs('worker-1', 1, p_types => array['color-grade']) \gset
select from public.fail_job(:'broken', :'token', '{"code": "corrupt_image", "message": "the PNG could not be decoded"}', false);
select id as dead from public.create_job(pg_temp.uid('alice'), 'roto', '{"n": 1}', 0, 1) \gset
select lease_token as token from public.claim_jobs('worker-1', 1, p_types => array['roto']) \gset
select from public.fail_job(:'dead', :'token', '{"message": "worker crashed"}', true);

select pg_temp.travel_to(pg_temp.t('21 minutes'));
select pg_temp.authenticate_as('alice');
select is(pg_temp.error_of(format('select public.retry_job(%L)', :'refused')), 'PT409 not_retryable',
  'a job that failed permanently cannot be retried: 409 not_retryable');
select is(
  pg_temp.detail_of(format('select public.retry_job(%L)', :'refused')),
  '{"reason": "content_policy", "message": "this job failed permanently (content_policy: the provider refused the prompt), so retrying it unchanged would fail the same way; start a new job with a different input", "input_path": null}'::jsonb,
  'the refusal says why, with the failure''s code');
select is((select jsonb_build_object('status', status, 'attempts', attempts, 'code', error ->> 'code')
           from public.jobs where id = :'refused'),
  '{"status": "failed", "attempts": 1, "code": "content_policy"}'::jsonb,
  'the refused job stays failed with its error');
select pg_temp.authenticate_as_service_role();
select is(pg_temp.error_of(format('select public.retry_job(%L)', :'refused')), 'PT409 not_retryable',
  'service_role cannot retry a permanent failure unchanged either');
select is((select status from public.retry_job(:'dead')), 'pending'::public.job_status,
  'a job that ran out of attempts after retryable errors may be retried');

-- The broken file's job: refused while its input is the file it failed on, accepted once replaced.
select pg_temp.clear_authentication();
insert into storage.objects (bucket_id, name, owner, created_at, updated_at)
values ('inputs', pg_temp.uid('alice') || '/broken.png', pg_temp.uid('alice'), pg_temp.t('19 minutes'), pg_temp.t('19 minutes'));
select pg_temp.authenticate_as('alice');
select is(pg_temp.error_of(format('select public.retry_job(%L)', :'broken')), 'PT409 not_retryable',
  'a permanent failure on a file is refused while the file is the one it failed on');
select is(pg_temp.detail_of(format('select public.retry_job(%L)', :'broken')) ->> 'message',
  'this job failed permanently (corrupt_image: the PNG could not be decoded), so retrying it unchanged would fail the same way; replace its input file first, or start a new job',
  'the refusal tells the owner to replace the file');
select pg_temp.clear_authentication();
-- Replaced as a delete and a new upload (the Storage API allows its own deletes).
set local storage.allow_delete_query = 'true';
delete from storage.objects where bucket_id = 'inputs' and name = pg_temp.uid('alice') || '/broken.png';
reset storage.allow_delete_query;
insert into storage.objects (bucket_id, name, owner, created_at, updated_at)
values ('inputs', pg_temp.uid('alice') || '/broken.png', pg_temp.uid('alice'), pg_temp.t('20 minutes 30 seconds'), pg_temp.t('20 minutes 30 seconds'));
select pg_temp.authenticate_as('alice');
select is((select status from public.retry_job(:'broken')), 'pending'::public.job_status,
  'once the owner replaced the input file, the job may be retried');

-- Attempt history; no stale error -------------------------------------------------------------------

select pg_temp.travel_to(pg_temp.t('30 minutes'));
select pg_temp.authenticate_as_service_role();
select id as flaky from public.create_job(pg_temp.uid('alice'), 'audio-clean', '{"n": 2}', 0, 2) \gset
select pg_temp.fail_all('audio-clean', true);
select pg_temp.travel_to(pg_temp.t('40 minutes'));
select pg_temp.fail_all('audio-clean', true);
select pg_temp.travel_to(pg_temp.t('41 minutes'));
select pg_temp.authenticate_as('alice');
select is(
  (select jsonb_build_object('status', status, 'attempts', attempts, 'max_attempts', max_attempts,
                             'error', error, 'history', history)
   from public.retry_job(:'flaky')),
  jsonb_build_object('status', 'pending', 'attempts', 2, 'max_attempts', 4, 'error', null,
    'history', jsonb_build_array(jsonb_build_object(
      'status', 'failed', 'attempts', 2, 'max_attempts', 2,
      'error', '{"code": "provider_error", "message": "provider timed out", "attempt": 2, "retryable": true, "dead": true}'::jsonb,
      'started_at', pg_temp.t('40 minutes'), 'finished_at', pg_temp.t('40 minutes'),
      'retried_at', pg_temp.t('41 minutes')))),
  'a retry keeps the attempts made, allows the run''s two more, and moves the run''s error into history');

select pg_temp.authenticate_as_service_role();
select pg_temp.fail_all('audio-clean', true);
select ok((select run_at between pg_temp.t('41 minutes 2.5 seconds') and pg_temp.t('41 minutes 5 seconds')
           from public.jobs where id = :'flaky'),
  'backoff after the retried run''s first failure is the first step again (5 s base, equal jitter)');
select is((select jsonb_build_object('status', status, 'attempts', attempts, 'attempt', error -> 'attempt')
           from public.jobs where id = :'flaky'),
  '{"status": "pending", "attempts": 3, "attempt": 3}'::jsonb,
  'the new run''s failure is counted as the job''s third attempt');
select pg_temp.travel_to(pg_temp.t('42 minutes'));
select lease_token as token from public.claim_jobs('worker-1', 1, p_types => array['audio-clean']) \gset
select from public.complete_job(:'flaky', :'token', '{"files": []}');
select is((select jsonb_build_object('status', status, 'attempts', attempts, 'error', error,
                                     'runs', jsonb_array_length(history))
           from public.jobs where id = :'flaky'),
  '{"status": "done", "attempts": 4, "error": null, "runs": 1}'::jsonb,
  'the job ends done with no error of an earlier attempt, its earlier run kept in history');

-- History is bounded: the last 20 runs.
select pg_temp.clear_authentication();
update public.jobs set history = (select jsonb_agg(jsonb_build_object('attempts', 0, 'n', i)) from generate_series(1, 20) i)
 where id = :'dead';
select pg_temp.authenticate_as_service_role();
select pg_temp.fail_all('roto', true);
select is((select jsonb_build_object('runs', jsonb_array_length(history), 'first', history -> 0 -> 'n',
                                     'last', history -> -1 -> 'status')
           from public.retry_job(:'dead')),
  '{"runs": 20, "first": 2, "last": "failed"}'::jsonb,
  'history keeps the last 20 runs, dropping the oldest');

select * from finish();
rollback;
