-- Candidate (d), bench only (applied to the throwaway database by bench/rowlife.mjs, never a
-- migration): the per-user quotas read counters on spool.user_slots, maintained by the API,
-- instead of counting the user's jobs at every create.
--
-- Today take_user_slot, under the user's slot lock, runs count(*) of the user's active jobs
-- (jobs_active_idx), count(*) of the jobs they created in the last minute (jobs_user_created_idx)
-- and count(*) of their retries in the last minute (spool.retries). Here:
--   active        pending + running + waiting jobs of the user: +1 when take_user_slot admits a
--                 job (create_job, retry_job), -1 when a job of theirs ends (complete_jobs per
--                 batch, grouped by user and locked in user_id order; retry_or_fail when it fails
--                 for good). A migration would also change cancel_job, resume_job (done),
--                 create_jobs (+n) and backfill the column from the jobs table.
--   rate_start    start of the user's current one-minute window
--   rate_count    jobs created + retries made since rate_start
-- take_user_slot then reads and writes the one row it already locks: no count queries.
--
-- Behaviour it would affect:
--   * the rate quota becomes a fixed one-minute window (reset when a minute has passed since
--     rate_start) instead of a sliding "last 60 seconds": a user can start up to 2x the limit
--     within 60 s straddling a window boundary. Two buckets (previous + current minute,
--     weighted) would bound that at the cost of one more column.
--   * complete_jobs (and every terminal transition) now also updates spool.user_slots: one row
--     per distinct owner in the batch, locked until commit, so a create of that user waits for
--     the completing transaction. Its cost is in this candidate's complete_jobs numbers.
--   * spool.retries is no longer read for the quota (retry_job still writes it here; it could go).
--   * a counter can drift only through a path that forgets it (a hand-made UPDATE of jobs by an
--     admin): a repair function recount_user_slots() would be needed in the migration.

alter table spool.user_slots
  add column active integer not null default 0,
  add column rate_start timestamptz not null default '-infinity',
  add column rate_count integer not null default 0;

-- spool.take_user_slot(user, run_at, count_rate): as shipped (quota_active_jobs, quota_rate with
-- the same DETAIL keys, fair slot), reading the counters of the user's spool.user_slots row.
-- created_last_minute in the DETAIL is the window's count (creates and retries together) and
-- retried_last_minute is 0.
create or replace function spool.take_user_slot(p_user_id uuid, p_run_at timestamptz, p_count_rate boolean)
returns timestamptz
language plpgsql volatile
set search_path = ''
as $$
declare
  v_settings spool.settings;
  v_now timestamptz := spool.now();
  v_row spool.user_slots;
  v_fair timestamptz;
  v_rate integer;
begin
  -- The user's row, locked (create_job has usually locked it already: then this writes nothing).
  select * into v_row from spool.user_slots u where u.user_id = p_user_id for update;
  if not found then
    insert into spool.user_slots as u (user_id, fair_at) values (p_user_id, v_now)
    on conflict (user_id) do update set fair_at = u.fair_at
    returning u.* into v_row;
  end if;
  select * into strict v_settings from spool.settings;

  if v_row.active >= v_settings.max_active_jobs_per_user then
    perform spool.throw(429, 'quota_active_jobs',
      format('too many active jobs: %s of %s allowed', v_row.active, v_settings.max_active_jobs_per_user),
      jsonb_build_object('active', v_row.active, 'limit', v_settings.max_active_jobs_per_user));
  end if;

  v_rate := case when v_row.rate_start > v_now - interval '1 minute' then v_row.rate_count else 0 end;
  if p_count_rate and v_rate >= v_settings.max_jobs_per_minute_per_user then
    perform spool.throw(429, 'quota_rate',
      format('too many jobs started in the last minute: %s created and %s retried, %s allowed',
             v_rate, 0, v_settings.max_jobs_per_minute_per_user),
      jsonb_build_object('created_last_minute', v_rate, 'retried_last_minute', 0,
                         'limit', v_settings.max_jobs_per_minute_per_user,
                         'retry_after_seconds',
                         greatest(1, ceil(extract(epoch from v_row.rate_start + interval '1 minute' - v_now)))::integer));
  end if;

  v_fair := greatest(v_row.fair_at, p_run_at);
  update spool.user_slots
     set fair_at = least(v_fair, greatest(v_row.fair_at, v_now)) + v_settings.fair_slot,
         active = v_row.active + 1,
         rate_start = case when v_row.rate_start > v_now - interval '1 minute' then v_row.rate_start else v_now end,
         rate_count = case when p_count_rate then v_rate + 1 else v_rate end
   where user_id = p_user_id;
  return v_fair;
end;
$$;

-- complete_jobs: as shipped (fencing, notifications, returns the completed ids), and the owners'
-- active counters go down by their completed jobs. The notification insert is skipped when
-- candidate (a)'s view exists (so `all` can combine both; an InitPlan, evaluated once).
create or replace function public.complete_jobs(p_results jsonb)
returns setof uuid
language plpgsql volatile
security definer
set search_path = ''
as $$
declare
  v_now timestamptz := spool.now();
  v_ids uuid[];
  v_users uuid[];
  v_counts integer[];
begin
  if p_results is null or jsonb_typeof(p_results) <> 'array' then
    perform spool.throw(400, 'invalid_argument', 'results must be a JSON array of {id, lease_token, output}');
  end if;
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
    where (select pg_catalog.to_regclass('public.job_notifications')) is null
  ),
  per_user as (
    select d.user_id, count(*)::integer as n from done d group by d.user_id
  )
  select (select coalesce(array_agg(d.id), '{}') from done d),
         (select coalesce(array_agg(p.user_id order by p.user_id), '{}') from per_user p),
         (select coalesce(array_agg(p.n order by p.user_id), '{}') from per_user p)
    into v_ids, v_users, v_counts;
  -- Owners locked in one order, so two batches sharing owners cannot deadlock.
  perform 1 from spool.user_slots u where u.user_id = any (v_users) order by u.user_id for update;
  update spool.user_slots u
     set active = u.active - c.n
    from unnest(v_users, v_counts) as c(user_id, n)
   where u.user_id = c.user_id;
  return query select unnest(v_ids);
end;
$$;

-- spool.retry_or_fail: as shipped; failing for good also takes the job off its owner's active count.
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
    update spool.user_slots u set active = u.active - 1 where u.user_id = v_job.user_id;
    perform spool.notify_ended(v_job);
  end if;
  return v_job;
end;
$$;

-- @undo
alter table spool.user_slots drop column active, drop column rate_start, drop column rate_count;
