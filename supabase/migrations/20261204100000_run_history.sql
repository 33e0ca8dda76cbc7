-- Spool: every attempt of a job is kept, so a run can be debugged after the fact.
--
-- Before this migration a job showed only its latest state: "Finished in 21.7 s" measured from
-- the claim, 17 s of which the worker spent waiting for a media slot; the attempts before the one
-- that succeeded, their workers and errors were gone; retry_job archived a run's last error only.
--
-- The design:
--   * public.job_attempts: one row per claim (attempt = jobs.attempts after the claim, which never
--     goes back, so the numbers run over the job's whole life, across retry_job). It is written
--     by the API functions that start and end attempts, in the same statement as the job where
--     they are batch hot paths (claim_jobs: one INSERT ... SELECT per batch; complete_jobs: one
--     UPDATE per batch, in the statement that completes the jobs).
--   * Times. ready_at: when the job became claimable for this attempt (its run_at then: creation,
--     a delay, a backoff or a retry). claimed_at: the claim. started_at: when work began. A worker
--     that waits for a media slot reports step 'queued' first (job-worker/media-slots.ts); such an
--     attempt has started_at null until it reports a later step, and keeps it null if it ended
--     while still waiting. Every other attempt starts at its claim. ended_at: the outcome.
--   * outcome, one vocabulary (null while the attempt is open):
--       done           the attempt finished the job (complete_jobs, or resume_job 'done')
--       failed         the handler or the provider reported an error (fail_job, resume_job)
--       lease_expired  the worker stopped heartbeating (rescue_jobs)
--       timed_out      it ran past the type's timeout, or the provider did not answer in time
--                      (rescue_jobs)
--       cancelled      the job was cancelled while the attempt ran or waited (cancel_job, a
--                      flow's cancel cascade: any change of a running or waiting job to cancelled)
--     and retried: whether the job went back to pending for another attempt (false for done,
--     cancelled and a failure that was the last). A job handed to a provider (await_job, status
--     waiting) keeps its attempt open: the provider's work is the attempt's, and await_job
--     records the hand-off as a step.
--   * steps: [{step, progress, at}], appended by heartbeat_job when the step changes (only then:
--     a heartbeat that just renews the lease writes nothing here).
--   * Owners read their attempts (RLS), except worker_id, which stays server-side as on jobs
--     (20261202141000_job_columns.sql); get_job_run gives them a stable worker label instead.
--     Nobody writes the table directly.
--   * public.get_job_run(id): the job, its attempts, earlier runs and timings in one answer.
--     public.job_position(id): a pending job's place in line and an estimate.

-- The attempts ---------------------------------------------------------------------------------

create table public.job_attempts (
  job_id     uuid not null references public.jobs (id) on delete cascade,
  attempt    integer not null check (attempt >= 1),
  run        integer not null check (run >= 1),
  user_id    uuid not null,
  worker_id  text,
  ready_at   timestamptz not null,
  claimed_at timestamptz not null,
  started_at timestamptz,
  ended_at   timestamptz,
  outcome    text check (outcome in ('done', 'failed', 'lease_expired', 'timed_out', 'cancelled')),
  retried    boolean,
  error      jsonb,
  steps      jsonb not null default '[]' check (jsonb_typeof(steps) = 'array'),
  primary key (job_id, attempt),
  constraint job_attempts_outcome_iff_ended check ((outcome is null) = (ended_at is null))
);
comment on table public.job_attempts is
  'One row per attempt (claim) of a job, kept across retry_job; written only by the SQL API. See 20261204100000_run_history.sql.';
comment on column public.job_attempts.attempt is 'jobs.attempts after the claim: 1, 2, ... over the job''s whole life.';
comment on column public.job_attempts.run is 'Which run of the job (1 + the retries before it): jsonb_array_length(jobs.history) + 1 at the claim.';
comment on column public.job_attempts.ready_at is 'When the job became claimable for this attempt (its run_at at the claim).';
comment on column public.job_attempts.started_at is 'When work began: the claim, or for an attempt that waited for a media slot (step ''queued'') its next step; null if it never began.';
comment on column public.job_attempts.outcome is 'done | failed | lease_expired | timed_out | cancelled; null while the attempt is open.';
comment on column public.job_attempts.retried is 'Whether the job went back to pending for another attempt after this one.';
comment on column public.job_attempts.steps is 'The steps the worker reported, in order: [{"step","progress","at"}].';

-- Written once per claim and updated once or twice more (a step, the end; never an indexed column):
-- room on each page for those updates to be HOT, and vacuumed and analyzed as eagerly as jobs, so
-- the lookups by primary key stay planned as such while the table grows.
alter table public.job_attempts set (
  fillfactor = 80,
  autovacuum_vacuum_scale_factor = 0.02,
  autovacuum_vacuum_threshold = 1000,
  autovacuum_vacuum_insert_scale_factor = 0.05,
  autovacuum_analyze_scale_factor = 0.05
);
alter table public.job_attempts enable row level security;
revoke all on public.job_attempts from public, anon, authenticated, service_role;
grant select (job_id, attempt, run, user_id, ready_at, claimed_at, started_at, ended_at, outcome,
              retried, error, steps)
  on public.job_attempts to authenticated;
grant select on public.job_attempts to service_role;

create policy "Users can view the attempts of their own jobs"
  on public.job_attempts for select to authenticated
  using (user_id = (select auth.uid()));


-- spool.end_attempt(job, outcome, retried, error): close the job's open attempt (the one numbered
-- job.attempts). Contract: sets ended_at = spool.now(), outcome, retried and error on it; an
-- attempt already closed (a duplicate webhook, a second cancel) or missing (claimed before this
-- migration) is left alone. Idempotent. Internal.
create function spool.end_attempt(p_job public.jobs, p_outcome text, p_retried boolean, p_error jsonb)
returns void
language sql volatile
set search_path = ''
as $$
  update public.job_attempts a
     set ended_at = spool.now(), outcome = p_outcome, retried = p_retried, error = p_error
   where a.job_id = p_job.id and a.attempt = p_job.attempts and a.ended_at is null
$$;
revoke all on function spool.end_attempt(public.jobs, text, boolean, jsonb)
  from public, anon, authenticated, service_role;

-- spool.attempt_outcome(error): the outcome of an attempt that ended with this error (the codes
-- rescue_jobs writes; anything else a handler or provider reported is 'failed'). Pure.
create function spool.attempt_outcome(p_error jsonb)
returns text
language sql immutable
set search_path = ''
as $$
  select case p_error ->> 'code'
           when 'lease_expired' then 'lease_expired'
           when 'timeout' then 'timed_out'
           when 'external_timeout' then 'timed_out'
           else 'failed'
         end
$$;
revoke all on function spool.attempt_outcome(jsonb) from public, anon, authenticated, service_role;

-- Claiming starts an attempt -------------------------------------------------------------------

-- The claim itself stays as 20261203130100_type_caps.sql defined it (contract unchanged); it moves
-- to schema spool and public.claim_jobs records the batch's attempts around it.
alter function public.claim_jobs(text, integer, integer, text[], integer) set schema spool;
revoke all on function spool.claim_jobs(text, integer, integer, text[], integer)
  from public, anon, authenticated, service_role;

-- claim_jobs: spool.claim_jobs (claim up to p_limit runnable jobs for p_worker_id: fair across
-- owners, within their running cap and the types' caps and rates, within p_cpu_budget_ms; see
-- 20261203130100_type_caps.sql), plus one job_attempts row per claimed job, written by one
-- INSERT ... SELECT for the whole batch. Caller: service_role. Returns the claimed rows.
create function public.claim_jobs(
  p_worker_id text,
  p_limit integer default 10,
  p_lease_seconds integer default null,
  p_types text[] default null,
  p_cpu_budget_ms integer default null
)
returns setof public.jobs
language sql volatile
security definer
set search_path = ''
as $$
  with claimed as (
    select * from spool.claim_jobs(p_worker_id, p_limit, p_lease_seconds, p_types, p_cpu_budget_ms)
  ),
  recorded as (
    insert into public.job_attempts (job_id, attempt, run, user_id, worker_id, ready_at, claimed_at, started_at)
    select c.id, c.attempts, pg_catalog.jsonb_array_length(c.history) + 1, c.user_id, c.worker_id,
           c.run_at, c.started_at, c.started_at
    from claimed c
  )
  select * from claimed
$$;
revoke execute on function public.claim_jobs(text, integer, integer, text[], integer) from public, anon, authenticated;
grant execute on function public.claim_jobs(text, integer, integer, text[], integer) to service_role;

-- Heartbeats record the steps ------------------------------------------------------------------

-- heartbeat_job: renew a running job's lease and record its progress and step.
-- Caller: service_role. Requires the lease token (PT409 lease_lost otherwise, also once the job
-- ran past its timeout_at: the reason is in DETAIL). progress never goes down; a null progress or
-- step keeps the current one. p_lease_seconds (5..3600) or the default lease from now.
-- When the step changes it is appended to the attempt's steps; an attempt whose first step is
-- 'queued' (waiting for a media slot) has not started (started_at null) until its next step.
-- Returns the job row.
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
  v_step text;
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
  v_step := v_job.step;

  update public.jobs j
     set progress = greatest(j.progress, coalesce(p_progress, j.progress)),
         step = coalesce(p_step, j.step),
         lease_expires_at = v_now + pg_catalog.make_interval(secs => coalesce(p_lease_seconds,
           (select s.default_lease_seconds from spool.settings s))),
         updated_at = v_now
   where j.id = p_id
  returning * into v_job;

  if p_step is not null and p_step is distinct from v_step then
    update public.job_attempts a
       set steps = a.steps || jsonb_build_array(jsonb_build_object(
             'step', p_step, 'progress', v_job.progress, 'at', v_now)),
           started_at = case
             when p_step = 'queued' and a.steps = '[]'::jsonb then null
             else coalesce(a.started_at, v_now)
           end
     where a.job_id = p_id and a.attempt = v_job.attempts and a.ended_at is null;
  end if;
  return v_job;
end;
$$;

-- Ending attempts ------------------------------------------------------------------------------

-- complete_jobs: finish a batch of running jobs with their outputs.
-- Caller: service_role. p_results is a JSON array of {"id", "lease_token", "output"}.
-- Fencing: an entry completes its job only if the job is running under that lease token;
-- other entries are ignored. A completed job's error (of an earlier attempt of its run) is
-- cleared: a done job carries no error. Writes each completed job's notification and closes its
-- attempt (outcome done), in the same statement. Returns the ids that were completed.
-- Idempotent: completing again completes nothing.
create or replace function public.complete_jobs(p_results jsonb)
returns setof uuid
language plpgsql volatile
security definer
set search_path = ''
as $$
declare
  v_now timestamptz := spool.now();
begin
  if p_results is null or jsonb_typeof(p_results) <> 'array' then
    perform spool.throw(400, 'invalid_argument', 'results must be a JSON array of {id, lease_token, output}');
  end if;
  -- One statement for the whole batch, notifications and attempts included: per-row work here is
  -- what bounds throughput (see bench/). Planned on each call (EXECUTE): a plan cached while
  -- job_attempts was small (a new project, or a bench that truncates it) scans the whole table for
  -- every batch once it is large (measured: a 10,000-job drain's completions 1.4 s -> 10 s).
  return query execute $q$
  with done as (
    update public.jobs j
       set status = 'done',
           output = coalesce(r.output, '{}'),
           error = null,
           progress = 100,
           lease_token = null,
           lease_expires_at = null,
           finished_at = $1,
           updated_at = $1
      from jsonb_to_recordset($2) as r(id uuid, lease_token uuid, output jsonb)
     where j.id = r.id
       -- The fence, and all it takes: a lease token is set exactly while the job runs. No
       -- status test, which would let the planner scan every running job instead of the ids.
       and j.lease_token = r.lease_token
    returning j.id, j.user_id, j.type, j.attempts
  ),
  notified as (
    insert into public.notifications (id, user_id, job_id, job_type, status, message, created_at)
    select spool.uuid_v7(), d.user_id, d.id, d.type, 'done', spool.ended_message(d.type, 'done', null), $1
    from done d
  ),
  ended as (
    update public.job_attempts a
       set ended_at = $1, outcome = 'done', retried = false
      from done d
     where a.job_id = d.id and a.attempt = d.attempts and a.ended_at is null
  )
  select d.id from done d
  $q$ using v_now, p_results;
end;
$$;

-- spool.retry_or_fail(job, error, retryable) moves a running or waiting job to its next state.
-- Contract: with attempts left and a retryable error the job goes back to pending with run_at
-- delayed by spool.backoff_delay(attempts of the current run); otherwise it fails for good
-- (dead). The lease is released either way; the external handle stays for the record. Failing
-- for good writes the owner's notification. Closes the attempt (spool.attempt_outcome of the
-- error: failed, lease_expired or timed_out; retried as decided). Returns the updated row.
-- Caller holds the row lock. Used by fail_job, resume_job and rescue_jobs.
create or replace function spool.retry_or_fail(p_job public.jobs, p_error jsonb, p_retryable boolean)
returns public.jobs
language plpgsql volatile
set search_path = ''
as $$
declare
  v_job public.jobs;
  v_now timestamptz := spool.now();
  v_retry boolean := p_retryable and p_job.attempts < p_job.max_attempts;
begin
  update public.jobs j
     set status = case when v_retry then 'pending' else 'failed' end::public.job_status,
         run_at = case when v_retry
                    then v_now + spool.backoff_delay(p_job.attempts - spool.run_start(p_job))
                    else j.run_at end,
         error = p_error || jsonb_build_object('attempt', p_job.attempts, 'retryable', p_retryable,
                                                'dead', not v_retry),
         lease_token = null,
         lease_expires_at = null,
         finished_at = case when v_retry then null else v_now end,
         updated_at = v_now
   where j.id = p_job.id
  returning * into v_job;
  perform spool.end_attempt(v_job, spool.attempt_outcome(p_error), v_retry, v_job.error);
  if not v_retry then
    perform spool.notify_ended(v_job);
  end if;
  return v_job;
end;
$$;

-- resume_job and await_job stay as defined (20261202140000_retry_quotas.sql and
-- 20261122120100_queue_api.sql, contracts unchanged); they move to schema spool and the public
-- functions of the same name record the attempt around them.
alter function public.resume_job(text, text, text, jsonb, jsonb) set schema spool;
alter function public.await_job(uuid, uuid, text, text, integer) set schema spool;
revoke all on function spool.resume_job(text, text, text, jsonb, jsonb),
                       spool.await_job(uuid, uuid, text, text, integer)
  from public, anon, authenticated, service_role;

-- resume_job: spool.resume_job (the external provider's answer for a waiting job: 'done' with
-- p_output, 'failed' or 'retry' with p_error; idempotent on a job no longer waiting; PT404
-- job_not_found for an unknown handle), and a job it finished closes its attempt as done (the
-- failure paths close it in spool.retry_or_fail). Caller: service_role. Returns the job row.
create function public.resume_job(
  p_provider text,
  p_external_id text,
  p_outcome text,
  p_output jsonb default null,
  p_error jsonb default null
)
returns public.jobs
language plpgsql volatile
security definer
set search_path = ''
as $$
declare
  v_job public.jobs := spool.resume_job(p_provider, p_external_id, p_outcome, p_output, p_error);
begin
  if v_job.status = 'done' then
    perform spool.end_attempt(v_job, 'done', false, null);
  end if;
  return v_job;
end;
$$;
revoke execute on function public.resume_job(text, text, text, jsonb, jsonb) from public, anon, authenticated;
grant execute on function public.resume_job(text, text, text, jsonb, jsonb) to service_role;

-- await_job: spool.await_job (hand a running job to an external provider: lease token required,
-- the job moves to waiting, lease released, lease_expires_at the callback deadline; PT409
-- external_id_in_use), and the hand-off is appended to the attempt's steps as
-- "waiting for <provider>". The attempt stays open until the provider's answer or the deadline.
-- Caller: service_role. Returns the job row.
create function public.await_job(
  p_id uuid,
  p_lease_token uuid,
  p_provider text,
  p_external_id text,
  p_timeout_seconds integer default 3600
)
returns public.jobs
language plpgsql volatile
security definer
set search_path = ''
as $$
declare
  v_job public.jobs := spool.await_job(p_id, p_lease_token, p_provider, p_external_id, p_timeout_seconds);
begin
  update public.job_attempts a
     set steps = a.steps || jsonb_build_array(jsonb_build_object(
           'step', 'waiting for ' || p_provider, 'progress', v_job.progress, 'at', spool.now())),
         started_at = coalesce(a.started_at, spool.now())
   where a.job_id = v_job.id and a.attempt = v_job.attempts and a.ended_at is null;
  return v_job;
end;
$$;
revoke execute on function public.await_job(uuid, uuid, text, text, integer) from public, anon, authenticated;
grant execute on function public.await_job(uuid, uuid, text, text, integer) to service_role;

-- A cancelled job's attempt ends as cancelled, whichever path cancelled it (cancel_job, a flow's
-- cascade through spool.cancel_unfinished, an admin's bulk cancel). A row trigger whose WHEN
-- clause only running or waiting jobs turning cancelled pass: claims and completions never fire it.
create function spool.attempt_cancelled()
returns trigger
language plpgsql volatile
set search_path = ''
as $$
begin
  perform spool.end_attempt(new, 'cancelled', false, new.error);
  return null;
end;
$$;
revoke all on function spool.attempt_cancelled() from public, anon, authenticated, service_role;

create trigger jobs_attempt_cancelled
  after update of status on public.jobs
  for each row
  when (new.status = 'cancelled' and old.status in ('running', 'waiting'))
  execute function spool.attempt_cancelled();

-- Reading a run ----------------------------------------------------------------------------------

-- spool.visible_job(id): the job if the caller may see it (its owner, service_role, or an admin on
-- a direct connection, as spool.owned_job decides), else PT404 job_not_found. Reads without a
-- row lock (unlike owned_job): for the read-only functions below.
create function spool.visible_job(p_id uuid)
returns public.jobs
language plpgsql stable
set search_path = ''
as $$
declare
  v_job public.jobs;
begin
  select * into v_job from public.jobs j
  where j.id = p_id
    and (auth.role() = 'service_role'
         or j.user_id = auth.uid()
         or (auth.jwt() is null and pg_catalog.pg_has_role(session_user, 'postgres', 'member')));
  if not found then
    perform spool.throw(404, 'job_not_found', 'job not found');
  end if;
  return v_job;
end;
$$;
revoke all on function spool.visible_job(uuid) from public, anon, authenticated, service_role;

-- spool.ms(interval): whole milliseconds, never negative (clock skew between workers aside).
create function spool.ms(p_interval interval)
returns bigint
language sql immutable
set search_path = ''
as $$
  select greatest(0, pg_catalog.round(extract(epoch from p_interval) * 1000))::bigint
$$;
revoke all on function spool.ms(interval) from public, anon, authenticated, service_role;

-- get_job_run: one job's run detail.
-- Caller: the job's owner (authenticated) or service_role; PT404 job_not_found for anyone else.
-- Returns {"job": spool.owner_view of the job,
--          "attempts": [{attempt, run, worker, claimed_at, started_at, ended_at, outcome, retried,
--                        error, steps, queued_ms, waiting_for_slot_ms, running_ms}], oldest first,
--          "runs": the earlier runs retry_job archived (jobs.history),
--          "timings": {queued_ms, waiting_for_slot_ms, running_ms, total_ms},
--          "position": job_position(id) while the job is pending, else null}.
-- worker is the worker's id for service_role and a stable label ("worker 1a2b3c") for owners.
-- Per attempt: queued_ms = ready_at -> claim; waiting_for_slot_ms = claim -> started_at (or to its
-- end/now if it never started); running_ms = started_at -> end (or now). timings sums them over
-- the attempts (queued_ms also counts the current wait of a pending job); total_ms = created ->
-- finished (or now). An open attempt counts up to spool.now(). Reads only; locks nothing.
create function public.get_job_run(p_id uuid)
returns jsonb
language plpgsql stable
security definer
set search_path = ''
as $$
declare
  v_job public.jobs := spool.visible_job(p_id);
  v_now timestamptz := spool.now();
  v_admin boolean := auth.role() = 'service_role' or auth.jwt() is null;
  v_attempts jsonb;
  v_queued bigint;
  v_slot bigint;
  v_running bigint;
begin
  select coalesce(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
           'attempt', t.attempt, 'run', t.run,
           'worker', case when v_admin then t.worker_id
                          when t.worker_id is null then null
                          else 'worker ' || pg_catalog.left(pg_catalog.md5(t.worker_id), 6) end,
           'claimed_at', t.claimed_at, 'started_at', t.started_at, 'ended_at', t.ended_at,
           'outcome', t.outcome, 'retried', t.retried, 'error', t.error, 'steps', t.steps,
           'queued_ms', t.queued_ms, 'waiting_for_slot_ms', t.slot_ms, 'running_ms', t.running_ms)
           order by t.attempt), '[]'),
         coalesce(pg_catalog.sum(t.queued_ms), 0)::bigint,
         coalesce(pg_catalog.sum(t.slot_ms), 0)::bigint,
         coalesce(pg_catalog.sum(t.running_ms), 0)::bigint
    into v_attempts, v_queued, v_slot, v_running
  from (select a.*,
               spool.ms(a.claimed_at - a.ready_at) as queued_ms,
               spool.ms(coalesce(a.started_at, a.ended_at, v_now) - a.claimed_at) as slot_ms,
               case when a.started_at is null then 0
                    else spool.ms(coalesce(a.ended_at, v_now) - a.started_at) end as running_ms
        from public.job_attempts a
        where a.job_id = p_id) t;

  if v_job.status = 'pending' then
    v_queued := v_queued + spool.ms(v_now - v_job.run_at);
  end if;

  return pg_catalog.jsonb_build_object(
    'job', pg_catalog.to_jsonb(spool.owner_view(v_job)),
    'attempts', v_attempts,
    'runs', v_job.history,
    'timings', pg_catalog.jsonb_build_object(
      'queued_ms', v_queued,
      'waiting_for_slot_ms', v_slot,
      'running_ms', v_running,
      'total_ms', spool.ms(coalesce(v_job.finished_at, v_now) - v_job.created_at)),
    'position', case when v_job.status = 'pending' then public.job_position(p_id) end);
end;
$$;

-- job_position: where a pending job stands in line, and about how long until it is done.
-- Caller: the job's owner (authenticated) or service_role; PT404 job_not_found for anyone else.
-- Returns {"position", "ahead", "more_ahead", "start_ms", "estimate_ms", "basis"}:
--   ahead       runnable pending jobs (run_at passed) before it in claim order (priority desc,
--               fair_at, id), counted up to 1000 (more_ahead true when the count stopped there);
--               position = ahead + 1 (1: the next claim takes it). Owners' running caps and the
--               types' caps are not simulated: it is the line, not a promise.
--   start_ms    about how long until it is claimed: ahead / the recent finishing rate (the last
--               200 jobs finished in the last 10 minutes); 0 when nothing is ahead.
--   estimate_ms start_ms + the running time of its type's recent done attempts (else of all
--               recent done attempts); null when either is unknown.
--   basis       a short sentence saying what the estimate rests on.
-- A job that is not pending, or not runnable yet (run_at ahead), has position null and says why
-- in basis. Reads only: two bounded scans of jobs_claim_idx and one of jobs_finished_idx.
create function public.job_position(p_id uuid)
returns jsonb
language plpgsql stable
security definer
set search_path = ''
as $$
declare
  v_job public.jobs := spool.visible_job(p_id);
  v_now timestamptz := spool.now();
  v_ahead integer;
  v_finished integer;
  v_since timestamptz;
  v_type_ms numeric;
  v_type_n integer;
  v_all_ms numeric;
  v_run_ms numeric;
  v_start_ms numeric;
begin
  if v_job.status <> 'pending' then
    return pg_catalog.jsonb_build_object('position', null, 'ahead', null, 'more_ahead', false,
      'start_ms', null, 'estimate_ms', null, 'basis', pg_catalog.format('the job is %s', v_job.status));
  end if;
  if v_job.run_at > v_now then
    return pg_catalog.jsonb_build_object('position', null, 'ahead', null, 'more_ahead', false,
      'start_ms', spool.ms(v_job.run_at - v_now), 'estimate_ms', null,
      'basis', 'the job joins the line at its run_at (a delay or a retry''s backoff)');
  end if;

  -- Claim order is (priority desc, fair_at, id), the order of jobs_claim_idx: the jobs of higher
  -- priority, then those of equal priority before it. Each part walks the index in that order
  -- (the ORDER BY keeps the planner on it) and stops at 1000 rows.
  select pg_catalog.count(*)::integer into v_ahead
  from ((select 1 from public.jobs j
          where j.status = 'pending' and j.priority > v_job.priority and j.run_at <= v_now
          order by j.priority desc, j.fair_at, j.id
          limit 1000)
        union all
        (select 1 from public.jobs j
          where j.status = 'pending' and j.priority = v_job.priority
            and (j.fair_at, j.id) < (v_job.fair_at, v_job.id) and j.run_at <= v_now
          order by j.priority desc, j.fair_at, j.id
          limit 1000)) x;
  v_ahead := least(v_ahead, 1000);

  -- The recent finishing rate and running times: the last 200 jobs finished in 10 minutes.
  select pg_catalog.count(*)::integer, pg_catalog.min(r.finished_at),
         pg_catalog.avg(spool.ms(a.ended_at - a.started_at)) filter (where r.type = v_job.type),
         (pg_catalog.count(*) filter (where r.type = v_job.type and a.started_at is not null))::integer,
         pg_catalog.avg(spool.ms(a.ended_at - a.started_at))
    into v_finished, v_since, v_type_ms, v_type_n, v_all_ms
  from (select j.id, j.type, j.status, j.attempts, j.finished_at from public.jobs j
        where j.finished_at is not null and j.finished_at > v_now - interval '10 minutes'
        order by j.finished_at desc
        limit 200) r
  left join public.job_attempts a
    on a.job_id = r.id and a.attempt = r.attempts and a.outcome = 'done';

  v_run_ms := coalesce(v_type_ms, v_all_ms);
  v_start_ms := case
    when v_ahead = 0 then 0
    when v_finished >= 2 and v_now > v_since
      then v_ahead / (v_finished / (extract(epoch from v_now - v_since) * 1000))
  end;

  return pg_catalog.jsonb_build_object(
    'position', v_ahead + 1,
    'ahead', v_ahead,
    'more_ahead', v_ahead >= 1000,
    'start_ms', pg_catalog.round(v_start_ms)::bigint,
    'estimate_ms', pg_catalog.round(v_start_ms + v_run_ms)::bigint,
    'basis', case
      when v_start_ms is null then 'no jobs finished in the last 10 minutes to estimate from'
      when v_run_ms is null then 'no recent done attempt to estimate the running time from'
      else pg_catalog.format('%s jobs finished in the last %s s; %s',
             v_finished, pg_catalog.round(extract(epoch from v_now - v_since)),
             case when v_type_n > 0
               then pg_catalog.format('%s of them %s, running %s ms on average', v_type_n, v_job.type,
                                      pg_catalog.round(v_type_ms))
               else pg_catalog.format('none %s, so all of them: %s ms on average', v_job.type,
                                      pg_catalog.round(v_all_ms)) end)
    end);
end;
$$;

revoke execute on function public.get_job_run(uuid), public.job_position(uuid) from public, anon;
grant execute on function public.get_job_run(uuid), public.job_position(uuid) to authenticated, service_role;
