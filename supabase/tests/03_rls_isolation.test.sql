-- Row level security, acted out: users A and B each see and manage only their own jobs and
-- notifications; anon sees nothing.
--
-- Jobs are created through create_job as the test's own (privileged migration) role, the way the
-- job-creator Edge Functions create them; everything after that is done as A, B or anon.
begin;
set local search_path = public, extensions;
select plan(26);

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
create function pg_temp.tests_authenticate_as_anon()
returns void
language plpgsql
as $$
begin
  perform set_config('role', 'anon', true);
  perform set_config('request.jwt.claims', '{"role": "anon"}', true);
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
-- Runs a statement as the current role and returns how many rows it touched.
create function pg_temp.tests_rows_affected(p_sql text)
returns integer
language plpgsql
as $$
declare
  v_rows integer;
begin
  execute p_sql;
  get diagnostics v_rows = row_count;
  return v_rows;
end;
$$;
grant execute on all functions in schema pg_temp to public;

-- Fixtures, named so the statements below read as the story they tell.
create temp table tests_users (name text primary key, id uuid not null) on commit drop;
insert into tests_users values
  ('A', pg_temp.tests_create_user('rls-a')),
  ('B', pg_temp.tests_create_user('rls-b'));
create function pg_temp.tests_user(p_name text) returns uuid language sql stable
as $$ select id from tests_users where name = p_name $$;

create temp table tests_jobs (name text primary key, id uuid not null, owner text not null) on commit drop;
insert into tests_jobs values
  ('a1', (public.create_job(pg_temp.tests_user('A'), 'color-grade', '{"n": 1}')).id, 'A'),
  ('a2', (public.create_job(pg_temp.tests_user('A'), 'audio-clean', '{"n": 2}')).id, 'A'),
  ('b1', (public.create_job(pg_temp.tests_user('B'), 'color-grade', '{"n": 3}')).id, 'B');
create function pg_temp.tests_job(p_name text) returns uuid language sql stable
as $$ select id from tests_jobs where name = p_name $$;

-- B has a notification of their own (written as the trigger would).
insert into public.notifications (user_id, job_id, job_type, status, message)
values (pg_temp.tests_user('B'), pg_temp.tests_job('b1'), 'color-grade', 'done', 'Your color-grade job is done.');
grant select on tests_users, tests_jobs to public;
grant execute on all functions in schema pg_temp to public;

-- ---------------------------------------------------------------------------------------------
-- Reading jobs
-- ---------------------------------------------------------------------------------------------
select pg_temp.tests_authenticate_as(pg_temp.tests_user('A'));
select set_eq($$select id from public.jobs$$,
  $$select id from tests_jobs where owner = 'A'$$,
  'A sees exactly their own jobs');

select pg_temp.tests_authenticate_as(pg_temp.tests_user('B'));
select set_eq($$select id from public.jobs$$,
  $$select id from tests_jobs where owner = 'B'$$,
  'B sees exactly their own jobs');
select is_empty($$select id from public.jobs where user_id = pg_temp.tests_user('A')$$,
  'B sees none of A''s jobs, even when asking for them by owner');

-- ---------------------------------------------------------------------------------------------
-- Managing someone else's job
-- ---------------------------------------------------------------------------------------------
select throws_ok($$select public.cancel_job(pg_temp.tests_job('a1'))$$, 'PT404', 'job not found',
  'B cancelling A''s job is told the job does not exist');

select pg_temp.tests_clear_authentication();
select is((select status from public.jobs where id = pg_temp.tests_job('a1')), 'pending'::job_status,
  'A''s job is still pending after B tried to cancel it');

-- A cancels a2 so that it can be retried; then B tries to retry it.
select pg_temp.tests_authenticate_as(pg_temp.tests_user('A'));
select is((public.cancel_job(pg_temp.tests_job('a2'))).status, 'cancelled'::job_status,
  'A can cancel their own job');
select is((select error ->> 'message' from public.jobs where id = pg_temp.tests_job('a2')),
  'cancelled by its owner', 'a job A cancelled records that its owner cancelled it');

select pg_temp.tests_authenticate_as(pg_temp.tests_user('B'));
select throws_ok($$select public.retry_job(pg_temp.tests_job('a2'))$$, 'PT404', 'job not found',
  'B retrying A''s job is told the job does not exist');
select throws_ok($$select public.cancel_job(gen_random_uuid())$$, 'PT404', 'job not found',
  'cancelling a job that does not exist looks the same as cancelling someone else''s');

select pg_temp.tests_clear_authentication();
select results_eq(
  $$select status, attempts, finished_at is not null from public.jobs where id = pg_temp.tests_job('a2')$$,
  $$values ('cancelled'::job_status, 0, true)$$,
  'A''s cancelled job is unchanged after B tried to retry it');

select pg_temp.tests_authenticate_as(pg_temp.tests_user('A'));
select is((public.retry_job(pg_temp.tests_job('a2'))).status, 'pending'::job_status,
  'A can retry their own cancelled job');

-- ---------------------------------------------------------------------------------------------
-- Notifications
-- ---------------------------------------------------------------------------------------------
select results_eq(
  $$select job_id, status, message from public.notifications$$,
  $$values (pg_temp.tests_job('a2'), 'cancelled'::job_status, 'Your audio-clean job was cancelled.')$$,
  'A sees exactly one notification: the one for the job they cancelled');

select pg_temp.tests_authenticate_as(pg_temp.tests_user('B'));
select set_eq($$select job_id from public.notifications$$,
  $$select pg_temp.tests_job('b1')$$,
  'B sees only their own notification, none of A''s');
select is(
  pg_temp.tests_rows_affected(
    $$update public.notifications set read_at = now() where user_id = pg_temp.tests_user('A')$$),
  0,
  'B marking A''s notifications read changes no rows');

select pg_temp.tests_clear_authentication();
select is((select read_at from public.notifications where user_id = pg_temp.tests_user('A')), null,
  'A''s notification is still unread after B tried to mark it read');

select pg_temp.tests_authenticate_as(pg_temp.tests_user('A'));
select is(
  pg_temp.tests_rows_affected($$update public.notifications set read_at = now()$$),
  1,
  'A marking all their notifications read touches only their own one');
select isnt((select read_at from public.notifications where job_id = pg_temp.tests_job('a2')), null,
  'A''s notification is now read');
select throws_ok(
  $$update public.notifications set message = 'edited' where job_id = pg_temp.tests_job('a2')$$,
  '42501', 'permission denied for table notifications',
  'A cannot change the message of their own notification');
select throws_ok(
  $$update public.notifications set user_id = pg_temp.tests_user('B') where job_id = pg_temp.tests_job('a2')$$,
  '42501', 'permission denied for table notifications',
  'A cannot hand their notification to another user');
select throws_ok(
  $$update public.notifications set status = 'done' where job_id = pg_temp.tests_job('a2')$$,
  '42501', 'permission denied for table notifications',
  'A cannot change the status of their own notification');

select pg_temp.tests_clear_authentication();
select is((select read_at from public.notifications where job_id = pg_temp.tests_job('b1')), null,
  'B''s notification is still unread after A marked all of theirs read');

-- ---------------------------------------------------------------------------------------------
-- Users without an identity
-- ---------------------------------------------------------------------------------------------
select pg_temp.tests_authenticate_as(null);
select is_empty($$select id from public.jobs$$,
  'an authenticated request without a user id sees no jobs');
select throws_ok($$select public.cancel_job(pg_temp.tests_job('a1'))$$, 'PT404', 'job not found',
  'an authenticated request without a user id cannot cancel anyone''s job');

select pg_temp.tests_authenticate_as_anon();
select throws_ok($$select count(*) from public.jobs$$, '42501', 'permission denied for table jobs',
  'anon sees no jobs: reading them is refused outright');
select throws_ok($$select count(*) from public.notifications$$, '42501',
  'permission denied for table notifications',
  'anon sees no notifications: reading them is refused outright');

select pg_temp.tests_clear_authentication();
select is((select status from public.jobs where id = pg_temp.tests_job('a1')), 'pending'::job_status,
  'A''s untouched job is still pending at the end');

select * from finish();
rollback;
