-- The inbox's SQL API: count_unread_notifications and mark_notifications_read count and mark the
-- caller's own notifications only (one id, some ids, all), leave other users' rows and rows
-- already read alone, are idempotent, refuse anon and callers without a user, and are the only
-- way to write read_at that the inbox needs. Time is spool.now, set; nothing sleeps.
begin;
select plan(21);

-- Helpers (as in 28_schedules): uid(name), create_users(names), authenticate_as(name),
-- clear_authentication(), error_of(sql) = '<SQLSTATE> <HINT>' of the error sql raises.
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
create function pg_temp.clear_authentication() returns void language plpgsql as $$
begin
  perform set_config('request.jwt.claims', '', true);
  reset role;
end $$;
create function pg_temp.error_of(p_sql text) returns text language plpgsql as $$
declare
  v_state text;
  v_hint text;
begin
  execute p_sql;
  return 'no error';
exception when others then
  get stacked diagnostics v_state = returned_sqlstate, v_hint = pg_exception_hint;
  return v_state || ' ' || coalesce(v_hint, '');
end $$;
grant execute on all functions in schema pg_temp to authenticated, anon;

select pg_temp.create_users('ada', 'bob');
select set_config('spool.now', '2030-01-01 00:00:00+00', true);

-- Ada has four notifications (one already read), Bob two.
insert into public.notifications (id, user_id, job_id, job_type, status, message, created_at, read_at)
values
  ('00000000-0000-7000-8000-00000000a001', pg_temp.uid('ada'), gen_random_uuid(), 'color-grade', 'done', 'Colour grade is done', '2029-12-31 23:00+00', null),
  ('00000000-0000-7000-8000-00000000a002', pg_temp.uid('ada'), gen_random_uuid(), 'color-grade', 'failed', 'Colour grade failed', '2029-12-31 23:10+00', null),
  ('00000000-0000-7000-8000-00000000a003', pg_temp.uid('ada'), gen_random_uuid(), 'audio-clean', 'done', 'Clean up audio is done', '2029-12-31 23:20+00', null),
  ('00000000-0000-7000-8000-00000000a004', pg_temp.uid('ada'), gen_random_uuid(), 'roto', 'cancelled', 'Cut out was cancelled', '2029-12-31 23:30+00', '2029-12-31 23:40+00'),
  ('00000000-0000-7000-8000-00000000b001', pg_temp.uid('bob'), gen_random_uuid(), 'roto', 'done', 'Cut out is done', '2029-12-31 23:00+00', null),
  ('00000000-0000-7000-8000-00000000b002', pg_temp.uid('bob'), gen_random_uuid(), 'roto', 'done', 'Cut out is done', '2029-12-31 23:05+00', null);

-- Structure and privileges.
select function_privs_are('public', 'count_unread_notifications', '{}', 'anon', '{}',
  'anon cannot count notifications');
select function_privs_are('public', 'mark_notifications_read', array['uuid[]'], 'anon', '{}',
  'anon cannot mark notifications read');
select function_privs_are('public', 'mark_notifications_read', array['uuid[]'], 'authenticated',
  array['EXECUTE'], 'signed-in users may mark notifications read');
select is((select prosecdef and proconfig @> array['search_path=""']
           from pg_proc where oid = 'public.mark_notifications_read(uuid[])'::regprocedure),
  true, 'mark_notifications_read is security definer with an empty search_path');

-- Counting.
select pg_temp.authenticate_as('ada');
select is(public.count_unread_notifications(), 3, 'Ada has three unread notifications (the read one is not counted)');
select pg_temp.authenticate_as('bob');
select is(public.count_unread_notifications(), 2, 'Bob counts only his own two');

-- Marking one, as its owner, and as someone else.
select is(public.mark_notifications_read(array['00000000-0000-7000-8000-00000000a001'::uuid]), 0,
  'Bob marking Ada''s notification marks nothing');
select pg_temp.authenticate_as('ada');
select is(public.count_unread_notifications(), 3, 'so Ada still has three unread');
select is(public.mark_notifications_read(array['00000000-0000-7000-8000-00000000a001'::uuid,
                                               '00000000-0000-7000-8000-00000000b001'::uuid]), 1,
  'Ada marking her own and one of Bob''s marks only hers');
select is(public.mark_notifications_read(array['00000000-0000-7000-8000-00000000a001'::uuid]), 0,
  'marking it again marks nothing (idempotent)');
select is((select read_at from public.notifications where id = '00000000-0000-7000-8000-00000000a001'),
  '2030-01-01 00:00:00+00'::timestamptz, 'read_at is spool.now()');

-- Marking all.
select is(public.mark_notifications_read(), 2, 'marking all marks Ada''s two other unread ones');
select is(public.count_unread_notifications(), 0, 'and then she has none unread');
select is((select read_at from public.notifications where id = '00000000-0000-7000-8000-00000000a004'),
  '2029-12-31 23:40:00+00'::timestamptz, 'a notification read earlier keeps its read_at');
select pg_temp.authenticate_as('bob');
select is(public.count_unread_notifications(), 2, 'Bob''s notifications are untouched by Ada''s mark-all');

-- Refusals.
select pg_temp.clear_authentication();
set local role authenticated;
select is(pg_temp.error_of('select public.mark_notifications_read()'), 'PT401 unauthorized',
  'without a user: 401 unauthorized');
select pg_temp.authenticate_as('ada');
select is(pg_temp.error_of(
  'select public.mark_notifications_read(array(select gen_random_uuid() from generate_series(1, 1001)))'),
  'PT400 invalid_argument', 'more than 1000 ids: 400 invalid_argument');

-- count_input_jobs: the creators' check before removing a refused job's file.
select pg_temp.clear_authentication();
select function_privs_are('public', 'count_input_jobs', array['uuid', 'text'], 'authenticated', '{}',
  'signed-in users cannot ask which jobs use a file');
insert into public.jobs (user_id, type, input)
values (pg_temp.uid('ada'), 'color-grade', jsonb_build_object('input_path', pg_temp.uid('ada') || '/photo.png', 'preset', 'noir'));
select is(public.count_input_jobs(pg_temp.uid('ada'), pg_temp.uid('ada') || '/photo.png'), 1,
  'a job of Ada''s reads her photo.png');
select is(public.count_input_jobs(pg_temp.uid('ada'), pg_temp.uid('ada') || '/other.png'), 0,
  'no job reads other.png');
select is(public.count_input_jobs(pg_temp.uid('bob'), pg_temp.uid('ada') || '/photo.png'), 0,
  'only the user''s own jobs count');

select * from finish();
rollback;
