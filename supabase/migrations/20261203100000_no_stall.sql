-- Spool: a backlog behind a capped owner never stalls.
--
-- claim_jobs passes over owners at max_running_per_user, so one user's backlog waits while their
-- running jobs finish. Each finish is seen by the worker that held the job: job-worker claims
-- again after every committed outcome, or rings a successor when it can no longer claim
-- (job-worker/run.ts, "Caps"). Two ways a slot frees without that worker noticing at once are
-- covered here:
--   * cancel_job on a running job frees its owner's slot at once, while its worker learns of it
--     only at its next heartbeat (a third of the lease): the cancel now rings the doorbell when
--     the owner has a runnable job waiting.
--   * the pg_cron sweep rang whenever any runnable job was pending, also when every one of them
--     belonged to an owner at the cap: an invocation that could claim nothing, every sweep, for
--     as long as the backlog lasted. It now rings only for a job a claim would take.

-- spool.claimable_exists() says whether claim_jobs would take a job now.
-- Contract: true when a pending job has come due (run_at <= spool.now()) whose owner holds fewer
-- than max_running_per_user running jobs (committed ones, and the calling transaction's own).
-- Read-only; reads the pending part of jobs_claim_idx and the running part of jobs_active_idx.
create function spool.claimable_exists()
returns boolean
language sql stable
set search_path = ''
as $$
  select exists (
    select 1 from public.jobs j
    where j.status = 'pending' and j.run_at <= spool.now()
      and j.user_id <> all (spool.users_at_cap((select s.max_running_per_user from spool.settings s))))
$$;
revoke all on function spool.claimable_exists() from public, anon, authenticated, service_role;

-- spool.sweep() is the pg_cron safety net (replaces the waiting-polls version: same signature
-- and result; it rings for a claimable job rather than for any pending one).
-- Contract: rescues expired leases and callback deadlines (rescue_jobs), then rings the doorbell
-- if claim_jobs would take a job (spool.claimable_exists) or a waiting job is due for a provider
-- poll (silent for waiting_poll_interval). Returns {"rescued": n, "rung": request id or null}.
-- Idempotent.
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
                where j.status = 'waiting' and j.updated_at <= v_now - s.waiting_poll_interval) then
    v_request := spool.ring_doorbell('sweep');
  end if;
  return jsonb_build_object('rescued', v_rescued, 'rung', v_request);
end;
$$;

-- cancel_job: spool.cancel_job (cancel a job that has not ended: pending, running or waiting ->
-- cancelled; idempotent on a cancelled job; PT409 invalid_transition for done or failed jobs;
-- PT404 for jobs the caller cannot see), returning spool.owner_view of the job.
-- Caller: the job's owner (authenticated) or service_role.
-- Wakes the workers: cancelling a running job frees a running slot of its owner, so when that
-- owner has a job due and waiting for the slot, the doorbell rings (debounced, as every ring).
create or replace function public.cancel_job(p_id uuid)
returns public.jobs
language plpgsql volatile
security definer
set search_path = ''
as $$
declare
  v_was public.job_status := (select j.status from public.jobs j where j.id = p_id);
  v_job public.jobs := spool.cancel_job(p_id); -- refuses jobs the caller cannot see
begin
  if v_was = 'running' and exists (
    select 1 from public.jobs j
    where j.user_id = v_job.user_id and j.status = 'pending' and j.run_at <= spool.now()) then
    perform spool.ring_doorbell('cancel');
  end if;
  return spool.owner_view(v_job);
end;
$$;
