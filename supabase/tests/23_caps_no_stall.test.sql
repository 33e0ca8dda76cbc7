-- A backlog behind the per-user running cap: it advances as each slot frees, never stalls.
-- The issue's case: one user queues 59 jobs with max_running_per_user 10. A claim takes 10; each
-- finish lets the next claim take one more; the sweep rings only when a claim would take a job;
-- cancelling a running job rings for the owner's next one. The worker side (claiming again after
-- every finish) is job-worker.run.test.ts. Time is spool.now, moved by setting it.
begin;
select plan(12);

create function pg_temp.uid(p_name text) returns uuid language sql immutable
  as $$ select md5('spool-test:' || p_name)::uuid $$;
create function pg_temp.at(p_seconds double precision) returns void language sql
  as $$ select set_config('spool.now', ('2030-01-01 00:00:00+00'::timestamptz + make_interval(secs => p_seconds))::text, true) $$;
-- Completes n of the user's running jobs (oldest claim first), as a worker reports them.
create function pg_temp.complete_running(p_name text, p_n integer) returns integer language plpgsql as $$
declare
  v_results jsonb := (
    select jsonb_agg(jsonb_build_object('id', j.id, 'lease_token', j.lease_token, 'output', '{}'::jsonb))
    from (select id, lease_token from public.jobs
          where user_id = pg_temp.uid(p_name) and status = 'running' order by fair_at, id limit p_n) j);
begin
  if v_results is null then
    return 0;
  end if;
  return (select count(*)::integer from public.complete_jobs(v_results));
end $$;
create temp table requests_before on commit drop as select coalesce(max(id), 0) as id from net.http_request_queue;
create function pg_temp.rings_since_start() returns setof text language sql as $$
  select convert_from(q.body, 'utf8')::jsonb ->> 'reason' from net.http_request_queue q
  where q.id > (select id from requests_before) order by q.id
$$;

insert into auth.users (id, aud, role, email)
select pg_temp.uid(n), 'authenticated', 'authenticated', n || '@spool.test' from unnest(array['alice', 'bob']) n;
select vault.create_secret('http://127.0.0.1:54321', 'spool_project_url')
 where not exists (select 1 from vault.secrets where name = 'spool_project_url');
select vault.create_secret('spool-test-worker-secret', 'spool_worker_secret')
 where not exists (select 1 from vault.secrets where name = 'spool_worker_secret');
update spool.settings set max_running_per_user = 10, doorbell_debounce = '1 second';
update spool.doorbell set rung_at = '-infinity';
select pg_temp.at(0);
select count(*) from public.create_jobs(
  (select jsonb_agg(jsonb_build_object('user_id', pg_temp.uid('alice'), 'type', 'noop', 'input', jsonb_build_object('n', g)))
   from generate_series(1, 59) g));
delete from net.http_request_queue where id > (select id from requests_before); -- the insert's ring

set local role service_role;
select is((select count(*)::integer from public.claim_jobs('w1', 100)), 10,
  'a claim of 100 takes 10 of the 59: the cap');
select is((select count(*)::integer from public.claim_jobs('w1', 100)), 0,
  'while all 10 run, a claim takes none of her jobs');
reset role;
select is(spool.claimable_exists(), false, 'so nothing is claimable');
select pg_temp.at(10);
select is(spool.sweep() -> 'rung', 'null'::jsonb,
  'and the sweep does not ring for 49 jobs no claim could take');

select is(pg_temp.complete_running('alice', 1), 1, 'one of her jobs finishes');
select is(spool.claimable_exists(), true, 'which makes her next job claimable');
set local role service_role;
select results_eq(
  $$select (input ->> 'n')::integer from public.claim_jobs('w1', 100)$$,
  $$values (11)$$,
  'the next claim takes exactly her next job, in order');
reset role;

-- Cancelling a running job frees its slot: the doorbell rings for the next one.
select pg_temp.at(20);
select set_config('role', 'authenticated', true),
       set_config('request.jwt.claims', json_build_object('sub', pg_temp.uid('alice'), 'role', 'authenticated')::text, true);
select is((select status from public.cancel_job(
            (select id from public.jobs where user_id = pg_temp.uid('alice') and status = 'running' order by id limit 1))),
  'cancelled'::public.job_status, 'she cancels one of her running jobs');
select set_config('request.jwt.claims', '', true);
reset role;
select is(array(select pg_temp.rings_since_start()), array['cancel'],
  'the cancel rang the doorbell, for her job waiting for that slot');

-- Draining at the cap: claim, finish, claim again. 48 left, in rounds of at most 10.
create temp table rounds (n integer, claimed integer) on commit drop;
do $$
declare
  v_round integer := 0;
  v_got integer;
begin
  loop
    perform pg_temp.complete_running('alice', 10);
    perform set_config('role', 'service_role', true);
    select count(*) into v_got from public.claim_jobs('w1', 100);
    perform set_config('role', 'none', true);
    exit when v_got = 0;
    v_round := v_round + 1;
    insert into rounds values (v_round, v_got);
  end loop;
  perform pg_temp.complete_running('alice', 10);
end $$;
select is((select array_agg(claimed order by n) from rounds), array[10, 10, 10, 10, 8],
  'each round of finishes frees the slots the next claim fills: 10, 10, 10, 10, 8');
select is((select count(*)::integer from public.jobs where user_id = pg_temp.uid('alice') and status = 'done'), 58,
  'all 58 not cancelled are done');

-- Another user is never held back by her cap.
select pg_temp.at(120); -- a new minute for the jobs-per-minute quota
select count(*) from public.create_jobs(
  (select jsonb_agg(jsonb_build_object('user_id', pg_temp.uid('alice'), 'type', 'noop')) from generate_series(1, 20))
  || jsonb_build_array(jsonb_build_object('user_id', pg_temp.uid('bob'), 'type', 'noop')));
set local role service_role;
select results_eq(
  $$select user_id = pg_temp.uid('alice'), count(*)::integer from public.claim_jobs('w1', 100) group by 1 order by 1$$,
  $$values (false, 1), (true, 10)$$,
  'with a new backlog of hers ahead of bob''s job, a claim takes 10 of hers and bob''s job too');
reset role;
select * from finish();
rollback;
