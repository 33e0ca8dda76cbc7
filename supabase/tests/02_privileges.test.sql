-- Privileges: who may execute which function, read or write which table, use which schema.
--
-- The catalogue checks cover every function in public and spool, so a new function that forgets
-- its revoke fails here. Then each denial is acted out as anon and as an authenticated user.
-- Last, the migrations leave the project's default privileges as Supabase sets them: a function
-- the project's postgres role creates after them (its own RPC) gets Supabase's default grants.
begin;
set local search_path = public, extensions;
select plan(80);

-- Acting as a role, the way PostgREST does: a database role plus the JWT claims.
create function pg_temp.tests_act_as(p_role text, p_user_id uuid default null)
returns void
language plpgsql
as $$
begin
  perform set_config('role', p_role, true);
  perform set_config('request.jwt.claims',
    json_build_object('sub', p_user_id, 'role', p_role)::text, true);
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
grant execute on function pg_temp.tests_act_as(text, uuid), pg_temp.tests_clear_authentication()
  to public;

-- ---------------------------------------------------------------------------------------------
-- EXECUTE on functions
-- ---------------------------------------------------------------------------------------------
select is(
  array(select p.oid::regprocedure::text
          from pg_proc p, aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a
         where p.pronamespace in ('public'::regnamespace, 'spool'::regnamespace)
           and a.grantee = 0 and a.privilege_type = 'EXECUTE'
         order by p.oid::regprocedure::text collate "C"),
  '{}'::text[],
  'PUBLIC may execute no function in public or spool');
select is(
  array(select p.oid::regprocedure::text from pg_proc p
         where p.pronamespace in ('public'::regnamespace, 'spool'::regnamespace)
           and has_function_privilege('anon', p.oid, 'execute')
         order by p.oid::regprocedure::text collate "C"),
  '{}'::text[],
  'anon may execute no function in public or spool');
select is(
  array(select p.oid::regprocedure::text from pg_proc p
         where p.pronamespace in ('public'::regnamespace, 'spool'::regnamespace)
           and has_function_privilege('authenticated', p.oid, 'execute')
         order by p.oid::regprocedure::text collate "C"),
  array['cancel_job(uuid)',
        'cancel_jobs(job_status[],text[],timestamp with time zone,timestamp with time zone,text,uuid,uuid,boolean)',
        'count_unread_notifications()', 'delete_schedule(uuid)', 'get_job_run(uuid)', 'job_position(uuid)',
        'list_jobs(job_status[],text[],timestamp with time zone,timestamp with time zone,text,uuid,uuid,timestamp with time zone,uuid,integer)',
        'mark_notifications_read(uuid[])', 'pause_schedule(uuid)',
        'preview_schedule(text,interval,text,timestamp with time zone,timestamp with time zone,integer)',
        'resume_schedule(uuid)', 'retry_job(uuid)',
        'retry_jobs(job_status[],text[],timestamp with time zone,timestamp with time zone,text,uuid,uuid,boolean)'],
  'authenticated users may execute only cancel_job(s), retry_job(s), list_jobs, the run view''s reads, the inbox''s and the owner''s schedule functions');
select is(
  array(select p.oid::regprocedure::text from pg_proc p
         where p.pronamespace in ('public'::regnamespace, 'spool'::regnamespace)
           and has_function_privilege('service_role', p.oid, 'execute')
         order by p.oid::regprocedure::text collate "C"),
  array['await_job(uuid,uuid,text,text,integer)',
        'cancel_job(uuid)',
        'cancel_jobs(job_status[],text[],timestamp with time zone,timestamp with time zone,text,uuid,uuid,boolean)',
        'cheapest_pending_cpu(text[])',
        'claim_jobs(text,integer,integer,text[],integer)',
        'claim_waiting_polls(text,integer)',
        'complete_job(uuid,uuid,jsonb)',
        'complete_jobs(jsonb)',
        'count_input_jobs(uuid,text)',
        'count_unread_notifications()',
        'create_flow(uuid,text,jsonb,jsonb,text,uuid[],text,text)',
        'create_job(uuid,text,jsonb,integer,integer,timestamp with time zone,text,uuid,integer,text)',
        'create_jobs(jsonb)',
        'create_schedule(uuid,text,jsonb,text,interval,text,text,timestamp with time zone,text,boolean)',
        'delete_schedule(uuid)',
        'fail_job(uuid,uuid,jsonb,boolean)',
        'get_job_run(uuid)',
        'get_queue_stats(interval)',
        'heartbeat_job(uuid,uuid,integer,text,integer)',
        'job_position(uuid)',
        'job_series(integer)',
        'job_type_stats()',
        'list_jobs(job_status[],text[],timestamp with time zone,timestamp with time zone,text,uuid,uuid,timestamp with time zone,uuid,integer)',
        'mark_notifications_read(uuid[])',
        'pause_schedule(uuid)',
        'preview_schedule(text,interval,text,timestamp with time zone,timestamp with time zone,integer)',
        'prune_jobs(integer)',
        'queue_diagnosis()',
        'rescue_jobs()',
        'resume_job(text,text,text,jsonb,jsonb)',
        'resume_schedule(uuid)',
        'retry_job(uuid)',
        'retry_jobs(job_status[],text[],timestamp with time zone,timestamp with time zone,text,uuid,uuid,boolean)',
        'spool.materialize_schedules(integer)',
        'spool.next_cron_after(text,text,timestamp with time zone)',
        'spool.ring_doorbell(text)',
        'spool.sweep()'],
  'service_role may execute exactly the worker and admin functions, not the spool internals');

-- ---------------------------------------------------------------------------------------------
-- Tables and schemas
-- ---------------------------------------------------------------------------------------------
select table_privs_are('public', 'jobs', 'anon', array[]::text[],
  'anon has no privilege on jobs');
select table_privs_are('public', 'notifications', 'anon', array[]::text[],
  'anon has no privilege on notifications');
select table_privs_are('public', 'schedules', 'anon', array[]::text[],
  'anon has no privilege on schedules');
select table_privs_are('public', 'schedules', 'authenticated', array['SELECT'],
  'authenticated users may only read schedules (their own, under RLS): changes go through the API');
select table_privs_are('public', 'schedules', 'service_role', array['SELECT'],
  'service_role may only read schedules: create_schedule validates what a plain INSERT would not');
select table_privs_are('public', 'jobs', 'authenticated', array[]::text[],
  'authenticated users hold no table-wide privilege on jobs: they read its public columns only (21_job_columns)');
select table_privs_are('public', 'notifications', 'authenticated', array['SELECT'],
  'authenticated users may only read notifications, table-wide');
select is(
  array(select a.attname::text from pg_attribute a
         where a.attrelid = 'public.notifications'::regclass and a.attnum > 0 and not a.attisdropped
           and has_column_privilege('authenticated', a.attrelid, a.attnum, 'UPDATE')
         order by a.attname::text collate "C"),
  array['read_at'],
  'authenticated users may update only read_at on notifications');
select is(
  array(select a.attname::text from pg_attribute a
         where a.attrelid = 'public.jobs'::regclass and a.attnum > 0 and not a.attisdropped
           and has_column_privilege('authenticated', a.attrelid, a.attnum, 'INSERT,UPDATE,REFERENCES')
         order by a.attname::text collate "C"),
  '{}'::text[],
  'authenticated users may write no column of jobs');
select is(
  array(select format('%s %s %s', r.rolname, c.oid::regclass, p.priv)
          from pg_class c
          cross join (values ('anon'), ('authenticated')) r(rolname)
          cross join (values ('SELECT'), ('INSERT'), ('UPDATE'), ('DELETE'), ('TRUNCATE'),
                             ('REFERENCES'), ('TRIGGER')) p(priv)
         where c.relnamespace = 'spool'::regnamespace and c.relkind in ('r', 'p', 'v', 'm', 'S')
           and has_table_privilege(r.rolname, c.oid, p.priv)
         order by format('%s %s %s', r.rolname, c.oid::regclass, p.priv) collate "C"),
  '{}'::text[],
  'anon and authenticated have no privilege on any relation in spool');
select schema_privs_are('spool', 'anon', array[]::text[], 'anon cannot use schema spool');
select schema_privs_are('spool', 'authenticated', array[]::text[],
  'authenticated users cannot use schema spool');
select schema_privs_are('spool', 'service_role', array['USAGE'],
  'service_role may use schema spool but not create in it');
-- The queue's header promises "nobody but the SQL API writes" jobs; service_role (the secret key
-- behind every Edge Function) must not bypass create_job's validation, quotas and fair slots, or
-- the lease fencing of the worker functions, with a plain INSERT or UPDATE.
select table_privs_are('public', 'jobs', 'service_role', array['SELECT'],
  'service_role may only read jobs: every write goes through the SQL API');
select table_privs_are('spool', 'user_slots', 'service_role', array[]::text[],
  'service_role has no privilege on spool.user_slots');
select table_privs_are('spool', 'settings', 'service_role', array['SELECT', 'UPDATE'],
  'service_role may read and change settings');
select table_privs_are('spool', 'doorbell', 'service_role', array['SELECT'],
  'service_role may read the doorbell');
select table_privs_are('spool', 'type_slots', 'service_role', array[]::text[],
  'service_role has no privilege on spool.type_slots (claim_jobs'' per-type locks and start log)');

-- ---------------------------------------------------------------------------------------------
-- Acted out as anon: every privileged function is refused
-- ---------------------------------------------------------------------------------------------
select pg_temp.tests_act_as('anon');

select throws_ok($$select public.create_job(gen_random_uuid(), 'noop')$$, '42501',
  'permission denied for function create_job', 'anon cannot create a job');
select throws_ok($$select public.claim_jobs('w')$$, '42501',
  'permission denied for function claim_jobs', 'anon cannot claim jobs');
select throws_ok($$select public.heartbeat_job(gen_random_uuid(), gen_random_uuid())$$, '42501',
  'permission denied for function heartbeat_job', 'anon cannot heartbeat a job');
select throws_ok($$select public.complete_job(gen_random_uuid(), gen_random_uuid())$$, '42501',
  'permission denied for function complete_job', 'anon cannot complete a job');
select throws_ok($$select public.complete_jobs('[]')$$, '42501',
  'permission denied for function complete_jobs', 'anon cannot complete jobs in a batch');
select throws_ok($$select public.fail_job(gen_random_uuid(), gen_random_uuid(), '{"message": "x"}')$$,
  '42501', 'permission denied for function fail_job', 'anon cannot fail a job');
select throws_ok($$select public.await_job(gen_random_uuid(), gen_random_uuid(), 'replicate', 'x')$$,
  '42501', 'permission denied for function await_job', 'anon cannot hand a job to a provider');
select throws_ok($$select public.resume_job('replicate', 'x', 'done')$$, '42501',
  'permission denied for function resume_job', 'anon cannot resume a waiting job');
select throws_ok($$select public.cancel_job(gen_random_uuid())$$, '42501',
  'permission denied for function cancel_job', 'anon cannot cancel a job');
select throws_ok($$select public.retry_job(gen_random_uuid())$$, '42501',
  'permission denied for function retry_job', 'anon cannot retry a job');
select throws_ok($$select public.rescue_jobs()$$, '42501',
  'permission denied for function rescue_jobs', 'anon cannot rescue jobs');
select throws_ok($$select public.prune_jobs()$$, '42501',
  'permission denied for function prune_jobs', 'anon cannot prune jobs');
select throws_ok($$select public.get_queue_stats()$$, '42501',
  'permission denied for function get_queue_stats', 'anon cannot read queue stats');
select throws_ok($$select * from public.job_type_stats()$$, '42501',
  'permission denied for function job_type_stats', 'anon cannot read job type stats');
select throws_ok($$select spool.sweep()$$, '42501',
  'permission denied for schema spool', 'anon cannot run the sweep');
select throws_ok($$select spool.ring_doorbell('anon')$$, '42501',
  'permission denied for schema spool', 'anon cannot ring the doorbell');
select throws_ok($$select count(*) from public.jobs$$, '42501',
  'permission denied for table jobs', 'anon cannot read jobs');
select throws_ok($$select count(*) from public.notifications$$, '42501',
  'permission denied for table notifications', 'anon cannot read notifications');
select throws_ok($$select count(*) from public.schedules$$, '42501',
  'permission denied for table schedules', 'anon cannot read schedules');
select throws_ok($$select public.pause_schedule(gen_random_uuid())$$, '42501',
  'permission denied for function pause_schedule', 'anon cannot pause a schedule');

-- ---------------------------------------------------------------------------------------------
-- Acted out as an authenticated user: worker and admin functions and direct writes are refused
-- ---------------------------------------------------------------------------------------------
select pg_temp.tests_clear_authentication();
create temp table tests_users on commit drop as
  select gen_random_uuid() as id, 'user@spool.test'::text as email;
insert into auth.users (id, email, aud, role)
  select id, email, 'authenticated', 'authenticated' from tests_users;
create temp table tests_jobs on commit drop as
  select (public.create_job(u.id, 'noop')).id as id from tests_users u;
grant select on tests_users, tests_jobs to public;

select pg_temp.tests_act_as('authenticated', (select id from tests_users));

select throws_ok($$select public.create_job((select id from tests_users), 'noop')$$, '42501',
  'permission denied for function create_job', 'a user cannot create a job directly, even for themselves');
select throws_ok($$select public.claim_jobs('w')$$, '42501',
  'permission denied for function claim_jobs', 'a user cannot claim jobs');
select throws_ok($$select public.heartbeat_job((select id from tests_jobs), gen_random_uuid())$$,
  '42501', 'permission denied for function heartbeat_job', 'a user cannot heartbeat a job');
select throws_ok($$select public.complete_job((select id from tests_jobs), gen_random_uuid())$$,
  '42501', 'permission denied for function complete_job', 'a user cannot complete their own job');
select throws_ok($$select public.complete_jobs('[]')$$, '42501',
  'permission denied for function complete_jobs', 'a user cannot complete jobs in a batch');
select throws_ok(
  $$select public.fail_job((select id from tests_jobs), gen_random_uuid(), '{"message": "x"}')$$,
  '42501', 'permission denied for function fail_job', 'a user cannot fail a job');
select throws_ok(
  $$select public.await_job((select id from tests_jobs), gen_random_uuid(), 'replicate', 'x')$$,
  '42501', 'permission denied for function await_job', 'a user cannot hand a job to a provider');
select throws_ok($$select public.resume_job('replicate', 'x', 'done')$$, '42501',
  'permission denied for function resume_job', 'a user cannot resume a waiting job');
select throws_ok($$select public.rescue_jobs()$$, '42501',
  'permission denied for function rescue_jobs', 'a user cannot rescue jobs');
select throws_ok($$select public.prune_jobs()$$, '42501',
  'permission denied for function prune_jobs', 'a user cannot prune jobs');
select throws_ok($$select public.get_queue_stats()$$, '42501',
  'permission denied for function get_queue_stats', 'a user cannot read queue stats');
select throws_ok($$select * from public.job_type_stats()$$, '42501',
  'permission denied for function job_type_stats', 'a user cannot read job type stats');
select throws_ok($$select spool.sweep()$$, '42501',
  'permission denied for schema spool', 'a user cannot run the sweep');
select throws_ok($$select spool.ring_doorbell('user')$$, '42501',
  'permission denied for schema spool', 'a user cannot ring the doorbell directly');
select throws_ok($$select * from spool.settings$$, '42501',
  'permission denied for schema spool', 'a user cannot read the queue settings');

select throws_ok(
  $$insert into public.jobs (user_id, type) select id, 'noop' from tests_users$$,
  '42501', 'permission denied for table jobs', 'a user cannot insert a job directly');
select throws_ok(
  $$update public.jobs set status = 'done', finished_at = now() where id = (select id from tests_jobs)$$,
  '42501', 'permission denied for table jobs', 'a user cannot update their own job directly');
select throws_ok(
  $$update public.jobs set priority = 100 where id = (select id from tests_jobs)$$,
  '42501', 'permission denied for table jobs', 'a user cannot reprioritise their own job');
select throws_ok(
  $$delete from public.jobs where id = (select id from tests_jobs)$$,
  '42501', 'permission denied for table jobs', 'a user cannot delete their own job');
select throws_ok(
  $$insert into public.notifications (user_id, job_id, job_type, status, message)
    select id, gen_random_uuid(), 'noop', 'done', 'forged' from tests_users$$,
  '42501', 'permission denied for table notifications', 'a user cannot forge a notification');
select throws_ok(
  $$delete from public.notifications$$,
  '42501', 'permission denied for table notifications', 'a user cannot delete notifications');
select throws_ok(
  $$insert into public.schedules (user_id, type, every, next_run_at)
    select id, 'noop', '1 minute', now() from tests_users$$,
  '42501', 'permission denied for table schedules', 'a user cannot insert a schedule directly');
select throws_ok(
  $$select public.create_schedule(p_user_id => (select id from tests_users), p_type => 'noop', p_every => '1 hour')$$,
  '42501', 'permission denied for function create_schedule',
  'a user cannot create a schedule through the API either: its input is job input, validated by a creator');

select results_eq(
  $$select id from public.jobs$$, $$select id from tests_jobs$$,
  'a user can still read their own job');
select lives_ok(
  $$select public.cancel_job((select id from tests_jobs))$$,
  'a user may execute cancel_job on their own job');

-- ---------------------------------------------------------------------------------------------
-- Acted out as service_role: the worker API is callable, the internals are not
-- ---------------------------------------------------------------------------------------------
select pg_temp.tests_act_as('service_role');

select lives_ok($$select public.get_queue_stats()$$, 'service_role can read queue stats');
select lives_ok($$select * from public.job_type_stats()$$, 'service_role can read job type stats');
select throws_ok(
  $$insert into public.jobs (user_id, type) select id, 'noop' from tests_users$$,
  '42501', 'permission denied for table jobs',
  'service_role cannot insert a job directly, around create_job''s validation and quotas');
select lives_ok($$select public.claim_jobs('privileges-test', 1, null, array['no-such-type'])$$,
  'service_role can claim jobs');
select throws_ok($$select spool.take_user_slot(gen_random_uuid(), now(), false)$$, '42501',
  'permission denied for function take_user_slot', 'service_role cannot call spool internals');
select throws_ok($$select * from spool.user_slots$$, '42501',
  'permission denied for table user_slots', 'service_role cannot read per-user slots');
select throws_ok($$select spool.purge_history()$$, '42501',
  'permission denied for function purge_history', 'service_role cannot purge cron and pg_net history');

select pg_temp.tests_clear_authentication();
select is(current_user, session_user, 'clearing authentication returns to the test''s own role');

-- ---------------------------------------------------------------------------------------------
-- Default privileges: Supabase's, untouched by the migrations
-- ---------------------------------------------------------------------------------------------
-- As supabase/postgres sets them for postgres (migrations/db/init-scripts/
-- 00000000000000-initial-schema.sql, run as postgres): in schema public, everything on new
-- functions to postgres, anon, authenticated and service_role, and no global entry for functions
-- (Postgres' built-in EXECUTE for PUBLIC stands).
select is(
  array(select format('%s %s', d.defaclnamespace::regnamespace, a.grantee::regrole)
          from pg_default_acl d, aclexplode(d.defaclacl) a
         where d.defaclrole = 'postgres'::regrole and d.defaclobjtype = 'f' and d.defaclnamespace <> 0
         order by format('%s %s', d.defaclnamespace::regnamespace, a.grantee::regrole) collate "C"),
  array['public anon', 'public authenticated', 'public postgres', 'public service_role'],
  'default EXECUTE on functions postgres creates in public is Supabase''s: postgres, anon, authenticated, service_role');
select is_empty(
  $$select 1 from pg_default_acl where defaclrole = 'postgres'::regrole and defaclobjtype = 'f'
       and defaclnamespace = 0$$,
  'no migration changed the default EXECUTE for PUBLIC on functions postgres creates');

create function public.tests_users_own_rpc() returns integer language sql as $$ select 1 $$;
select ok(
  exists (select 1 from pg_proc p, aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a
           where p.oid = 'public.tests_users_own_rpc()'::regprocedure
             and a.grantee = 0 and a.privilege_type = 'EXECUTE'),
  'a function the project creates in public after the migrations is executable by PUBLIC, as on Supabase');
select is(
  array(select r from unnest(array['anon', 'authenticated', 'service_role']) r
         where has_function_privilege(r, 'public.tests_users_own_rpc()', 'execute')),
  array['anon', 'authenticated', 'service_role'],
  'a function the project creates in public after the migrations is granted to anon, authenticated and service_role');
select pg_temp.tests_act_as('anon');
select is(public.tests_users_own_rpc(), 1, 'anon can call the project''s own new RPC, as on Supabase');
select pg_temp.tests_clear_authentication();

select * from finish();
rollback;
