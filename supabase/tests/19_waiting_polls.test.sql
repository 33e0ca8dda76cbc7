-- claim_waiting_polls and the sweep's poll ring: a job that has waited on its provider for
-- waiting_poll_interval without news is polled by one worker, then not again until the interval
-- has passed once more; the pg_cron sweep wakes job-worker for such jobs. Acted out by job-worker
-- (service_role) on the test clock.
begin;
select plan(19);

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
-- Hands a new job of alice to a provider at the current test time; returns its id.
create function pg_temp.waiting_job(p_provider text, p_external_id text) returns uuid language plpgsql as $$
declare
  v_id uuid;
  v_token uuid;
begin
  v_id := (public.create_job(pg_temp.uid('alice'), 'roto', '{}')).id;
  select c.lease_token into v_token from public.claim_jobs('worker-1', 1) c where c.id = v_id;
  perform public.await_job(v_id, v_token, p_provider, p_external_id, 3600);
  return v_id;
end $$;
create function pg_temp.polled(p_provider text default 'replicate', p_limit integer default 20)
returns text[] language sql as $$
  select coalesce(array_agg(external_id order by external_id), '{}')
  from public.claim_waiting_polls(p_provider, p_limit) $$;
grant execute on all functions in schema pg_temp to authenticated, service_role;

-- Structure and privileges ------------------------------------------------------------------------

select has_function('public', 'claim_waiting_polls', array['text', 'integer'],
  'claim_waiting_polls(provider, limit) exists');
select function_returns('public', 'claim_waiting_polls', array['text', 'integer'], 'setof jobs',
  'it returns job rows');
select ok((select p.prosecdef and p.proconfig @> array['search_path=""']
           from pg_proc p where p.oid = 'public.claim_waiting_polls(text, integer)'::regprocedure),
  'it is SECURITY DEFINER with an empty search_path');
select ok(has_function_privilege('service_role', 'public.claim_waiting_polls(text, integer)', 'execute'),
  'service_role (job-worker) may claim polls');
select ok(not has_function_privilege('authenticated', 'public.claim_waiting_polls(text, integer)', 'execute')
          and not has_function_privilege('anon', 'public.claim_waiting_polls(text, integer)', 'execute'),
  'users and anon may not');
select is((select waiting_poll_interval from spool.settings), interval '1 minute',
  'jobs are polled after a minute without news by default');

-- Who is due ------------------------------------------------------------------------------------------

delete from public.jobs;  -- a known queue (rolled back with the rest)
select pg_temp.create_users('alice');
update spool.settings set max_running_per_user = 100, max_active_jobs_per_user = 100,
                          max_jobs_per_minute_per_user = 100;
select pg_temp.authenticate_as_service_role();

select pg_temp.travel_to(pg_temp.t());
select pg_temp.waiting_job('replicate', 'pred-old');
select pg_temp.waiting_job('acme', 'acme-old');
select pg_temp.travel_to(pg_temp.t('50 seconds'));
select pg_temp.waiting_job('replicate', 'pred-new');
select public.create_job(pg_temp.uid('alice'), 'roto', '{}');
select from public.claim_jobs('worker-1', 1);  -- a running job: never polled

select pg_temp.travel_to(pg_temp.t('30 seconds'));
select is(pg_temp.polled(), '{}'::text[], 'a job waiting for less than the interval is not polled');

select pg_temp.travel_to(pg_temp.t('61 seconds'));
select is(pg_temp.polled(), array['pred-old'],
  'a job silent for the interval is polled; newer jobs, other providers and running jobs are not');
select is((select updated_at from public.jobs where external_id = 'pred-old'), pg_temp.t('61 seconds'),
  'claiming the poll marks the job');
select is((select status from public.jobs where external_id = 'pred-old'), 'waiting'::public.job_status,
  'the job keeps waiting: a poll changes nothing else');
select is(pg_temp.polled(), '{}'::text[], 'a second worker gets nothing: the job was just polled');

select pg_temp.travel_to(pg_temp.t('122 seconds'));
select is(pg_temp.polled(p_limit => 1), array['pred-new'],
  'with a limit, the longest-silent job comes first');
select is(pg_temp.polled(), array['pred-old'], 'a polled job is polled again an interval later');
select is(pg_temp.polled('acme'), array['acme-old'], 'each provider is polled on its own');

-- A settled job is never polled ----------------------------------------------------------------------

select public.resume_job('replicate', 'pred-old', 'done', '{"files": []}');
select public.resume_job('acme', 'acme-old', 'done', '{"files": []}');
select pg_temp.travel_to(pg_temp.t('10 minutes'));
select is(pg_temp.polled(), array['pred-new'], 'a job that is no longer waiting is not polled');

-- Arguments ----------------------------------------------------------------------------------------------

select is(pg_temp.error_of($$select public.claim_waiting_polls('Not A Slug')$$), 'PT400 invalid_argument',
  'a malformed provider is refused');
select is(pg_temp.error_of($$select public.claim_waiting_polls('replicate', 0)$$), 'PT400 invalid_argument',
  'a limit below 1 is refused');

-- The sweep rings job-worker for due polls ---------------------------------------------------------------

select pg_temp.clear_authentication();
update spool.doorbell set rung_at = '-infinity';
select vault.create_secret('http://127.0.0.1:54321', 'spool_project_url')
 where not exists (select 1 from vault.decrypted_secrets where name = 'spool_project_url');
select vault.create_secret('spool-test-worker-secret', 'spool_worker_secret')
 where not exists (select 1 from vault.decrypted_secrets where name = 'spool_worker_secret');

select pg_temp.travel_to(pg_temp.t('10 minutes 30 seconds'));
select is(spool.sweep() -> 'rung', 'null'::jsonb,
  'the sweep does not ring while every waiting job was polled within the interval');
select pg_temp.travel_to(pg_temp.t('11 minutes 5 seconds'));
select isnt(spool.sweep() -> 'rung', 'null'::jsonb,
  'the sweep rings job-worker once a waiting job is due for a poll');

select * from finish();
rollback;
