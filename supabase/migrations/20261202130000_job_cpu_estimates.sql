-- Spool: each job carries an estimate of the CPU its in-function work spends, and a claim can be
-- bounded by the CPU its worker has left.
--
-- Why: the Edge Runtime counts CPU per isolate, over its whole life (retired at 1 s, killed at
-- 2 s). job-worker therefore claims media jobs only while they fit what its isolate has left
-- (job-worker/cpu-budget.ts). With one flat estimate (a job at the size limits, 1.2 s), an isolate
-- that had spent 0.3 s on small jobs could take no media job at all, however small, and small
-- jobs waited for a fresh isolate. With the estimate per job, made by the creator from the input's
-- header (job-kinds.ts cpuEstimateMs), a claim takes the jobs that fit, and only jobs too large
-- for what is left wait for a fresh isolate.

alter table public.jobs
  add column cpu_ms integer not null default 0
  constraint jobs_cpu_ms_range check (cpu_ms between 0 and 3600000);
comment on column public.jobs.cpu_ms is
  'Estimated CPU milliseconds of the job''s in-function work (0: negligible). Set by its creator; bounds claim_jobs(p_cpu_budget_ms).';

-- create_job: enqueue one job for a user.
-- Caller: service_role (the job-creator Edge Functions, after validating the input).
-- Locks: the user's spool.user_slots row (quotas are exact under concurrency).
-- Idempotent per (user, idempotency key): a repeated key returns the existing job unchanged;
-- the same key with a different type or input raises PT409 idempotency_conflict (cpu_ms is an
-- estimate, not part of the job's identity).
-- p_cpu_ms: the estimated CPU of the job's in-function work, 0..3600000 ms (default 0).
-- Raises PT400 invalid_argument, PT404 (unknown user or parent), PT429 quota_*.
-- Returns the job row; the insert rings the worker doorbell.
drop function public.create_job(uuid, text, jsonb, integer, integer, timestamptz, text, uuid);
create function public.create_job(
  p_user_id uuid,
  p_type text,
  p_input jsonb default '{}',
  p_priority integer default 0,
  p_max_attempts integer default 3,
  p_run_at timestamptz default null,
  p_idempotency_key text default null,
  p_parent_id uuid default null,
  p_cpu_ms integer default 0
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
  if p_priority is null or p_priority not between -100 and 100 then
    perform spool.throw(400, 'invalid_argument', 'priority must be between -100 and 100');
  end if;
  if p_max_attempts is null or p_max_attempts not between 1 and 25 then
    perform spool.throw(400, 'invalid_argument', 'max_attempts must be between 1 and 25');
  end if;
  if p_idempotency_key is not null and char_length(p_idempotency_key) not between 1 and 200 then
    perform spool.throw(400, 'invalid_argument', 'idempotency key must be 1 to 200 characters');
  end if;
  if p_cpu_ms is null or p_cpu_ms not between 0 and 3600000 then
    perform spool.throw(400, 'invalid_argument', 'cpu_ms must be between 0 and 3600000');
  end if;
  if not exists (select 1 from auth.users u where u.id = p_user_id) then
    perform spool.throw(404, 'user_not_found', 'no such user');
  end if;
  if p_parent_id is not null and not exists (
    select 1 from public.jobs j where j.id = p_parent_id and j.user_id = p_user_id) then
    perform spool.throw(404, 'job_not_found', 'parent job not found');
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
                           idempotency_key, parent_id, cpu_ms)
  values (p_user_id, p_type, p_input, p_priority, p_max_attempts, v_run_at, v_fair_at,
          p_idempotency_key, p_parent_id, p_cpu_ms)
  returning * into v_job;
  return v_job;
end;
$$;
revoke execute on function public.create_job(uuid, text, jsonb, integer, integer, timestamptz, text, uuid, integer) from public, anon, authenticated;
grant execute on function public.create_job(uuid, text, jsonb, integer, integer, timestamptz, text, uuid, integer) to service_role;

-- claim_jobs: lease up to p_limit runnable jobs to a worker.
-- Caller: service_role (job-worker).
-- Order: priority (high first), then fair_at (each user's jobs spaced by fair_slot, so users
-- interleave), then id. Never takes so many of one user's jobs that they would exceed
-- max_running_per_user. Only jobs whose run_at has come; optionally only the given types.
-- CPU: with p_cpu_budget_ms, the claimed jobs' cpu_ms add up to at most that budget: a job whose
-- estimate exceeds what is left is never a candidate (it stays pending, its attempts untouched,
-- for a worker with more CPU left), and of the candidates the longest run in the order above that
-- fits is taken. Null: no bound.
-- Locks: scans with FOR UPDATE SKIP LOCKED, so concurrent claimers never wait on or share a row,
-- and each scan locks only as many rows as are still wanted. Rows passed over because their owner
-- ran out of room, or because they did not fit the budget, stay locked until the (short) claiming
-- transaction ends. The cap counts running jobs committed before the call plus the caller's own:
-- claimers racing on one user can each fill that user's remaining room once.
-- Effects: status running, attempts + 1, a fresh lease_token, lease_expires_at = now + lease.
-- Returns the claimed rows (possibly none). Not idempotent: every call is a new claim.
drop function public.claim_jobs(text, integer, integer, text[]);
create function public.claim_jobs(
  p_worker_id text,
  p_limit integer default 10,
  p_lease_seconds integer default null,
  p_types text[] default null,
  p_cpu_budget_ms integer default null
)
returns setof public.jobs
language plpgsql volatile
security definer
set search_path = ''
as $$
declare
  v_now timestamptz := spool.now();
  v_cap integer;
  v_lease interval;
  v_want integer := p_limit;
  v_cpu_left integer := p_cpu_budget_ms;
  v_got integer;
  v_cpu_got integer;
  v_rows public.jobs[];
  v_full uuid[];
  v_full_after uuid[];
  v_pass integer := 0;
begin
  if p_worker_id is null or char_length(p_worker_id) not between 1 and 200 then
    perform spool.throw(400, 'invalid_argument', 'worker_id must be 1 to 200 characters');
  end if;
  if p_limit is null or p_limit not between 1 and 1000 then
    perform spool.throw(400, 'invalid_argument', 'limit must be between 1 and 1000');
  end if;
  if p_lease_seconds is not null and p_lease_seconds not between 5 and 3600 then
    perform spool.throw(400, 'invalid_argument', 'lease_seconds must be between 5 and 3600');
  end if;
  if p_cpu_budget_ms is not null and p_cpu_budget_ms < 0 then
    perform spool.throw(400, 'invalid_argument', 'cpu_budget_ms must be at least 0');
  end if;

  select s.max_running_per_user,
         pg_catalog.make_interval(secs => coalesce(p_lease_seconds, s.default_lease_seconds))
    into strict v_cap, v_lease
  from spool.settings s;

  -- Owners at their cap are left out of later scans, so their backlog cannot fill the batch. The
  -- first pass assumes nobody is (the common case, and it saves reading every running job); a
  -- short pass finds out.
  v_full := '{}';
  loop
    v_pass := v_pass + 1;
    with candidates as (
      select j.id, j.user_id, j.priority, j.fair_at, j.cpu_ms
      from public.jobs j
      where j.status = 'pending'
        and j.run_at <= v_now
        and j.user_id <> all (v_full)
        and (p_types is null or j.type = any (p_types))
        and (v_cpu_left is null or j.cpu_ms <= v_cpu_left)
      order by j.priority desc, j.fair_at, j.id
      limit v_want
      for update skip locked
    ),
    ranked as (
      select c.*, row_number() over (partition by c.user_id order by c.priority desc, c.fair_at, c.id) as nth
      from candidates c
    ),
    -- One index probe per owner in the batch (not a join against every running job).
    -- MATERIALIZED: otherwise, when statistics call pending rows rare (a live queue), the planner
    -- re-runs these probes for every candidate x owner pair (measured: 5,050 probes per claim of
    -- 100 instead of 100, and claims 4x slower).
    running as materialized (
      select o.user_id,
             (select count(*) from public.jobs r where r.status = 'running' and r.user_id = o.user_id) as n
      from (select distinct c.user_id from candidates c) o
    ),
    within_cap as (
      select r.id, r.cpu_ms, r.priority, r.fair_at
      from ranked r left join running u on u.user_id = r.user_id
      where r.nth + coalesce(u.n, 0) <= v_cap
    ),
    -- Within the CPU budget: the longest prefix, in claim order, whose estimates fit.
    picked as (
      select w.id
      from (select w.id,
                   sum(w.cpu_ms) over (order by w.priority desc, w.fair_at, w.id) as cpu_upto
            from within_cap w) w
      where v_cpu_left is null or w.cpu_upto <= v_cpu_left
    ),
    claimed as (
      update public.jobs j
         set status = 'running',
             attempts = j.attempts + 1,
             worker_id = p_worker_id,
             lease_token = extensions.gen_random_uuid(),
             lease_expires_at = v_now + v_lease,
             started_at = v_now,
             progress = 0,
             step = null,
             updated_at = v_now
        from picked
       where j.id = picked.id
      returning j.*
    )
    -- Collected, so the CPU this pass took can come off the budget of the next.
    select coalesce(pg_catalog.array_agg(row(c.*)::public.jobs), '{}'),
           coalesce(pg_catalog.sum(c.cpu_ms), 0)::integer
      into v_rows, v_cpu_got
    from claimed c;
    return query select * from pg_catalog.unnest(v_rows);
    v_got := pg_catalog.cardinality(v_rows);
    v_want := v_want - v_got;
    v_cpu_left := v_cpu_left - v_cpu_got; -- null stays null: no bound
    exit when v_want = 0 or v_pass = 4;
    -- Short. If owners reached their cap in this pass, some rows were passed over: look again
    -- without those owners. If nobody did, the scan simply ran out of runnable jobs (or of jobs
    -- that fit the budget).
    v_full_after := spool.users_at_cap(v_cap);
    exit when cardinality(v_full_after) = cardinality(v_full);
    v_full := v_full_after;
  end loop;
end;
$$;
revoke execute on function public.claim_jobs(text, integer, integer, text[], integer) from public, anon, authenticated;
grant execute on function public.claim_jobs(text, integer, integer, text[], integer) to service_role;

-- cheapest_pending_cpu: the smallest cpu_ms among the runnable pending jobs of the given types,
-- or null when none is runnable. Lets a worker whose CPU budget is nearly spent tell "nothing
-- waits" from "what waits does not fit here" (then a fresh worker is wanted).
-- Caller: service_role (job-worker). Read-only; reads the pending part of jobs_claim_idx.
create function public.cheapest_pending_cpu(p_types text[])
returns integer
language sql stable
security definer
set search_path = ''
as $$
  select pg_catalog.min(j.cpu_ms)
  from public.jobs j
  where j.status = 'pending' and j.run_at <= spool.now() and j.type = any (p_types)
$$;
revoke execute on function public.cheapest_pending_cpu(text[]) from public, anon, authenticated;
grant execute on function public.cheapest_pending_cpu(text[]) to service_role;
