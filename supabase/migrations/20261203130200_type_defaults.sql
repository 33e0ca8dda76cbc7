-- Spool: the per-type limits of spool.job_types (20261203130000_job_types.sql) reach creation,
-- rescue and pruning, and a job carries the route its creator chose.
--
--   * Defaults at create: create_job and create_jobs take max_attempts and priority from the
--     type's row when the caller passes none (null); a type without a row gets the column
--     defaults of spool.job_types (3 attempts, priority 0). An explicit value always wins.
--   * The route: jobs.route names where the work runs ('in-function', 'replicate', 'openai', or
--     any later provider: a slug, not a closed list). The creator decides it once, on the input
--     it inspected, and stores it; the worker reads it instead of routing again.
--   * Timeouts: claim_jobs sets jobs.timeout_at (20261203130100_type_caps.sql). rescue_jobs fails
--     a running attempt left past it, through the path an expired lease takes (retried with
--     backoff while attempts remain, dead after), with error code 'timeout'. heartbeat_job past
--     timeout_at answers lease_lost, so a stuck worker that is still heartbeating stops.
--   * Retention: prune_jobs (and so spool.prune_history, which calls it in batches) keeps a
--     finished job for its type's retention_done / retention_failed when set, else
--     spool.settings'.

-- The route ------------------------------------------------------------------------------------------

alter table public.jobs add column route text
  constraint jobs_route_format check (route ~ '^[a-z][a-z0-9-]{0,30}$');
comment on column public.jobs.route is
  'Where the job''s work runs (in-function, replicate, openai, ...), as its creator decided; null: the worker routes it.';
-- Server-only, like the provider handle (20261202141000_job_columns.sql): authenticated is not
-- granted SELECT on it, and spool.owner_view nulls it in what the owner's RPCs return.

-- Creating one job -----------------------------------------------------------------------------------

-- create_job: enqueue one job for a user.
-- Caller: service_role (the job-creator Edge Functions, after validating the input), or a
-- SECURITY DEFINER function of the app's own (a trigger enqueuing in the app's transaction; see
-- the README, "Enqueue from SQL").
-- Locks: the user's spool.user_slots row (quotas are exact under concurrency).
-- Idempotent per (user, idempotency key): a repeated key returns the existing job unchanged;
-- the same key with a different type or input raises PT409 idempotency_conflict (cpu_ms, route,
-- priority and attempts are not part of the job's identity).
-- p_priority, p_max_attempts: null (the default) takes the type's spool.job_types row, or 0 and
-- 3 for a type without one; an explicit value wins and must lie in -100..100 and 1..25.
-- p_cpu_ms: the estimated CPU of the job's in-function work, 0..3600000 ms (default 0).
-- p_route: where the work runs, a slug of at most 31 characters (^[a-z][a-z0-9-]{0,30}$), or
-- null (the worker decides).
-- Raises PT400 invalid_argument, PT404 (unknown user or parent), PT429 quota_*.
-- Returns the job row; the insert rings the worker doorbell.
drop function public.create_job(uuid, text, jsonb, integer, integer, timestamptz, text, uuid, integer);
create function public.create_job(
  p_user_id uuid,
  p_type text,
  p_input jsonb default '{}',
  p_priority integer default null,
  p_max_attempts integer default null,
  p_run_at timestamptz default null,
  p_idempotency_key text default null,
  p_parent_id uuid default null,
  p_cpu_ms integer default 0,
  p_route text default null
)
returns public.jobs
language plpgsql volatile
security definer
set search_path = ''
as $$
declare
  v_job public.jobs;
  v_run_at timestamptz := coalesce(p_run_at, spool.now());
  v_fair_at timestamptz;
  v_priority integer := p_priority;
  v_max_attempts integer := p_max_attempts;
  v_type_priority integer;
  v_type_max_attempts integer;
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
  if p_priority is not null and p_priority not between -100 and 100 then
    perform spool.throw(400, 'invalid_argument', 'priority must be between -100 and 100');
  end if;
  if p_max_attempts is not null and p_max_attempts not between 1 and 25 then
    perform spool.throw(400, 'invalid_argument', 'max_attempts must be between 1 and 25');
  end if;
  if p_idempotency_key is not null and char_length(p_idempotency_key) not between 1 and 200 then
    perform spool.throw(400, 'invalid_argument', 'idempotency key must be 1 to 200 characters');
  end if;
  if p_cpu_ms is null or p_cpu_ms not between 0 and 3600000 then
    perform spool.throw(400, 'invalid_argument', 'cpu_ms must be between 0 and 3600000');
  end if;
  if p_route is not null and p_route !~ '^[a-z][a-z0-9-]{0,30}$' then
    perform spool.throw(400, 'invalid_argument', 'route must be a lowercase slug like "openai" (at most 31 characters)');
  end if;
  if not exists (select 1 from auth.users u where u.id = p_user_id) then
    perform spool.throw(404, 'user_not_found', 'no such user');
  end if;
  if p_parent_id is not null and not exists (
    select 1 from public.jobs j where j.id = p_parent_id and j.user_id = p_user_id) then
    perform spool.throw(404, 'job_not_found', 'parent job not found');
  end if;

  -- The type's defaults (a primary-key read); the row's checks keep them in range. Without a
  -- row (SELECT INTO then yields nulls), the column defaults of spool.job_types.
  if p_priority is null or p_max_attempts is null then
    select t.priority, t.max_attempts into v_type_priority, v_type_max_attempts
    from spool.job_types t where t.type = p_type;
    v_priority := coalesce(p_priority, v_type_priority, 0);
    v_max_attempts := coalesce(p_max_attempts, v_type_max_attempts, 3);
  end if;

  -- Lock the user first: the idempotency check and the quotas below cannot race.
  perform spool.lock_user_slot(p_user_id);

  if p_idempotency_key is not null then
    select * into v_job from public.jobs j
    where j.user_id = p_user_id and j.idempotency_key = p_idempotency_key;
    if found then
      if v_job.type <> p_type or v_job.input <> p_input then
        perform spool.throw(409, 'idempotency_conflict',
          'this idempotency key was already used for a different job',
          jsonb_build_object('job_id', v_job.id));
      end if;
      return v_job;
    end if;
  end if;

  v_fair_at := spool.take_user_slot(p_user_id, v_run_at, true);

  insert into public.jobs (user_id, type, input, priority, max_attempts, run_at, fair_at,
                           idempotency_key, parent_id, cpu_ms, route)
  values (p_user_id, p_type, p_input, v_priority, v_max_attempts, v_run_at, v_fair_at,
          p_idempotency_key, p_parent_id, p_cpu_ms, p_route)
  returning * into v_job;
  return v_job;
end;
$$;
revoke execute on function public.create_job(uuid, text, jsonb, integer, integer, timestamptz, text, uuid, integer, text) from public, anon, authenticated;
grant execute on function public.create_job(uuid, text, jsonb, integer, integer, timestamptz, text, uuid, integer, text) to service_role;

-- Creating many ----------------------------------------------------------------------------------

-- spool.job_field_problem(job) says what is wrong with one element of create_jobs' array.
-- Contract: no side effects; returns null when the element is a valid job description, else the message of
-- the 400 create_job would give for the same value (or the field's own message for a value of
-- the wrong JSON type). Fields: user_id (uuid, required), type (slug, required), input (object),
-- priority (integer -100..100), max_attempts (integer 1..25), run_at (timestamp with time zone),
-- idempotency_key (1..200 characters), parent_id (uuid), cpu_ms (integer 0..3600000), route
-- (slug of at most 31 characters). Null values mean the default; any other field is refused.
create or replace function spool.job_field_problem(p_job jsonb)
returns text
language sql stable parallel safe
as $$
  select case
    when pg_catalog.jsonb_typeof(p_job) is distinct from 'object' then 'each job must be a JSON object'
    when p_job - array['user_id', 'type', 'input', 'priority', 'max_attempts', 'run_at',
                       'idempotency_key', 'parent_id', 'cpu_ms', 'route'] <> '{}'::jsonb
      -- The first key of what is left, as JSON text (no subquery: it would stop inlining).
      then 'unknown field ' || pg_catalog.substring(
        (p_job - array['user_id', 'type', 'input', 'priority', 'max_attempts', 'run_at',
                       'idempotency_key', 'parent_id', 'cpu_ms', 'route'])::text, '^\{"((?:[^"\\]|\\.)*)"')
    when pg_catalog.jsonb_typeof(p_job -> 'user_id') is distinct from 'string'
      or p_job ->> 'user_id' !~* '^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$'
      then 'user_id is required and must be a uuid'
    when pg_catalog.jsonb_typeof(p_job -> 'type') is distinct from 'string'
      or p_job ->> 'type' !~ '^[a-z][a-z0-9-]{0,62}$'
      then 'type must be a lowercase slug like "color-grade"'
    when coalesce(pg_catalog.jsonb_typeof(p_job -> 'input'), 'null') not in ('object', 'null')
      then 'input must be a JSON object'
    when pg_catalog.octet_length(coalesce(p_job -> 'input', '{}')::text) > 65536
      then 'input must be at most 64 KiB of JSON'
    when not spool.json_int_between(p_job -> 'priority', -100, 100)
      then 'priority must be between -100 and 100'
    when not spool.json_int_between(p_job -> 'max_attempts', 1, 25)
      then 'max_attempts must be between 1 and 25'
    when not spool.json_int_between(p_job -> 'cpu_ms', 0, 3600000)
      then 'cpu_ms must be between 0 and 3600000'
    when coalesce(pg_catalog.jsonb_typeof(p_job -> 'idempotency_key'), 'null') not in ('string', 'null')
      or pg_catalog.char_length(p_job ->> 'idempotency_key') not between 1 and 200
      then 'idempotency key must be 1 to 200 characters'
    when coalesce(pg_catalog.jsonb_typeof(p_job -> 'parent_id'), 'null') not in ('string', 'null')
      or p_job ->> 'parent_id' !~* '^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$'
      then 'parent_id must be a uuid'
    when coalesce(pg_catalog.jsonb_typeof(p_job -> 'run_at'), 'null') not in ('string', 'null')
      or (pg_catalog.jsonb_typeof(p_job -> 'run_at') = 'string'
          and spool.try_timestamptz(p_job ->> 'run_at') is null)
      then 'run_at must be a timestamp with a time zone, like "2030-01-01T00:00:00Z"'
    when coalesce(pg_catalog.jsonb_typeof(p_job -> 'route'), 'null') not in ('string', 'null')
      or p_job ->> 'route' !~ '^[a-z][a-z0-9-]{0,30}$'
      then 'route must be a lowercase slug like "openai" (at most 31 characters)'
  end
$$;

-- A parsed element now carries its route too (last, so the other fields keep their positions).
alter type spool.job_spec add attribute route text;

-- create_jobs: enqueue many jobs, for one user or many, in one call.
-- Caller: service_role (job creators, fan-out, imports).
-- p_jobs: a JSON array of 1 to 1000 job descriptions (spool.job_field_problem lists the fields;
-- missing or null fields take create_job's defaults: input {}, priority and max_attempts from
-- the type's spool.job_types row (0 and 3 without one), run_at now, cpu_ms 0, route null).
-- All or nothing: any refusal raises and nothing is written. Refusals name the element:
--   PT400 invalid_argument   DETAIL {"index": i} (0-based), the message as create_job's;
--   PT404 user_not_found / job_not_found (parent not the same user's)   DETAIL {"index": i};
--   PT409 idempotency_conflict   a key already used for a different job (DETAIL job_id), or
--                                used twice in the array for different jobs;
--   PT429 quota_active_jobs / quota_rate   the batch would take a user past
--         max_active_jobs_per_user, or past max_jobs_per_minute_per_user counting the jobs
--         they created and the retries they made in the last minute (DETAIL user_id,
--         requested, and the counts).
-- Locks: every named user's spool.user_slots row, in user_id order (no deadlock between bulk
-- calls; create_job and retry_job lock one user), so the quotas are exact under concurrency.
-- Idempotent per (user, key) like create_job: an element whose key exists for the same type and
-- input returns the existing job, unchanged, and counts against no quota; an element repeating
-- an earlier element's key and job returns that element's job.
-- Fair slots: each user's new jobs take that user's next slots in array order, exactly as the
-- same create_job calls one by one would.
-- Returns one row per element, in array order. The insert rings the doorbell at most once.
-- (As 20261203090000_create_jobs.sql, with the type's defaults and the route.)
create or replace function public.create_jobs(p_jobs jsonb)
returns setof public.jobs
language plpgsql volatile
security definer
set search_path = ''
as $$
declare
  v_now timestamptz := spool.now();
  v_settings spool.settings;
  v_n integer;
  v_bad record;
  v_specs spool.job_spec[];
begin
  if p_jobs is null or pg_catalog.jsonb_typeof(p_jobs) <> 'array' then
    perform spool.throw(400, 'invalid_argument', 'jobs must be a JSON array of job descriptions');
  end if;
  v_n := pg_catalog.jsonb_array_length(p_jobs);
  if v_n not between 1 and 1000 then
    perform spool.throw(400, 'invalid_argument', 'jobs must hold 1 to 1000 job descriptions',
      jsonb_build_object('count', v_n));
  end if;

  select t.i - 1 as i, t.problem into v_bad
  from (select a.i, spool.job_field_problem(a.j) as problem
        from pg_catalog.jsonb_array_elements(p_jobs) with ordinality a(j, i)) t
  where t.problem is not null
  order by t.i limit 1;
  if found then
    perform spool.throw(400, 'invalid_argument', pg_catalog.format('job %s: %s', v_bad.i, v_bad.problem),
      jsonb_build_object('index', v_bad.i));
  end if;
  select * into strict v_settings from spool.settings;

  -- Parsed (every element is valid now), each with a fresh id; a missing priority or
  -- max_attempts comes from the type's row (one primary-key probe per element).
  select pg_catalog.array_agg(row(
           a.i - 1, (a.j ->> 'user_id')::uuid, a.j ->> 'type',
           coalesce(nullif(a.j -> 'input', 'null'::jsonb), '{}'::jsonb),
           coalesce((a.j ->> 'priority')::numeric, t.priority, 0)::smallint,
           coalesce((a.j ->> 'max_attempts')::numeric, t.max_attempts, 3)::integer,
           coalesce(spool.try_timestamptz(a.j ->> 'run_at'), v_now), a.j ->> 'idempotency_key',
           (a.j ->> 'parent_id')::uuid, coalesce((a.j ->> 'cpu_ms')::numeric, 0)::integer,
           spool.uuid_v7(), true, a.j ->> 'route')::spool.job_spec order by a.i)
    into v_specs
  from pg_catalog.jsonb_array_elements(p_jobs) with ordinality a(j, i)
  left join spool.job_types t on t.type = a.j ->> 'type';

  select e.i into v_bad from pg_catalog.unnest(v_specs) e
  where not exists (select 1 from auth.users u where u.id = e.user_id)
  order by e.i limit 1;
  if found then
    perform spool.throw(404, 'user_not_found', pg_catalog.format('job %s: no such user', v_bad.i),
      jsonb_build_object('index', v_bad.i));
  end if;
  select e.i into v_bad from pg_catalog.unnest(v_specs) e
  where e.parent_id is not null
    and not exists (select 1 from public.jobs p where p.id = e.parent_id and p.user_id = e.user_id)
  order by e.i limit 1;
  if found then
    perform spool.throw(404, 'job_not_found', pg_catalog.format('job %s: parent job not found', v_bad.i),
      jsonb_build_object('index', v_bad.i));
  end if;

  -- Lock the users first, in one order: the idempotency checks and quotas below cannot race.
  perform spool.lock_user_slot(u.user_id)
  from (select distinct e.user_id from pg_catalog.unnest(v_specs) e order by e.user_id) u;

  -- Idempotency keys. An element stands for the existing job with its key, else for the first
  -- element with its key; only the rest are new. A key naming a different job is a conflict.
  select e.i, j.id as job_id into v_bad
  from pg_catalog.unnest(v_specs) e
  join public.jobs j on j.user_id = e.user_id and j.idempotency_key = e.idempotency_key
  where j.type <> e.type or j.input <> e.input
  order by e.i limit 1;
  if found then
    perform spool.throw(409, 'idempotency_conflict',
      pg_catalog.format('job %s: this idempotency key was already used for a different job', v_bad.i),
      jsonb_build_object('index', v_bad.i, 'job_id', v_bad.job_id));
  end if;
  select e.i into v_bad
  from pg_catalog.unnest(v_specs) e
  join pg_catalog.unnest(v_specs) f
    on f.user_id = e.user_id and f.idempotency_key = e.idempotency_key and f.i < e.i
  where f.type <> e.type or f.input <> e.input
  order by e.i limit 1;
  if found then
    perform spool.throw(409, 'idempotency_conflict',
      pg_catalog.format('job %s: this idempotency key is used earlier in the batch for a different job', v_bad.i),
      jsonb_build_object('index', v_bad.i));
  end if;
  if exists (select 1 from pg_catalog.unnest(v_specs) e where e.idempotency_key is not null) then
    select pg_catalog.array_agg(row(
             r.i, r.user_id, r.type, r.input, r.priority, r.max_attempts, r.run_at, r.idempotency_key,
             r.parent_id, r.cpu_ms, coalesce(r.existing_id, r.first_id),
             r.existing_id is null and r.first_id = r.id, r.route)::spool.job_spec order by r.i)
      into v_specs
    from (select e.*,
                 (select j.id from public.jobs j
                   where j.user_id = e.user_id and j.idempotency_key = e.idempotency_key) as existing_id,
                 case when e.idempotency_key is null then e.id
                      else pg_catalog.first_value(e.id) over (partition by e.user_id, e.idempotency_key order by e.i)
                 end as first_id
          from pg_catalog.unnest(v_specs) e) r;
  end if;

  -- Quotas, per user, for the jobs this call adds (counted as create_job counts them).
  select q.user_id, q.requested, q.active, q.created, q.retried into v_bad
  from (select n.user_id, n.requested,
               (select pg_catalog.count(*) from public.jobs j
                 where j.user_id = n.user_id and j.status in ('pending', 'running', 'waiting'))::integer as active,
               (select pg_catalog.count(*) from public.jobs j
                 where j.user_id = n.user_id and j.created_at > v_now - interval '1 minute')::integer as created,
               (select pg_catalog.count(*) from spool.retries t
                 where t.user_id = n.user_id and t.at > v_now - interval '1 minute')::integer as retried
        from (select e.user_id, pg_catalog.count(*)::integer as requested
              from pg_catalog.unnest(v_specs) e where e.is_new group by e.user_id) n) q
  where q.active + q.requested > v_settings.max_active_jobs_per_user
     or q.created + q.retried + q.requested > v_settings.max_jobs_per_minute_per_user
  order by q.user_id limit 1;
  if found then
    if v_bad.active + v_bad.requested > v_settings.max_active_jobs_per_user then
      perform spool.throw(429, 'quota_active_jobs',
        pg_catalog.format('too many active jobs: %s active and %s more requested, %s allowed',
                          v_bad.active, v_bad.requested, v_settings.max_active_jobs_per_user),
        jsonb_build_object('user_id', v_bad.user_id, 'active', v_bad.active, 'requested', v_bad.requested,
                           'limit', v_settings.max_active_jobs_per_user));
    end if;
    perform spool.throw(429, 'quota_rate',
      pg_catalog.format('too many jobs started in the last minute: %s created and %s retried, %s more requested, %s allowed',
                        v_bad.created, v_bad.retried, v_bad.requested, v_settings.max_jobs_per_minute_per_user),
      jsonb_build_object('user_id', v_bad.user_id, 'created_last_minute', v_bad.created,
                         'retried_last_minute', v_bad.retried, 'requested', v_bad.requested,
                         'limit', v_settings.max_jobs_per_minute_per_user,
                         'retry_after_seconds', 60));
  end if;

  -- Fair slots: take_user_slot's rule for each user's new jobs in array order, in closed form.
  -- One by one, with slot s, step d = fair_slot, b = least(run_at, now): a job starts at
  -- greatest(s, run_at) and the slot becomes greatest(s, b) + d. So before a user's k-th new job
  -- (0-based) the slot is k*d + greatest(s0, max over earlier jobs j of (b_j - j*d)).
  with n as (
    select e.*, pg_catalog.row_number() over (partition by e.user_id order by e.i) - 1 as k,
           least(e.run_at, v_now) as b
    from pg_catalog.unnest(v_specs) e where e.is_new
  ),
  f as (
    select n.*, u.fair_at as s0,
           pg_catalog.max(n.b - n.k * v_settings.fair_slot) over (
             partition by n.user_id order by n.i rows between unbounded preceding and 1 preceding) as m
    from n join spool.user_slots u on u.user_id = n.user_id
  ),
  slots as (
    update spool.user_slots u
       set fair_at = x.cnt * v_settings.fair_slot + greatest(u.fair_at, x.m)
      from (select n.user_id, pg_catalog.count(*) as cnt, pg_catalog.max(n.b - n.k * v_settings.fair_slot) as m
            from n group by n.user_id) x
     where u.user_id = x.user_id
  )
  insert into public.jobs (id, user_id, type, input, priority, max_attempts, run_at, fair_at,
                           idempotency_key, parent_id, cpu_ms, route, created_at, updated_at)
  select f.id, f.user_id, f.type, f.input, f.priority, f.max_attempts, f.run_at,
         greatest(f.k * v_settings.fair_slot + greatest(f.s0, coalesce(f.m, f.s0)), f.run_at),
         f.idempotency_key, f.parent_id, f.cpu_ms, f.route, v_now, v_now
  from f
  order by f.i;

  return query
    select j.* from pg_catalog.unnest(v_specs) e join public.jobs j on j.id = e.id order by e.i;
end;
$$;

-- Timeouts -------------------------------------------------------------------------------------------

-- spool.timeout_error(job): the error of an attempt that ran past its timeout_at, as rescue_jobs
-- stores it and heartbeat_job reports it. Contract: pure; {"code": "timeout", "message": "the
-- attempt ran past its <n> s timeout", "timeout_seconds": n, "timeout_at", "worker_id"}, where n
-- is what the attempt was given at claim (timeout_at - started_at: a later change to the type's
-- row does not rewrite history).
create function spool.timeout_error(p_job public.jobs)
returns jsonb
language sql immutable
set search_path = ''
as $$
  select pg_catalog.jsonb_build_object(
    'code', 'timeout',
    'message', pg_catalog.format('the attempt ran past its %s s timeout', n),
    'timeout_seconds', n,
    'timeout_at', p_job.timeout_at,
    'worker_id', p_job.worker_id)
  from (select pg_catalog.round(extract(epoch from p_job.timeout_at - p_job.started_at))::bigint as n) s
$$;
revoke all on function spool.timeout_error(public.jobs) from public, anon, authenticated, service_role;

-- rescue_jobs: recover jobs whose worker or provider went silent, or ran out of time.
-- Caller: service_role (and the pg_cron sweep).
-- A running job whose lease expired, a running job past its timeout_at (the attempt's deadline
-- from claim_jobs: the worker is gone, or stuck but still heartbeating), or a waiting job past its
-- callback deadline, is retried with backoff if it has attempts left and failed otherwise
-- (spool.retry_or_fail, retryable). Error code: 'timeout' when the attempt's timeout_at passed
-- before its lease expired (spool.timeout_error), else 'lease_expired'; 'external_timeout' for a
-- waiting job (a waiting job has no worker, so its timeout_at no longer applies).
-- Locks with SKIP LOCKED: rows being finished right now are left alone. Reads the running and
-- waiting part of jobs_active_idx, as before.
-- Returns how many jobs were rescued. Idempotent.
create or replace function public.rescue_jobs()
returns integer
language plpgsql volatile
security definer
set search_path = ''
as $$
declare
  v_job public.jobs;
  v_count integer := 0;
  v_now timestamptz := spool.now();
begin
  for v_job in
    select * from public.jobs j
    where j.status in ('running', 'waiting')
      and (j.lease_expires_at < v_now or (j.status = 'running' and j.timeout_at < v_now))
    order by least(j.lease_expires_at, case when j.status = 'running' then j.timeout_at end)
    for update skip locked
  loop
    perform spool.retry_or_fail(v_job,
      case
        when v_job.status = 'waiting'
          then jsonb_build_object('code', 'external_timeout',
                 'message', format('%s did not answer in time', v_job.external_provider))
        -- Whichever deadline came first says what happened: a worker that stopped heartbeating
        -- before the timeout is a lost lease, one that was still heartbeating at it ran too long.
        when v_job.timeout_at < v_now and v_job.timeout_at <= v_job.lease_expires_at
          then spool.timeout_error(v_job)
        else jsonb_build_object('code', 'lease_expired',
               'message', format('worker %s stopped heartbeating', coalesce(v_job.worker_id, '?')))
      end,
      true);
    v_count := v_count + 1;
  end loop;
  return v_count;
end;
$$;

-- heartbeat_job: a worker says it is alive, extends its lease and reports progress.
-- Caller: service_role. Requires the lease token (PT409 lease_lost otherwise: stop working).
-- Past the attempt's timeout_at it answers PT409 lease_lost as well (DETAIL {"status":
-- "running", "reason": "timeout", "timeout_at", "timeout_seconds"}) and changes nothing: the
-- worker stops, as on any lost lease, and the attempt is failed with code 'timeout' either by
-- the worker (fail_job still accepts its token) or by the next rescue_jobs. Without this a stuck
-- handler whose heartbeat loop still runs would keep extending its lease; rescue fails it
-- anyway, and the worker learns it at its next heartbeat.
-- Progress is 0..100 and never goes backwards within an attempt; step is free text (<= 200).
-- Returns the job row. Idempotent for the same arguments.
create or replace function public.heartbeat_job(
  p_id uuid,
  p_lease_token uuid,
  p_progress integer default null,
  p_step text default null,
  p_lease_seconds integer default null
)
returns public.jobs
language plpgsql volatile
security definer
set search_path = ''
as $$
declare
  v_job public.jobs;
  v_now timestamptz := spool.now();
begin
  if p_progress is not null and p_progress not between 0 and 100 then
    perform spool.throw(400, 'invalid_argument', 'progress must be between 0 and 100');
  end if;
  if p_step is not null and char_length(p_step) > 200 then
    perform spool.throw(400, 'invalid_argument', 'step must be at most 200 characters');
  end if;
  if p_lease_seconds is not null and p_lease_seconds not between 5 and 3600 then
    perform spool.throw(400, 'invalid_argument', 'lease_seconds must be between 5 and 3600');
  end if;
  v_job := spool.leased_job(p_id, p_lease_token);
  if v_job.timeout_at < v_now then
    perform spool.throw(409, 'lease_lost',
      format('this worker no longer holds the lease on job %s (%s)', p_id,
             spool.timeout_error(v_job) ->> 'message'),
      jsonb_build_object('status', v_job.status, 'reason', 'timeout', 'timeout_at', v_job.timeout_at,
                         'timeout_seconds', spool.timeout_error(v_job) -> 'timeout_seconds'));
  end if;

  update public.jobs j
     set progress = greatest(j.progress, coalesce(p_progress, j.progress)),
         step = coalesce(p_step, j.step),
         lease_expires_at = v_now + pg_catalog.make_interval(secs => coalesce(p_lease_seconds,
           (select s.default_lease_seconds from spool.settings s))),
         updated_at = v_now
   where j.id = p_id
  returning * into v_job;
  return v_job;
end;
$$;

-- Retention ------------------------------------------------------------------------------------------

-- prune_jobs: delete finished history past its retention, in bounded batches.
-- Caller: service_role, and spool.prune_history (pg_cron spool-prune, every minute, in batches).
-- Retention: a done job is kept for its type's spool.job_types.retention_done, a failed or
-- cancelled one for retention_failed; where the type has no row or the column is null,
-- spool.settings' retention_done / retention_failed. At most p_limit jobs per call, oldest
-- finished first; notifications older than retention_notifications go too.
-- Plan: one range scan of jobs_finished_idx up to now - (the shortest retention in force), each
-- row checked against its own retention (a primary-key probe of spool.job_types, only for the
-- few types that set one); never a scan of jobs. The scan steps over finished jobs kept longer
-- than that shortest retention (as it always stepped over failed jobs younger than
-- retention_failed): a type with a much shorter retention than the rest makes each batch walk
-- the others' history between the two.
-- Locks: FOR UPDATE SKIP LOCKED on the rows it deletes. Returns the number of jobs deleted.
-- Idempotent.
create or replace function public.prune_jobs(p_limit integer default 10000)
returns integer
language plpgsql volatile
security definer
set search_path = ''
as $$
declare
  v_settings spool.settings;
  v_now timestamptz := spool.now();
  v_overrides text[];
  v_shortest interval;
  v_count integer;
begin
  if p_limit is null or p_limit < 1 then
    perform spool.throw(400, 'invalid_argument', 'limit must be positive');
  end if;
  select * into strict v_settings from spool.settings;
  select coalesce(pg_catalog.array_agg(t.type), '{}'),
         least(v_settings.retention_done, v_settings.retention_failed,
               pg_catalog.min(t.retention_done), pg_catalog.min(t.retention_failed))
    into v_overrides, v_shortest
  from spool.job_types t
  where t.retention_done is not null or t.retention_failed is not null;

  with doomed as (
    select j.id from public.jobs j
    where j.finished_at < v_now - v_shortest
      and j.finished_at < v_now - case
        when j.type = any (v_overrides) then
          (select case when j.status = 'done'
                    then coalesce(t.retention_done, v_settings.retention_done)
                    else coalesce(t.retention_failed, v_settings.retention_failed) end
             from spool.job_types t where t.type = j.type)
        when j.status = 'done' then v_settings.retention_done
        else v_settings.retention_failed
      end
      and j.status in ('done', 'failed', 'cancelled')
    order by j.finished_at
    limit p_limit
    for update skip locked
  )
  -- By primary key: joined (USING doomed), a full batch of 1,000 made the planner hash the
  -- whole table (a seq scan of jobs per batch: 40 of 85 ms at 100k jobs).
  delete from public.jobs j where j.id = any (array(select d.id from doomed d));
  get diagnostics v_count = row_count;

  delete from public.notifications n where n.created_at < v_now - v_settings.retention_notifications;
  return v_count;
end;
$$;
