-- Spool: bulk enqueue. create_jobs creates many jobs in one call, set-based, with the same rules
-- as create_job: the same validation, idempotency keys, per-user quotas exact under concurrency,
-- fair slots, one doorbell ring. Fan-out (a parent creating its children) and imports use it;
-- a thousand jobs cost one round trip and one statement instead of a thousand.

-- The three helpers below are not SECURITY DEFINER and qualify every name, and pin no
-- search_path on purpose (as spool.uuid_v7): a SET clause is a GUC change on every call and
-- stops Postgres inlining them; measured at 178 µs per element of a 1000-job batch with it.

-- spool.json_int_between(value, lo, hi): true for JSON null or a missing value (the default
-- applies), or a JSON number that is a whole number within [lo, hi]; false otherwise. Pure.
create function spool.json_int_between(p_value jsonb, p_lo bigint, p_hi bigint)
returns boolean
language sql immutable parallel safe
as $$
  select case coalesce(pg_catalog.jsonb_typeof(p_value), 'null')
    when 'null' then true
    when 'number' then p_value::text::numeric between p_lo and p_hi
                       and p_value::text::numeric = pg_catalog.trunc(p_value::text::numeric)
    else false
  end
$$;

-- spool.try_timestamptz(text): the text as a timestamptz, or null when it is not one (or is
-- infinite). Stable (the session's time zone reads unqualified input; ISO 8601 with an offset
-- does not depend on it).
create function spool.try_timestamptz(p_text text)
returns timestamptz
language plpgsql stable parallel safe
as $$
declare
  v timestamptz;
begin
  v := p_text::timestamptz;
  return case when pg_catalog.isfinite(v) then v end;
exception when others then
  return null;
end;
$$;

-- spool.job_field_problem(job) says what is wrong with one element of create_jobs' array.
-- Contract: no side effects; returns null when the element is a valid job description, else the message of
-- the 400 create_job would give for the same value (or the field's own message for a value of
-- the wrong JSON type). Fields: user_id (uuid, required), type (slug, required), input (object),
-- priority (integer -100..100), max_attempts (integer 1..25), run_at (timestamp with time zone),
-- idempotency_key (1..200 characters), parent_id (uuid), cpu_ms (integer 0..3600000). Null
-- values mean the default; any other field is refused.
create function spool.job_field_problem(p_job jsonb)
returns text
language sql stable parallel safe
as $$
  select case
    when pg_catalog.jsonb_typeof(p_job) is distinct from 'object' then 'each job must be a JSON object'
    when p_job - array['user_id', 'type', 'input', 'priority', 'max_attempts', 'run_at',
                       'idempotency_key', 'parent_id', 'cpu_ms'] <> '{}'::jsonb
      -- The first key of what is left, as JSON text (no subquery: it would stop inlining).
      then 'unknown field ' || pg_catalog.substring(
        (p_job - array['user_id', 'type', 'input', 'priority', 'max_attempts', 'run_at',
                       'idempotency_key', 'parent_id', 'cpu_ms'])::text, '^\{"((?:[^"\\]|\\.)*)"')
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
  end
$$;

-- create_jobs: enqueue many jobs, for one user or many, in one call.
-- Caller: service_role (job creators, fan-out, imports).
-- p_jobs: a JSON array of 1 to 1000 job descriptions (spool.job_field_problem lists the fields;
-- missing or null fields take create_job's defaults: input {}, priority 0, max_attempts 3,
-- run_at now, cpu_ms 0).
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
-- spool.job_spec: one element of create_jobs' array, parsed and resolved: its 0-based index, its
-- fields with defaults applied, the id of the job it stands for and whether this call inserts it.
create type spool.job_spec as (
  i integer, user_id uuid, type text, input jsonb, priority smallint, max_attempts integer,
  run_at timestamptz, idempotency_key text, parent_id uuid, cpu_ms integer, id uuid, is_new boolean
);

create function public.create_jobs(p_jobs jsonb)
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

  -- Parsed (every element is valid now), each with a fresh id.
  select pg_catalog.array_agg(row(
           a.i - 1, (a.j ->> 'user_id')::uuid, a.j ->> 'type',
           coalesce(nullif(a.j -> 'input', 'null'::jsonb), '{}'::jsonb),
           coalesce((a.j ->> 'priority')::numeric, 0)::smallint,
           coalesce((a.j ->> 'max_attempts')::numeric, 3)::integer,
           coalesce(spool.try_timestamptz(a.j ->> 'run_at'), v_now), a.j ->> 'idempotency_key',
           (a.j ->> 'parent_id')::uuid, coalesce((a.j ->> 'cpu_ms')::numeric, 0)::integer,
           spool.uuid_v7(), true)::spool.job_spec order by a.i)
    into v_specs
  from pg_catalog.jsonb_array_elements(p_jobs) with ordinality a(j, i);

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
             r.existing_id is null and r.first_id = r.id)::spool.job_spec order by r.i)
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
                           idempotency_key, parent_id, cpu_ms, created_at, updated_at)
  select f.id, f.user_id, f.type, f.input, f.priority, f.max_attempts, f.run_at,
         greatest(f.k * v_settings.fair_slot + greatest(f.s0, coalesce(f.m, f.s0)), f.run_at),
         f.idempotency_key, f.parent_id, f.cpu_ms, v_now, v_now
  from f
  order by f.i;

  return query
    select j.* from pg_catalog.unnest(v_specs) e join public.jobs j on j.id = e.id order by e.i;
end;
$$;
revoke execute on function public.create_jobs(jsonb) from public, anon, authenticated;
grant execute on function public.create_jobs(jsonb) to service_role;

-- The internals are for create_jobs alone (new functions are executable by PUBLIC by default).
revoke all on function
  spool.json_int_between(jsonb, bigint, bigint),
  spool.try_timestamptz(text),
  spool.job_field_problem(jsonb)
  from public, anon, authenticated, service_role;
