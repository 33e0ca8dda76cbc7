-- Spool: retries are runs like any other. They count against their owner's rate, a permanent
-- failure is not retried unchanged, and a retried job keeps the history of its earlier runs.
--
-- Before this migration retry_job reset `attempts` to 0, left the old `error` on the job (so a
-- retried job that then succeeded ended `done` with the error of its previous run) and did not
-- count against max_jobs_per_minute_per_user: one user retried 60 failed jobs four times, 600
-- paid provider calls in 49 s against a cap of 60 a minute.
--
-- The design:
--   * One rate for everything that starts work: max_jobs_per_minute_per_user counts the jobs a
--     user created in the last minute plus the retries they made in it (spool.retries, a small
--     private ledger, pruned as it is written). create_job and retry_job share it.
--   * A job whose last failure was permanent (error.retryable = false: fail_job with
--     p_retryable => false, resume_job 'failed') would fail the same way again. retry_job refuses
--     it with PT409 not_retryable, unless the file it reads (input.input_path in the inputs
--     bucket) was written after the job failed: then the retry is not unchanged.
--   * attempts is the number of attempts the job has made in its life and never goes back.
--     A retry gives the job a fresh budget of attempts, the one each of its runs had (its
--     creator's max_attempts): max_attempts = attempts + that budget. Backoff between automatic
--     retries counts the attempts of the current run only.
--   * history keeps each earlier run, oldest first (the last 20): the status it ended in, its
--     attempts counter and max_attempts then, its error, when it started, ended and was retried.
--     The retried job's error, output, progress and step are cleared, so a job that ends `done`
--     carries no error of an earlier run.

-- The retry ledger ---------------------------------------------------------------------------------

create table spool.retries (
  user_id uuid not null references auth.users (id) on delete cascade,
  job_id  uuid not null,
  at      timestamptz not null default spool.now()
);
comment on table spool.retries is
  'One row per accepted retry_job, for the jobs-per-minute quota; rows older than a minute are deleted by retry_job.';
create index retries_user_at_idx on spool.retries (user_id, at);
alter table spool.retries enable row level security;
revoke all on spool.retries from public, anon, authenticated, service_role;

-- The job's run history ------------------------------------------------------------------------------

alter table public.jobs
  add column history jsonb not null default '[]' check (jsonb_typeof(history) = 'array');
-- max_attempts now grows with each retry (attempts + the run's budget); create_job still takes a
-- budget of 1 to 25 attempts per run.
alter table public.jobs drop constraint jobs_max_attempts_check;
alter table public.jobs add constraint jobs_max_attempts_check check (max_attempts >= 1);

comment on column public.jobs.attempts is
  'Attempts made over the job''s whole life (claims); never reset, also not by retry_job.';
comment on column public.jobs.max_attempts is
  'The job fails for good once attempts reaches this. Each retry_job raises it by the run''s budget (the creator''s max_attempts).';
comment on column public.jobs.error is
  'Error of the current run as {"code","message","attempt","retryable","dead",...}; kept across its automatic retries, cleared (into history) by retry_job.';
comment on column public.jobs.history is
  'Earlier runs, oldest first (the last 20), one per retry_job: {"status","attempts","max_attempts","error","started_at","finished_at","retried_at"}.';

-- spool.run_start(job) is the attempts counter when the job's current run began: 0 for its first
-- run, else the counter its last retry archived.
create function spool.run_start(p_job public.jobs)
returns integer
language sql immutable
set search_path = ''
as $$
  select coalesce((p_job.history -> -1 ->> 'attempts')::integer, 0)
$$;

-- spool.input_replaced(job) says whether the job's input file was written after the job ended.
-- Contract: true when input.input_path names an object in the inputs bucket created or updated
-- after the job's finished_at; false for jobs without an input file, and while it has not ended.
create function spool.input_replaced(p_job public.jobs)
returns boolean
language sql stable
set search_path = ''
as $$
  select p_job.finished_at is not null and exists (
    select 1 from storage.objects o
    where o.bucket_id = 'inputs'
      and o.name = p_job.input ->> 'input_path'
      and greatest(o.created_at, o.updated_at) > p_job.finished_at)
$$;

-- Quotas ---------------------------------------------------------------------------------------------

-- spool.take_user_slot(user, run_at, count_rate) enforces a user's quotas and reserves the fair
-- start time of one more active job.
-- Contract: locks the user (spool.lock_user_slot); raises PT429 quota_active_jobs when the user
-- already has max_active_jobs_per_user pending/running/waiting jobs, and PT429 quota_rate when
-- p_count_rate and the jobs the user created plus the retries they made (spool.retries) in the
-- last minute reach max_jobs_per_minute_per_user (DETAIL: created_last_minute,
-- retried_last_minute, limit, retry_after_seconds). Returns fair_at for a job runnable from
-- p_run_at, and advances the user's slot by fair_slot. The caller records its own retry.
create or replace function spool.take_user_slot(p_user_id uuid, p_run_at timestamptz, p_count_rate boolean)
returns timestamptz
language plpgsql volatile
set search_path = ''
as $$
declare
  v_settings spool.settings;
  v_now timestamptz := spool.now();
  v_slot timestamptz := spool.lock_user_slot(p_user_id);
  v_fair timestamptz;
  v_count integer;
  v_retried integer;
begin
  select * into strict v_settings from spool.settings;

  select count(*) into v_count from public.jobs j
  where j.user_id = p_user_id and j.status in ('pending', 'running', 'waiting');
  if v_count >= v_settings.max_active_jobs_per_user then
    perform spool.throw(429, 'quota_active_jobs',
      format('too many active jobs: %s of %s allowed', v_count, v_settings.max_active_jobs_per_user),
      jsonb_build_object('active', v_count, 'limit', v_settings.max_active_jobs_per_user));
  end if;

  if p_count_rate then
    select count(*) into v_count from public.jobs j
    where j.user_id = p_user_id and j.created_at > v_now - interval '1 minute';
    select count(*) into v_retried from spool.retries r
    where r.user_id = p_user_id and r.at > v_now - interval '1 minute';
    if v_count + v_retried >= v_settings.max_jobs_per_minute_per_user then
      perform spool.throw(429, 'quota_rate',
        format('too many jobs started in the last minute: %s created and %s retried, %s allowed',
               v_count, v_retried, v_settings.max_jobs_per_minute_per_user),
        jsonb_build_object('created_last_minute', v_count,
                           'retried_last_minute', v_retried,
                           'limit', v_settings.max_jobs_per_minute_per_user,
                           'retry_after_seconds', 60));
    end if;
  end if;

  -- Start-time fair queueing: a job starts at the later of its run_at and its owner's next slot,
  -- so a user who queues N jobs at once spreads them over N slots while others interleave.
  -- A delayed job still takes one slot, but from now, not from its run_at: scheduling a job for
  -- tomorrow must not push the owner's next immediate job behind tomorrow.
  v_fair := greatest(v_slot, p_run_at);
  update spool.user_slots
     set fair_at = least(v_fair, greatest(v_slot, v_now)) + v_settings.fair_slot
   where user_id = p_user_id;
  return v_fair;
end;
$$;

-- Failing an attempt -----------------------------------------------------------------------------------

-- spool.retry_or_fail(job, error, retryable) moves a running or waiting job to its next state.
-- Contract: with attempts left (attempts < max_attempts) and a retryable error the job goes back
-- to pending with run_at delayed by spool.backoff_delay(attempts made in this run, see
-- spool.run_start); otherwise it fails for good (dead). The error is stored with "attempt" (the
-- attempts counter), "retryable" and "dead". The lease is released either way; the external
-- handle stays for the record (a late callback finds the job no longer waiting and changes
-- nothing). Failing for good writes the owner's notification. Returns the updated row. Caller
-- holds the row lock.
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
  if not v_retry then
    perform spool.notify_ended(v_job);
  end if;
  return v_job;
end;
$$;
revoke all on function spool.run_start(public.jobs), spool.input_replaced(public.jobs)
  from public, anon, authenticated, service_role;

-- Retrying -------------------------------------------------------------------------------------------

-- retry_job: run a failed or cancelled job again.
-- Caller: the job's owner (authenticated) or service_role.
-- failed or cancelled -> pending, runnable now. Idempotent on a job that is already pending
-- (that changes nothing and counts nothing). Refuses, leaving the job as it was:
--   PT409 invalid_transition  running, waiting or done jobs
--   PT409 not_retryable       the job failed permanently (error.retryable = false) and its input
--                             file was not replaced since (spool.input_replaced): DETAIL has the
--                             failure's code and message
--   PT429 quota_active_jobs   the owner's active-job quota is full
--   PT429 quota_rate          the owner created and retried max_jobs_per_minute_per_user jobs in
--                             the last minute; an accepted retry is recorded in spool.retries
--   PT404 job_not_found       jobs the caller cannot see
-- History: attempts keeps counting; max_attempts becomes attempts + the run's budget (the
-- max_attempts its first run had); the run that ended is appended to history (the last 20 are
-- kept) with its status, attempts, max_attempts, error, started_at and finished_at, and error,
-- output, progress, step, worker and times are cleared.
create or replace function public.retry_job(p_id uuid)
returns public.jobs
language plpgsql volatile
security definer
set search_path = ''
as $$
declare
  v_job public.jobs;
  v_now timestamptz := spool.now();
  v_fair_at timestamptz;
  v_budget integer;
begin
  v_job := spool.owned_job(p_id);
  if v_job.status = 'pending' then
    return v_job;
  end if;
  if v_job.status not in ('failed', 'cancelled') then
    perform spool.throw(409, 'invalid_transition',
      format('a %s job cannot be retried', v_job.status), jsonb_build_object('status', v_job.status));
  end if;
  if v_job.status = 'failed' and (v_job.error ->> 'retryable') = 'false'
     and not spool.input_replaced(v_job) then
    perform spool.throw(409, 'not_retryable',
      format('this job failed permanently (%s: %s), so retrying it unchanged would fail the same way; %s',
             coalesce(v_job.error ->> 'code', 'error'), coalesce(v_job.error ->> 'message', 'no message'),
             case when v_job.input ? 'input_path'
               then 'replace its input file first, or start a new job'
               else 'start a new job with a different input' end),
      jsonb_build_object('reason', v_job.error -> 'code', 'message', v_job.error -> 'message',
                         'input_path', v_job.input -> 'input_path'));
  end if;

  v_fair_at := spool.take_user_slot(v_job.user_id, v_now, true);
  delete from spool.retries r where r.user_id = v_job.user_id and r.at <= v_now - interval '1 minute';
  insert into spool.retries (user_id, job_id, at) values (v_job.user_id, v_job.id, v_now);

  v_budget := greatest(v_job.max_attempts - spool.run_start(v_job), 1);
  update public.jobs j
     set status = 'pending',
         max_attempts = j.attempts + v_budget,
         history = (
           select coalesce(jsonb_agg(h.entry order by h.n), '[]')
           from (
             select e.entry, e.n
             from jsonb_array_elements(j.history || jsonb_build_array(jsonb_build_object(
                    'status', j.status, 'attempts', j.attempts, 'max_attempts', j.max_attempts,
                    'error', j.error, 'started_at', j.started_at, 'finished_at', j.finished_at,
                    'retried_at', v_now)))
                  with ordinality as e(entry, n)
             order by e.n desc
             limit 20
           ) h),
         error = null,
         run_at = v_now,
         fair_at = v_fair_at,
         output = null,
         progress = 0,
         step = null,
         worker_id = null,
         started_at = null,
         finished_at = null,
         updated_at = v_now
   where j.id = p_id
  returning * into v_job;
  perform spool.ring_doorbell('retry');
  return v_job;
end;
$$;
revoke execute on function public.retry_job(uuid) from public, anon;
grant execute on function public.retry_job(uuid) to authenticated, service_role;

-- Ending done clears the error of earlier attempts ----------------------------------------------------

-- complete_jobs: finish a batch of running jobs with their outputs.
-- Caller: service_role. p_results is a JSON array of {"id", "lease_token", "output"}.
-- Fencing: an entry completes its job only if the job is running under that lease token;
-- other entries are ignored. A completed job's error (of an earlier attempt of its run) is
-- cleared: a done job carries no error. Writes each completed job's notification. Returns the ids
-- that were completed. Idempotent: completing again completes nothing.
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
  -- One statement for the whole batch, notifications included: per-row work here is what
  -- bounds throughput (see bench/).
  return query
  with done as (
    update public.jobs j
       set status = 'done',
           output = coalesce(r.output, '{}'),
           error = null,
           progress = 100,
           lease_token = null,
           lease_expires_at = null,
           finished_at = v_now,
           updated_at = v_now
      from jsonb_to_recordset(p_results) as r(id uuid, lease_token uuid, output jsonb)
     where j.id = r.id
       and j.status = 'running'
       and j.lease_token = r.lease_token
    returning j.id, j.user_id, j.type
  ),
  notified as (
    insert into public.notifications (id, user_id, job_id, job_type, status, message, created_at)
    select spool.uuid_v7(), d.user_id, d.id, d.type, 'done', spool.ended_message(d.type, 'done', null), v_now
    from done d
  )
  select d.id from done d;
end;
$$;

-- resume_job: the external provider's answer for a waiting job.
-- Caller: service_role (job-callback after verifying the webhook signature, or the sweep's poll).
-- p_outcome: 'done' (with p_output; the error of earlier attempts is cleared), 'failed'
-- (permanent, with p_error) or 'retry' (retryable failure, with p_error: back to pending with
-- backoff while attempts remain, else failed).
-- Idempotent: a job that is no longer waiting (duplicate webhook, cancelled meanwhile) is returned
-- unchanged. PT404 job_not_found if no job has this provider handle.
create or replace function public.resume_job(
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
  v_job public.jobs;
  v_now timestamptz := spool.now();
begin
  if p_outcome is null or p_outcome not in ('done', 'failed', 'retry') then
    perform spool.throw(400, 'invalid_argument', 'outcome must be one of done, failed, retry');
  end if;
  if p_outcome <> 'done' and (p_error is null or jsonb_typeof(p_error) <> 'object') then
    perform spool.throw(400, 'invalid_argument', 'error must be a JSON object when the outcome is not done');
  end if;
  select * into v_job from public.jobs j
  where j.external_provider = p_provider and j.external_id = p_external_id
  for update;
  if not found then
    perform spool.throw(404, 'job_not_found', 'no job is waiting on this provider handle');
  end if;
  if v_job.status <> 'waiting' then
    return v_job;
  end if;
  if p_outcome = 'done' then
    update public.jobs j
       set status = 'done', output = coalesce(p_output, '{}'), error = null, progress = 100,
           lease_expires_at = null, finished_at = v_now, updated_at = v_now
     where j.id = v_job.id
    returning * into v_job;
    perform spool.notify_ended(v_job);
    return v_job;
  end if;
  return spool.retry_or_fail(v_job, jsonb_build_object('code', 'provider_error') || p_error,
                             p_outcome = 'retry');
end;
$$;
