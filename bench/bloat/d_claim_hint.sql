-- Remedy d (scratch, throwaway database only): claim_jobs with a per-session claim hint.
-- Why: while a snapshot holds the xmin horizon, every claimed job leaves a dead entry at the head
-- of jobs_claim_idx that nothing can remove or mark killed, and every claim walks all of them (a
-- heap visit each) before reaching a pending row: the claim's cost grows with the jobs claimed
-- since the snapshot began. Here a session remembers the last key it claimed (priority, fair_at,
-- id) in a session GUC and, for up to 2 s after its last full scan, starts its first pass just
-- after that key, within that priority: it walks only the entries other claimers took since its
-- last claim. A short hinted pass falls back to the shipped full scan, and so does the first
-- claim after 2 s, so a job that became runnable behind the hint (higher priority, a retry, a
-- rescued lease, a new owner's earlier fair slot) waits at most ~2 s longer than in the shipped
-- order. Otherwise the shipped function, unchanged.
create or replace function public.claim_jobs(
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
  -- This session's claim hint: 'priority|fair_at|id|epoch of its last full scan'.
  v_hint text[] := pg_catalog.string_to_array(nullif(pg_catalog.current_setting('spool.claim_hint', true), ''), '|');
  v_clock double precision := extract(epoch from pg_catalog.clock_timestamp());
  v_hinted boolean := false;
  v_hint_priority smallint;
  v_hint_fair_at timestamptz;
  v_hint_id uuid;
  v_last_full double precision;
  v_tail record;
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
  if pg_catalog.cardinality(v_hint) = 4 and v_clock - v_hint[4]::double precision < 2.0 then
    v_hinted := true;
    v_hint_priority := v_hint[1]::smallint;
    v_hint_fair_at := v_hint[2]::timestamptz;
    v_hint_id := v_hint[3]::uuid;
    v_last_full := v_hint[4]::double precision;
  else
    v_last_full := v_clock;
  end if;
  loop
    v_pass := v_pass + 1;
    if v_hinted then
      -- Hinted pass: only rows after this session's last claimed key, in its priority.
      with candidates as (
        select j.id, j.user_id, j.priority, j.fair_at, j.cpu_ms
        from public.jobs j
        where j.status = 'pending'
          and j.priority = v_hint_priority
          and (j.fair_at, j.id) > (v_hint_fair_at, v_hint_id)
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
    else
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
    end if;
    return query select * from pg_catalog.unnest(v_rows);
    v_got := pg_catalog.cardinality(v_rows);
    v_want := v_want - v_got;
    v_cpu_left := v_cpu_left - v_cpu_got; -- null stays null: no bound
    -- The hint moves to the last claimed key (in claim order).
    if v_got > 0 then
      select r.priority, r.fair_at, r.id into v_tail
      from pg_catalog.unnest(v_rows) r order by r.priority, r.fair_at desc, r.id desc limit 1;
      perform pg_catalog.set_config('spool.claim_hint',
        v_tail.priority || '|' || v_tail.fair_at || '|' || v_tail.id || '|' || v_last_full, false);
    end if;
    exit when v_want = 0 or v_pass = 4;
    if v_hinted then
      -- Short after the hint: look again from the start of the claim order.
      v_hinted := false;
      v_last_full := extract(epoch from pg_catalog.clock_timestamp());
      continue;
    end if;
    -- Short. If owners reached their cap in this pass, some rows were passed over: look again
    -- without those owners. If nobody did, the scan simply ran out of runnable jobs (or of jobs
    -- that fit the budget).
    v_full_after := spool.users_at_cap(v_cap);
    exit when cardinality(v_full_after) = cardinality(v_full);
    v_full := v_full_after;
  end loop;
end;
$$;
-- @undo
-- The shipped claim_jobs (supabase/migrations/20261202130000_job_cpu_estimates.sql).
create or replace function public.claim_jobs(
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
