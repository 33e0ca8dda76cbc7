-- Structure of the queue: tables, columns, states, constraints, indexes, RLS, functions,
-- triggers and the Realtime publication, as the migrations promise them.
--
-- Catalogue queries cover whole schemas where they can, so that a table added without RLS or a
-- SECURITY DEFINER function added without a pinned search_path fails here.
begin;
set local search_path = public, extensions;
select plan(63);

-- ---------------------------------------------------------------------------------------------
-- Tables and columns
-- ---------------------------------------------------------------------------------------------
select tables_are('public', array['jobs', 'job_attempts', 'notifications', 'schedules'],
  'public holds exactly the jobs, job_attempts, notifications and schedules tables');
select tables_are('spool', array['settings', 'user_slots', 'doorbell', 'retries', 'job_types', 'type_slots',
                                 'flows', 'job_dependencies', 'job_search'],
  'spool holds exactly the settings, user_slots, doorbell, retries, job_types, type_slots, flows, job_dependencies and job_search tables');

select results_eq(
  $$select a.attname::text collate "default", format_type(a.atttypid, a.atttypmod), a.attnotnull
      from pg_attribute a
     where a.attrelid = 'public.jobs'::regclass and a.attnum > 0 and not a.attisdropped
     order by a.attnum$$,
  $$values ('id', 'uuid', true), ('user_id', 'uuid', true), ('type', 'text', true),
           ('status', 'job_status', true), ('priority', 'smallint', true),
           ('input', 'jsonb', true), ('output', 'jsonb', false), ('progress', 'smallint', true),
           ('step', 'text', false), ('error', 'jsonb', false), ('attempts', 'integer', true),
           ('max_attempts', 'integer', true), ('run_at', 'timestamp with time zone', true),
           ('fair_at', 'timestamp with time zone', true), ('worker_id', 'text', false),
           ('lease_token', 'uuid', false), ('lease_expires_at', 'timestamp with time zone', false),
           ('idempotency_key', 'text', false), ('external_provider', 'text', false),
           ('external_id', 'text', false), ('parent_id', 'uuid', false),
           ('created_at', 'timestamp with time zone', true),
           ('started_at', 'timestamp with time zone', false),
           ('finished_at', 'timestamp with time zone', false),
           ('updated_at', 'timestamp with time zone', true), ('cpu_ms', 'integer', true),
           ('history', 'jsonb', true), ('timeout_at', 'timestamp with time zone', false),
           ('route', 'text', false), ('has_dependents', 'boolean', true),
           ('dependency_outputs', 'jsonb', false)$$,
  'jobs has every column of the job, with its type and nullability');

select results_eq(
  $$select a.attname::text collate "default", format_type(a.atttypid, a.atttypmod), a.attnotnull
      from pg_attribute a
     where a.attrelid = 'public.notifications'::regclass and a.attnum > 0 and not a.attisdropped
     order by a.attnum$$,
  $$values ('id', 'uuid', true), ('user_id', 'uuid', true), ('job_id', 'uuid', true),
           ('job_type', 'text', true), ('status', 'job_status', true), ('message', 'text', true),
           ('created_at', 'timestamp with time zone', true),
           ('read_at', 'timestamp with time zone', false)$$,
  'notifications has every column, with its type and nullability');

select col_is_pk('public', 'jobs', 'id', 'jobs are identified by id');
select col_default_is('public', 'jobs', 'id', 'spool.uuid_v7()',
  'job ids default to time-ordered UUID v7');
select col_default_is('public', 'jobs', 'status', 'pending'::job_status,
  'a new job starts pending');
select col_default_is('public', 'jobs', 'max_attempts', 3, 'a job gets three attempts by default');
select fk_ok('public', 'jobs', 'user_id', 'auth', 'users', 'id',
  'every job belongs to an auth user');
select fk_ok('public', 'jobs', 'parent_id', 'public', 'jobs', 'id',
  'a job''s parent is another job');
select fk_ok('public', 'notifications', 'user_id', 'auth', 'users', 'id',
  'every notification belongs to an auth user');
select is(
  (select count(*)::int from pg_constraint
    where conrelid = 'public.notifications'::regclass and contype = 'f'
      and conkey = array[(select attnum from pg_attribute
                           where attrelid = 'public.notifications'::regclass and attname = 'job_id')]),
  0,
  'notifications.job_id is not a foreign key, so notifications outlive pruned jobs');
select is(
  (select confdeltype::text from pg_constraint
    where conrelid = 'public.jobs'::regclass and conname = 'jobs_user_id_fkey'),
  'c',
  'deleting a user deletes their jobs');

-- ---------------------------------------------------------------------------------------------
-- The job states, in order
-- ---------------------------------------------------------------------------------------------
select enum_has_labels('public', 'job_status',
  array['pending', 'running', 'waiting', 'done', 'failed', 'cancelled'],
  'job_status lists pending, running, waiting, done, failed, cancelled in that order');

-- ---------------------------------------------------------------------------------------------
-- Constraints, acted out: the table refuses rows that break the state invariants
-- ---------------------------------------------------------------------------------------------
create temp table tests_user on commit drop as select gen_random_uuid() as id;
insert into auth.users (id, email, aud, role)
select id, 'structure@spool.test', 'authenticated', 'authenticated' from tests_user;

select throws_ok(
  $$insert into public.jobs (user_id, type, status) select id, 'noop', 'running' from tests_user$$,
  '23514', 'new row for relation "jobs" violates check constraint "jobs_lease_iff_running"',
  'a running job without a lease is refused');
select throws_ok(
  $$insert into public.jobs (user_id, type, lease_token)
    select id, 'noop', gen_random_uuid() from tests_user$$,
  '23514', 'new row for relation "jobs" violates check constraint "jobs_lease_iff_running"',
  'a pending job holding a lease is refused');
select lives_ok(
  $$insert into public.jobs (user_id, type, status, lease_token, lease_expires_at)
    select id, 'noop', 'running', gen_random_uuid(), now() + interval '1 minute' from tests_user$$,
  'a running job with a lease is accepted');
select throws_ok(
  $$insert into public.jobs (user_id, type, status) select id, 'noop', 'done' from tests_user$$,
  '23514', 'new row for relation "jobs" violates check constraint "jobs_finished_iff_terminal"',
  'a done job without finished_at is refused');
select throws_ok(
  $$insert into public.jobs (user_id, type, finished_at) select id, 'noop', now() from tests_user$$,
  '23514', 'new row for relation "jobs" violates check constraint "jobs_finished_iff_terminal"',
  'a pending job with finished_at is refused');
select lives_ok(
  $$insert into public.jobs (user_id, type, status, finished_at)
    select id, 'noop', 'cancelled', now() from tests_user$$,
  'a cancelled job with finished_at is accepted');
select throws_ok(
  $$insert into public.jobs (user_id, type, external_provider) select id, 'noop', 'replicate' from tests_user$$,
  '23514', 'new row for relation "jobs" violates check constraint "jobs_external_pair"',
  'an external provider without an external id is refused');
select throws_ok(
  $$insert into public.jobs (user_id, type) select id, 'Not A Slug' from tests_user$$,
  '23514', 'new row for relation "jobs" violates check constraint "jobs_type_check"',
  'a job type that is not a lowercase slug is refused');
select throws_ok(
  $$insert into public.jobs (user_id, type, input) select id, 'noop', '[1, 2]' from tests_user$$,
  '23514', 'new row for relation "jobs" violates check constraint "jobs_input_check"',
  'a job input that is not a JSON object is refused');
select throws_ok(
  $$insert into public.notifications (user_id, job_id, job_type, status, message)
    select id, gen_random_uuid(), 'noop', 'running', 'x' from tests_user$$,
  '23514', 'new row for relation "notifications" violates check constraint "notifications_status_check"',
  'a notification for a job that has not ended is refused');

-- ---------------------------------------------------------------------------------------------
-- Indexes: the claim index is partial on pending, history indexes are partial too
-- ---------------------------------------------------------------------------------------------
select indexes_are('public', 'jobs',
  array['jobs_pkey', 'jobs_claim_idx', 'jobs_active_idx', 'jobs_user_created_idx',
        'jobs_finished_idx', 'jobs_idempotency_idx', 'jobs_external_idx', 'jobs_parent_idx',
        'jobs_user_status_created_idx', 'jobs_created_idx'],
  'jobs has exactly the indexes the queue needs');
select matches(pg_get_indexdef('public.jobs_claim_idx'::regclass),
  '\(priority DESC, fair_at, id\) WHERE \(status = ''pending''::(public\.)?job_status\)$',
  'the claim index orders by priority desc, fair_at, id and covers only pending jobs');
select matches(pg_get_indexdef('public.jobs_active_idx'::regclass),
  '\(status, user_id\) WHERE \(status = ANY \(ARRAY\[''pending''::(public\.)?job_status, ''running''::(public\.)?job_status, ''waiting''::(public\.)?job_status\]\)\)$',
  'the active index covers only pending, running and waiting jobs');
select matches(pg_get_indexdef('public.jobs_finished_idx'::regclass),
  '\(finished_at\) WHERE \(finished_at IS NOT NULL\)$',
  'the finished index covers only finished jobs');
select index_is_unique('public', 'jobs', 'jobs_idempotency_idx',
  'an idempotency key is unique per user');
select matches(pg_get_indexdef('public.jobs_idempotency_idx'::regclass),
  '\(user_id, idempotency_key\) WHERE \(idempotency_key IS NOT NULL\)$',
  'idempotency keys are unique per user, and jobs without a key are not indexed');
select index_is_unique('public', 'jobs', 'jobs_external_idx',
  'an external provider handle belongs to one job');
select has_index('public', 'notifications', 'notifications_user_created_idx',
  array['user_id', 'created_at'], 'a user''s notifications are indexed newest first');

-- ---------------------------------------------------------------------------------------------
-- Row level security on every table (a new table without RLS fails this)
-- ---------------------------------------------------------------------------------------------
select is(
  array(select c.oid::regclass::text from pg_class c
         where c.relnamespace in ('public'::regnamespace, 'spool'::regnamespace)
           and c.relkind in ('r', 'p') and not c.relrowsecurity
         order by c.oid::regclass::text collate "C"),
  '{}'::text[],
  'every table in public and spool has row level security enabled');
select policies_are('public', 'jobs', array['Users can view their own jobs'],
  'jobs has one policy: users view their own');
select policies_are('public', 'notifications',
  array['Users can view their own notifications', 'Users can mark their own notifications read'],
  'notifications has two policies: users view and mark read their own');
select policies_are('public', 'schedules', array['Users can view their own schedules'],
  'schedules has one policy: users view their own (pause, resume, delete go through the API)');
select policy_cmd_is('public', 'schedules', 'Users can view their own schedules', 'select',
  'the schedules policy only grants reading');
select policy_roles_are('public', 'schedules', 'Users can view their own schedules', array['authenticated'],
  'the schedules policy applies to authenticated users only');
select is(
  (select count(*)::int from pg_policies where schemaname = 'spool'), 0,
  'spool tables have no policies at all');
select policy_cmd_is('public', 'jobs', 'Users can view their own jobs', 'select',
  'the jobs policy only grants reading');
select policy_roles_are('public', 'jobs', 'Users can view their own jobs', array['authenticated'],
  'the jobs policy applies to authenticated users only');
select policy_cmd_is('public', 'notifications', 'Users can mark their own notifications read', 'update',
  'the notifications write policy only grants updating');
select policy_roles_are('public', 'notifications', 'Users can mark their own notifications read',
  array['authenticated'], 'the notifications write policy applies to authenticated users only');

-- ---------------------------------------------------------------------------------------------
-- Functions: one signature each, SECURITY DEFINER ones with a pinned empty search_path
-- ---------------------------------------------------------------------------------------------
select results_eq(
  $$select p.oid::regprocedure::text, pg_get_function_result(p.oid)
      from pg_proc p
     where p.pronamespace = 'public'::regnamespace
     order by p.proname$$,
  $$values
    ('await_job(uuid,uuid,text,text,integer)', 'jobs'),
    ('cancel_job(uuid)', 'jobs'),
    ('cancel_jobs(job_status[],text[],timestamp with time zone,timestamp with time zone,text,uuid,uuid,boolean)', 'jsonb'),
    ('cheapest_pending_cpu(text[])', 'integer'),
    ('claim_jobs(text,integer,integer,text[],integer)', 'SETOF jobs'),
    ('claim_waiting_polls(text,integer)', 'SETOF jobs'),
    ('complete_job(uuid,uuid,jsonb)', 'jobs'),
    ('complete_jobs(jsonb)', 'SETOF uuid'),
    ('count_input_jobs(uuid,text)', 'integer'),
    ('count_unread_notifications()', 'integer'),
    ('create_flow(uuid,text,jsonb,jsonb,text,uuid[],text,text)', 'SETOF jobs'),
    ('create_job(uuid,text,jsonb,integer,integer,timestamp with time zone,text,uuid,integer,text)', 'jobs'),
    ('create_jobs(jsonb)', 'SETOF jobs'),
    ('create_schedule(uuid,text,jsonb,text,interval,text,text,timestamp with time zone,text,boolean)', 'schedules'),
    ('delete_schedule(uuid)', 'schedules'),
    ('fail_job(uuid,uuid,jsonb,boolean)', 'jobs'),
    ('get_job_run(uuid)', 'jsonb'),
    ('get_queue_stats(interval)', 'jsonb'),
    ('heartbeat_job(uuid,uuid,integer,text,integer)', 'jobs'),
    ('job_position(uuid)', 'jsonb'),
    ('job_series(integer)', 'TABLE(minute timestamp with time zone, type text, status job_status, finished integer, run_p50_ms numeric, run_p95_ms numeric, wait_p50_ms numeric)'),
    ('job_type_stats()', 'TABLE(type text, max_running integer, rate_per_minute integer, timeout_seconds integer, max_attempts integer, priority smallint, retention_done interval, retention_failed interval, running integer, started_last_minute integer, pending integer)'),
    ('list_jobs(job_status[],text[],timestamp with time zone,timestamp with time zone,text,uuid,uuid,timestamp with time zone,uuid,integer)', 'SETOF jobs'),
    ('mark_notifications_read(uuid[])', 'integer'),
    ('pause_schedule(uuid)', 'schedules'),
    ('preview_schedule(text,interval,text,timestamp with time zone,timestamp with time zone,integer)', 'timestamp with time zone[]'),
    ('prune_jobs(integer)', 'integer'),
    ('queue_diagnosis()', 'jsonb'),
    ('rescue_jobs()', 'integer'),
    ('resume_job(text,text,text,jsonb,jsonb)', 'jobs'),
    ('resume_schedule(uuid)', 'schedules'),
    ('retry_job(uuid)', 'jobs'),
    ('retry_jobs(job_status[],text[],timestamp with time zone,timestamp with time zone,text,uuid,uuid,boolean)', 'jsonb')$$,
  'public exposes exactly the SQL API, one signature per function, with its return type');
select has_function('spool', 'ring_doorbell', array['text'], 'spool.ring_doorbell(reason) exists');
select function_returns('spool', 'ring_doorbell', array['text'], 'bigint',
  'spool.ring_doorbell returns the pg_net request id');
select has_function('spool', 'sweep', array[]::text[], 'spool.sweep() exists');
select function_returns('spool', 'sweep', array[]::text[], 'jsonb',
  'spool.sweep returns a JSON summary');
select has_function('spool', 'purge_history', array[]::text[], 'spool.purge_history() exists');
select has_function('spool', 'now', array[]::text[], 'spool.now() is the queue''s clock');
select function_returns('spool', 'materialize_schedules', array['integer'], 'integer',
  'spool.materialize_schedules(limit) returns how many jobs it created');
select function_returns('spool', 'next_cron_after', array['text', 'text', 'timestamp with time zone'],
  'timestamp with time zone', 'spool.next_cron_after(cron, tz, after) returns the next slot');
select is(
  array(select p.proname::text from pg_proc p
         where p.pronamespace in ('public'::regnamespace, 'spool'::regnamespace)
         group by p.pronamespace, p.proname having count(*) > 1),
  '{}'::text[],
  'no function in public or spool is overloaded');
select is(
  array(select p.oid::regprocedure::text from pg_proc p
         where p.pronamespace = 'public'::regnamespace and not p.prosecdef
         order by p.oid::regprocedure::text collate "C"),
  '{}'::text[],
  'every API function in public is SECURITY DEFINER');
select is(
  array(select p.oid::regprocedure::text from pg_proc p
         where p.pronamespace in ('public'::regnamespace, 'spool'::regnamespace)
           and p.prosecdef
           and not coalesce(p.proconfig @> array['search_path=""'], false)
         order by p.oid::regprocedure::text collate "C"),
  '{}'::text[],
  'every SECURITY DEFINER function in public and spool pins search_path to empty');
select cmp_ok(
  (select count(*)::int from pg_proc p
    where p.pronamespace in ('public'::regnamespace, 'spool'::regnamespace) and p.prosecdef),
  '>=', 17,
  'the search_path check above saw all the SECURITY DEFINER functions');

-- ---------------------------------------------------------------------------------------------
-- Triggers
-- ---------------------------------------------------------------------------------------------
select triggers_are('public', 'jobs', array['jobs_ring_doorbell', 'jobs_flow_ended', 'jobs_flow_settle', 'jobs_flow_deleted',
                                           'jobs_attempt_cancelled', 'jobs_search_insert', 'jobs_search_delete'],
  'jobs has only the doorbell, the flow triggers, the one that ends a cancelled job''s attempt and the search-text triggers: notifications and attempts are written set-based by the API, not per row');
select has_function('spool', 'notify_ended', array['public.jobs'],
  'spool.notify_ended(job) writes the notification of a job that ended');
select has_function('spool', 'ended_message', array['text', 'public.job_status', 'jsonb'],
  'spool.ended_message builds the notification text in one place');
select trigger_is('public', 'jobs', 'jobs_ring_doorbell', 'spool', 'jobs_inserted',
  'jobs_ring_doorbell calls spool.jobs_inserted');
select is(
  pg_get_triggerdef((select oid from pg_trigger where tgname = 'jobs_ring_doorbell'
                       and tgrelid = 'public.jobs'::regclass)),
  'CREATE TRIGGER jobs_ring_doorbell AFTER INSERT ON public.jobs REFERENCING NEW TABLE AS new_jobs FOR EACH STATEMENT EXECUTE FUNCTION spool.jobs_inserted()',
  'the doorbell rings once per INSERT statement, seeing the inserted rows as a transition table');

-- ---------------------------------------------------------------------------------------------
-- Realtime
-- ---------------------------------------------------------------------------------------------
select set_has(
  $$select schemaname::text collate "default", tablename::text collate "default" from pg_publication_tables
     where pubname = 'supabase_realtime'$$,
  $$values ('public', 'jobs'), ('public', 'notifications')$$,
  'jobs and notifications are published to supabase_realtime');
select is(
  array(select tablename::text from pg_publication_tables
         where pubname = 'supabase_realtime' and schemaname = 'spool'),
  '{}'::text[],
  'no spool internals are published to Realtime');

select * from finish();
rollback;
