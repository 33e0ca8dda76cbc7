-- get_queue_stats: queue depth, the oldest wait, and throughput and latency over a window, as the
-- dashboard and the health endpoint read them (service_role). Times are exact, so is every figure.
begin;
select plan(14);

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

select pg_temp.create_users('alice', 'bob');
-- The figures are queue-wide: start from no jobs at all (the final rollback restores them).
delete from public.jobs;
select pg_temp.travel_to(pg_temp.t());
select pg_temp.authenticate_as_service_role();

select is(public.get_queue_stats() - 'at' - 'window_seconds',
  '{"depth": [], "oldest_pending_seconds": null, "running": 0, "waiting": 0, "by_type": [],
    "window": {"finished": 0, "done": 0, "failed": 0, "cancelled": 0, "success_rate": null, "p50_ms": null, "p95_ms": null}}'::jsonb,
  'an empty queue reports no depth, no oldest wait and an empty window');

-- At t: alice queues 3 alpha jobs and one for later, bob 2 beta jobs, 7 gamma jobs and one old job.
select from generate_series(1, 3) n, lateral public.create_job(pg_temp.uid('alice'), 'alpha', jsonb_build_object('n', n));
select from public.create_job(pg_temp.uid('alice'), 'alpha', '{"later": true}', p_run_at => pg_temp.t('3 hours'));
select from generate_series(1, 2) n, lateral public.create_job(pg_temp.uid('bob'), 'beta', jsonb_build_object('n', n));
select from generate_series(1, 7) n, lateral public.create_job(pg_temp.uid('bob'), 'gamma', jsonb_build_object('n', n));
select id as old_job from public.create_job(pg_temp.uid('bob'), 'gamma', '{"old": true}', 100) \gset
select lease_token as token from public.claim_jobs('worker-1', 1, p_types => array['gamma']) \gset
select pg_temp.travel_to(pg_temp.t('1 second'));
select from public.complete_job(:'old_job', :'token');

select pg_temp.travel_to(pg_temp.t('90 seconds'));
select is((public.get_queue_stats() ->> 'oldest_pending_seconds')::numeric, 90::numeric,
  'the oldest runnable pending job has waited 90 seconds since its run_at');
select is(public.get_queue_stats() -> 'window' -> 'done', '1'::jsonb,
  'a job finished within the window is counted');
select is(public.get_queue_stats() ->> 'at', to_jsonb(pg_temp.t('90 seconds')) #>> '{}',
  'stats are taken at the queue''s clock');

-- At t + 2 h: bob's beta jobs run and wait; six gamma jobs start together and one is cancelled.
select pg_temp.travel_to(pg_temp.t('2 hours'));
select from public.claim_jobs('worker-1', 1, p_types => array['beta']);
select id as beta_waiting, lease_token as token from public.claim_jobs('worker-1', 1, p_types => array['beta']) \gset
select from public.await_job(:'beta_waiting', :'token', 'replicate', 'pred-beta', 86400);
select from public.cancel_job((select id from public.jobs where type = 'gamma' and input ->> 'n' = '7'));
create temp table gamma_run as select * from public.claim_jobs('worker-1', 10, p_types => array['gamma']);

-- Gamma n = 1..5 finish after n seconds; gamma n = 6 fails after 10 seconds.
create function pg_temp.finish_gamma(p_n integer) returns void language plpgsql as $$
declare
  v_job record;
begin
  select * into strict v_job from gamma_run where input ->> 'n' = p_n::text;
  perform pg_temp.travel_to(pg_temp.t('2 hours') + make_interval(secs => case when p_n = 6 then 10 else p_n end));
  if p_n = 6 then
    perform public.fail_job(v_job.id, v_job.lease_token, '{"message": "corrupt file"}', false);
  else
    perform public.complete_job(v_job.id, v_job.lease_token, '{}');
  end if;
end $$;
grant execute on function pg_temp.finish_gamma(integer) to service_role;
select from generate_series(1, 6) n, lateral pg_temp.finish_gamma(n);

select pg_temp.travel_to(pg_temp.t('2 hours 30 seconds'));
create temp table stats as select public.get_queue_stats('1 hour') as s;

select is((select s -> 'depth' from stats),
  '[{"type": "alpha", "status": "pending", "count": 4},
    {"type": "beta", "status": "running", "count": 1},
    {"type": "beta", "status": "waiting", "count": 1}]'::jsonb,
  'depth counts active jobs by type and status');
select is((select (s ->> 'oldest_pending_seconds')::numeric from stats), 7230::numeric,
  'the oldest wait grows with the clock and ignores jobs scheduled for later');
select is((select jsonb_build_object('running', s -> 'running', 'waiting', s -> 'waiting') from stats),
  '{"running": 1, "waiting": 1}'::jsonb, 'running and waiting jobs are counted queue-wide');
select is((select s -> 'window_seconds' from stats), '3600'::jsonb, 'the window length is reported in seconds');
select is((select jsonb_build_object('finished', s #> '{window,finished}', 'done', s #> '{window,done}',
                                     'failed', s #> '{window,failed}', 'cancelled', s #> '{window,cancelled}') from stats),
  '{"finished": 7, "done": 5, "failed": 1, "cancelled": 1}'::jsonb,
  'the window counts jobs finished within it by outcome, leaving out the job finished two hours ago');
select is((select s #> '{window,success_rate}' from stats), '0.8333'::jsonb,
  'the success rate is done / (done + failed), cancellations aside');
select is((select s #> '{window,p50_ms}' from stats), '3000.0'::jsonb,
  'p50 is the median started-to-finished time of done jobs');
select is((select s #> '{window,p95_ms}' from stats), '4800.0'::jsonb,
  'p95 interpolates between the slowest done jobs');
select is((select s -> 'by_type' from stats),
  '[{"type": "gamma", "finished": 7, "done": 5, "failed": 1, "cancelled": 1, "success_rate": 0.8333, "p50_ms": 3000.0, "p95_ms": 4800.0}]'::jsonb,
  'by_type breaks the window down per job type with the same figures');
select is((public.get_queue_stats('3 hours') #> '{window,finished}'), '8'::jsonb,
  'a wider window takes in the older finished job');

select * from finish();
rollback;
