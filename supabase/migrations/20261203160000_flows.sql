-- Spool: flows in SQL (issue 11, items 1-3): dependencies, fan-out, fan-in exactly once, a
-- failure policy per flow, and cancel / retry cascades.
--
--   * One vocabulary. No new state: `waiting` means "waiting for something other than a worker".
--     A job waits on a provider (external_provider is set, as before), on its dependencies, or
--     on its children (a flow's parent). Every reader of `waiting` tells them apart by
--     external_provider: rescue_jobs' callback deadline and the sweep's poll check look only at
--     provider waits (replaced below); claim_waiting_polls already matches one provider.
--     get_queue_stats keeps its document as it is (its depth per type and state shows a flow
--     parent's type waiting, e.g. pack/waiting). A job waiting on jobs has no lease and no
--     deadline: it ends when they do.
--   * Dependencies are rows of spool.job_dependencies (job_id, depends_on), not an array column:
--     a finished job finds its dependents by a btree index on depends_on (an array in the
--     dependent's row would need a GIN index on jobs, maintained at every non-HOT update of every
--     job), and the rows carry each edge's position and failure rule. A job
--     whose dependencies are not all done is created waiting; when the last one is done it
--     becomes pending at once (waiting -> pending, as resume_job does) and the doorbell rings.
--     Its handler receives their outputs in jobs.dependency_outputs, filled at release:
--     [{"id", "type", "status", "output" | "error"}] in the order the dependencies were given
--     (claim_jobs returns it with the row). Not in input: the kinds' input schemas are strict.
--     A dependency that fails or is cancelled cancels the dependent (its error names the
--     dependency), unless the flow was created with on_dependency_failure = 'run': then the
--     dependent runs once every dependency has ended, and dependency_outputs carries the errors.
--   * Fan-out: public.create_flow creates a parent and its children (a JSON array, or a map
--     built with jsonb_agg over an array) in one transaction through create_jobs, so quotas count
--     the whole flow, parent included, all or nothing, and the children take fair_at slots as
--     any batch does (one user's 50 children interleave with other users' jobs). A parent with
--     children is never claimed: it waits until they have all ended.
--   * Fan-in exactly once. A child's end (or a dependency's) is handled after the statement that
--     ended it: the row trigger jobs_flow_ended notes the job, the statement trigger
--     jobs_flow_settle locks every parent and dependent concerned, in id order (two workers
--     completing batches that share two parents cannot deadlock), and only then counts their
--     unfinished children or dependencies in a new statement, which sees every committed end.
--     Of two sessions ending the last two children at once, the second to lock the parent sees
--     the first's child ended and its own: it finishes the parent; the first saw the second's
--     child still running. The parent's output aggregates its children's in creation order:
--     {"children": [{"index", "id", "type", "status", "output" | "error"}], "done": n,
--     "failed": n, "cancelled": n}.
--   * Policy per flow: 'fail_fast' (the default): the first child that fails or is cancelled
--     fails the parent and cancels the siblings that have not ended; 'partial': the parent
--     finishes when all children have ended, done with the children that succeeded and the
--     report of those that did not (failed only if none succeeded). Siblings are cancelled as
--     cancel_job does (running ones lose their lease: their worker learns at its next heartbeat);
--     a running sibling another transaction is writing at that instant (completing, failing or
--     heartbeating it) is skipped, not waited for, since that transaction may be about to wait
--     for the parent this one holds: it ends as it ends, and the parent's outcome stands.
--   * Cascades: cancelling a job (cancel_job) cancels the unfinished children of a flow parent,
--     and the dependents of any job. retry_job on a failed or cancelled parent retries only its
--     failed and cancelled children (each as retry_job does: quotas, history) and puts the
--     parent back to waiting; retrying a child of an ended flow reopens the flow. Owner-only,
--     as before: both go through spool.owned_job.
--   * Cost for everything else: the row trigger's WHEN clause is false for a job with no parent,
--     no dependents and no cancellation, so no trigger event is even queued for it; the
--     statement trigger runs once per UPDATE statement that sets status (not per row) and returns
--     at its first test when no flow job ended. Measured on this machine (2 shared cores, noisy),
--     before = a fresh database with every migration but this one, after = with it (20 owners,
--     1,000 plain running jobs completed by one complete_jobs call, 15 rounds, 3 runs each,
--     medians of the runs' medians): 34.5 ms before, 35.5 ms after (runs 34.5 / 33.1 / 37.8 ms
--     against 32.5 / 45.3 / 35.5 ms: no difference above the noise). EXPLAIN ANALYZE of the same
--     UPDATE of 1,000 rows: jobs_flow_ended is never called, jobs_flow_settle once, 0.06 ms.
--     Deleting 1,000 finished jobs (a prune batch): ~20.8 -> ~21.9 ms, jobs_flow_deleted ~2 ms
--     once per statement (foreign keys instead cost ~11 ms a batch).

-- Columns -----------------------------------------------------------------------------------------

alter table public.jobs add column has_dependents boolean not null default false;
alter table public.jobs add column dependency_outputs jsonb;
comment on column public.jobs.has_dependents is
  'Some job depends on this one (spool.job_dependencies): its end may release or cancel them.';
comment on column public.jobs.dependency_outputs is
  'Filled when the job''s dependencies release it: [{"id","type","status","output"|"error"}] in dependency order.';
comment on column public.jobs.parent_id is
  'The flow this job is a child of (spool.flows); a flow parent waits until its children have ended.';

-- Flows and dependencies ------------------------------------------------------------------------

-- No foreign keys to public.jobs: each one is a trigger per deleted job, and prune_jobs deletes
-- jobs by the thousand (measured: three of them made a prune batch of 1,000 ~11 ms slower, ~50%).
-- jobs_flow_deleted removes the rows of deleted jobs once per DELETE statement instead (~2 ms).
create table spool.flows (
  job_id   uuid primary key,
  policy   text not null check (policy in ('fail_fast', 'partial')),
  -- The children in creation order: the order of the parent's aggregated output.
  children uuid[] not null
);
comment on table spool.flows is
  'One row per flow parent: its failure policy and its children in order. Written by create_flow only.';

create table spool.job_dependencies (
  job_id            uuid not null,
  depends_on        uuid not null,
  position          integer not null,
  -- true: this dependency failing or being cancelled cancels job_id; false: job_id runs anyway.
  cancel_on_failure boolean not null default true,
  primary key (job_id, depends_on),
  check (job_id <> depends_on)
);
comment on table spool.job_dependencies is
  'job_id runs only once depends_on has ended (done, or any end where cancel_on_failure is false).';
create index job_dependencies_depends_on_idx on spool.job_dependencies (depends_on);

alter table spool.flows enable row level security;
alter table spool.job_dependencies enable row level security;
revoke all on spool.flows, spool.job_dependencies from public, anon, authenticated, service_role;

-- Outputs -----------------------------------------------------------------------------------------

-- spool.dependency_outputs(job) is what a released job receives from its dependencies.
-- Contract: read-only; [{"id", "type", "status", "output"}] for done dependencies and "error" in
-- place of "output" for the others, in the order they were given; [] for a job without any.
create function spool.dependency_outputs(p_job_id uuid)
returns jsonb
language sql stable
set search_path = ''
as $$
  select coalesce(pg_catalog.jsonb_agg(
           pg_catalog.jsonb_build_object('id', j.id, 'type', j.type, 'status', j.status)
           || case when j.status = 'done' then pg_catalog.jsonb_build_object('output', j.output)
                   else pg_catalog.jsonb_build_object('error', j.error) end
           order by d.position), '[]'::jsonb)
  from spool.job_dependencies d join public.jobs j on j.id = d.depends_on
  where d.job_id = p_job_id
$$;

-- spool.flow_output(parent) is a flow parent's aggregated output.
-- Contract: read-only; {"children": [{"index", "id", "type", "status", "output" | "error"}],
-- "done": n, "failed": n, "cancelled": n}, children in creation order (spool.flows.children); a
-- child that has not ended (a fail_fast flow that failed first) has neither output nor error.
create function spool.flow_output(p_parent_id uuid)
returns jsonb
language sql stable
set search_path = ''
as $$
  select pg_catalog.jsonb_build_object(
    'children', coalesce(pg_catalog.jsonb_agg(
        pg_catalog.jsonb_build_object('index', c.n - 1, 'id', j.id, 'type', j.type, 'status', j.status)
        || case j.status when 'done' then pg_catalog.jsonb_build_object('output', j.output)
                         when 'failed' then pg_catalog.jsonb_build_object('error', j.error)
                         when 'cancelled' then pg_catalog.jsonb_build_object('error', j.error)
                         else '{}'::jsonb end
        order by c.n), '[]'::jsonb),
    'done', pg_catalog.count(*) filter (where j.status = 'done'),
    'failed', pg_catalog.count(*) filter (where j.status = 'failed'),
    'cancelled', pg_catalog.count(*) filter (where j.status = 'cancelled'))
  from spool.flows f
  cross join lateral pg_catalog.unnest(f.children) with ordinality c(id, n)
  join public.jobs j on j.id = c.id
  where f.job_id = p_parent_id
$$;

-- Cascades ------------------------------------------------------------------------------------------

-- spool.cancel_unfinished(ids, error) cancels those of the jobs that have not ended.
-- Contract: pending and waiting ones are locked (waiting for a claim in progress, which never
-- waits for a flow's row) and cancelled; running ones are cancelled unless another transaction
-- holds them right now (SKIP LOCKED: it may be completing one and about to wait for the parent
-- the caller holds). Cancelled jobs lose their lease, get p_error and a notification, exactly as
-- cancel_job leaves them; their own cascades run after this statement (jobs_flow_settle).
-- Returns how many were cancelled.
create function spool.cancel_unfinished(p_ids uuid[], p_error jsonb)
returns integer
language plpgsql volatile
set search_path = ''
as $$
declare
  v_now timestamptz := spool.now();
  v_n integer;
  v_m integer;
begin
  with c as (
    update public.jobs j
       set status = 'cancelled', lease_token = null, lease_expires_at = null, error = p_error,
           finished_at = v_now, updated_at = v_now
     where j.id in (select w.id from public.jobs w
                    where w.id = any(p_ids) and w.status in ('pending', 'waiting')
                    order by w.id for update)
    returning j.*
  ), n as (
    insert into public.notifications (user_id, job_id, job_type, status, message)
    select c.user_id, c.id, c.type, c.status, spool.ended_message(c.type, c.status, c.error) from c
  )
  select pg_catalog.count(*) into v_n from c;
  with c as (
    update public.jobs j
       set status = 'cancelled', lease_token = null, lease_expires_at = null, error = p_error,
           finished_at = v_now, updated_at = v_now
     where j.id in (select w.id from public.jobs w
                    where w.id = any(p_ids) and w.status = 'running'
                    for update skip locked)
    returning j.*
  ), n as (
    insert into public.notifications (user_id, job_id, job_type, status, message)
    select c.user_id, c.id, c.type, c.status, spool.ended_message(c.type, c.status, c.error) from c
  )
  select pg_catalog.count(*) into v_m from c;
  return v_n + v_m;
end;
$$;

-- spool.settle_parent(parent) finishes a flow parent if its children say so.
-- Contract: the caller holds the parent's row lock (spool.settle_flows); does nothing unless the
-- parent is waiting. Counts the children in this (new) statement, so every committed child end
-- is seen. fail_fast and a child failed or cancelled: cancels the unfinished siblings and fails
-- the parent (error child_failed naming the first such child). Otherwise, all children ended:
-- done (partial: failed with all_children_failed when none is done). Output: spool.flow_output.
-- Writes the parent's notification.
create function spool.settle_parent(p_parent_id uuid)
returns void
language plpgsql volatile
set search_path = ''
as $$
declare
  v_now timestamptz := spool.now();
  v_flow spool.flows;
  v_open integer;
  v_done integer;
  v_bad record;
  v_error jsonb;
  v_failed boolean;
  v_job public.jobs;
begin
  select * into v_flow from spool.flows f where f.job_id = p_parent_id;
  if not found or not exists (select 1 from public.jobs p where p.id = p_parent_id and p.status = 'waiting') then
    return;
  end if;
  select pg_catalog.count(*) filter (where j.status not in ('done', 'failed', 'cancelled')),
         pg_catalog.count(*) filter (where j.status = 'done')
    into v_open, v_done
  from pg_catalog.unnest(v_flow.children) c(id) join public.jobs j on j.id = c.id;
  select c.n - 1 as i, j.id, j.type, j.status, j.error into v_bad
  from pg_catalog.unnest(v_flow.children) with ordinality c(id, n) join public.jobs j on j.id = c.id
  where j.status in ('failed', 'cancelled')
  order by c.n limit 1;
  v_failed := found;

  if v_failed and v_flow.policy = 'fail_fast' then
    v_error := pg_catalog.jsonb_build_object('code', 'child_failed',
      'message', pg_catalog.format('child %s (%s) %s: %s', v_bad.i, v_bad.type, v_bad.status,
                                   coalesce(v_bad.error ->> 'message', 'no message')),
      'child_id', v_bad.id, 'child_index', v_bad.i, 'child_error', v_bad.error);
  elsif v_open > 0 then
    return;
  elsif v_flow.policy = 'partial' and v_done = 0 then
    v_error := pg_catalog.jsonb_build_object('code', 'all_children_failed',
      'message', 'no child of this flow succeeded');
  end if;

  -- The parent ends first, so the siblings' cancellations below find it ended and stop there;
  -- its output is written again after them, showing them cancelled.
  update public.jobs j
     set status = case when v_error is null then 'done' else 'failed' end::public.job_status,
         output = spool.flow_output(p_parent_id),
         error = v_error,
         progress = 100,
         finished_at = v_now,
         updated_at = v_now
   where j.id = p_parent_id
  returning * into v_job;
  if v_failed and v_flow.policy = 'fail_fast' then
    perform spool.cancel_unfinished(v_flow.children, pg_catalog.jsonb_build_object('code', 'cancelled',
      'message', pg_catalog.format('cancelled: its flow failed (child %s %s)', v_bad.i, v_bad.status),
      'parent_id', p_parent_id));
    update public.jobs j set output = spool.flow_output(p_parent_id) where j.id = p_parent_id
    returning * into v_job;
  end if;
  perform spool.notify_ended(v_job);
end;
$$;

-- spool.settle_dependent(job) releases or cancels a job waiting on its dependencies.
-- Contract: the caller holds the job's row lock; does nothing unless it is waiting on jobs (not on
-- a provider, not a flow parent). A dependency with cancel_on_failure that failed or was
-- cancelled cancels it (error dependency_failed naming the first such dependency). Else, once
-- every dependency has ended as its edge requires (done; any end for cancel_on_failure false),
-- moves it to pending with dependency_outputs and rings the doorbell. Counts in this (new)
-- statement, so every committed end is seen.
create function spool.settle_dependent(p_job_id uuid)
returns void
language plpgsql volatile
set search_path = ''
as $$
declare
  v_now timestamptz := spool.now();
  v_bad record;
begin
  if not exists (select 1 from public.jobs j
                 where j.id = p_job_id and j.status = 'waiting' and j.external_provider is null)
     or exists (select 1 from spool.flows f where f.job_id = p_job_id) then
    return;
  end if;
  select d.position, j.id, j.type, j.status, j.error into v_bad
  from spool.job_dependencies d join public.jobs j on j.id = d.depends_on
  where d.job_id = p_job_id and d.cancel_on_failure and j.status in ('failed', 'cancelled')
  order by d.position limit 1;
  if found then
    perform spool.cancel_unfinished(array[p_job_id], pg_catalog.jsonb_build_object('code', 'dependency_failed',
      'message', pg_catalog.format('dependency %s (%s) %s: %s', v_bad.id, v_bad.type, v_bad.status,
                                   coalesce(v_bad.error ->> 'message', 'no message')),
      'dependency_id', v_bad.id));
    return;
  end if;
  if exists (select 1 from spool.job_dependencies d join public.jobs j on j.id = d.depends_on
             where d.job_id = p_job_id
               and (j.status not in ('done', 'failed', 'cancelled')
                    or (d.cancel_on_failure and j.status <> 'done'))) then
    return;
  end if;
  update public.jobs j
     set status = 'pending', dependency_outputs = spool.dependency_outputs(p_job_id), updated_at = v_now
   where j.id = p_job_id;
  perform spool.ring_doorbell('dependencies');
end;
$$;

-- spool.settle_flows(ended) handles the ends of flow jobs, after the statement that ended them.
-- Contract: p_ended are jobs that just ended (done, failed, cancelled) and have a parent, have
-- dependents or were cancelled. Locks every flow parent and dependent they concern, in id order
-- (deadlock-free between batches), then settles the parents (spool.settle_parent) before the
-- dependents (a fail_fast parent cancels a waiting sibling with the flow's reason, not the
-- dependency's), then cancels the unfinished children of the cancelled flow parents. The
-- updates it makes end more jobs; their own cascades run after each of its statements.
create function spool.settle_flows(p_ended uuid[])
returns void
language plpgsql volatile
set search_path = ''
as $$
declare
  v_parents uuid[];
  v_dependents uuid[];
  v_cancelled uuid[];
  v_id uuid;
begin
  select pg_catalog.array_agg(distinct j.parent_id) into v_parents
  from public.jobs j join spool.flows f on f.job_id = j.parent_id
  where j.id = any(p_ended);
  select pg_catalog.array_agg(distinct d.job_id) into v_dependents
  from spool.job_dependencies d where d.depends_on = any(p_ended);
  select pg_catalog.array_agg(j.id order by j.id) into v_cancelled
  from public.jobs j join spool.flows f on f.job_id = j.id
  where j.id = any(p_ended) and j.status = 'cancelled';
  if v_parents is null and v_dependents is null and v_cancelled is null then
    return;
  end if;

  perform 1 from public.jobs j
  where j.id = any(coalesce(v_parents, '{}') || coalesce(v_dependents, '{}'))
  order by j.id
  for update;

  foreach v_id in array coalesce(v_parents, '{}') loop
    perform spool.settle_parent(v_id);
  end loop;
  foreach v_id in array coalesce(v_dependents, '{}') loop
    perform spool.settle_dependent(v_id);
  end loop;
  foreach v_id in array coalesce(v_cancelled, '{}') loop
    perform spool.cancel_unfinished((select f.children from spool.flows f where f.job_id = v_id),
      pg_catalog.jsonb_build_object('code', 'cancelled', 'message', 'cancelled with its flow',
                                    'parent_id', v_id));
  end loop;
end;
$$;

-- Triggers ------------------------------------------------------------------------------------------

-- spool.flow_job_ended() (row trigger jobs_flow_ended) notes a flow job that just ended.
-- Contract: appends the job's id to the transaction-local setting spool.flow_ended, which
-- jobs_flow_settle reads after the statement. Fires only through the trigger's WHEN clause.
create function spool.flow_job_ended()
returns trigger
language plpgsql volatile
security definer
set search_path = ''
as $$
begin
  perform pg_catalog.set_config('spool.flow_ended',
    coalesce(nullif(pg_catalog.current_setting('spool.flow_ended', true), '') || ',', '') || new.id::text,
    true);
  return null;
end;
$$;

-- spool.flow_statement_ended() (statement trigger jobs_flow_settle) settles what the statement's
-- flow jobs' ends concern (spool.settle_flows). Contract: returns at once when no flow job ended
-- (the setting is empty); clears the setting before settling, so the nested statements'
-- triggers handle only the jobs those statements end.
create function spool.flow_statement_ended()
returns trigger
language plpgsql volatile
security definer
set search_path = ''
as $$
declare
  v_list text := pg_catalog.current_setting('spool.flow_ended', true);
begin
  if v_list is null or v_list = '' then
    return null;
  end if;
  perform pg_catalog.set_config('spool.flow_ended', '', true);
  perform spool.settle_flows(pg_catalog.string_to_array(v_list, ',')::uuid[]);
  return null;
end;
$$;

-- The WHEN clause is evaluated as the row is updated: false (no event queued, no function call)
-- for a job with no parent and no dependents that is not being cancelled.
create trigger jobs_flow_ended
  after update of status on public.jobs
  for each row
  when (new.status in ('done', 'failed', 'cancelled')
        and old.status not in ('done', 'failed', 'cancelled')
        and (new.parent_id is not null or new.has_dependents or new.status = 'cancelled'))
  execute function spool.flow_job_ended();

create trigger jobs_flow_settle
  after update of status on public.jobs
  for each statement
  execute function spool.flow_statement_ended();

-- spool.flow_jobs_deleted() (statement trigger jobs_flow_deleted) forgets the flows and the
-- dependency edges of deleted jobs (prune_jobs, a deleted user), in place of foreign keys.
-- Contract: deletes the spool.flows rows of deleted parents and the spool.job_dependencies rows
-- naming a deleted job on either side; one pass per DELETE statement.
create function spool.flow_jobs_deleted()
returns trigger
language plpgsql volatile
security definer
set search_path = ''
as $$
begin
  delete from spool.flows f where f.job_id in (select g.id from gone g);
  delete from spool.job_dependencies d
   where d.job_id in (select g.id from gone g) or d.depends_on in (select g.id from gone g);
  return null;
end;
$$;

create trigger jobs_flow_deleted
  after delete on public.jobs
  referencing old table as gone
  for each statement
  execute function spool.flow_jobs_deleted();

-- Creating a flow -----------------------------------------------------------------------------------

-- create_flow: a parent and its children (fan-out), or one job with dependencies, atomically.
-- Caller: service_role (the creators), like create_job.
-- p_children: null or a JSON array of up to 999 job descriptions as create_jobs takes them
-- (type, input, priority, max_attempts, run_at, cpu_ms, route) without user_id, parent_id or
-- idempotency_key (set by the flow), each with an optional "depends_on": an array of earlier
-- children's indexes (numbers) and existing job ids of the same user (strings). With children,
-- the parent (p_type, p_input) is created waiting and finishes when they have all ended, by
-- p_policy ('fail_fast' or 'partial'); it takes no p_depends_on (PT400: give the dependencies to
-- its children). Without children, the one job created depends on p_depends_on (the user's
-- jobs). A job whose dependencies are not all done is created waiting, else pending with
-- dependency_outputs. p_on_dependency_failure: 'cancel' (a failed or cancelled dependency
-- cancels its dependent; an existing dependency that already failed is PT409
-- dependency_failed) or 'run'. Quotas (active jobs, jobs per minute) count the parent and every
-- child, all or nothing (create_jobs); PT404 user_not_found / job_not_found (a dependency that is
-- not the user's). Locks the user's slot row and the existing dependencies' rows. Returns the
-- parent, then the children in order. p_idempotency_key is the parent's: a second call with the
-- same key, type and input returns the existing flow (its parent and children, as created) and
-- creates nothing; the same key with another type or input is PT409 idempotency_conflict.
create function public.create_flow(
  p_user_id uuid,
  p_type text,
  p_input jsonb default '{}',
  p_children jsonb default null,
  p_policy text default 'fail_fast',
  p_depends_on uuid[] default null,
  p_on_dependency_failure text default 'cancel',
  p_idempotency_key text default null
)
returns setof public.jobs
language plpgsql volatile
security definer
set search_path = ''
as $$
declare
  v_n integer := 0;
  v_child jsonb;
  v_dep jsonb;
  v_specs jsonb := '[]';
  v_edges jsonb := '[]';
  v_existing uuid[] := coalesce(p_depends_on, '{}');
  v_parent public.jobs;
  v_children uuid[] := '{}';
  v_all uuid[];
  v_bad record;
  v_pos integer;
begin
  if p_policy is null or p_policy not in ('fail_fast', 'partial') then
    perform spool.throw(400, 'invalid_argument', 'policy must be fail_fast or partial');
  end if;
  if p_on_dependency_failure is null or p_on_dependency_failure not in ('cancel', 'run') then
    perform spool.throw(400, 'invalid_argument', 'on_dependency_failure must be cancel or run');
  end if;
  if p_children is not null and pg_catalog.jsonb_typeof(p_children) <> 'array' then
    perform spool.throw(400, 'invalid_argument', 'children must be a JSON array of job descriptions');
  end if;
  v_n := coalesce(pg_catalog.jsonb_array_length(p_children), 0);
  if v_n > 999 then
    perform spool.throw(400, 'invalid_argument', 'a flow holds at most 999 children',
      pg_catalog.jsonb_build_object('count', v_n));
  end if;
  if v_n > 0 and p_depends_on is not null then
    perform spool.throw(400, 'invalid_argument',
      'a parent with children does not run, so it takes no dependencies: give them to its children');
  end if;
  if pg_catalog.array_position(v_existing, null) is not null then
    perform spool.throw(400, 'invalid_argument', 'depends_on must hold job ids');
  end if;
  for v_pos in 1 .. coalesce(pg_catalog.cardinality(p_depends_on), 0) loop
    v_edges := v_edges || pg_catalog.jsonb_build_array(pg_catalog.jsonb_build_object(
      'job', -1, 'id', p_depends_on[v_pos], 'pos', v_pos));
  end loop;

  -- The flow this key already created, if any: under the user's slot lock, as create_job checks.
  if p_idempotency_key is not null then
    if not exists (select 1 from auth.users u where u.id = p_user_id) then
      perform spool.throw(404, 'user_not_found', 'no such user');
    end if;
    perform spool.lock_user_slot(p_user_id);
    select * into v_parent from public.jobs j
    where j.user_id = p_user_id and j.idempotency_key = p_idempotency_key;
    if found then
      if v_parent.type <> p_type or v_parent.input <> coalesce(p_input, '{}'::jsonb) then
        perform spool.throw(409, 'idempotency_conflict',
          'this idempotency key was already used for a different job',
          pg_catalog.jsonb_build_object('job_id', v_parent.id));
      end if;
      return query
        select j.* from pg_catalog.unnest(v_parent.id || coalesce(
                 (select f.children from spool.flows f where f.job_id = v_parent.id), '{}'))
               with ordinality a(id, n)
        join public.jobs j on j.id = a.id
        order by a.n;
      return;
    end if;
  end if;

  -- The children's descriptions and dependency edges; create_jobs validates the rest.
  for i in 0 .. v_n - 1 loop
    v_child := p_children -> i;
    if pg_catalog.jsonb_typeof(v_child) <> 'object' then
      perform spool.throw(400, 'invalid_argument', pg_catalog.format('child %s: each child must be a JSON object', i),
        pg_catalog.jsonb_build_object('index', i));
    end if;
    if v_child ?| array['user_id', 'parent_id', 'idempotency_key'] then
      perform spool.throw(400, 'invalid_argument',
        pg_catalog.format('child %s: user_id, parent_id and idempotency_key are set by the flow', i),
        pg_catalog.jsonb_build_object('index', i));
    end if;
    v_dep := nullif(v_child -> 'depends_on', 'null'::jsonb);
    if v_dep is not null then
      if pg_catalog.jsonb_typeof(v_dep) <> 'array' then
        perform spool.throw(400, 'invalid_argument',
          pg_catalog.format('child %s: depends_on must be an array of child indexes and job ids', i),
          pg_catalog.jsonb_build_object('index', i));
      end if;
      for v_pos in 0 .. pg_catalog.jsonb_array_length(v_dep) - 1 loop
        if pg_catalog.jsonb_typeof(v_dep -> v_pos) = 'number'
           and spool.json_int_between(v_dep -> v_pos, 0, i - 1) then
          v_edges := v_edges || pg_catalog.jsonb_build_array(pg_catalog.jsonb_build_object(
            'job', i, 'child', (v_dep ->> v_pos)::integer, 'pos', v_pos + 1));
        elsif pg_catalog.jsonb_typeof(v_dep -> v_pos) = 'string'
              and (v_dep ->> v_pos) ~* '^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$' then
          v_edges := v_edges || pg_catalog.jsonb_build_array(pg_catalog.jsonb_build_object(
            'job', i, 'id', (v_dep ->> v_pos)::uuid, 'pos', v_pos + 1));
          v_existing := v_existing || (v_dep ->> v_pos)::uuid;
        else
          perform spool.throw(400, 'invalid_argument',
            pg_catalog.format('child %s: depends_on may name earlier children (indexes 0 to %s) and job ids only', i, i - 1),
            pg_catalog.jsonb_build_object('index', i));
        end if;
      end loop;
    end if;
    v_specs := v_specs || pg_catalog.jsonb_build_array(
      (v_child - 'depends_on') || pg_catalog.jsonb_build_object('user_id', p_user_id));
  end loop;

  -- Existing dependencies: the user's own, locked (in one order) so none ends unseen between
  -- this check and the commit: its end waits for this transaction, then finds its dependents.
  if pg_catalog.cardinality(v_existing) > 0 then
    select x.id into v_bad from pg_catalog.unnest(v_existing) x(id)
    where not exists (select 1 from public.jobs j where j.id = x.id and j.user_id = p_user_id)
    limit 1;
    if found then
      perform spool.throw(404, 'job_not_found', pg_catalog.format('dependency %s not found', v_bad.id),
        pg_catalog.jsonb_build_object('dependency_id', v_bad.id));
    end if;
    perform 1 from public.jobs j where j.id = any(v_existing) order by j.id for update;
    if p_on_dependency_failure = 'cancel' then
      select j.id, j.status into v_bad from public.jobs j
      where j.id = any(v_existing) and j.status in ('failed', 'cancelled') order by j.id limit 1;
      if found then
        perform spool.throw(409, 'dependency_failed',
          pg_catalog.format('dependency %s is %s: retry it first, or create the flow with on_dependency_failure run',
                            v_bad.id, v_bad.status),
          pg_catalog.jsonb_build_object('dependency_id', v_bad.id, 'status', v_bad.status));
      end if;
    end if;
  end if;

  -- Parent, then children: two create_jobs calls in one transaction, so the user's slot row is
  -- locked from the first and the second's quotas count the parent too: exact, all or nothing.
  select * into strict v_parent from public.create_jobs(pg_catalog.jsonb_build_array(
    pg_catalog.jsonb_build_object('user_id', p_user_id, 'type', p_type, 'input', p_input,
                                  'idempotency_key', p_idempotency_key)));
  if v_n > 0 then
    select pg_catalog.array_agg(c.id order by c.ordinality) into v_children
    from public.create_jobs((select pg_catalog.jsonb_agg(s || pg_catalog.jsonb_build_object('parent_id', v_parent.id)
                                                         order by n)
                             from pg_catalog.jsonb_array_elements(v_specs) with ordinality e(s, n))) with ordinality c;
    insert into spool.flows (job_id, policy, children) values (v_parent.id, p_policy, v_children);
    update public.jobs j set status = 'waiting' where j.id = v_parent.id;
  end if;
  v_all := v_parent.id || v_children;

  insert into spool.job_dependencies (job_id, depends_on, position, cancel_on_failure)
  select distinct on (x.job_id, x.depends_on) x.job_id, x.depends_on, x.pos, p_on_dependency_failure = 'cancel'
  from (select case when (e ->> 'job')::integer < 0 then v_parent.id
                    else v_children[(e ->> 'job')::integer + 1] end as job_id,
               coalesce((e ->> 'id')::uuid, v_children[(e ->> 'child')::integer + 1]) as depends_on,
               (e ->> 'pos')::integer as pos
        from pg_catalog.jsonb_array_elements(v_edges) e) x
  order by x.job_id, x.depends_on, x.pos;

  if exists (select 1 from spool.job_dependencies d where d.job_id = any(v_all)) then
    update public.jobs j set has_dependents = true
     where j.id in (select d.depends_on from spool.job_dependencies d where d.job_id = any(v_all))
       and not j.has_dependents;
    -- Not yet released: waiting. Released at once (every dependency already ended as required):
    -- pending with the outputs.
    update public.jobs j
       set status = case when exists (
                      select 1 from spool.job_dependencies d join public.jobs x on x.id = d.depends_on
                      where d.job_id = j.id
                        and (x.status not in ('done', 'failed', 'cancelled')
                             or (d.cancel_on_failure and x.status <> 'done')))
                    then 'waiting' else 'pending' end::public.job_status
     where j.id in (select d.job_id from spool.job_dependencies d where d.job_id = any(v_all));
    update public.jobs j set dependency_outputs = spool.dependency_outputs(j.id)
     where j.id in (select d.job_id from spool.job_dependencies d where d.job_id = any(v_all))
       and j.status = 'pending';
  end if;

  return query
    select j.* from pg_catalog.unnest(v_all) with ordinality a(id, n) join public.jobs j on j.id = a.id
    order by a.n;
end;
$$;
revoke execute on function public.create_flow(uuid, text, jsonb, jsonb, text, uuid[], text, text) from public, anon, authenticated;
grant execute on function public.create_flow(uuid, text, jsonb, jsonb, text, uuid[], text, text) to service_role;

-- Retry ---------------------------------------------------------------------------------------------

-- spool.reopen_flows(job) puts the ended flow parents above a job that runs again back to waiting.
-- Contract: walks parent_id upwards while the parent is a flow (spool.flows) that has ended
-- (done, failed or cancelled): waiting again, output, error and finished_at cleared. Stops at
-- the first parent still waiting or that is not a flow.
create function spool.reopen_flows(p_job_id uuid)
returns void
language plpgsql volatile
set search_path = ''
as $$
declare
  v_id uuid := (select j.parent_id from public.jobs j where j.id = p_job_id);
  v_now timestamptz := spool.now();
begin
  while v_id is not null loop
    update public.jobs j
       set status = 'waiting', output = null, error = null, progress = 0, finished_at = null, updated_at = v_now
     where j.id = v_id and j.status in ('done', 'failed', 'cancelled')
       and exists (select 1 from spool.flows f where f.job_id = j.id);
    exit when not found;
    v_id := (select j.parent_id from public.jobs j where j.id = v_id);
  end loop;
end;
$$;

-- spool.retry_flow_job(id) is retry_job for flows as well as single jobs.
-- Contract: the caller must own the job (spool.owned_job: PT404 otherwise, locks it).
--   * A flow parent: idempotent while waiting; PT409 invalid_transition unless failed or
--     cancelled; retries its failed and cancelled children in order (each by this function: a
--     child that is itself a flow retries its own), then puts it back to waiting. A child that
--     spool.retry_job refuses (PT409 not_retryable, PT429 quotas) refuses the whole retry.
--   * Any other job: spool.retry_job (quotas, history, doorbell); if it has dependencies, it
--     waits again until they are done (PT409 dependency_failed when one has failed or was
--     cancelled and cancels it: retry that one first), else gets their outputs afresh.
--   Either way, ended flows above the job are reopened (spool.reopen_flows).
create function spool.retry_flow_job(p_id uuid)
returns public.jobs
language plpgsql volatile
set search_path = ''
as $$
declare
  v_job public.jobs := spool.owned_job(p_id);
  v_now timestamptz := spool.now();
  v_child uuid;
  v_bad record;
begin
  if exists (select 1 from spool.flows f where f.job_id = p_id) then
    if v_job.status = 'waiting' then
      return v_job;
    end if;
    if v_job.status not in ('failed', 'cancelled') then
      perform spool.throw(409, 'invalid_transition',
        pg_catalog.format('a %s job cannot be retried', v_job.status),
        pg_catalog.jsonb_build_object('status', v_job.status));
    end if;
    update public.jobs j
       set status = 'waiting', output = null, error = null, progress = 0, finished_at = null, updated_at = v_now
     where j.id = p_id;
    for v_child in
      select c.id from spool.flows f cross join lateral pg_catalog.unnest(f.children) with ordinality c(id, n)
      join public.jobs j on j.id = c.id
      where f.job_id = p_id and j.status in ('failed', 'cancelled')
      order by c.n
    loop
      perform spool.retry_flow_job(v_child);
    end loop;
    perform spool.reopen_flows(p_id);
    -- Nothing left to wait for (no child needed retrying): settle it again now.
    perform spool.settle_parent(p_id);
    select * into v_job from public.jobs j where j.id = p_id;
    return v_job;
  end if;

  v_job := spool.retry_job(p_id);
  if exists (select 1 from spool.job_dependencies d where d.job_id = p_id) then
    select j.id, j.status into v_bad
    from spool.job_dependencies d join public.jobs j on j.id = d.depends_on
    where d.job_id = p_id and d.cancel_on_failure and j.status in ('failed', 'cancelled')
    order by d.position limit 1;
    if found then
      perform spool.throw(409, 'dependency_failed',
        pg_catalog.format('dependency %s is %s: retry it first', v_bad.id, v_bad.status),
        pg_catalog.jsonb_build_object('dependency_id', v_bad.id, 'status', v_bad.status));
    end if;
    update public.jobs j
       set status = case when exists (
                      select 1 from spool.job_dependencies d join public.jobs x on x.id = d.depends_on
                      where d.job_id = j.id
                        and (x.status not in ('done', 'failed', 'cancelled')
                             or (d.cancel_on_failure and x.status <> 'done')))
                    then 'waiting' else 'pending' end::public.job_status,
           dependency_outputs = null
     where j.id = p_id
    returning * into v_job;
    if v_job.status = 'pending' then
      update public.jobs j set dependency_outputs = spool.dependency_outputs(p_id) where j.id = p_id
      returning * into v_job;
    end if;
  end if;
  perform spool.reopen_flows(p_id);
  return v_job;
end;
$$;

-- retry_job: spool.retry_flow_job (a failed or cancelled job runs again; a flow parent retries
-- its failed and cancelled children and waits again; see its header), returning
-- spool.owner_view of the job. Caller: the job's owner (authenticated) or service_role.
create or replace function public.retry_job(p_id uuid)
returns public.jobs
language sql volatile
security definer
set search_path = ''
as $$
  select spool.owner_view(spool.retry_flow_job(p_id))
$$;

revoke all on function
  spool.dependency_outputs(uuid),
  spool.flow_output(uuid),
  spool.cancel_unfinished(uuid[], jsonb),
  spool.settle_parent(uuid),
  spool.settle_dependent(uuid),
  spool.settle_flows(uuid[]),
  spool.flow_job_ended(),
  spool.flow_statement_ended(),
  spool.flow_jobs_deleted(),
  spool.reopen_flows(uuid),
  spool.retry_flow_job(uuid)
  from public, anon, authenticated, service_role;

-- Readers of waiting: a provider wait is the one with external_provider set -------------------------

-- rescue_jobs (replaces 20261203130200_type_defaults.sql's; contract unchanged): retries or fails
-- running jobs whose lease expired or whose timeout passed, and jobs waiting on a provider whose
-- callback deadline passed. A job waiting on its dependencies or children has no deadline and is
-- never rescued. Locks with SKIP LOCKED. Returns how many it rescued.
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
      and (j.status = 'running' or j.external_provider is not null)
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

-- spool.sweep() (replaces 20261203100000_no_stall.sql's; contract unchanged): rescues, then rings
-- the doorbell if a runnable pending job exists or a job waiting on a provider is due for a poll.
-- Jobs waiting on jobs are not polled: they would ring every sweep for nothing.
create or replace function spool.sweep()
returns jsonb
language plpgsql volatile
security definer
set search_path = ''
as $$
declare
  v_rescued integer := public.rescue_jobs();
  v_now timestamptz := spool.now();
  v_request bigint;
begin
  if spool.claimable_exists()
     or exists (select 1 from public.jobs j, spool.settings s
                where j.status = 'waiting' and j.external_provider is not null
                  and j.updated_at <= v_now - s.waiting_poll_interval) then
    v_request := spool.ring_doorbell('sweep');
  end if;
  return jsonb_build_object('rescued', v_rescued, 'rung', v_request);
end;
$$;
