-- Spool: claim_jobs honours each job type's project-wide running cap and start rate, and gives
-- every attempt its deadline (jobs.timeout_at).
--
-- spool.job_types (20261203130000) holds, per type, max_running (jobs of the type running at once
-- across the project) and rate_per_minute (jobs of the type started per minute across the
-- project). A type without a row, or whose row has neither, is unlimited: only the per-user cap,
-- fair order, priority and CPU budget apply, exactly as before.
--
-- Exact under concurrency. A claim that is about to take jobs of a limited type first locks that
-- type's spool.type_slots row (FOR UPDATE, held until the claim's transaction ends), and only then,
-- in a later statement (a fresh READ COMMITTED snapshot), counts the type's running jobs and
-- recent starts: every claimer that took jobs of the type before it has committed by then, so two
-- claims at the same instant in two sessions can never both fill the same room. Only limited
-- types are locked, and only when the claim's candidates include one.
--
-- Fast path. A claim whose candidates include no limited type runs the one statement it ran
-- before (the same scan of jobs_claim_idx, the same per-user probes); spool.job_types (a few rows:
-- timeouts, which types are limited) is read once per call into arrays, so that statement plans
-- as fast as before and joins nothing more. No type row is locked or written. Measured at a
-- 20,000-job backlog over 400 owners (EXPLAIN ANALYZE of the call, rolled back, before/after
-- interleaved, medians of 101, 3 runs on a shared 2-core machine): a claim of 100 4.56 -> 4.66 ms
-- (a type with a row) and 4.59 -> 4.90 ms (a type without), a claim of 10 1.12 -> 1.28 ms.
-- The limited path: a claim of 100 ~4.8 ms, of 10 ~2.4 ms; a claim that finds the head of the
-- queue all of one type at its cap walks past that type's backlog to the jobs behind it, as for
-- an owner at the per-user cap (20,000 of them: ~8 ms).
--
-- Slow path (some candidate's type is limited): a limited type already full as committed is left
-- out without taking its row (concurrent claims can only fill it further; a finish not committed
-- yet is for the next claim, which job-worker makes after every finish), so claims do not queue
-- for a type none of them could take. The other limited types' rows are locked in type order,
-- each type's room is counted, the candidates are scanned again (the rows this call holds, and
-- any committed since) and taken in claim order (priority, fair_at, id) while their owner, their
-- type and the CPU budget all have room. Rows passed over
-- stay locked until the transaction ends, as before, and further passes (up to 4 in all) leave out
-- owners and types that have no room left. The first pass that meets limited types waits for their
-- rows; a later pass meeting another limited type takes its row only if it is free (SKIP LOCKED),
-- else leaves that type out of this claim: a claim never waits for a type row while holding
-- another, so two claims cannot deadlock on them.
--
-- The rate is a sliding window, not a token bucket: at most rate_per_minute starts of the type in
-- any 60 s, (t - 60 s, t]. A token bucket of capacity rate_per_minute refilled at rate/60 per
-- second lets up to twice the rate start within one minute (a full bucket, then a minute of
-- refill), which breaks a provider's per-minute limit, the reason the column exists; shrinking the
-- bucket to stay under it would throttle steady traffic instead. The window is kept as a small
-- log on the type's spool.type_slots row: one entry per second in which jobs of the type started
-- (the latest start in that second, and how many), so at most ~120 entries whatever the rate. An
-- entry counts while its latest start is within the window, which holds a start back by less than
-- 1 s more than an exact log would, never less (never over the rate). Entries are dropped 120 s
-- after their start (60 s after they leave the window: a claim whose clock, its transaction's
-- start, lags another's by less than that still sees every start that counts for it), or when
-- more than 300 s ahead of the claim's clock (only a test clock, spool.now, puts them there).
--
-- Starts of every limited type are logged, so a cap-only type's row is written too: its row
-- version then also changes with every claim of the type, which makes a claim in REPEATABLE READ
-- fail with a serialization error rather than count from a stale snapshot.
--
-- No ring loop for a capped backlog. spool.claimable_exists (which drives the pg_cron sweep's ring)
-- now also leaves out types with no room. A rate-limited backlog still drains: once the window
-- reopens, the next sweep rings: within 10 s (+ < 1 s of the window's rounding) where pg_cron runs
-- the sweep every 10 s (pg_cron >= 1.5, as on Supabase), within a minute on pg_cron 1.4 (the
-- local Debian build), and at once whenever a job is created (the insert's doorbell).

-- ---------------------------------------------------------------------------------------------
-- spool.type_slots: the lock and the start log of each limited type
-- ---------------------------------------------------------------------------------------------
create table spool.type_slots (
  type     text primary key references spool.job_types (type) on delete cascade on update cascade,
  -- The start log: start_at[i] is the latest start in one second, start_n[i] how many started in it.
  start_at timestamptz[] not null default '{}',
  start_n  integer[] not null default '{}',
  constraint type_slots_log_pairs check (pg_catalog.cardinality(start_at) = pg_catalog.cardinality(start_n))
);
comment on table spool.type_slots is
  'Per limited job type: the row claim_jobs locks to count its room exactly, and the log of recent starts (per second) its rate is counted from. Created by claim_jobs on first use.';
alter table spool.type_slots enable row level security;
revoke all on spool.type_slots from anon, authenticated, service_role;

-- spool.type_room(types, at) says how many more jobs of each limited type may start at time `at`.
-- Contract: one row per type in spool.job_types with a max_running or a rate_per_minute (of
-- p_types only, unless null): running = its running jobs (committed ones and the calling
-- transaction's own), started = its starts logged in (at - 60 s, at + 300 s], room = the smaller
-- of max_running - running and rate_per_minute - started, at least 0 (a limit that is null does
-- not bound it). Read-only; takes no lock: exact only for a caller that holds the types' rows
-- (claim_jobs), advisory otherwise (claimable_exists, job_type_stats). Reads the running part of
-- jobs_active_idx once.
create function spool.type_room(p_types text[], p_at timestamptz)
returns table (type text, running integer, started integer, room integer)
language sql stable
set search_path = ''
as $$
  with limited as (
    select t.type, t.max_running, t.rate_per_minute
    from spool.job_types t
    where (t.max_running is not null or t.rate_per_minute is not null)
      and (p_types is null or t.type = any (p_types))
  ),
  running as (
    select j.type, count(*)::integer as n
    from public.jobs j
    where j.status = 'running' and j.type in (select l.type from limited l)
    group by j.type
  ),
  started as (
    select s.type, pg_catalog.sum(e.n)::integer as n
    from spool.type_slots s, unnest(s.start_at, s.start_n) as e(at, n)
    where s.type in (select l.type from limited l)
      and e.at > p_at - interval '60 seconds' and e.at <= p_at + interval '300 seconds'
    group by s.type
  )
  select l.type, coalesce(r.n, 0), coalesce(s.n, 0),
         greatest(0, least(l.max_running - coalesce(r.n, 0), l.rate_per_minute - coalesce(s.n, 0)))
  from limited l
  left join running r on r.type = l.type
  left join started s on s.type = l.type
$$;
revoke all on function spool.type_room(text[], timestamptz) from public, anon, authenticated, service_role;

-- claim_jobs: lease up to p_limit runnable jobs to a worker.
-- Caller: service_role (job-worker).
-- Order: priority (high first), then fair_at (each user's jobs spaced by fair_slot, so users
-- interleave), then id. Never takes so many of one user's jobs that they would exceed
-- max_running_per_user. Only jobs whose run_at has come; optionally only the given types.
-- Types: never takes so many jobs of a type that its running jobs would exceed its max_running,
-- nor so many that more than its rate_per_minute would have started in the last 60 s
-- (spool.job_types; see this migration's header). These two are exact under concurrency; a type
-- with no limit costs nothing extra.
-- CPU: with p_cpu_budget_ms, the claimed jobs' cpu_ms add up to at most that budget: a job whose
-- estimate exceeds what is left is never a candidate (it stays pending, its attempts untouched,
-- for a worker with more CPU left), and of the candidates the longest run in the order above that
-- fits is taken. Null: no bound.
-- Locks: scans with FOR UPDATE SKIP LOCKED, so concurrent claimers never wait on or share a job
-- row, and each scan locks only as many rows as are still wanted. Rows passed over because their
-- owner or type ran out of room, or because they did not fit the budget, stay locked until the
-- (short) claiming transaction ends. The per-user cap counts running jobs committed before the
-- call plus the caller's own: claimers racing on one user can each fill that user's remaining
-- room once. When a candidate's type is limited, its spool.type_slots row is locked until the
-- transaction ends: concurrent claims of that type wait for each other (a few ms).
-- Effects: status running, attempts + 1, a fresh lease_token, lease_expires_at = now + lease,
-- timeout_at = now + the type's timeout_seconds (600 for a type without a row); a limited type's
-- starts are logged on its spool.type_slots row.
-- Returns the claimed rows (possibly none). Not idempotent: every call is a new claim.
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
  v_full uuid[] := '{}';
  v_full_after uuid[];
  v_pass integer := 0;
  -- Types: those left out of later scans (no room, or their row was busy), those whose row this
  -- call holds, and the limited types among a pass's candidates.
  v_types_full text[] := '{}';
  v_types_full_before integer;
  v_held text[] := '{}';
  v_kind_types text[];
  v_kind_timeouts integer[];
  v_limited_all text[];
  v_limited text[];
  v_new text[];
  v_locked text[];
  -- The slow path's candidates, in claim order, and the room of their owners and types.
  v_c_ids uuid[];
  v_c_users uuid[];
  v_c_types text[];
  v_c_cpu integer[];
  v_u_ids uuid[];
  v_u_room integer[];
  v_t_types text[];
  v_t_room integer[];
  v_picked uuid[];
  v_ran_out boolean;
  v_cpu_taken integer;
  v_ui integer;
  v_ti integer;
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

  -- The job types that have a row (a few): each one's timeout, and which have a cap or a rate.
  -- Read once per call, so the claiming statement needs no join for them.
  select coalesce(pg_catalog.array_agg(t.type), '{}'), coalesce(pg_catalog.array_agg(t.timeout_seconds), '{}'),
         coalesce(pg_catalog.array_agg(t.type) filter (where t.max_running is not null or t.rate_per_minute is not null), '{}')
    into v_kind_types, v_kind_timeouts, v_limited_all
  from spool.job_types t;

  -- Owners at their cap (and types without room) are left out of later scans, so their backlog
  -- cannot fill the batch. The first pass assumes nobody is (the common case, and it saves
  -- reading every running job); a short pass finds out.
  loop
    v_pass := v_pass + 1;
    v_types_full_before := pg_catalog.cardinality(v_types_full);
    v_ran_out := false;
    -- The fast path, as before: one statement scans, ranks and claims. When a candidate's type is
    -- limited it claims nothing (the rows it scanned stay locked) and the slow path below decides.
    with candidates as (
      select j.id, j.user_id, j.type, j.priority, j.fair_at, j.cpu_ms
      from public.jobs j
      where j.status = 'pending'
        and j.run_at <= v_now
        and j.user_id <> all (v_full)
        -- NOT IN (a hashed subplan), not "<> all": with most pending jobs of one type, a generic
        -- plan estimates "type <> all ($n)" at no row at all and plans the claim for 1 candidate
        -- (nested loops over 100 x 100 owners; measured 1.6x slower at a 20k backlog).
        and j.type not in (select unnest(v_types_full))
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
    -- Within the CPU budget: the longest prefix, in claim order, whose estimates fit. Nothing at
    -- all when a candidate's type is limited: the slow path decides.
    picked as (
      select w.id
      from (select w.id,
                   sum(w.cpu_ms) over (order by w.priority desc, w.fair_at, w.id) as cpu_upto
            from within_cap w) w
      where (v_cpu_left is null or w.cpu_upto <= v_cpu_left)
        and not exists (select 1 from candidates l where l.type = any (v_limited_all))
    ),
    claimed as (
      update public.jobs j
         set status = 'running',
             attempts = j.attempts + 1,
             worker_id = p_worker_id,
             lease_token = extensions.gen_random_uuid(),
             lease_expires_at = v_now + v_lease,
             timeout_at = v_now + pg_catalog.make_interval(secs => coalesce(
               v_kind_timeouts[pg_catalog.array_position(v_kind_types, j.type)], 600)),
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
           coalesce(pg_catalog.sum(c.cpu_ms), 0)::integer,
           (select pg_catalog.array_agg(distinct l.type order by l.type) from candidates l
             where l.type = any (v_limited_all))
      into v_rows, v_cpu_got, v_limited
    from claimed c;

    if v_limited is not null then
      -- The slow path. Lock the limited types' rows this call does not hold yet, in type order.
      v_new := array(select unnest(v_limited) except select unnest(v_held) order by 1);
      if pg_catalog.cardinality(v_new) > 0 then
        -- But not those already full as committed now (the usual case for a capped backlog): they
        -- are full for this claim too, as concurrent claims can only fill them further (a finish
        -- not yet committed is the next claim's, which job-worker makes after every finish). So
        -- claims do not queue for the row of a type that none of them could take.
        v_types_full := v_types_full || array(
          select r.type from spool.type_room(v_new, v_now) r where r.room = 0);
        v_new := array(select unnest(v_new) except select unnest(v_types_full) order by 1);
      end if;
      if pg_catalog.cardinality(v_new) > 0 then
        if pg_catalog.cardinality(v_held) = 0 then
          -- Holding no type row yet: wait for these (the holders are claims, a few ms each).
          insert into spool.type_slots (type) select unnest(v_new) order by 1 on conflict do nothing;
          v_locked := array(select s.type from spool.type_slots s where s.type = any (v_new)
                            order by s.type for update);
        else
          -- Holding some: never wait for another (no deadlock); a busy type sits this claim out.
          v_locked := array(select s.type from spool.type_slots s where s.type = any (v_new)
                            order by s.type for update skip locked);
        end if;
        v_held := v_held || v_locked;
        v_types_full := v_types_full || array(select unnest(v_new) except select unnest(v_locked));
      end if;

      -- Their room, counted after the lock (this is a new statement: a fresh snapshot that sees
      -- every claim of these types that committed before the lock was granted).
      select coalesce(pg_catalog.array_agg(r.type), '{}'), coalesce(pg_catalog.array_agg(r.room), '{}')
        into v_t_types, v_t_room
      from spool.type_room(v_held, v_now) r;
      -- The candidates again (the rows the scan above locked, and any committed since), in claim order.
      select coalesce(pg_catalog.array_agg(c.id order by c.priority desc, c.fair_at, c.id), '{}'),
             coalesce(pg_catalog.array_agg(c.user_id order by c.priority desc, c.fair_at, c.id), '{}'),
             coalesce(pg_catalog.array_agg(c.type order by c.priority desc, c.fair_at, c.id), '{}'),
             coalesce(pg_catalog.array_agg(c.cpu_ms order by c.priority desc, c.fair_at, c.id), '{}')
        into v_c_ids, v_c_users, v_c_types, v_c_cpu
      from (select j.id, j.user_id, j.type, j.priority, j.fair_at, j.cpu_ms
            from public.jobs j
            where j.status = 'pending'
              and j.run_at <= v_now
              and j.user_id <> all (v_full)
              and j.type not in (select unnest(v_types_full))
              and (p_types is null or j.type = any (p_types))
              and (v_cpu_left is null or j.cpu_ms <= v_cpu_left)
            order by j.priority desc, j.fair_at, j.id
            limit v_want
            for update skip locked) c;
      -- Fewer than wanted: this scan saw every job a later pass could (its filters only narrow).
      v_ran_out := pg_catalog.cardinality(v_c_ids) < v_want;
      select coalesce(pg_catalog.array_agg(o.user_id), '{}'),
             coalesce(pg_catalog.array_agg(greatest(0, v_cap - (
               select count(*) from public.jobs r where r.status = 'running' and r.user_id = o.user_id))::integer), '{}')
        into v_u_ids, v_u_room
      from (select distinct u as user_id from unnest(v_c_users) u) o;

      -- In claim order, take each candidate whose owner and type have room, while the CPU fits.
      v_picked := '{}';
      v_cpu_taken := 0;
      for i in 1 .. pg_catalog.cardinality(v_c_ids) loop
        v_ui := pg_catalog.array_position(v_u_ids, v_c_users[i]);
        continue when v_u_room[v_ui] <= 0;
        continue when v_c_types[i] = any (v_types_full);
        v_ti := pg_catalog.array_position(v_t_types, v_c_types[i]);
        continue when v_ti is not null and v_t_room[v_ti] <= 0;
        -- A limited type whose row this call does not hold (a job of it committed since the scan
        -- above): never without the lock; a later pass or claim takes it.
        continue when v_ti is null and v_c_types[i] = any (v_limited_all);
        exit when v_cpu_left is not null and v_cpu_taken + v_c_cpu[i] > v_cpu_left;
        v_picked := v_picked || v_c_ids[i];
        v_u_room[v_ui] := v_u_room[v_ui] - 1;
        if v_ti is not null then
          v_t_room[v_ti] := v_t_room[v_ti] - 1;
        end if;
        v_cpu_taken := v_cpu_taken + v_c_cpu[i];
      end loop;
      -- Types left with no room sit out the later passes.
      v_types_full := v_types_full || array(
        select v_t_types[k] from pg_catalog.generate_subscripts(v_t_types, 1) k
        where v_t_room[k] <= 0 and not v_t_types[k] = any (v_types_full));

      with claimed as (
        update public.jobs j
           set status = 'running',
               attempts = j.attempts + 1,
               worker_id = p_worker_id,
               lease_token = extensions.gen_random_uuid(),
               lease_expires_at = v_now + v_lease,
               timeout_at = v_now + pg_catalog.make_interval(secs => coalesce(
                 v_kind_timeouts[pg_catalog.array_position(v_kind_types, j.type)], 600)),
               started_at = v_now,
               progress = 0,
               step = null,
               updated_at = v_now
         where j.id = any (v_picked)
        returning j.*
      ),
      -- Log the starts of each limited type, merged per second; drop entries that no longer count.
      logged as (
        update spool.type_slots s
           set (start_at, start_n) = (
             select coalesce(pg_catalog.array_agg(b.at order by b.at), '{}'),
                    coalesce(pg_catalog.array_agg(b.n order by b.at), '{}')
             from (select pg_catalog.max(e.at) as at, pg_catalog.sum(e.n)::integer as n
                   from (select l.at, l.n from unnest(s.start_at, s.start_n) as l(at, n)
                         union all
                         select v_now, c.n) e
                   where e.at > v_now - interval '120 seconds' and e.at <= v_now + interval '300 seconds'
                   group by pg_catalog.floor(extract(epoch from e.at))) b)
          from (select c.type, count(*)::integer as n from claimed c
                where c.type = any (v_held) group by c.type) c
         where s.type = c.type
      )
      select coalesce(pg_catalog.array_agg(row(c.*)::public.jobs), '{}'),
             coalesce(pg_catalog.sum(c.cpu_ms), 0)::integer
        into v_rows, v_cpu_got
      from claimed c;
    end if;

    return query select * from pg_catalog.unnest(v_rows);
    v_got := pg_catalog.cardinality(v_rows);
    v_want := v_want - v_got;
    v_cpu_left := v_cpu_left - v_cpu_got; -- null stays null: no bound
    exit when v_want = 0 or v_pass = 4 or v_ran_out;
    -- Short. If owners reached their cap (or types ran out of room) in this pass, some rows were
    -- passed over: look again without them. If not, the scan simply ran out of runnable jobs (or
    -- of jobs that fit the budget).
    v_full_after := spool.users_at_cap(v_cap);
    exit when pg_catalog.cardinality(v_full_after) = pg_catalog.cardinality(v_full)
          and pg_catalog.cardinality(v_types_full) = v_types_full_before;
    v_full := v_full_after;
  end loop;
end;
$$;
revoke execute on function public.claim_jobs(text, integer, integer, text[], integer) from public, anon, authenticated;
grant execute on function public.claim_jobs(text, integer, integer, text[], integer) to service_role;

-- spool.claimable_exists() says whether claim_jobs would take a job now.
-- Contract: true when a pending job has come due (run_at <= spool.now()) whose owner holds fewer
-- than max_running_per_user running jobs and whose type has room (spool.type_room: under its
-- max_running and its rate_per_minute, or unlimited); running jobs are the committed ones and the
-- calling transaction's own. Read-only, no lock; reads the pending part of jobs_claim_idx, the
-- running part of jobs_active_idx and the limited types' spool.type_slots rows. A type out of
-- rate becomes claimable again as its window reopens, so the sweep's next run rings for it.
create or replace function spool.claimable_exists()
returns boolean
language sql stable
set search_path = ''
as $$
  select exists (
    select 1 from public.jobs j
    where j.status = 'pending' and j.run_at <= spool.now()
      -- Scalar subqueries: computed once, not once per pending row the scan passes over.
      and j.user_id <> all ((select spool.users_at_cap((select s.max_running_per_user from spool.settings s)))::uuid[])
      and j.type <> all ((select coalesce(pg_catalog.array_agg(r.type), '{}')
                          from spool.type_room(null, spool.now()) r where r.room = 0)::text[]))
$$;

-- job_type_stats: the admin page's table of job types.
-- Caller: service_role (the jobs function's health endpoint, admins in the SQL editor).
-- Returns one row per type that has a row in spool.job_types or has jobs not ended (pending,
-- running or waiting), ordered by type: its limits as claim and create apply them (a type without
-- a row shows the defaults: no cap, no rate, 600 s, 3 attempts, priority 0, and null retention,
-- which means spool.settings'), and now:
--   running              its running jobs
--   started_last_minute  a limited type: its starts in the last 60 s as its rate counts them; any
--                        other type: its jobs whose current attempt started in the last 60 s
--   pending              its pending jobs that are due (run_at <= now)
-- Read-only, no lock. Reads the active part of jobs_active_idx, the last minute of
-- jobs_finished_idx and spool.type_slots: cheap enough to call every few seconds.
create function public.job_type_stats()
returns table (
  type text, max_running integer, rate_per_minute integer, timeout_seconds integer,
  max_attempts integer, priority smallint, retention_done interval, retention_failed interval,
  running integer, started_last_minute integer, pending integer
)
language sql stable
security definer
set search_path = ''
as $$
  with now_ as (select spool.now() as t),
  active as (
    select j.type,
           count(*) filter (where j.status = 'running')::integer as running,
           count(*) filter (where j.status = 'pending' and j.run_at <= n.t)::integer as pending,
           count(*) filter (where j.started_at > n.t - interval '60 seconds')::integer as started
    from public.jobs j, now_ n
    where j.status in ('pending', 'running', 'waiting')
    group by j.type
  ),
  finished as (
    select j.type, count(*)::integer as started
    from public.jobs j, now_ n
    where j.finished_at > n.t - interval '60 seconds' and j.started_at > n.t - interval '60 seconds'
    group by j.type
  ),
  limited as (
    select r.type, r.started from now_ n, spool.type_room(null, n.t) r
  ),
  kinds as (
    select t.type from spool.job_types t
    union
    select a.type from active a
  )
  select k.type, t.max_running, t.rate_per_minute,
         coalesce(t.timeout_seconds, 600), coalesce(t.max_attempts, 3), coalesce(t.priority, 0::smallint),
         t.retention_done, t.retention_failed,
         coalesce(a.running, 0),
         coalesce(l.started, coalesce(a.started, 0) + coalesce(f.started, 0)),
         coalesce(a.pending, 0)
  from kinds k
  left join spool.job_types t on t.type = k.type
  left join active a on a.type = k.type
  left join finished f on f.type = k.type
  left join limited l on l.type = k.type
  order by k.type
$$;
revoke execute on function public.job_type_stats() from public, anon, authenticated;
grant execute on function public.job_type_stats() to service_role;

-- cheapest_pending_cpu: the smallest cpu_ms among the runnable pending jobs of the given types,
-- or null when none is runnable. Lets a worker whose CPU budget is nearly spent tell "nothing
-- waits" from "what waits does not fit here" (then a fresh worker is wanted).
-- Now also leaves out types with no room (at their max_running or out of rate_per_minute): their
-- jobs wait for the type, not for CPU, and a fresh worker would take none of them.
-- Caller: service_role (job-worker). Read-only; reads the pending part of jobs_claim_idx and
-- spool.type_room of the given types.
create or replace function public.cheapest_pending_cpu(p_types text[])
returns integer
language sql stable
security definer
set search_path = ''
as $$
  select pg_catalog.min(j.cpu_ms)
  from public.jobs j
  where j.status = 'pending' and j.run_at <= spool.now() and j.type = any (p_types)
    and j.type not in (select r.type from spool.type_room(p_types, spool.now()) r where r.room = 0)
$$;
