-- Schedules: recurring jobs. Creating one (cron or every, refusals with a clear message), the
-- per-user limit, pause / resume / delete as the owner, isolation under RLS, project-wide
-- schedules its owner sees but cannot change, exactly one job per slot (called twice, called
-- late under each catch-up policy), a quota refusal recorded without wedging the schedule, and
-- spool.next_cron_after's edge cases. Two sessions materialising at once:
-- local/tools/tests/schedules-two-sessions.test.mjs (dblink cannot connect under `supabase test db`).
-- Time is spool.now, moved by setting it; nothing sleeps.
begin;
select plan(82);

-- Helpers (as in 12_leases_and_fencing):
--   uid(name) / create_users(names)  named test users with fixed uuids
--   authenticate_as(name), authenticate_as_service_role(), clear_authentication()
--   t(offset) / travel_to(at)        the test clock: 2030-01-01 00:00 UTC (a Tuesday) + offset
--   error_of(sql)                    '<SQLSTATE> <HINT>' of the error sql raises, or 'no error'
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
-- The slots that have a job, for one schedule, as offsets from t(): '{00:15:00,00:30:00}'.
create function pg_temp.job_slots(p_schedule uuid) returns interval[] language sql as $$
  select coalesce(array_agg(j.run_at - pg_temp.t() order by j.run_at), '{}')
  from public.jobs j where j.idempotency_key like 'schedule:' || p_schedule || ':%' $$;
grant execute on all functions in schema pg_temp to authenticated, service_role;

select pg_temp.create_users('alice', 'bob', 'carol', 'dave', 'erin');
update spool.settings set max_schedules_per_user = 20, schedule_catch_up_limit = 10,
  max_active_jobs_per_user = 100, max_jobs_per_minute_per_user = 1000;
select pg_temp.travel_to(pg_temp.t());

-- ---------------------------------------------------------------------------------------------
-- spool.next_cron_after: pure, fast, and right at the edges
-- ---------------------------------------------------------------------------------------------
select is(spool.next_cron_after('*/15 * * * *', 'UTC', pg_temp.t('7 minutes')), pg_temp.t('15 minutes'),
  '*/15: the next quarter hour');
select is(spool.next_cron_after('*/15 * * * *', 'UTC', pg_temp.t('15 minutes')), pg_temp.t('30 minutes'),
  'the next slot is strictly after the given instant');
select is(spool.next_cron_after('0 9 * * 1-5', 'Europe/Paris', '2030-01-04 09:00+01'), '2030-01-07 09:00+01'::timestamptz,
  '1-5: after Friday 09:00 in Paris comes Monday 09:00 Paris time (08:00 UTC)');
select is(spool.next_cron_after('0 8,12,18 * * *', 'UTC', pg_temp.t('12 hours')), pg_temp.t('18 hours'),
  'a list: 8,12,18');
select is(spool.next_cron_after('0 0 31 * *', 'UTC', '2030-01-31 00:00+00'), '2030-03-31 00:00+00'::timestamptz,
  'the 31st skips February and its 28 days');
select is(spool.next_cron_after('0 0 29 2 *', 'UTC', pg_temp.t()), '2032-02-29 00:00+00'::timestamptz,
  'Feb 29 waits for the next leap year');
select is(spool.next_cron_after('0 0 29 2 *', 'UTC', '2097-03-01 00:00+00'), '2104-02-29 00:00+00'::timestamptz,
  'Feb 29 after 2096 waits for 2104 (2100 is no leap year)');
select is(spool.next_cron_after('0 0 30 2 *', 'UTC', pg_temp.t()), null,
  'an expression that matches no date gives null');
select is(spool.next_cron_after('0 12 * * 0', 'UTC', pg_temp.t()), '2030-01-06 12:00+00'::timestamptz,
  'day of week 0 is Sunday');
select is(spool.next_cron_after('0 12 * * 7', 'UTC', pg_temp.t()), '2030-01-06 12:00+00'::timestamptz,
  'day of week 7 is Sunday too');
select is(spool.next_cron_after('0 9 * jan-mar mon', 'UTC', '2030-03-31 00:00+00'), '2031-01-06 09:00+00'::timestamptz,
  'month and day names: after March, the first Monday of next January');
select is(spool.next_cron_after('0 0 13 * 5', 'UTC', pg_temp.t()), '2030-01-04 00:00+00'::timestamptz,
  'day of month and day of week both restricted: either matches (Friday the 4th before the 13th)');
select is(spool.next_cron_after('30 2 * * *', 'America/New_York', '2030-03-09 12:00-05'),
  '2030-03-10 07:00+00'::timestamptz,
  'DST forward in New York: 02:30 does not exist on 10 March, the slot fires at the jump (03:00 EDT)');
select is(spool.next_cron_after('30 2 * * *', 'America/New_York', '2030-03-10 07:00+00'),
  '2030-03-11 06:30+00'::timestamptz,
  'and the day after, 02:30 EDT again');
select is(
  array(with recursive r(n, at) as (
          select 0, '2030-03-10 06:40+00'::timestamptz
          union all select n + 1, spool.next_cron_after('10,50 2,3 * * *', 'America/New_York', at) from r where n < 3)
        select at from r where n > 0 order by n),
  array['2030-03-10 07:00+00', '2030-03-10 07:10+00', '2030-03-10 07:50+00']::timestamptz[],
  'the skipped hour''s slots fire once at the jump, and the hour after keeps its own slots in order');
select is(
  array(with recursive r(n, at) as (
          select 0, '2030-11-03 04:40+00'::timestamptz
          union all select n + 1, spool.next_cron_after('*/20 * * * *', 'America/New_York', at) from r where n < 4)
        select at from r where n > 0 order by n),
  array['2030-11-03 06:00+00', '2030-11-03 06:20+00', '2030-11-03 06:40+00', '2030-11-03 07:00+00']::timestamptz[],
  'DST back in New York: the repeated hour''s slots fire once, in its second pass (EST)');
select is(spool.next_cron_after('@daily', 'Asia/Kolkata', pg_temp.t()), '2030-01-01 18:30+00'::timestamptz,
  '@daily is midnight in the schedule''s zone');
select cmp_ok(
  (select count(*)::int from (with recursive r(n, at) as (
     select 0, pg_temp.t() union all
     select n + 1, spool.next_cron_after('* * * * *', 'Europe/Paris', at) from r where n < 500) select 1 from r) x),
  '=', 501, 'five hundred consecutive minutes, no slot missing');

-- ---------------------------------------------------------------------------------------------
-- Creating: cron or every, refusals say what is wrong
-- ---------------------------------------------------------------------------------------------
select pg_temp.authenticate_as_service_role();
create temp table tests_schedules (name text primary key, id uuid not null) on commit drop;
grant all on tests_schedules to public;

insert into tests_schedules
  select 'latest', id from public.create_schedule(p_user_id => pg_temp.uid('alice'), p_type => 'noop',
    p_input => '{"n": 1}', p_cron => '*/15 * * * *', p_name => 'quarter hours');
select results_eq(
  $$select next_run_at, paused, catch_up, timezone, cron, every, project_wide
      from public.schedules where id = (select id from tests_schedules where name = 'latest')$$,
  $$values (pg_temp.t('15 minutes'), false, 'latest'::text, 'UTC'::text, '*/15 * * * *'::text, null::interval, false)$$,
  'a cron schedule starts with its next slot, active, catching up the latest slot, in UTC');

insert into tests_schedules
  select 'every', id from public.create_schedule(p_user_id => pg_temp.uid('alice'), p_type => 'noop',
    p_every => '10 minutes');
select results_eq(
  $$select starts_at, next_run_at from public.schedules where id = (select id from tests_schedules where name = 'every')$$,
  $$values (pg_temp.t('10 minutes'), pg_temp.t('10 minutes'))$$,
  'an every schedule''s first slot is one period from now');

select throws_ok(
  $$select public.create_schedule(p_user_id => pg_temp.uid('alice'), p_type => 'noop', p_cron => '61 * * * *')$$,
  'PT400', 'cron minute field: "61" is out of range 0-59', 'a minute past 59 is refused, naming the field');
select throws_ok(
  $$select public.create_schedule(p_user_id => pg_temp.uid('alice'), p_type => 'noop', p_cron => '0 9 * *')$$,
  'PT400', 'cron must have 5 fields (minute hour day-of-month month day-of-week), like "0 9 * * 1-5"; got 4',
  'four fields are refused');
select throws_ok(
  $$select public.create_schedule(p_user_id => pg_temp.uid('alice'), p_type => 'noop', p_cron => '0 9 * * 5-1')$$,
  'PT400', 'cron day-of-week field: range "5-1" runs backwards', 'a backwards range is refused');
select throws_ok(
  $$select public.create_schedule(p_user_id => pg_temp.uid('alice'), p_type => 'noop', p_cron => '*/0 * * * *')$$,
  'PT400', 'cron minute field: step in "*/0" must be at least 1', 'a step of 0 is refused');
select throws_ok(
  $$select public.create_schedule(p_user_id => pg_temp.uid('alice'), p_type => 'noop', p_cron => 'every monday')$$,
  'PT400', 'cron must have 5 fields (minute hour day-of-month month day-of-week), like "0 9 * * 1-5"; got 2',
  'words are refused');
select throws_ok(
  $$select public.create_schedule(p_user_id => pg_temp.uid('alice'), p_type => 'noop', p_cron => '0 0 30 2 *')$$,
  'PT400', 'cron "0 0 30 2 *" matches no date (like February 30)', 'an expression that never fires is refused');
select throws_ok(
  $$select public.create_schedule(p_user_id => pg_temp.uid('alice'), p_type => 'noop', p_cron => '0 9 * * *',
      p_timezone => 'Mars/Olympus_Mons')$$,
  'PT400', 'unknown time zone "Mars/Olympus_Mons": use an IANA name like "Europe/Paris" or "UTC"',
  'an unknown time zone is refused');
select throws_ok(
  $$select public.create_schedule(p_user_id => pg_temp.uid('alice'), p_type => 'noop', p_cron => '0 9 * * *',
      p_every => '1 hour')$$,
  'PT400', 'give either cron (like "0 9 * * *") or every (like "15 minutes"), not both', 'cron and every together are refused');
select throws_ok(
  $$select public.create_schedule(p_user_id => pg_temp.uid('alice'), p_type => 'noop')$$,
  'PT400', 'give either cron (like "0 9 * * *") or every (like "15 minutes"), not both', 'neither is refused');
select throws_ok(
  $$select public.create_schedule(p_user_id => pg_temp.uid('alice'), p_type => 'noop', p_every => '30 seconds')$$,
  'PT400', 'every must be at least 1 minute', 'a period under a minute is refused');
select throws_ok(
  $$select public.create_schedule(p_user_id => pg_temp.uid('alice'), p_type => 'noop', p_every => '1 month')$$,
  'PT400', 'every cannot count months or years (their length varies): use cron, like "0 9 1 * *"',
  'a period in months is refused');
select throws_ok(
  $$select public.create_schedule(p_user_id => pg_temp.uid('alice'), p_type => 'noop', p_every => '1 hour',
      p_catch_up => 'some')$$,
  'PT400', 'catch_up must be "latest" or "all"', 'an unknown catch-up policy is refused');
select is(pg_temp.error_of($$select public.create_schedule(p_user_id => gen_random_uuid(), p_type => 'noop',
    p_every => '1 hour')$$), 'PT404 user_not_found', 'a schedule for no user is refused');
select is(pg_temp.error_of($$select public.create_schedule(p_user_id => pg_temp.uid('alice'), p_type => 'Not A Slug',
    p_every => '1 hour')$$), 'PT400 invalid_argument', 'a type that is not a slug is refused');
select is(pg_temp.error_of($$select public.create_schedule(p_user_id => pg_temp.uid('alice'), p_type => 'noop',
    p_input => '[1]', p_every => '1 hour')$$), 'PT400 invalid_argument', 'an input that is not an object is refused');

-- The per-user limit: project-wide schedules are not counted against it.
select pg_temp.clear_authentication();
update spool.settings set max_schedules_per_user = 3;
select pg_temp.authenticate_as_service_role();
insert into tests_schedules
  select 'third', id from public.create_schedule(p_user_id => pg_temp.uid('alice'), p_type => 'noop', p_every => '1 hour');
select is(pg_temp.error_of($$select public.create_schedule(p_user_id => pg_temp.uid('alice'), p_type => 'noop',
    p_every => '1 hour')$$), 'PT429 quota_schedules', 'a fourth schedule is refused when a user may own three');
insert into tests_schedules
  select 'project', id from public.create_schedule(p_user_id => pg_temp.uid('alice'), p_type => 'noop',
    p_cron => '0 3 * * *', p_project_wide => true, p_name => 'nightly report');
select ok((select project_wide from public.schedules where id = (select id from tests_schedules where name = 'project')),
  'a project-wide schedule for alice is created past her limit: the project''s, not hers');
select pg_temp.clear_authentication();
update spool.settings set max_schedules_per_user = 20;
select pg_temp.authenticate_as_service_role();
insert into tests_schedules
  select 'bob', id from public.create_schedule(p_user_id => pg_temp.uid('bob'), p_type => 'noop', p_every => '1 hour');

-- ---------------------------------------------------------------------------------------------
-- Owners: RLS list, pause / resume / delete their own, nothing of anyone else's
-- ---------------------------------------------------------------------------------------------
select pg_temp.authenticate_as('alice');
select is(pg_temp.error_of($$select public.create_schedule(p_user_id => pg_temp.uid('alice'), p_type => 'noop',
    p_every => '1 hour')$$), '42501 -', 'a user cannot create a schedule directly, even for themselves');
select set_eq($$select id from public.schedules$$,
  $$select id from tests_schedules where name in ('latest', 'every', 'third', 'project')$$,
  'alice lists her own schedules, the project-wide one included, and not bob''s');
select is(pg_temp.error_of($$select public.pause_schedule((select id from tests_schedules where name = 'bob'))$$),
  'PT404 schedule_not_found', 'alice cannot pause bob''s schedule: it does not exist for her');
select is(pg_temp.error_of($$select public.delete_schedule((select id from tests_schedules where name = 'bob'))$$),
  'PT404 schedule_not_found', 'alice cannot delete bob''s schedule');
select is((select paused from public.pause_schedule((select id from tests_schedules where name = 'third'))), true,
  'alice pauses her own schedule');
select is((select paused from public.pause_schedule((select id from tests_schedules where name = 'third'))), true,
  'pausing a paused schedule is a no-op');
select is(pg_temp.error_of($$select public.pause_schedule((select id from tests_schedules where name = 'project'))$$),
  'PT403 schedule_project_wide', 'alice sees the project-wide schedule but cannot pause it');
select is(pg_temp.error_of($$select public.delete_schedule((select id from tests_schedules where name = 'project'))$$),
  'PT403 schedule_project_wide', 'nor delete it');
select is(pg_temp.error_of($$update public.schedules set paused = true$$), '42501 -',
  'a user cannot write the schedules table directly');

select pg_temp.authenticate_as('bob');
select set_eq($$select id from public.schedules$$, $$select id from tests_schedules where name = 'bob'$$,
  'bob lists only his own schedule');
select is(pg_temp.error_of($$select public.resume_schedule((select id from tests_schedules where name = 'third'))$$),
  'PT404 schedule_not_found', 'bob cannot resume alice''s schedule');

select pg_temp.authenticate_as_service_role();
select is((select paused from public.pause_schedule((select id from tests_schedules where name = 'project'))), true,
  'service_role pauses the project-wide schedule');
select is((select paused from public.resume_schedule((select id from tests_schedules where name = 'project'))), false,
  'and resumes it');

-- ---------------------------------------------------------------------------------------------
-- Exactly one job per slot
-- ---------------------------------------------------------------------------------------------
insert into tests_schedules
  select 'all', id from public.create_schedule(p_user_id => pg_temp.uid('carol'), p_type => 'noop',
    p_input => '{"n": 2}', p_cron => '*/15 * * * *', p_catch_up => 'all');

select pg_temp.travel_to(pg_temp.t('15 minutes'));
select is(spool.materialize_schedules(), 3,
  'at 00:15 the sweep creates the due slots: alice''s and carol''s quarter hours and alice''s 00:10');
select is(spool.materialize_schedules(), 0, 'called again for the same slots, it creates nothing');
select is(pg_temp.job_slots((select id from tests_schedules where name = 'latest')), array[interval '15 minutes'],
  'alice''s quarter-hour schedule has one job, for 00:15');
select results_eq(
  $$select j.user_id, j.type, j.input, j.run_at, j.idempotency_key, j.status::text from public.jobs j
     where j.idempotency_key like 'schedule:' || (select id from tests_schedules where name = 'latest') || ':%'$$,
  $$values (pg_temp.uid('alice'), 'noop'::text, '{"n": 1}'::jsonb, pg_temp.t('15 minutes'),
            'schedule:' || (select id from tests_schedules where name = 'latest') || ':2030-01-01T00:15:00Z',
            'pending'::text)$$,
  'the job is the owner''s, of the schedule''s type and input, due at its slot, keyed by schedule and slot');
select results_eq(
  $$select next_run_at, last_run_at, last_job_id is not null, last_error from public.schedules
     where id = (select id from tests_schedules where name = 'latest')$$,
  $$values (pg_temp.t('30 minutes'), pg_temp.t('15 minutes'), true, null::jsonb)$$,
  'the schedule moved to its next slot and remembers its last run');
select is(pg_temp.job_slots((select id from tests_schedules where name = 'every')), array[interval '10 minutes'],
  'the every schedule ran its 00:10 slot');
select is((select next_run_at from public.schedules where id = (select id from tests_schedules where name = 'every')),
  pg_temp.t('20 minutes'), 'and waits for 00:20');

-- A sweep that saw the schedule before another advanced it (next_run_at put back here by hand)
-- finds the slot's job by its key and creates none.
select pg_temp.clear_authentication();
update public.schedules set next_run_at = pg_temp.t('15 minutes')
 where id = (select id from tests_schedules where name = 'latest');
select pg_temp.authenticate_as_service_role();
select is(spool.materialize_schedules(), 0, 'a slot whose job exists is not created again');
select is(pg_temp.job_slots((select id from tests_schedules where name = 'latest')), array[interval '15 minutes'],
  'still one job for 00:15');

-- Late by three slots: 00:30, 00:45 and 01:00 were missed when the sweep runs at 01:05.
select pg_temp.travel_to(pg_temp.t('65 minutes'));
select spool.materialize_schedules();
select is(pg_temp.job_slots((select id from tests_schedules where name = 'latest')),
  array[interval '15 minutes', interval '60 minutes'],
  'catch_up latest: one run, for the most recent missed slot (01:00); 00:30 and 00:45 are skipped');
select is(pg_temp.job_slots((select id from tests_schedules where name = 'all')),
  array[interval '15 minutes', interval '30 minutes', interval '45 minutes', interval '60 minutes'],
  'catch_up all: every missed slot gets its run');
select is(pg_temp.job_slots((select id from tests_schedules where name = 'every')),
  array[interval '10 minutes', interval '60 minutes'],
  'an every schedule late by five slots (00:20 to 01:00) runs only the latest, 01:00');
select is(
  (select array_agg(s.next_run_at order by t.name) from public.schedules s join tests_schedules t using (id)
    where t.name in ('all', 'latest')),
  array[pg_temp.t('75 minutes'), pg_temp.t('75 minutes')],
  'both move on to the first slot after now (01:15)');

-- catch_up all is bounded: the most recent schedule_catch_up_limit slots, no more.
insert into tests_schedules
  select 'minutely', id from public.create_schedule(p_user_id => pg_temp.uid('carol'), p_type => 'noop',
    p_cron => '* * * * *', p_catch_up => 'all');
select pg_temp.travel_to(pg_temp.t('95 minutes 30 seconds'));
select spool.materialize_schedules();
select is(pg_temp.job_slots((select id from tests_schedules where name = 'minutely')),
  array(select make_interval(mins => m) from generate_series(86, 95) m),
  'a minutely schedule 29 slots late creates only the 10 most recent (01:26 to 01:35)');

-- ---------------------------------------------------------------------------------------------
-- Pause, resume, delete
-- ---------------------------------------------------------------------------------------------
select pg_temp.authenticate_as('carol');
select public.pause_schedule((select id from tests_schedules where name = 'minutely'));
select pg_temp.authenticate_as_service_role();
select pg_temp.travel_to(pg_temp.t('2 hours 10 seconds'));
select spool.materialize_schedules();
select is(cardinality(pg_temp.job_slots((select id from tests_schedules where name = 'minutely'))), 10,
  'a paused schedule creates no runs');
select pg_temp.authenticate_as('carol');
select is((select next_run_at from public.resume_schedule((select id from tests_schedules where name = 'minutely'))),
  pg_temp.t('2 hours 1 minute'), 'resume restarts from now: the next slot is the first after now');
select pg_temp.authenticate_as_service_role();
select spool.materialize_schedules();
select is(cardinality(pg_temp.job_slots((select id from tests_schedules where name = 'minutely'))), 10,
  'no burst of the slots missed while paused');
select pg_temp.travel_to(pg_temp.t('2 hours 1 minute'));
select spool.materialize_schedules();
select is((pg_temp.job_slots((select id from tests_schedules where name = 'minutely')))[11], interval '2 hours 1 minute',
  'and the next slot runs');

select pg_temp.authenticate_as('carol');
select is((select id from public.delete_schedule((select id from tests_schedules where name = 'minutely'))),
  (select id from tests_schedules where name = 'minutely'), 'carol deletes her schedule');
select is_empty($$select 1 from public.schedules where id = (select id from tests_schedules where name = 'minutely')$$,
  'it is gone from her list');
select pg_temp.authenticate_as_service_role();
select is(cardinality(pg_temp.job_slots((select id from tests_schedules where name = 'minutely'))), 11,
  'the jobs it created stay');
select pg_temp.authenticate_as('carol');
select is(pg_temp.error_of($$select public.delete_schedule((select id from tests_schedules where name = 'minutely'))$$),
  'PT404 schedule_not_found', 'deleting it again is not found');

-- ---------------------------------------------------------------------------------------------
-- A quota refusal is recorded and does not wedge the schedule
-- ---------------------------------------------------------------------------------------------
select pg_temp.clear_authentication();
update public.schedules set paused = true;   -- only dave's and erin's below take part
update spool.settings set max_active_jobs_per_user = 2;
select public.create_job(p_user_id => pg_temp.uid('dave'), p_type => 'noop', p_input => jsonb_build_object('n', n))
  from generate_series(1, 2) n;
select pg_temp.authenticate_as_service_role();
insert into tests_schedules
  select 'dave', id from public.create_schedule(p_user_id => pg_temp.uid('dave'), p_type => 'noop', p_every => '5 minutes');
insert into tests_schedules
  select 'erin', id from public.create_schedule(p_user_id => pg_temp.uid('erin'), p_type => 'noop', p_every => '5 minutes');
select pg_temp.travel_to(pg_temp.t('2 hours 6 minutes'));
select is(spool.materialize_schedules(), 1, 'dave is at his active-jobs quota: only erin''s run is created');
select results_eq(
  $$select last_error ->> 'code', last_error ->> 'sqlstate', (last_error ->> 'slot')::timestamptz, next_run_at, last_run_at
      from public.schedules where id = (select id from tests_schedules where name = 'dave')$$,
  $$values ('quota_active_jobs'::text, 'PT429'::text, pg_temp.t('2 hours 6 minutes'), pg_temp.t('2 hours 11 minutes'),
            null::timestamptz)$$,
  'the refusal is recorded with its slot, and the schedule moved on to its next slot');
select is(pg_temp.job_slots((select id from tests_schedules where name = 'erin')), array[interval '2 hours 6 minutes'],
  'erin''s schedule ran');
select pg_temp.clear_authentication();
update spool.settings set max_active_jobs_per_user = 100;
select pg_temp.authenticate_as_service_role();
select pg_temp.travel_to(pg_temp.t('2 hours 11 minutes'));
select is(spool.materialize_schedules(), 2, 'with room again, the next slot runs for both');
select results_eq(
  $$select last_error, last_run_at from public.schedules where id = (select id from tests_schedules where name = 'dave')$$,
  $$values (null::jsonb, pg_temp.t('2 hours 11 minutes'))$$,
  'and dave''s last_error is cleared by the run');

-- A schedule is deleted with its owner.
select pg_temp.clear_authentication();
delete from auth.users where id = pg_temp.uid('erin');
select is_empty($$select 1 from public.schedules where id = (select id from tests_schedules where name = 'erin')$$,
  'deleting a user deletes their schedules');

-- ---------------------------------------------------------------------------------------------
-- preview_schedule: the next runs, for the client
-- ---------------------------------------------------------------------------------------------
select pg_temp.authenticate_as('alice');
select is(public.preview_schedule(p_cron => '0 9 * * *', p_timezone => 'Europe/Paris', p_after => pg_temp.t(), p_count => 3),
  array['2030-01-01 08:00+00', '2030-01-02 08:00+00', '2030-01-03 08:00+00']::timestamptz[],
  'a user previews the next three 09:00 runs in Paris');
select is(pg_temp.error_of($$select public.preview_schedule(p_cron => '0 25 * * *')$$), 'PT400 invalid_argument',
  'preview refuses a bad expression as create does');

-- ---------------------------------------------------------------------------------------------
-- Its own pg_cron job
-- ---------------------------------------------------------------------------------------------
select pg_temp.clear_authentication();
select results_eq(
  $$select command collate "default", active from cron.job where jobname = 'spool-schedules'$$,
  $$values ('select spool.materialize_schedules()'::text, true)$$,
  'pg_cron runs spool.materialize_schedules as its own job, spool-schedules');
select is(
  (select schedule from cron.job where jobname = 'spool-schedules'),
  (select case when (regexp_match(extversion, '^(\d+)\.(\d+)'))::int[] >= array[1, 5]
               then '10 seconds' else '* * * * *' end
     from pg_extension where extname = 'pg_cron'),
  'every 10 seconds on pg_cron 1.5 or later, else every minute');

select * from finish();
rollback;
