-- prune_jobs: finished history is deleted after its retention, a bounded batch at a time; active
-- jobs are never touched. Acted out by the daily pg_cron job (service_role).
begin;
select plan(16);

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
update spool.settings set retention_done = '14 days', retention_failed = '30 days', retention_notifications = '30 days';
select pg_temp.authenticate_as_service_role();

-- Finish one job of each kind at t, keep one pending and one running, and finish another at t + 10 days.
create function pg_temp.finished_job(p_name text, p_status text) returns uuid language plpgsql as $$
declare
  v_id uuid := (public.create_job(pg_temp.uid('alice'), 'prune-' || p_status, jsonb_build_object('name', p_name))).id;
  v_token uuid;
begin
  if p_status = 'cancelled' then
    perform public.cancel_job(v_id);
    return v_id;
  end if;
  select c.lease_token into v_token from public.claim_jobs('worker-1', 1, p_types => array['prune-' || p_status]) c;
  if p_status = 'done' then
    perform public.complete_job(v_id, v_token, '{}');
  else
    perform public.fail_job(v_id, v_token, '{"message": "broken"}', false);
  end if;
  return v_id;
end $$;
grant execute on function pg_temp.finished_job(text, text) to service_role;

select pg_temp.travel_to(pg_temp.t());
select pg_temp.finished_job('done_old', 'done') as done_old,
       pg_temp.finished_job('failed_old', 'failed') as failed_old,
       pg_temp.finished_job('cancelled_old', 'cancelled') as cancelled_old \gset
select id as child from public.create_job(pg_temp.uid('alice'), 'child', '{}', p_parent_id => :'done_old') \gset
select id as pending from public.create_job(pg_temp.uid('alice'), 'idle', '{}', p_run_at => pg_temp.t('1000 days')) \gset
select id as running from public.create_job(pg_temp.uid('alice'), 'busy', '{}') \gset
select from public.claim_jobs('worker-1', 1, 3600, array['busy']);
select pg_temp.travel_to(pg_temp.t('10 days'));
select pg_temp.finished_job('done_new', 'done') as done_new \gset
select pg_temp.travel_to(pg_temp.t('20 days'));
select pg_temp.finished_job('done_recent', 'done') as done_recent \gset

-- 15 days on: only done jobs older than 14 days go -------------------------------------------------

select pg_temp.travel_to(pg_temp.t('15 days'));
select is(public.prune_jobs(), 1, 'after 15 days prune deletes the one done job older than 14 days');
select ok(not exists (select 1 from public.jobs where id = :'done_old'), 'a done job past retention_done is deleted');
select ok(exists (select 1 from public.jobs where id = :'done_new'), 'a done job within retention_done is kept');
select is((select count(*) from public.jobs where id in (:'failed_old', :'cancelled_old')), 2::bigint,
  'failed and cancelled jobs within retention_failed are kept');
select is((select parent_id from public.jobs where id = :'child'), null::uuid,
  'a job whose parent was pruned keeps existing without a parent');

-- 31 days on: failed and cancelled jobs older than 30 days go too ---------------------------------------

select pg_temp.travel_to(pg_temp.t('31 days'));
select is(public.prune_jobs(), 3, 'after 31 days prune deletes the old failed, cancelled and 21-day-old done jobs');
select is((select count(*) from public.jobs where id in (:'failed_old', :'cancelled_old', :'done_new')), 0::bigint,
  'failed and cancelled jobs past retention_failed are deleted');
select is((select count(*) from public.jobs where id in (:'pending', :'running', :'child', :'done_recent')), 4::bigint,
  'pending, running and recently finished jobs are kept, however old');
select is((select count(*) from public.notifications where job_id in (:'done_old', :'failed_old', :'cancelled_old')), 0::bigint,
  'notifications older than retention_notifications are deleted');
-- Notifications written at t + 10 and t + 20 days (on the queue's clock) are 21 and 11 days old.
select is((select count(*) from public.notifications where job_id in (:'done_new', :'done_recent')), 2::bigint,
  'notifications within retention_notifications are kept');
select is(public.prune_jobs(), 0, 'pruning again deletes nothing more');

-- Bounded batches ------------------------------------------------------------------------------------

select pg_temp.travel_to(pg_temp.t('40 days'));
select from generate_series(1, 3) n, lateral pg_temp.finished_job('batch_' || n, 'done');
select pg_temp.travel_to(pg_temp.t('60 days'));
select is(public.prune_jobs(3), 3, 'a call deletes at most p_limit jobs');
select is((select count(*) from public.jobs where status = 'done'), 1::bigint, 'what the limit left behind stays for the next call');
select is(public.prune_jobs(3), 1, 'the next call deletes the rest');
select is(public.prune_jobs(3), 0, 'then there is nothing left to prune');
select is(pg_temp.error_of('select public.prune_jobs(0)'), 'PT400 invalid_argument', 'a limit below 1 is refused');

select * from finish();
rollback;
