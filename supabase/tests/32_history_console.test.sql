-- History that scales and the operations console: list_jobs (filters, search, keyset pages, the
-- owner's view), cancel_jobs / retry_jobs by filter (counts, refusals, the rate quota stops a
-- bulk retry), job_series (per-minute buckets, run time apart from queue wait) and
-- queue_diagnosis (why pending jobs do not run). Acted out by alice and bob (authenticated), the
-- console (service_role) and the test clock (spool.now).
begin;
select plan(47);

-- Helpers, temporary (see 20_retry_quotas.test.sql for the same set):
--   uid(name) / create_users(names)  named test users with fixed uuids
--   authenticate_as(name) / authenticate_as_service_role() / clear_authentication()
--   t(offset) / travel_to(at)        the test clock: 2030-01-01 00:00 UTC + offset
--   error_of(sql)                    '<SQLSTATE> <HINT>' of the error sql raises, or 'no error'
--   job(user, type, status, input, created)  a job row as the SQL API would leave it in `status`
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
create function pg_temp.job(p_user text, p_type text, p_status public.job_status, p_input jsonb,
                            p_created timestamptz, p_error jsonb default null) returns uuid
language sql as $$
  insert into public.jobs (user_id, type, status, input, created_at, run_at, started_at, finished_at,
                           worker_id, lease_token, lease_expires_at, error, attempts, updated_at)
  values (pg_temp.uid(p_user), p_type, p_status, p_input, p_created, p_created,
          case when p_status <> 'pending' then p_created + interval '2 seconds' end,
          case when p_status in ('done', 'failed', 'cancelled') then p_created + interval '5 seconds' end,
          case when p_status = 'running' then 'w1' end,
          case when p_status = 'running' then gen_random_uuid() end,
          case when p_status = 'running' then p_created + interval '1 hour' end,
          p_error, case when p_status = 'pending' then 0 else 1 end, p_created)
  returning id
$$;
grant execute on all functions in schema pg_temp to authenticated, service_role;

select pg_temp.create_users('alice', 'bob');
update spool.settings set max_running_per_user = 1000, max_active_jobs_per_user = 1000,
                          max_jobs_per_minute_per_user = 1000;
select pg_temp.travel_to(pg_temp.t());

-- alice: 30 jobs, one a minute back from now, newest (n = 1) to oldest (n = 30).
--   n % 3 = 0 failed (permanently when n % 6 = 0), n % 5 = 0 cancelled, n % 7 = 0 pending,
--   one running (n = 2), the rest done. Types alternate colour grade / image (a prompt).
create temp table alice_jobs as
select n, pg_temp.job('alice',
         case when n % 2 = 0 then 'color-grade' else 'image' end,
         case when n = 2 then 'running' when n % 7 = 0 then 'pending' when n % 5 = 0 then 'cancelled'
              when n % 3 = 0 then 'failed' else 'done' end::public.job_status,
         case when n % 2 = 0
              then jsonb_build_object('input_path', pg_temp.uid('alice') || '/mx5snp22-Harbour_' || n || '.png')
              else jsonb_build_object('prompt', 'A lighthouse, take ' || n) end,
         pg_temp.t(- make_interval(mins => n)),
         case when n % 3 = 0 and n % 5 <> 0 and n % 7 <> 0
              then jsonb_build_object('code', 'boom', 'message', 'boom ' || n, 'retryable', n % 6 <> 0) end) as id
from generate_series(1, 30) n;
grant select on alice_jobs to authenticated, service_role;
select pg_temp.job('bob', 'color-grade', 'pending', jsonb_build_object('input_path', pg_temp.uid('bob') || '/harbour.png'), pg_temp.t('-1 minute'));
select pg_temp.job('bob', 'color-grade', 'failed', '{}', pg_temp.t('-2 minutes'), '{"code":"boom","message":"boom","retryable":true}');

-- ---------------------------------------------------------------------------------------------
-- Who may call what
-- ---------------------------------------------------------------------------------------------
select ok(has_function_privilege('authenticated', 'public.list_jobs(public.job_status[],text[],timestamptz,timestamptz,text,uuid,uuid,timestamptz,uuid,integer)', 'execute')
          and has_function_privilege('authenticated', 'public.cancel_jobs(public.job_status[],text[],timestamptz,timestamptz,text,uuid,uuid,boolean)', 'execute')
          and has_function_privilege('authenticated', 'public.retry_jobs(public.job_status[],text[],timestamptz,timestamptz,text,uuid,uuid,boolean)', 'execute'),
  'users may list, cancel and retry their jobs by filter');
select ok(not has_function_privilege('authenticated', 'public.job_series(integer)', 'execute')
          and not has_function_privilege('authenticated', 'public.queue_diagnosis()', 'execute')
          and has_function_privilege('service_role', 'public.job_series(integer)', 'execute')
          and has_function_privilege('service_role', 'public.queue_diagnosis()', 'execute'),
  'the console''s series and diagnosis are for service_role only');
select ok(not has_function_privilege('anon', 'public.list_jobs(public.job_status[],text[],timestamptz,timestamptz,text,uuid,uuid,timestamptz,uuid,integer)', 'execute'),
  'anon may not list jobs');

-- ---------------------------------------------------------------------------------------------
-- list_jobs as alice
-- ---------------------------------------------------------------------------------------------
select pg_temp.authenticate_as('alice');
select is(array(select id from public.list_jobs(p_limit => 5)),
          array(select id from alice_jobs where n <= 5 order by n),
          'a page is the newest jobs first');
select is((select count(*)::integer from public.list_jobs(p_limit => 100)), 30, 'alice sees her 30 jobs, none of bob''s');
select is((select count(*)::integer from public.list_jobs(p_limit => 100) where lease_token is not null or worker_id is not null), 0,
          'server-only columns (lease, worker) are null in the owner''s view');
select is((select user_id from public.list_jobs(p_limit => 1)), pg_temp.uid('alice'), 'the owner''s view keeps user_id');
select is(array(select id from public.list_jobs(p_statuses => '{failed}', p_limit => 100)),
          array(select id from alice_jobs where n % 3 = 0 and n % 5 <> 0 and n % 7 <> 0 order by n),
          'a status filter');
select is(array(select id from public.list_jobs(p_statuses => '{failed,cancelled}', p_types => '{color-grade}', p_limit => 100)),
          array(select id from alice_jobs where n % 2 = 0 and n % 7 <> 0 and (n % 5 = 0 or n % 3 = 0) order by n),
          'statuses and a type together');
select is(array(select id from public.list_jobs(p_created_from => pg_temp.t('-10 minutes'), p_created_before => pg_temp.t('-4 minutes'), p_limit => 100)),
          array(select id from alice_jobs where n between 5 and 10 order by n),
          'a date range: from inclusive, before exclusive');
select is(array(select id from public.list_jobs(p_search => 'HARBOUR_12', p_limit => 100)),
          array(select id from alice_jobs where n = 12),
          'search by file name, case-insensitive');
select is((select count(*)::integer from public.list_jobs(p_search => pg_temp.uid('alice')::text, p_limit => 100)), 0,
          'the owner''s folder is not part of the file name');
select is(array(select id from public.list_jobs(p_search => 'lighthouse, take 2', p_limit => 100)),
          array(select id from alice_jobs where n in (21, 23, 25, 27, 29) order by n),
          'search by prompt (here a prefix of several)');
select is((select count(*)::integer from public.list_jobs(p_search => '_%', p_limit => 100)), 0,
          'LIKE wildcards in a search are taken literally');
select is((select count(*)::integer from public.list_jobs(p_search => 'harbour', p_limit => 100)), 15,
          'bob''s harbour.png is not in alice''s search');
select pg_temp.clear_authentication();
select is((select text from spool.job_search where job_id = (select id from alice_jobs where n = 12)), 'mx5snp22-harbour_12.png ',
          'a new job''s search text is written once, when it is created: the file name, lower case');
select pg_temp.authenticate_as('alice');

-- Keyset pages: walking the cursor visits every job once, in order.
create temp table walked (k serial, id uuid);
grant all on walked, walked_k_seq to authenticated;
do $$
declare
  v_at timestamptz;
  v_id uuid;
  v_n integer;
begin
  loop
    insert into walked (id)
    select p.id from public.list_jobs(p_cursor_created_at => v_at, p_cursor_id => v_id, p_limit => 7) p
    order by p.created_at desc, p.id desc;
    get diagnostics v_n = row_count;
    exit when v_n < 7;
    select w.id, j.created_at into v_id, v_at from walked w join public.list_jobs(p_limit => 100) j on j.id = w.id
    order by w.k desc limit 1;
  end loop;
end $$;
select is(array(select id from walked order by k), array(select id from alice_jobs order by n),
          'pages of 7 along the cursor visit all 30 jobs once, newest first');
select is(pg_temp.error_of('select * from public.list_jobs(p_limit => 0)'), 'PT400 invalid_argument', 'a limit of 0 is refused');
select is(pg_temp.error_of('select * from public.list_jobs(p_cursor_id => gen_random_uuid())'), 'PT400 invalid_argument',
          'half a cursor is refused');
select is(pg_temp.error_of($$select * from public.list_jobs(p_created_from => '2030-01-02', p_created_before => '2030-01-01')$$),
          'PT400 invalid_argument', 'a date range that ends before it starts is refused');
select is(pg_temp.error_of(format('select * from public.list_jobs(p_user_id => %L)', pg_temp.uid('bob'))), 'PT403 forbidden',
          'a user may not list another user''s jobs');

-- ---------------------------------------------------------------------------------------------
-- list_jobs as the console (service_role)
-- ---------------------------------------------------------------------------------------------
select pg_temp.authenticate_as_service_role();
select is((select count(*)::integer from public.list_jobs(p_limit => 100)), 32, 'the console sees every user''s jobs');
select is((select count(*)::integer from public.list_jobs(p_search => 'harbour', p_limit => 100)), 16, 'and searches them all');
select is(array(select id from public.list_jobs(p_user_id => pg_temp.uid('bob'), p_statuses => '{failed}')),
          array(select id from public.jobs where user_id = pg_temp.uid('bob') and status = 'failed'),
          'or one user''s, with filters');
select isnt((select count(*)::integer from public.list_jobs(p_statuses => '{running}') where lease_token is not null), 0,
          'service_role reads whole rows');

-- ---------------------------------------------------------------------------------------------
-- cancel_jobs / retry_jobs as alice
-- ---------------------------------------------------------------------------------------------
select pg_temp.authenticate_as('alice');
select is(public.cancel_jobs(p_statuses => '{pending}', p_types => '{image}', p_dry_run => true) - 'reasons',
          jsonb_build_object('matched', 2, 'changed', 0, 'refused', '{}'::jsonb),
          'a dry run counts the queued images (for the confirmation) and changes nothing');
select is(public.cancel_jobs(p_statuses => '{pending}', p_types => '{image}') - 'reasons',
          jsonb_build_object('matched', 2, 'changed', 2, 'refused', '{}'::jsonb),
          'cancel all queued images: the two pending ones (n = 7, 21)');
select is(array(select status::text from public.jobs where id in (select id from alice_jobs where n in (7, 21))),
          array['cancelled', 'cancelled'], 'they are cancelled');
select is((select status::text from alice_jobs a join public.jobs j using (id) where a.n = 14), 'pending',
          'alice''s other queued job (a colour grade) stays queued');
select is(public.cancel_jobs(p_statuses => '{pending}', p_types => '{image}') -> 'matched', '0'::jsonb,
          'cancelling again matches nothing');
select pg_temp.clear_authentication();
select is((select status::text from public.jobs where user_id = pg_temp.uid('bob') and type = 'color-grade' and status = 'pending'), 'pending',
          'bob''s queued job is untouched');
select pg_temp.authenticate_as('alice');
select is(public.cancel_jobs(p_statuses => '{done}') -> 'matched', '0'::jsonb,
          'done jobs are never matched for cancelling');

-- Retry with a rate of 3 retries a minute: the permanent failures are refused not_retryable
-- without being tried; 3 go, then the quota stops the rest.
select pg_temp.clear_authentication();
update spool.settings set max_jobs_per_minute_per_user = 3;
select pg_temp.authenticate_as('alice');
-- alice's failed jobs: n = 3, 6, 9, 12, 18, 24, 27 (not 15, 21, 30: cancelled or pending);
-- permanent: 6, 12, 18, 24.
select is(public.retry_jobs(p_statuses => '{failed}') - 'reasons',
          '{"matched": 7, "changed": 3, "refused": {"not_retryable": 4}}'::jsonb,
          'retry all failed: 3 retryable ones go, the 4 permanent failures are refused');
select pg_temp.clear_authentication();
select pg_temp.travel_to(pg_temp.t('2 minutes'));
select pg_temp.authenticate_as('alice');
-- Failed or cancelled now: the 4 permanent failures and 8 cancelled jobs (n = 5, 10, ..., 30, and
-- the images 7 and 21 cancelled above).
select is(public.retry_jobs(p_statuses => '{failed,cancelled}') - 'reasons',
          '{"matched": 12, "changed": 3, "refused": {"quota_rate": 5, "not_retryable": 4}}'::jsonb,
          'a bulk retry stops at the rate: 3 of the 8 retryable jobs go, the other 5 are refused quota_rate untried');
select ok((public.retry_jobs(p_statuses => '{cancelled}') -> 'reasons' ->> 'quota_rate') like 'too many jobs started in the last minute%',
          'the refusal says why');
select pg_temp.clear_authentication();
select is((select count(*)::integer from spool.retries where user_id = pg_temp.uid('alice') and at > spool.now() - interval '1 minute'), 3,
          'exactly the rate''s worth of retries was recorded');

-- ---------------------------------------------------------------------------------------------
-- job_series
-- ---------------------------------------------------------------------------------------------
select pg_temp.clear_authentication();
delete from public.jobs;
select pg_temp.travel_to(pg_temp.t('1 hour'));
-- Three roto jobs finished in the minute 00:50: queued 10 s, 20 s and 30 s, ran 1, 2 and 3 s;
-- one failed in 00:55; one cancelled while queued (never started) in 00:55.
insert into public.jobs (user_id, type, status, input, created_at, run_at, started_at, finished_at, updated_at, error)
select pg_temp.uid('alice'), 'roto', 'done', '{}', s - make_interval(secs => 10 * k), s - make_interval(secs => 10 * k),
       s, s + make_interval(secs => k), s, null
from (select k, pg_temp.t('50 minutes 10 seconds') as s from generate_series(1, 3) k) x;
insert into public.jobs (user_id, type, status, input, created_at, run_at, started_at, finished_at, updated_at, error) values
  (pg_temp.uid('alice'), 'roto', 'failed', '{}', pg_temp.t('54 minutes'), pg_temp.t('54 minutes'), pg_temp.t('55 minutes'), pg_temp.t('55 minutes 4 seconds'), pg_temp.t('55 minutes'), '{"code":"x"}'),
  (pg_temp.uid('alice'), 'roto', 'cancelled', '{}', pg_temp.t('54 minutes'), pg_temp.t('54 minutes'), null, pg_temp.t('55 minutes 30 seconds'), pg_temp.t('55 minutes'), '{"code":"cancelled"}'),
  (pg_temp.uid('alice'), 'roto', 'done', '{}', pg_temp.t('-3 hours'), pg_temp.t('-3 hours'), pg_temp.t('-3 hours'), pg_temp.t('-2 hours'), pg_temp.t('-2 hours'), null);
select pg_temp.authenticate_as_service_role();
select is(
  (select jsonb_agg(to_jsonb(s) order by s.minute, s.status) from public.job_series(60) s where s.type is not null),
  jsonb_build_array(
    jsonb_build_object('minute', pg_temp.t('50 minutes'), 'type', 'roto', 'status', 'done', 'finished', 3,
                       'run_p50_ms', 2000.0, 'run_p95_ms', 2900.0, 'wait_p50_ms', 20000.0),
    jsonb_build_object('minute', pg_temp.t('55 minutes'), 'type', 'roto', 'status', 'failed', 'finished', 1,
                       'run_p50_ms', 4000.0, 'run_p95_ms', 4000.0, 'wait_p50_ms', 60000.0),
    jsonb_build_object('minute', pg_temp.t('55 minutes'), 'type', 'roto', 'status', 'cancelled', 'finished', 1,
                       'run_p50_ms', null, 'run_p95_ms', null, 'wait_p50_ms', null)),
  'per minute, type and outcome: run time (started -> finished) apart from queue wait (run_at -> started); a job that never started has neither; older jobs are outside the hour');
select pg_temp.clear_authentication();
select pg_temp.job('bob', 'color-grade', 'done', '{}', pg_temp.t('50 minutes'));
select pg_temp.authenticate_as_service_role();
select is(
  (select jsonb_agg(jsonb_build_object('type', s.type, 'finished', s.finished, 'run_p50_ms', s.run_p50_ms) order by s.type nulls first)
     from public.job_series(60) s where s.minute = pg_temp.t('50 minutes') and s.status = 'done'),
  '[{"type": null, "finished": 4, "run_p50_ms": 2500.0}, {"type": "color-grade", "finished": 1, "run_p50_ms": 3000.0}, {"type": "roto", "finished": 3, "run_p50_ms": 2000.0}]'::jsonb,
  'each minute also has all types together (type null), with its own percentiles');
select is(pg_temp.error_of('select * from public.job_series(0)'), 'PT400 invalid_argument', 'a window of 0 minutes is refused');
select pg_temp.clear_authentication();
select is((select count(*)::integer from spool.job_search), 0, 'deleting jobs deletes their search text');
select pg_temp.authenticate_as_service_role();

-- ---------------------------------------------------------------------------------------------
-- queue_diagnosis
-- ---------------------------------------------------------------------------------------------
select pg_temp.clear_authentication();
delete from public.jobs;
select pg_temp.travel_to(pg_temp.t());
update spool.settings set max_running_per_user = 1;
update spool.job_types set max_running = 1 where type = 'roto';
-- alice is at her cap (one running) with two due; bob's roto waits for the type's cap (a roto of
-- carol's runs); one job is scheduled for tomorrow.
select pg_temp.create_users('carol');
select pg_temp.job('alice', 'color-grade', 'running', '{}', pg_temp.t('-1 minute'));
select pg_temp.job('alice', 'color-grade', 'pending', '{}', pg_temp.t('-1 minute'));
select pg_temp.job('alice', 'image', 'pending', '{}', pg_temp.t('-1 minute'));
select pg_temp.job('carol', 'roto', 'running', '{}', pg_temp.t('-1 minute'));
select pg_temp.job('bob', 'roto', 'pending', '{}', pg_temp.t('-1 minute'));
insert into public.jobs (user_id, type, input, run_at) values (pg_temp.uid('bob'), 'audio-clean', '{}', pg_temp.t('1 day'));
select pg_temp.authenticate_as_service_role();
create temp table diagnosis as select public.queue_diagnosis() as d;
grant select on diagnosis to service_role;
select is((select (d -> 'user_cap') - 'top' from diagnosis), '{"limit": 1, "users": 1, "jobs": 2}'::jsonb,
          'one owner at the per-user cap holds back two due jobs');
select is((select d -> 'user_cap' -> 'top' -> 0 from diagnosis),
          jsonb_build_object('user_id', pg_temp.uid('alice'), 'running', 1, 'due', 2), 'and it is alice');
select is((select (d -> 'types' -> 0) - 'reopens_at' - 'started' - 'rate_per_minute' from diagnosis),
          '{"type": "roto", "max_running": 1, "running": 1, "due": 1, "reason": "type_cap"}'::jsonb,
          'roto is at its type cap with one due');
select is((select array(select r ->> 'code' from jsonb_array_elements(d -> 'reasons') r) from diagnosis),
          array['user_cap', 'type_cap', 'scheduled'], 'the reasons, most specific first');
select is((select (d -> 'scheduled' ->> 'next_run_at')::timestamptz from diagnosis), pg_temp.t('1 day'),
          'the next scheduled job''s run_at');
select is((select d ->> 'claimable' from diagnosis), '0', 'nothing could be claimed now');
select ok((select d -> 'sweep' ->> 'next_run_at' is not null and (d -> 'sweep' ->> 'next_run_at')::timestamptz >= pg_temp.t() from diagnosis),
          'it says when the safety-net sweep runs next');

select * from finish();
rollback;
