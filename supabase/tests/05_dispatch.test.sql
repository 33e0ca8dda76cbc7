-- Dispatch: the database rings job-worker's doorbell through pg_net, debounced, with the secret
-- from Vault; pg_cron's sweep rescues expired leases and rings only when work is runnable; a job
-- that ends writes its owner exactly one notification.
--
-- Time is moved with the spool.now setting (read by spool.now() and spool.ring_doorbell), never
-- by sleeping. Requests are counted as a delta over net.http_request_queue, which may hold rows
-- that are not ours.
begin;
set local search_path = public, extensions;
select plan(47);

create function pg_temp.tests_create_user(p_name text)
returns uuid
language sql
as $$
  insert into auth.users (id, email, aud, role)
  values (gen_random_uuid(), p_name || '@spool.test', 'authenticated', 'authenticated')
  returning id
$$;
create function pg_temp.tests_authenticate_as(p_user_id uuid)
returns void
language plpgsql
as $$
begin
  perform set_config('role', 'authenticated', true);
  perform set_config('request.jwt.claims',
    json_build_object('sub', p_user_id, 'role', 'authenticated')::text, true);
end;
$$;
create function pg_temp.tests_clear_authentication()
returns void
language plpgsql
as $$
begin
  perform set_config('role', 'none', true);
  perform set_config('request.jwt.claims', '', true);
end;
$$;
-- Moves the queue's clock to p_seconds after the start of this transaction.
create function pg_temp.tests_at(p_seconds double precision)
returns void
language plpgsql
as $$
begin
  perform set_config('spool.now', (now() + make_interval(secs => p_seconds))::text, true);
end;
$$;
-- Remembers the newest queued request; tests_requests() returns those queued since.
create temp table tests_mark (last_id bigint not null) on commit drop;
create function pg_temp.tests_mark()
returns void
language sql
as $$
  delete from tests_mark;
  insert into tests_mark select coalesce(max(id), 0) from net.http_request_queue;
$$;
create function pg_temp.tests_requests()
returns setof net.http_request_queue
language sql
as $$
  select q.* from net.http_request_queue q where q.id > (select last_id from tests_mark) order by q.id
$$;
create function pg_temp.tests_request_count()
returns integer
language sql
as $$ select count(*)::integer from pg_temp.tests_requests() $$;

create temp table tests_users (name text primary key, id uuid not null) on commit drop;
insert into tests_users values
  ('U', pg_temp.tests_create_user('dispatch-u')),
  ('bulk', pg_temp.tests_create_user('dispatch-bulk'));
create function pg_temp.tests_user(p_name text) returns uuid language sql stable
as $$ select id from tests_users where name = p_name $$;
create temp table tests_jobs (name text primary key, id uuid not null, lease uuid) on commit drop;
create function pg_temp.tests_job(p_name text) returns uuid language sql stable
as $$ select id from tests_jobs where name = p_name $$;
grant select on tests_users, tests_jobs, tests_mark to public;
grant execute on all functions in schema pg_temp to public;

-- A known starting point: the doorbell never rang, debounce is the default 1 s, Vault is empty.
update spool.doorbell set rung_at = '-infinity', rings = 0, skipped = null;
update spool.settings set doorbell_debounce = '1 second';
delete from vault.secrets where name in ('spool_project_url', 'spool_worker_secret');
select pg_temp.tests_at(0);

-- ---------------------------------------------------------------------------------------------
-- Without Vault secrets: inserts still work, nothing is sent, the doorbell says why
-- ---------------------------------------------------------------------------------------------
select pg_temp.tests_mark();
select lives_ok($$select public.create_job(pg_temp.tests_user('U'), 'noop')$$,
  'a job is created even though the doorbell is not configured');
select is(pg_temp.tests_request_count(), 0,
  'without the Vault secrets no request is queued');
select matches((select skipped from spool.doorbell),
  'spool_project_url.*spool_worker_secret',
  'the doorbell records that the Vault secrets are missing');
select is((select rings from spool.doorbell), 0::bigint,
  'a skipped ring is not counted as a ring');

select vault.create_secret('http://127.0.0.1:54321', 'spool_project_url');
select vault.create_secret('spool-test-worker-secret', 'spool_worker_secret');

-- ---------------------------------------------------------------------------------------------
-- One statement, one ring
-- ---------------------------------------------------------------------------------------------
-- With no debounce at all, only the statement-level trigger keeps this to one request.
update spool.settings set doorbell_debounce = '0';
select pg_temp.tests_mark();
insert into public.jobs (user_id, type)
select pg_temp.tests_user('bulk'), 'noop' from generate_series(1, 100);
update spool.settings set doorbell_debounce = '1 second';

select is(pg_temp.tests_request_count(), 1,
  'an INSERT of 100 jobs in one statement queues exactly one request, even without debounce');
select is((select url from pg_temp.tests_requests()),
  'http://127.0.0.1:54321/functions/v1/job-worker',
  'the request goes to the project''s job-worker function');
select is((select upper(method) from pg_temp.tests_requests()), 'POST',
  'the request is a POST');
select is((select headers ->> 'apikey' from pg_temp.tests_requests()), 'spool-test-worker-secret',
  'the request carries the worker secret as apikey');
select is((select headers ->> 'Authorization' from pg_temp.tests_requests()),
  'Bearer spool-test-worker-secret',
  'the request carries the worker secret as a Bearer token');
select is((select timeout_milliseconds from pg_temp.tests_requests()), 5000,
  'the request has an explicit 5 s timeout');
select is((select convert_from(body, 'utf8')::jsonb from pg_temp.tests_requests()),
  '{"reason": "insert"}'::jsonb,
  'the request says it was rung by an insert');
select results_eq(
  $$select rung_at, rings, skipped from spool.doorbell$$,
  $$values (spool.now(), 1::bigint, null::text)$$,
  'the doorbell records one ring, at the time it rang, and clears the skip reason');

-- ---------------------------------------------------------------------------------------------
-- Debounce
-- ---------------------------------------------------------------------------------------------
select pg_temp.tests_at(0.5);
select pg_temp.tests_mark();
insert into tests_jobs (name, id) values ('u1', (public.create_job(pg_temp.tests_user('U'), 'noop')).id);
select is(pg_temp.tests_request_count(), 0,
  'a second insert within the debounce window queues nothing more');
select is(spool.ring_doorbell('manual'), null::bigint,
  'ringing inside the debounce window returns null');

select pg_temp.tests_at(1.5);
select pg_temp.tests_mark();
insert into tests_jobs (name, id) values ('u2', (public.create_job(pg_temp.tests_user('U'), 'noop')).id);
select is(pg_temp.tests_request_count(), 1,
  'an insert after the debounce window rings again');
select results_eq($$select rung_at, rings from spool.doorbell$$,
  $$values (spool.now(), 2::bigint)$$,
  'the second ring is recorded at its own time');

-- ---------------------------------------------------------------------------------------------
-- Inserts that add nothing runnable do not ring
-- ---------------------------------------------------------------------------------------------
select pg_temp.tests_at(3);
select pg_temp.tests_mark();
select public.create_job(pg_temp.tests_user('U'), 'noop', p_run_at => spool.now() + interval '1 hour');
select is(pg_temp.tests_request_count(), 0,
  'a job scheduled for later does not ring');
insert into public.jobs (user_id, type) select pg_temp.tests_user('U'), 'noop' where false;
select is(pg_temp.tests_request_count(), 0,
  'an INSERT statement that adds no rows does not ring');
insert into public.jobs (user_id, type, status, finished_at)
values (pg_temp.tests_user('U'), 'noop', 'cancelled', now());
select is(pg_temp.tests_request_count(), 0,
  'inserting a job that is not pending does not ring');
select is((select rings from spool.doorbell), 2::bigint,
  'the doorbell did not ring for any of them');

-- ---------------------------------------------------------------------------------------------
-- Cancel does not ring; retry does (with the user's own rights)
-- ---------------------------------------------------------------------------------------------
select pg_temp.tests_authenticate_as(pg_temp.tests_user('U'));
select public.cancel_job(pg_temp.tests_job('u1'));
select pg_temp.tests_clear_authentication();
select is(pg_temp.tests_request_count(), 0, 'cancelling a job does not ring');

select pg_temp.tests_at(5);
select pg_temp.tests_mark();
select pg_temp.tests_authenticate_as(pg_temp.tests_user('U'));
select public.retry_job(pg_temp.tests_job('u1'));
select pg_temp.tests_clear_authentication();
select is(pg_temp.tests_request_count(), 1, 'a user retrying their job rings the doorbell');
select is((select convert_from(body, 'utf8')::jsonb ->> 'reason' from pg_temp.tests_requests()),
  'retry', 'the request says it was rung by a retry');

-- A project URL saved with a trailing slash still makes a clean function URL.
select vault.update_secret((select id from vault.secrets where name = 'spool_project_url'),
                           'http://127.0.0.1:54321/');
select pg_temp.tests_at(7);
select pg_temp.tests_mark();
select public.create_job(pg_temp.tests_user('U'), 'noop');
select is((select url from pg_temp.tests_requests()),
  'http://127.0.0.1:54321/functions/v1/job-worker',
  'a trailing slash on the project URL does not double the slash');

-- ---------------------------------------------------------------------------------------------
-- The sweep: rings only for runnable work, rescues expired leases
-- ---------------------------------------------------------------------------------------------
delete from public.jobs;  -- an empty queue (rolled back with the rest)
select pg_temp.tests_at(9);
select pg_temp.tests_mark();
select is(spool.sweep(), '{"rescued": 0, "rung": null}'::jsonb,
  'the sweep on an empty queue rescues nothing and does not ring');
select is(pg_temp.tests_request_count(), 0, 'the sweep on an empty queue queues no request');

insert into tests_jobs (name, id) values
  ('delayed', (public.create_job(pg_temp.tests_user('U'), 'noop', p_run_at => spool.now() + interval '60 seconds')).id);
select is(pg_temp.tests_request_count(), 0, 'creating a delayed job does not ring');
select is(spool.sweep() -> 'rung', 'null'::jsonb,
  'the sweep does not ring while the only job is not due yet');
select is(pg_temp.tests_request_count(), 0,
  'a queue holding only delayed jobs costs no invocation');

select pg_temp.tests_at(70);
select pg_temp.tests_mark();
create temp table tests_sweep on commit drop as select spool.sweep() as result;
select is(pg_temp.tests_request_count(), 1, 'the sweep rings once the delayed job is due');
select is((select (result ->> 'rung')::bigint from tests_sweep), (select id from pg_temp.tests_requests()),
  'the sweep returns the id of the request it queued');
select is((select convert_from(body, 'utf8')::jsonb ->> 'reason' from pg_temp.tests_requests()),
  'sweep', 'the request says it was rung by the sweep');

update tests_jobs set lease = c.lease_token
  from public.claim_jobs('dispatch-test-worker', 1) c
 where tests_jobs.id = c.id;
select is((select status from public.jobs where id = pg_temp.tests_job('delayed')), 'running'::job_status,
  'a worker claims the due job');

select pg_temp.tests_at(131);  -- the 60 s lease taken at 70 s has expired
select pg_temp.tests_mark();
select is((spool.sweep() ->> 'rescued')::int, 1, 'the sweep rescues the job whose lease expired');
select results_eq(
  $$select status, lease_token, error ->> 'code', run_at > spool.now()
      from public.jobs where id = pg_temp.tests_job('delayed')$$,
  $$values ('pending'::job_status, null::uuid, 'lease_expired', true)$$,
  'the rescued job is pending again, without a lease, waiting out its backoff');
select is(pg_temp.tests_request_count(), 0,
  'the sweep does not ring for a rescued job before its backoff has passed');

select pg_temp.tests_at(140);
select pg_temp.tests_mark();
select isnt(spool.sweep() -> 'rung', 'null'::jsonb,
  'the sweep rings once the rescued job''s backoff has passed');
select is(pg_temp.tests_request_count(), 1, 'that sweep queues exactly one request');

-- ---------------------------------------------------------------------------------------------
-- pg_cron schedules
-- ---------------------------------------------------------------------------------------------
select results_eq(
  $$select jobname::text collate "default", command collate "default", active
      from cron.job where jobname like 'spool-%' order by jobname$$,
  $$values ('spool-prune', 'call spool.prune_history()', true),
           ('spool-purge-history', 'select spool.purge_history()', true),
           ('spool-schedules', 'select spool.materialize_schedules()', true),
           ('spool-sweep', 'select spool.sweep()', true)$$,
  'pg_cron runs the sweep, the prune, the history purge and the schedules, and nothing else of ours');
select is(
  (select schedule from cron.job where jobname = 'spool-sweep'),
  (select case when (regexp_match(extversion, '^(\d+)\.(\d+)'))::int[] >= array[1, 5]
               then '10 seconds' else '* * * * *' end
     from pg_extension where extname = 'pg_cron'),
  'the sweep runs every 10 seconds on pg_cron 1.5 or later, else every minute');
select results_eq(
  $$select jobname::text collate "default", schedule collate "default"
      from cron.job where jobname in ('spool-prune', 'spool-purge-history') order by jobname$$,
  $$values ('spool-prune', '* * * * *'), ('spool-purge-history', '47 3 * * *')$$,
  'pruning runs every minute, in committed batches (it must keep up with the queue); purging once a day, at night');

-- ---------------------------------------------------------------------------------------------
-- Notifications: one per job that ends, none for a retry
-- ---------------------------------------------------------------------------------------------
select pg_temp.tests_at(200);
insert into tests_jobs (name, id)
select t, (public.create_job(pg_temp.tests_user('U'), t)).id
  from unnest(array['notify-done', 'notify-dead', 'notify-retry', 'notify-cancel']) t;
update tests_jobs set lease = c.lease_token
  from public.claim_jobs('dispatch-test-worker', 10, null,
                         array['notify-done', 'notify-dead', 'notify-retry']) c
 where tests_jobs.id = c.id;

select public.complete_job(pg_temp.tests_job('notify-done'),
  (select lease from tests_jobs where name = 'notify-done'), '{"path": "outputs/x.png"}');
select results_eq(
  $$select user_id, job_type, status, message, read_at from public.notifications
     where job_id = pg_temp.tests_job('notify-done')$$,
  $$values (pg_temp.tests_user('U'), 'notify-done', 'done'::job_status,
            'Your notify-done job is done.', null::timestamptz)$$,
  'completing a job writes its owner exactly one unread done notification');

select public.fail_job(pg_temp.tests_job('notify-dead'),
  (select lease from tests_jobs where name = 'notify-dead'), '{"message": "bad input"}', false);
select results_eq(
  $$select status, message from public.notifications where job_id = pg_temp.tests_job('notify-dead')$$,
  $$values ('failed'::job_status, 'Your notify-dead job failed: bad input')$$,
  'a job that fails for good writes exactly one failed notification with the error message');

select public.fail_job(pg_temp.tests_job('notify-retry'),
  (select lease from tests_jobs where name = 'notify-retry'), '{"message": "try again"}', true);
select is((select status from public.jobs where id = pg_temp.tests_job('notify-retry')), 'pending'::job_status,
  'a retryable failure with attempts left sends the job back to pending');
select is_empty($$select 1 from public.notifications where job_id = pg_temp.tests_job('notify-retry')$$,
  'a retryable failure writes no notification');

select pg_temp.tests_authenticate_as(pg_temp.tests_user('U'));
select public.cancel_job(pg_temp.tests_job('notify-cancel'));
select public.cancel_job(pg_temp.tests_job('notify-cancel'));
select pg_temp.tests_clear_authentication();
select results_eq(
  $$select status, message from public.notifications where job_id = pg_temp.tests_job('notify-cancel')$$,
  $$values ('cancelled'::job_status, 'Your notify-cancel job was cancelled.')$$,
  'cancelling a job writes exactly one cancelled notification, even when cancelled twice');

select set_eq(
  $$select job_id from public.notifications where user_id = pg_temp.tests_user('U')$$,
  $$select pg_temp.tests_job(n) from unnest(array['notify-done', 'notify-dead', 'notify-cancel', 'u1']) n$$,
  'the owner has one notification per job that ended and none for the others');

select * from finish();
rollback;
