-- Spool: schedules, recurring jobs in SQL (issue 11, item 5).
--
-- A row of public.schedules says "create this job (type, input) at every slot": each time a
-- 5-field cron expression matches in the schedule's time zone, or every fixed interval from an
-- anchor. spool.materialize_schedules(), run by its own pg_cron job (spool-schedules), creates the
-- job of each due slot through public.create_job, so a scheduled run is an ordinary job: the same
-- quotas, fair claiming, RLS, retries and Realtime.
--
--   * Owners. Every schedule belongs to a user (user_id, not null): its jobs are that user's jobs.
--     Owners see their own schedules (RLS SELECT on the table is the "list") and pause, resume or
--     delete them through the functions below; nobody sees anyone else's. A "project-wide"
--     schedule is one service_role created for an owner it names, flagged project_wide: its owner
--     sees it (and its jobs) but cannot pause, resume or delete it (PT403); only service_role (or
--     an admin on a direct connection) can.
--   * Creating is service_role's (the schedule creator Edge Function, or an admin), like
--     create_job: a schedule's input becomes job input, and input is validated by the kind's
--     creator (zod, file ownership, provider configured) before it reaches SQL. A user who could
--     call create_schedule directly could enqueue any input for themselves.
--   * Exactly once per slot. materialize_schedules locks each due schedule row FOR UPDATE SKIP
--     LOCKED, creates the slot's job and advances next_run_at in the same transaction, and the job
--     carries the idempotency key schedule:<id>:<slot, UTC ISO 8601>: a second sweep at the same
--     moment skips the locked row, one right after sees next_run_at advanced, and were both to
--     reach one slot the key would return the first job instead of a second.
--   * Catch-up policy (a sweep that runs late, or a database that was down): catch_up = 'latest'
--     (the default) creates ONE run, for the most recent missed slot, and skips the older ones;
--     catch_up = 'all' creates every missed slot, at most spool.settings.schedule_catch_up_limit
--     (10) of them, the most recent ones: older slots are skipped. Either way next_run_at moves
--     to the first slot after now. resume_schedule never catches up: it restarts from now.
--   * A refusal does not wedge a schedule: when create_job refuses a slot's job (PT429 quota, or
--     another refusal) the slot is dropped, last_error records it, and next_run_at moves on. A
--     transient error (a deadlock, a lock timeout) fails the sweep instead, so the next retries.
--   * Limits: at most spool.settings.max_schedules_per_user (20) schedules per user, project-wide
--     ones not counted; the shortest period is 1 minute (cron's resolution; every >= 1 minute).
--   * Time: every rule reads spool.now(). Cron slots are wall-clock minutes in the schedule's IANA
--     time zone (see spool.next_cron_after for DST); `every` is elapsed time (a day is 24 h) and
--     ignores the zone.

-- Settings -------------------------------------------------------------------------------------

alter table spool.settings add column max_schedules_per_user integer not null default 20
  check (max_schedules_per_user >= 0);
alter table spool.settings add column schedule_catch_up_limit integer not null default 10
  check (schedule_catch_up_limit between 1 and 1000);
comment on column spool.settings.max_schedules_per_user is
  'How many schedules one user may own (project-wide schedules, created by service_role, not counted).';
comment on column spool.settings.schedule_catch_up_limit is
  'A late sweep creates at most this many missed slots of a catch_up = ''all'' schedule (the most recent ones).';

-- Cron expressions ------------------------------------------------------------------------------

-- A parsed cron expression: the values each field allows, sorted, and whether the day-of-month
-- and day-of-week fields start with '*' (Vixie cron's rule for combining the two, see
-- spool.cron_day_matches).
create type spool.cron_spec as (
  minutes integer[],
  hours integer[],
  doms integer[],
  months integer[],
  dows integer[],
  dom_star boolean,
  dow_star boolean
);

-- spool.cron_field(field, name, lo, hi) parses one field of a cron expression.
-- Contract: pure. A field is a comma list of items; an item is `*`, `n`, `a-b`, any of those
-- with a step `/s` (`*/15`, `1-5/2`; `n/s` means n-hi/s, as in Vixie cron). Returns the allowed
-- values in lo..hi, sorted and distinct. Raises PT400 invalid_argument naming the field and the
-- item for anything else (out of range, reversed range, step 0, names after translation).
create function spool.cron_field(p_field text, p_name text, p_lo integer, p_hi integer)
returns integer[]
language plpgsql immutable parallel safe
set search_path = ''
as $$
declare
  v_item text;
  v_m text[];
  v_a integer;
  v_b integer;
  v_step integer;
  v_values integer[] := '{}';
begin
  if p_field is null or p_field = '' then
    perform spool.throw(400, 'invalid_argument', pg_catalog.format('cron %s field is empty', p_name));
  end if;
  foreach v_item in array pg_catalog.string_to_array(p_field, ',') loop
    v_m := pg_catalog.regexp_match(v_item, '^(?:(\*)|(\d{1,4})(?:-(\d{1,4}))?)(?:/(\d{1,4}))?$');
    if v_m is null then
      perform spool.throw(400, 'invalid_argument', pg_catalog.format(
        'cron %s field: "%s" is not a number, a range a-b, * or one of those with a step like */15',
        p_name, v_item));
    end if;
    if v_m[1] is not null then
      v_a := p_lo;
      v_b := p_hi;
    else
      v_a := v_m[2]::integer;
      v_b := coalesce(v_m[3]::integer, case when v_m[4] is not null then p_hi else v_a end);
    end if;
    v_step := coalesce(v_m[4]::integer, 1);
    if v_a not between p_lo and p_hi or v_b not between p_lo and p_hi then
      perform spool.throw(400, 'invalid_argument', pg_catalog.format(
        'cron %s field: "%s" is out of range %s-%s', p_name, v_item, p_lo, p_hi));
    end if;
    if v_a > v_b then
      perform spool.throw(400, 'invalid_argument', pg_catalog.format(
        'cron %s field: range "%s" runs backwards', p_name, v_item));
    end if;
    if v_step < 1 then
      perform spool.throw(400, 'invalid_argument', pg_catalog.format(
        'cron %s field: step in "%s" must be at least 1', p_name, v_item));
    end if;
    v_values := v_values || array(select pg_catalog.generate_series(v_a, v_b, v_step));
  end loop;
  return array(select distinct v from pg_catalog.unnest(v_values) v order by v);
end;
$$;

-- spool.cron_parse(cron) parses a 5-field cron expression.
-- Contract: pure. Fields, separated by blanks: minute (0-59), hour (0-23), day of month (1-31),
-- month (1-12 or jan-dec), day of week (0-7 or sun-sat; 0 and 7 are both Sunday); each as
-- spool.cron_field reads it. Shorthands: @hourly, @daily (@midnight), @weekly, @monthly, @yearly
-- (@annually). Case-insensitive. Raises PT400 invalid_argument with a message naming what is
-- wrong: the field count, the field, the item. It does not check that the expression ever
-- fires (spool.next_cron_after returns null for "0 0 31 2 *"; create_schedule refuses it).
create function spool.cron_parse(p_cron text)
returns spool.cron_spec
language plpgsql immutable parallel safe
set search_path = ''
as $$
declare
  v_cron text := pg_catalog.lower(pg_catalog.btrim(coalesce(p_cron, '')));
  v_fields text[];
  v_months text[] := array['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'];
  v_days text[] := array['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'];
  v_spec spool.cron_spec;
begin
  v_cron := case v_cron
    when '@hourly' then '0 * * * *'
    when '@daily' then '0 0 * * *'
    when '@midnight' then '0 0 * * *'
    when '@weekly' then '0 0 * * 0'
    when '@monthly' then '0 0 1 * *'
    when '@yearly' then '0 0 1 1 *'
    when '@annually' then '0 0 1 1 *'
    else v_cron end;
  v_fields := pg_catalog.regexp_split_to_array(v_cron, '\s+');
  if v_cron = '' or pg_catalog.cardinality(v_fields) <> 5 then
    perform spool.throw(400, 'invalid_argument', pg_catalog.format(
      'cron must have 5 fields (minute hour day-of-month month day-of-week), like "0 9 * * 1-5"; got %s',
      case when v_cron = '' then 0 else pg_catalog.cardinality(v_fields) end));
  end if;
  for i in 1..12 loop
    v_fields[4] := pg_catalog.replace(v_fields[4], v_months[i], i::text);
  end loop;
  for i in 1..7 loop
    v_fields[5] := pg_catalog.replace(v_fields[5], v_days[i], (i - 1)::text);
  end loop;
  v_spec.minutes := spool.cron_field(v_fields[1], 'minute', 0, 59);
  v_spec.hours := spool.cron_field(v_fields[2], 'hour', 0, 23);
  v_spec.doms := spool.cron_field(v_fields[3], 'day-of-month', 1, 31);
  v_spec.months := spool.cron_field(v_fields[4], 'month', 1, 12);
  v_spec.dows := array(select distinct d % 7 from pg_catalog.unnest(
                   spool.cron_field(v_fields[5], 'day-of-week', 0, 7)) d order by 1);
  v_spec.dom_star := v_fields[3] like '*%';
  v_spec.dow_star := v_fields[5] like '*%';
  return v_spec;
end;
$$;

-- spool.cron_next_local(spec, local) is the first local wall-clock minute strictly after `local`
-- that the expression matches, or null if none within 10 years.
-- Contract: pure, on timestamps without time zone (the schedule's wall clock). Jumps from field
-- to field (to the next allowed month, day, hour, minute) instead of walking minutes: a call
-- takes a few dozen steps at most (a Feb 29 expression walks February of up to 8 years).
-- Day rule (Vixie cron, as pg_cron): when day-of-month or day-of-week starts with '*', a day
-- must match both; when both are restricted, either one ("0 0 13 * 5": every 13th and every
-- Friday).
create function spool.cron_next_local(p_spec spool.cron_spec, p_local timestamp)
returns timestamp
language plpgsql immutable parallel safe
set search_path = ''
as $$
declare
  v timestamp := pg_catalog.date_trunc('minute', p_local) + interval '1 minute';
  v_limit timestamp := p_local + interval '10 years';
  v_all_dows boolean := pg_catalog.cardinality(p_spec.dows) = 7;
  v_month integer;
  v_day integer;
  v_next integer;
  v_last_day integer;
begin
  loop
    if v > v_limit then
      return null;
    end if;
    v_month := extract(month from v)::integer;
    if not v_month = any (p_spec.months) then
      v_next := (select pg_catalog.min(m) from pg_catalog.unnest(p_spec.months) m where m > v_month);
      v := case when v_next is null
                then pg_catalog.make_timestamp(extract(year from v)::integer + 1, p_spec.months[1], 1, 0, 0, 0)
                else pg_catalog.make_timestamp(extract(year from v)::integer, v_next, 1, 0, 0, 0) end;
      continue;
    end if;
    v_day := extract(day from v)::integer;
    if not (case when p_spec.dom_star or p_spec.dow_star
                 then v_day = any (p_spec.doms) and extract(dow from v)::integer = any (p_spec.dows)
                 else v_day = any (p_spec.doms) or extract(dow from v)::integer = any (p_spec.dows) end) then
      if v_all_dows and (p_spec.dom_star or p_spec.dow_star) then
        -- Only the day of month restricts: jump to the next allowed day of this month, or on.
        v_last_day := extract(day from pg_catalog.date_trunc('month', v) + interval '1 month - 1 day')::integer;
        v_next := (select pg_catalog.min(d) from pg_catalog.unnest(p_spec.doms) d
                    where d > v_day and d <= v_last_day);
        v := case when v_next is null then pg_catalog.date_trunc('month', v) + interval '1 month'
                  else pg_catalog.date_trunc('day', v) + pg_catalog.make_interval(days => v_next - v_day) end;
      else
        v := pg_catalog.date_trunc('day', v) + interval '1 day';
      end if;
      continue;
    end if;
    if not extract(hour from v)::integer = any (p_spec.hours) then
      v_next := (select pg_catalog.min(h) from pg_catalog.unnest(p_spec.hours) h
                  where h > extract(hour from v)::integer);
      v := case when v_next is null then pg_catalog.date_trunc('day', v) + interval '1 day'
                else pg_catalog.date_trunc('day', v) + pg_catalog.make_interval(hours => v_next) end;
      continue;
    end if;
    if not extract(minute from v)::integer = any (p_spec.minutes) then
      v_next := (select pg_catalog.min(m) from pg_catalog.unnest(p_spec.minutes) m
                  where m > extract(minute from v)::integer);
      v := case when v_next is null then pg_catalog.date_trunc('hour', v) + interval '1 hour'
                else pg_catalog.date_trunc('hour', v) + pg_catalog.make_interval(mins => v_next) end;
      continue;
    end if;
    return v;
  end loop;
end;
$$;

-- spool.next_cron_after(cron, tz, after) is the first slot of a cron expression strictly after
-- `after`, as an instant.
-- Contract: pure (immutable: reads only its arguments and the time zone database); null when
-- `after` is null or the expression matches no date within 10 years ("0 0 30 2 *"). Raises
-- PT400 invalid_argument for a bad expression (spool.cron_parse) and Postgres' 22023 for an
-- unknown zone (create_schedule refuses those first, with a clear message).
-- Slots are the wall-clock minutes of zone `tz` the expression matches. Across DST changes each
-- slot fires once:
--   * clocks go forward (02:00 -> 03:00): a slot inside the skipped hour fires at the jump (the
--     first instant after the gap, 03:00 local); slots that coincide are one slot.
--   * clocks go back (02:00 -> 01:00): a slot inside the repeated hour fires once, in the second
--     pass (standard time, as PostgreSQL reads an ambiguous local time); so "*/15" has no slot
--     during the first pass.
-- Fast: no minute-by-minute walk (spool.cron_next_local jumps field to field), except within
-- the gap size of a DST change, where it starts that much earlier on the wall clock (so a slot
-- of the skipped hour is not passed over) and steps over at most that many candidates.
create function spool.next_cron_after(p_cron text, p_tz text, p_after timestamptz)
returns timestamptz
language plpgsql immutable parallel safe
set search_path = ''
as $$
declare
  v_spec spool.cron_spec := spool.cron_parse(p_cron);
  v_local timestamp;
  v_shift interval;
  v_at timestamptz;
  v_jump timestamptz;
begin
  if p_after is null then
    return null;
  end if;
  v_local := pg_catalog.date_trunc('minute', pg_catalog.timezone(p_tz, p_after));
  -- The zone's offset change around `after` (0 almost always; an hour near a DST change): wall
  -- times up to that much before `after`'s can still map to instants after it.
  v_shift := (pg_catalog.timezone(p_tz, p_after + interval '3 hours')
              - pg_catalog.timezone('UTC', p_after + interval '3 hours'))
           - (pg_catalog.timezone(p_tz, p_after - interval '3 hours')
              - pg_catalog.timezone('UTC', p_after - interval '3 hours'));
  v_local := v_local - case when v_shift < interval '0' then -v_shift else v_shift end;
  loop
    v_local := spool.cron_next_local(v_spec, v_local);
    if v_local is null then
      return null;
    end if;
    v_at := pg_catalog.timezone(p_tz, v_local);
    if pg_catalog.timezone(p_tz, v_at) <> v_local then
      -- A wall time the clocks skipped: fire at the jump, the first minute that exists.
      v_jump := null;
      for m in 1..180 loop
        v_jump := pg_catalog.timezone(p_tz, v_local + pg_catalog.make_interval(mins => m));
        exit when pg_catalog.timezone(p_tz, v_jump) = v_local + pg_catalog.make_interval(mins => m);
      end loop;
      v_at := v_jump;
    end if;
    if v_at > p_after then
      return v_at;
    end if;
  end loop;
end;
$$;

-- The table -------------------------------------------------------------------------------------

create table public.schedules (
  id            uuid primary key default spool.uuid_v7(),
  user_id       uuid not null references auth.users (id) on delete cascade,
  project_wide  boolean not null default false,
  name          text check (char_length(name) between 1 and 100),
  type          text not null check (type ~ '^[a-z][a-z0-9-]{0,62}$'),
  input         jsonb not null default '{}'
                check (jsonb_typeof(input) = 'object' and octet_length(input::text) <= 65536),
  cron          text check (char_length(cron) <= 200),
  every         interval check (every >= interval '1 minute' and every <= interval '366 days'
                                and extract(month from every) = 0 and extract(year from every) = 0),
  timezone      text not null default 'UTC' check (char_length(timezone) between 1 and 64),
  starts_at     timestamptz not null default spool.now(),
  catch_up      text not null default 'latest' check (catch_up in ('latest', 'all')),
  paused        boolean not null default false,
  next_run_at   timestamptz,
  last_run_at   timestamptz,
  last_job_id   uuid,
  last_error    jsonb,
  created_at    timestamptz not null default spool.now(),
  updated_at    timestamptz not null default spool.now(),
  -- A schedule recurs either by cron or by interval.
  constraint schedules_cron_or_every check ((cron is null) <> (every is null)),
  -- An active schedule always knows its next slot.
  constraint schedules_next_run_unless_paused check (paused or next_run_at is not null)
);
comment on table public.schedules is
  'Recurring jobs: each slot of cron (in timezone) or of every (from starts_at) becomes one job of type with input, owned by user_id. Written only through the SQL API (create_schedule, pause_schedule, resume_schedule, delete_schedule).';
comment on column public.schedules.project_wide is
  'Created by service_role for this owner: the owner sees it but cannot pause, resume or delete it.';
comment on column public.schedules.cron is
  '5-field cron (minute hour day-of-month month day-of-week), wall clock of timezone; null when every is set.';
comment on column public.schedules.every is
  'Fixed period (>= 1 minute, days count 24 h, no months) from starts_at; null when cron is set.';
comment on column public.schedules.starts_at is
  'No slot before it; an every schedule''s slots are starts_at + k * every.';
comment on column public.schedules.catch_up is
  'latest: a late sweep creates one run, for the most recent missed slot; all: every missed slot, at most spool.settings.schedule_catch_up_limit (the most recent).';
comment on column public.schedules.next_run_at is 'The next slot to create a job for.';
comment on column public.schedules.last_run_at is 'The newest slot that got its job.';
comment on column public.schedules.last_job_id is 'That job (it may have been pruned since).';
comment on column public.schedules.last_error is
  'The last slot whose job could not be created ({code, message, sqlstate, slot, at}); cleared when a later slot''s job is created.';

-- The sweep's scan: due, active schedules in slot order.
create index schedules_due_idx on public.schedules (next_run_at) where not paused;
create index schedules_user_idx on public.schedules (user_id);

alter table public.schedules enable row level security;
-- Supabase grants everything on new public tables to anon, authenticated and service_role.
revoke all on public.schedules from anon, authenticated, service_role;
grant select on public.schedules to authenticated, service_role;

create policy "Users can view their own schedules"
  on public.schedules for select to authenticated
  using (user_id = (select auth.uid()));

-- Slots ------------------------------------------------------------------------------------------

-- spool.schedule_slot_after(schedule, after) is the schedule's first slot strictly after `after`.
-- Contract: pure (no table reads). Cron: spool.next_cron_after in the schedule's zone, never
-- before starts_at. Every: starts_at + k * every for the least k >= 0 past `after` (closed form).
-- Null when a cron expression has no slot within 10 years.
create function spool.schedule_slot_after(p_schedule public.schedules, p_after timestamptz)
returns timestamptz
language plpgsql immutable parallel safe
set search_path = ''
as $$
declare
  v_period double precision;
begin
  if p_schedule.cron is not null then
    return spool.next_cron_after(p_schedule.cron, p_schedule.timezone,
      greatest(p_after, p_schedule.starts_at - interval '1 microsecond'));
  end if;
  if p_after < p_schedule.starts_at then
    return p_schedule.starts_at;
  end if;
  v_period := extract(epoch from p_schedule.every);
  return p_schedule.starts_at + pg_catalog.make_interval(secs => v_period *
    (pg_catalog.floor(extract(epoch from p_after - p_schedule.starts_at) / v_period) + 1));
end;
$$;

-- spool.schedule_due_slots(schedule, after, until, max) lists the schedule's slots in
-- (after, until], the most recent `max` of them, oldest first.
-- Contract: pure. Every: closed form. Cron: walks forward from a start close to `until` (1
-- minute before it, then 1 hour, 1 day, 32 days, 366 days, 11 years, never before `after`),
-- widening only while fewer than `max` slots are found, so a sweep late by a year does not walk
-- a year of minutes.
create function spool.schedule_due_slots(p_schedule public.schedules, p_after timestamptz,
                                         p_until timestamptz, p_max integer)
returns timestamptz[]
language plpgsql immutable parallel safe
set search_path = ''
as $$
declare
  v_period double precision;
  v_first double precision;
  v_last double precision;
  v_from timestamptz;
  v_slot timestamptz;
  v_slots timestamptz[];
  v_window interval;
begin
  if p_max < 1 or p_until <= p_after then
    return '{}';
  end if;
  if p_schedule.every is not null then
    if p_until < p_schedule.starts_at then
      return '{}';
    end if;
    v_period := extract(epoch from p_schedule.every);
    v_last := pg_catalog.floor(extract(epoch from p_until - p_schedule.starts_at) / v_period);
    v_first := case when p_after < p_schedule.starts_at then 0
                    else pg_catalog.floor(extract(epoch from p_after - p_schedule.starts_at) / v_period) + 1 end;
    return array(
      select p_schedule.starts_at + pg_catalog.make_interval(secs => v_period * k)
      from pg_catalog.generate_series(greatest(v_first, v_last - p_max + 1)::bigint, v_last::bigint) k
      order by k);
  end if;
  foreach v_window in array array[interval '1 minute', interval '1 hour', interval '1 day',
                                  interval '32 days', interval '366 days', interval '11 years'] loop
    v_from := greatest(p_after, p_until - v_window);
    v_slots := '{}';
    v_slot := spool.schedule_slot_after(p_schedule, v_from);
    while v_slot <= p_until loop
      v_slots := v_slots || v_slot;
      if pg_catalog.cardinality(v_slots) > p_max then
        v_slots := v_slots[2:];
      end if;
      v_slot := spool.schedule_slot_after(p_schedule, v_slot);
    end loop;
    exit when pg_catalog.cardinality(v_slots) >= p_max or v_from = p_after;
  end loop;
  return v_slots;
end;
$$;

-- spool.owned_schedule(id) returns the schedule if the caller may change it, locked for update.
-- Contract: service_role, and an admin on a direct connection (no JWT, a member of postgres), may
-- change any schedule; an authenticated user only their own, and not a project-wide one (PT403
-- schedule_project_wide: they can see it, so it is not hidden from them). Anyone else, and a
-- schedule that does not exist, gets PT404 schedule_not_found (other users' schedules stay
-- invisible). Waits for a sweep holding the row.
create function spool.owned_schedule(p_id uuid)
returns public.schedules
language plpgsql volatile
set search_path = ''
as $$
declare
  v_schedule public.schedules;
  v_admin boolean := auth.role() = 'service_role'
    or (auth.jwt() is null and pg_catalog.pg_has_role(session_user, 'postgres', 'member'));
begin
  select * into v_schedule from public.schedules s
  where s.id = p_id and (v_admin or s.user_id = auth.uid())
  for update;
  if not found then
    perform spool.throw(404, 'schedule_not_found', 'schedule not found');
  end if;
  if v_schedule.project_wide and not v_admin then
    perform spool.throw(403, 'schedule_project_wide',
      'this schedule is set by the project: only an admin can pause, resume or delete it',
      jsonb_build_object('schedule_id', p_id));
  end if;
  return v_schedule;
end;
$$;

-- The API ----------------------------------------------------------------------------------------

-- create_schedule: a recurring job for a user.
-- Caller: service_role (a schedule creator Edge Function, after validating type and input as the
-- kind's creator does; or an admin). Not authenticated users: the input becomes job input.
-- Exactly one of p_cron (5 fields, spool.cron_parse; it must fire within 10 years) and p_every
-- (1 minute to 366 days, no months; days count 24 h). p_timezone: an IANA zone name
-- (pg_timezone_names), the wall clock of p_cron (default UTC). p_catch_up: 'latest' (default) or
-- 'all' (see the file header). p_start_at: no slot before it (default now); an every schedule's
-- slots are p_start_at + k * every, the first one p_start_at when given, else now + every.
-- p_project_wide: its owner sees it but cannot change it. p_name: a label (1-100 characters).
-- Locks: the user's spool.user_slots row, so the per-user limit is exact under concurrency.
-- Raises PT400 invalid_argument (message says what), PT404 user_not_found, PT429
-- quota_schedules (more than spool.settings.max_schedules_per_user, project-wide not counted).
-- Not idempotent: each call adds a schedule. Returns the row.
create function public.create_schedule(
  p_user_id uuid,
  p_type text,
  p_input jsonb default '{}',
  p_cron text default null,
  p_every interval default null,
  p_timezone text default 'UTC',
  p_catch_up text default 'latest',
  p_start_at timestamptz default null,
  p_name text default null,
  p_project_wide boolean default false
)
returns public.schedules
language plpgsql volatile
security definer
set search_path = ''
as $$
declare
  v_now timestamptz := spool.now();
  v_schedule public.schedules;
  v_count integer;
  v_limit integer;
begin
  if p_user_id is null then
    perform spool.throw(400, 'invalid_argument', 'user_id is required');
  end if;
  if p_type is null or p_type !~ '^[a-z][a-z0-9-]{0,62}$' then
    perform spool.throw(400, 'invalid_argument', 'type must be a lowercase slug like "color-grade"');
  end if;
  if p_input is null or jsonb_typeof(p_input) <> 'object' then
    perform spool.throw(400, 'invalid_argument', 'input must be a JSON object');
  end if;
  if pg_catalog.octet_length(p_input::text) > 65536 then
    perform spool.throw(400, 'invalid_argument', 'input must be at most 64 KiB of JSON');
  end if;
  if (p_cron is null) = (p_every is null) then
    perform spool.throw(400, 'invalid_argument', 'give either cron (like "0 9 * * *") or every (like "15 minutes"), not both');
  end if;
  if p_every is not null and (extract(month from p_every) <> 0 or extract(year from p_every) <> 0) then
    perform spool.throw(400, 'invalid_argument',
      'every cannot count months or years (their length varies): use cron, like "0 9 1 * *"');
  end if;
  if p_every is not null and p_every < interval '1 minute' then
    perform spool.throw(400, 'invalid_argument', 'every must be at least 1 minute');
  end if;
  if p_every is not null and p_every > interval '366 days' then
    perform spool.throw(400, 'invalid_argument', 'every must be at most 366 days');
  end if;
  if p_cron is not null and char_length(p_cron) > 200 then
    perform spool.throw(400, 'invalid_argument', 'cron must be at most 200 characters');
  end if;
  if p_timezone is null or not exists (select 1 from pg_catalog.pg_timezone_names z where z.name = p_timezone) then
    perform spool.throw(400, 'invalid_argument',
      pg_catalog.format('unknown time zone "%s": use an IANA name like "Europe/Paris" or "UTC"', p_timezone));
  end if;
  if p_catch_up is null or p_catch_up not in ('latest', 'all') then
    perform spool.throw(400, 'invalid_argument', 'catch_up must be "latest" or "all"');
  end if;
  if p_name is not null and char_length(p_name) not between 1 and 100 then
    perform spool.throw(400, 'invalid_argument', 'name must be 1 to 100 characters');
  end if;
  if p_project_wide is null then
    perform spool.throw(400, 'invalid_argument', 'project_wide must be true or false');
  end if;
  if not exists (select 1 from auth.users u where u.id = p_user_id) then
    perform spool.throw(404, 'user_not_found', 'no such user');
  end if;

  v_schedule.cron := pg_catalog.btrim(p_cron);
  v_schedule.every := p_every;
  v_schedule.timezone := p_timezone;
  -- Whole seconds: a slot is named by its second in the idempotency key.
  v_schedule.starts_at := pg_catalog.date_trunc('second', coalesce(p_start_at,
    case when p_every is not null then v_now + p_every else v_now end));
  if p_cron is not null then
    perform spool.cron_parse(v_schedule.cron);  -- PT400 naming what is wrong
  end if;
  v_schedule.next_run_at := spool.schedule_slot_after(v_schedule,
    greatest(v_now, v_schedule.starts_at - interval '1 microsecond'));
  if v_schedule.next_run_at is null then
    perform spool.throw(400, 'invalid_argument',
      pg_catalog.format('cron "%s" matches no date (like February 30)', p_cron));
  end if;

  perform spool.lock_user_slot(p_user_id);
  if not p_project_wide then
    select s.max_schedules_per_user into v_limit from spool.settings s;
    select pg_catalog.count(*)::integer into v_count from public.schedules s
    where s.user_id = p_user_id and not s.project_wide;
    if v_count >= v_limit then
      perform spool.throw(429, 'quota_schedules',
        pg_catalog.format('too many schedules: %s of %s allowed', v_count, v_limit),
        jsonb_build_object('user_id', p_user_id, 'schedules', v_count, 'limit', v_limit));
    end if;
  end if;

  insert into public.schedules (user_id, project_wide, name, type, input, cron, every, timezone,
                                starts_at, catch_up, next_run_at, created_at, updated_at)
  values (p_user_id, p_project_wide, p_name, p_type, p_input, v_schedule.cron, p_every, p_timezone,
          v_schedule.starts_at, p_catch_up, v_schedule.next_run_at, v_now, v_now)
  returning * into v_schedule;
  return v_schedule;
end;
$$;
revoke all on function public.create_schedule(uuid, text, jsonb, text, interval, text, text, timestamptz, text, boolean)
  from public, anon, authenticated;
grant execute on function public.create_schedule(uuid, text, jsonb, text, interval, text, text, timestamptz, text, boolean)
  to service_role;

-- pause_schedule: stop creating runs. Caller: the owner (authenticated; not for a project-wide
-- schedule, PT403) or service_role; PT404 for schedules the caller cannot see.
-- Locks the row (waits for a sweep creating its run). Idempotent: a paused schedule is returned
-- unchanged. next_run_at is kept for the record; resume recomputes it. Returns the row.
create function public.pause_schedule(p_id uuid)
returns public.schedules
language plpgsql volatile
security definer
set search_path = ''
as $$
declare
  v_schedule public.schedules := spool.owned_schedule(p_id);
begin
  if v_schedule.paused then
    return v_schedule;
  end if;
  update public.schedules s set paused = true, updated_at = spool.now()
   where s.id = p_id
  returning * into v_schedule;
  return v_schedule;
end;
$$;
revoke all on function public.pause_schedule(uuid) from public, anon;
grant execute on function public.pause_schedule(uuid) to authenticated, service_role;

-- resume_schedule: start creating runs again, from now. Caller: as pause_schedule.
-- next_run_at becomes the first slot after now: the slots missed while paused are not run (no
-- burst). Idempotent: a schedule that is not paused is returned unchanged. Returns the row.
create function public.resume_schedule(p_id uuid)
returns public.schedules
language plpgsql volatile
security definer
set search_path = ''
as $$
declare
  v_schedule public.schedules := spool.owned_schedule(p_id);
begin
  if not v_schedule.paused then
    return v_schedule;
  end if;
  update public.schedules s
     set paused = false,
         next_run_at = spool.schedule_slot_after(v_schedule, spool.now()),
         updated_at = spool.now()
   where s.id = p_id
  returning * into v_schedule;
  return v_schedule;
end;
$$;
revoke all on function public.resume_schedule(uuid) from public, anon;
grant execute on function public.resume_schedule(uuid) to authenticated, service_role;

-- delete_schedule: remove a schedule. Caller: as pause_schedule. The jobs it already created
-- stay (they are the owner's jobs). Not idempotent: deleting it again is PT404. Returns the
-- deleted row.
create function public.delete_schedule(p_id uuid)
returns public.schedules
language plpgsql volatile
security definer
set search_path = ''
as $$
declare
  v_schedule public.schedules := spool.owned_schedule(p_id);
begin
  delete from public.schedules s where s.id = v_schedule.id;
  return v_schedule;
end;
$$;
revoke all on function public.delete_schedule(uuid) from public, anon;
grant execute on function public.delete_schedule(uuid) to authenticated, service_role;

-- preview_schedule: the next slots a schedule would have, to show before or after creating it.
-- Caller: authenticated or service_role (pure: reads no table). Validates as create_schedule does
-- (the same PT400 messages) and returns up to p_count (1-100) slots after p_after (default now),
-- for an every schedule counted from p_start_at (default now + every, as create_schedule).
create function public.preview_schedule(
  p_cron text default null,
  p_every interval default null,
  p_timezone text default 'UTC',
  p_start_at timestamptz default null,
  p_after timestamptz default null,
  p_count integer default 5
)
returns timestamptz[]
language plpgsql stable
security definer
set search_path = ''
as $$
declare
  v_schedule public.schedules;
  v_now timestamptz := spool.now();
  v_slots timestamptz[] := '{}';
  v_slot timestamptz;
begin
  if (p_cron is null) = (p_every is null) then
    perform spool.throw(400, 'invalid_argument', 'give either cron (like "0 9 * * *") or every (like "15 minutes"), not both');
  end if;
  if p_every is not null and (p_every < interval '1 minute' or p_every > interval '366 days'
                              or extract(month from p_every) <> 0 or extract(year from p_every) <> 0) then
    perform spool.throw(400, 'invalid_argument', 'every must be 1 minute to 366 days, without months or years');
  end if;
  if p_timezone is null or not exists (select 1 from pg_catalog.pg_timezone_names z where z.name = p_timezone) then
    perform spool.throw(400, 'invalid_argument',
      pg_catalog.format('unknown time zone "%s": use an IANA name like "Europe/Paris" or "UTC"', p_timezone));
  end if;
  if p_count is null or p_count not between 1 and 100 then
    perform spool.throw(400, 'invalid_argument', 'count must be between 1 and 100');
  end if;
  v_schedule.cron := p_cron;
  v_schedule.every := p_every;
  v_schedule.timezone := p_timezone;
  v_schedule.starts_at := pg_catalog.date_trunc('second', coalesce(p_start_at,
    case when p_every is not null then v_now + p_every else v_now end));
  v_slot := coalesce(p_after, v_now);
  for i in 1..p_count loop
    v_slot := spool.schedule_slot_after(v_schedule, v_slot);
    exit when v_slot is null;
    v_slots := v_slots || v_slot;
  end loop;
  if v_slots = '{}' then
    perform spool.throw(400, 'invalid_argument',
      pg_catalog.format('cron "%s" matches no date (like February 30)', p_cron));
  end if;
  return v_slots;
end;
$$;
revoke all on function public.preview_schedule(text, interval, text, timestamptz, timestamptz, integer) from public, anon;
grant execute on function public.preview_schedule(text, interval, text, timestamptz, timestamptz, integer)
  to authenticated, service_role;

-- The sweep --------------------------------------------------------------------------------------

-- spool.materialize_schedules(limit) creates the jobs of every due slot.
-- Caller: pg_cron (spool-schedules) and service_role (admins, tests).
-- For each active schedule with next_run_at <= now (the p_limit oldest due): the due slots in
-- [next_run_at, now] by its catch-up policy (latest: the most recent one; all: the most recent
-- schedule_catch_up_limit ones), one job each, as its owner, with run_at = the slot and the
-- idempotency key schedule:<id>:<slot as YYYY-MM-DDTHH:MI:SSZ>; then next_run_at = the first
-- slot after now, last_run_at / last_job_id = the newest slot that has its job.
-- Exactly once per slot: the schedule row is locked FOR UPDATE SKIP LOCKED and advanced in the
-- same transaction (a concurrent call skips it, a later one finds it not due), and a slot whose
-- key already names a job is not created again (nor counted).
-- Creation: the slots' jobs go to public.create_jobs in batches of up to 1,000 (one statement,
-- one doorbell ring). A batch that create_jobs refuses (all or nothing: one owner over a quota)
-- is redone slot by slot with public.create_job, so only the refused slots are lost.
-- A refused slot (PT429 quota or another PT4xx refusal, or a data error) is dropped, recorded in
-- last_error {code (the PT error's code, else null), message, sqlstate, slot, at}, and the
-- schedule moves on; a later slot's job clears it. A transient error (SQLSTATE class 40
-- deadlock or serialization, 53, 55 lock timeout, 57, 58, XX) fails the whole call instead:
-- nothing is dropped, and the next sweep (10 s or a minute later) does the slots again. A
-- schedule whose slots cannot be computed (its zone vanished from the time zone database) is
-- paused with last_error, not retried every sweep.
-- Locks: the due schedule rows (SKIP LOCKED), then, through create_jobs / create_job, the
-- owners' spool.user_slots rows in user_id order (the slots are created in owner order), so a
-- concurrent sweep or create_jobs cannot deadlock with it.
-- Returns how many jobs it created. Idempotent for a given now.
create function spool.materialize_schedules(p_limit integer default 1000)
returns integer
language plpgsql volatile
security definer
set search_path = ''
as $$
declare
  v_now timestamptz := spool.now();
  v_catch_up_limit integer := (select s.schedule_catch_up_limit from spool.settings s);
  v_schedule public.schedules;
  v_slots timestamptz[];
  v_slot timestamptz;
  -- The schedules taken, and their next slot.
  v_ids uuid[] := '{}';
  v_next timestamptz[] := '{}';
  -- One entry per due slot, in owner order: its schedule, slot, key, the job to create, and
  -- what became of it (the job's id, or the refusal).
  v_slot_schedule uuid[] := '{}';
  v_slot_at timestamptz[] := '{}';
  v_slot_key text[] := '{}';
  v_slot_spec jsonb[] := '{}';
  v_slot_job uuid[];
  v_slot_error jsonb[];
  v_n integer;
  v_chunk_index integer[];
  v_chunk_job uuid[];
  v_created integer := 0;
  v_state text;
  v_message text;
  v_hint text;
begin
  if p_limit is null or p_limit < 1 then
    perform spool.throw(400, 'invalid_argument', 'limit must be positive');
  end if;

  -- The oldest p_limit due slots, taken in owner order: creating a job locks its owner's
  -- spool.user_slots row until commit, so two sweeps taking owners in different orders would
  -- deadlock (local/tests/schedules-two-sessions.test.mjs lost slots to 40P01 while this was
  -- ORDER BY next_run_at). Owner order is the order create_jobs locks owners in too.
  for v_schedule in
    select * from public.schedules s
    where s.id in (select d.id from public.schedules d
                   where not d.paused and d.next_run_at <= v_now
                   order by d.next_run_at limit p_limit)
      and not s.paused and s.next_run_at <= v_now
    order by s.user_id, s.next_run_at
    for update of s skip locked
  loop
    begin
      v_slots := spool.schedule_due_slots(v_schedule, v_schedule.next_run_at - interval '1 microsecond', v_now,
                   case when v_schedule.catch_up = 'all' then v_catch_up_limit else 1 end);
      v_slot := spool.schedule_slot_after(v_schedule, v_now);
    exception when others then
      get stacked diagnostics v_state = returned_sqlstate, v_message = message_text;
      update public.schedules s
         set paused = true, updated_at = v_now,
             last_error = jsonb_build_object('code', 'schedule_invalid', 'message', v_message,
                                             'sqlstate', v_state, 'at', v_now)
       where s.id = v_schedule.id;
      continue;
    end;
    v_ids := v_ids || v_schedule.id;
    v_next := v_next || v_slot;
    foreach v_slot in array v_slots loop
      v_slot_schedule := v_slot_schedule || v_schedule.id;
      v_slot_at := v_slot_at || v_slot;
      v_slot_key := v_slot_key || ('schedule:' || v_schedule.id || ':'
        || pg_catalog.to_char(pg_catalog.timezone('UTC', v_slot), 'YYYY-MM-DD"T"HH24:MI:SS"Z"'));
      v_slot_spec := v_slot_spec || jsonb_build_object(
        'user_id', v_schedule.user_id, 'type', v_schedule.type, 'input', v_schedule.input,
        'run_at', v_slot, 'idempotency_key', v_slot_key[pg_catalog.cardinality(v_slot_key)]);
    end loop;
  end loop;
  v_n := pg_catalog.cardinality(v_slot_key);

  -- Slots whose job exists already (a key is per owner; the schedule's owner never changes).
  v_slot_job := array(
    select j.id from unnest(v_slot_spec, v_slot_key) with ordinality e(spec, key, i)
    left join public.jobs j on j.user_id = (e.spec ->> 'user_id')::uuid and j.idempotency_key = e.key
    order by e.i);
  v_slot_error := pg_catalog.array_fill(null::jsonb, array[v_n]);

  -- The new ones, in batches of up to 1,000, in owner order. (Multi-argument unnest is FROM
  -- syntax, not a pg_catalog function: it cannot be schema-qualified.)
  for v_offset in 0 .. v_n - 1 by 1000 loop
    v_chunk_index := array(select i from pg_catalog.generate_series(v_offset + 1, least(v_offset + 1000, v_n)) i
                           where v_slot_job[i] is null order by i);
    continue when pg_catalog.cardinality(v_chunk_index) = 0;
    begin
      -- create_jobs returns one row per element, in array order.
      v_chunk_job := array(
        select j.id from public.create_jobs(
          (select jsonb_agg(v_slot_spec[i] order by k) from unnest(v_chunk_index) with ordinality c(i, k))
        ) with ordinality j order by j.ordinality);
      for k in 1 .. pg_catalog.cardinality(v_chunk_index) loop
        v_slot_job[v_chunk_index[k]] := v_chunk_job[k];
      end loop;
      v_created := v_created + pg_catalog.cardinality(v_chunk_index);
    exception when others then
      get stacked diagnostics v_state = returned_sqlstate;
      if pg_catalog.left(v_state, 2) in ('40', '53', '55', '57', '58', 'XX') then
        raise;
      end if;
      -- Refused as a whole: one slot at a time, so only the refused slots are lost.
      for i in v_offset + 1 .. least(v_offset + 1000, v_n) loop
        continue when v_slot_job[i] is not null;
        begin
          v_slot_job[i] := (public.create_job(
            p_user_id => (v_slot_spec[i] ->> 'user_id')::uuid, p_type => v_slot_spec[i] ->> 'type',
            p_input => v_slot_spec[i] -> 'input', p_idempotency_key => v_slot_key[i],
            p_run_at => v_slot_at[i])).id;
          v_created := v_created + 1;
        exception when others then
          get stacked diagnostics v_state = returned_sqlstate, v_message = message_text, v_hint = pg_exception_hint;
          -- A transient failure (deadlock, serialization, lock timeout, out of resources,
          -- shutdown, internal) is not the slot's fault: fail the whole sweep, the next retries.
          if pg_catalog.left(v_state, 2) in ('40', '53', '55', '57', '58', 'XX') then
            raise;
          end if;
          v_slot_error[i] := jsonb_build_object(
            'code', case when v_state like 'PT%' then nullif(v_hint, '') end, 'message', v_message,
            'sqlstate', v_state, 'slot', v_slot_at[i], 'at', v_now);
        end;
      end loop;
    end;
  end loop;

  -- Advance every schedule taken. Per schedule: the newest slot with a job is its last run; the
  -- newest refusal is its last_error unless a later slot got its job (then null); no slot at
  -- all keeps what it had. A cron expression with no slot left within 10 years stops (paused)
  -- rather than wedging.
  update public.schedules s
     set next_run_at = x.next_run_at,
         paused = x.next_run_at is null,
         last_run_at = coalesce(r.last_run_at, s.last_run_at),
         last_job_id = coalesce(r.last_job_id, s.last_job_id),
         last_error = case when r.schedule_id is null then s.last_error
                           when r.last_error_at > r.last_run_at or r.last_run_at is null then r.last_error
                           else null end,
         updated_at = v_now
    from unnest(v_ids, v_next) x(id, next_run_at)
    left join (
      select e.schedule_id,
             pg_catalog.max(e.at) filter (where e.job_id is not null) as last_run_at,
             (pg_catalog.array_agg(e.job_id order by e.at desc) filter (where e.job_id is not null))[1] as last_job_id,
             pg_catalog.max(e.at) filter (where e.error is not null) as last_error_at,
             (pg_catalog.array_agg(e.error order by e.at desc) filter (where e.error is not null))[1] as last_error
      from unnest(v_slot_schedule, v_slot_at, v_slot_job, v_slot_error) e(schedule_id, at, job_id, error)
      group by e.schedule_id) r on r.schedule_id = x.id
   where s.id = x.id;
  return v_created;
end;
$$;
revoke all on function spool.materialize_schedules(integer) from public, anon, authenticated;
grant execute on function spool.materialize_schedules(integer) to service_role;

-- The internals are for their owner and the SECURITY DEFINER functions above; next_cron_after
-- is service_role's too (admins checking an expression).
revoke all on function
  spool.cron_field(text, text, integer, integer),
  spool.cron_parse(text),
  spool.cron_next_local(spool.cron_spec, timestamp),
  spool.schedule_slot_after(public.schedules, timestamptz),
  spool.schedule_due_slots(public.schedules, timestamptz, timestamptz, integer),
  spool.owned_schedule(uuid),
  spool.next_cron_after(text, text, timestamptz)
  from public, anon, authenticated, service_role;
grant execute on function spool.next_cron_after(text, text, timestamptz) to service_role;

-- Its own pg_cron job, apart from spool.sweep. Every 10 seconds where pg_cron has seconds
-- schedules (1.5 or later; Supabase ships 1.6), so a slot's job is created within 10 s of it
-- (an every slot need not fall on a minute); every minute on older builds (Debian's 1.4.2),
-- within a minute. Scheduling an existing name replaces it.
do $$
declare
  v_version integer[] := (
    select regexp_match(extversion, '^(\d+)\.(\d+)')::integer[] from pg_extension where extname = 'pg_cron');
begin
  perform cron.schedule('spool-schedules',
    case when v_version >= array[1, 5] then '10 seconds' else '* * * * *' end,
    'select spool.materialize_schedules()');
end;
$$;
