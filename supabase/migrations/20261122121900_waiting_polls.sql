-- Spool: polling providers whose callback is overdue.
--
-- A job handed to a provider (await_job) waits for its webhook. Webhooks get lost: our endpoint
-- was down or redeployed, or the provider gave up retrying. rescue_jobs retries a waiting job once
-- its callback deadline passes, but that repeats work (and cost) the provider may already have
-- finished. So job-worker also asks the provider: a job that has waited waiting_poll_interval
-- without news is polled, and polled again at most once per interval, by whichever worker claims
-- the poll first. The pg_cron sweep rings job-worker when such a job exists, so an otherwise idle
-- queue still gets its polls.
--
-- No table is added: a poll marks the job by touching its updated_at (a waiting job's updated_at
-- is otherwise the moment it started waiting), which both spaces the polls and tells concurrent
-- workers apart (FOR UPDATE SKIP LOCKED).

alter table spool.settings
  add column waiting_poll_interval interval not null default '1 minute'
    check (waiting_poll_interval >= interval '1 second');
comment on column spool.settings.waiting_poll_interval is
  'How long a waiting job goes without news before job-worker polls its provider, and between polls.';

-- claim_waiting_polls: take the right to poll the provider about overdue waiting jobs.
-- Caller: service_role (job-worker).
-- Returns up to p_limit jobs waiting on p_provider whose updated_at (when they started waiting, or
-- were last polled) is at least waiting_poll_interval ago, longest-silent first, and sets their
-- updated_at to now, so no worker polls them again within the interval. Locks with SKIP LOCKED:
-- concurrent callers get disjoint jobs, and a job being resumed right now is left alone.
-- Raises PT400 invalid_argument for a malformed provider or a limit outside 1..100.
-- Not idempotent: a second call within the interval returns nothing.
create function public.claim_waiting_polls(p_provider text, p_limit integer default 20)
returns setof public.jobs
language plpgsql volatile
security definer
set search_path = ''
as $$
declare
  v_now timestamptz := spool.now();
  v_interval interval;
begin
  if p_provider is null or p_provider !~ '^[a-z][a-z0-9-]{0,62}$' then
    perform spool.throw(400, 'invalid_argument', 'provider must be a lowercase slug');
  end if;
  if p_limit is null or p_limit not between 1 and 100 then
    perform spool.throw(400, 'invalid_argument', 'limit must be between 1 and 100');
  end if;
  select s.waiting_poll_interval into strict v_interval from spool.settings s;

  return query
  update public.jobs j
     set updated_at = v_now
    from (
      select w.id
      from public.jobs w
      where w.status = 'waiting'
        and w.external_provider = p_provider
        and w.updated_at <= v_now - v_interval
      order by w.updated_at, w.id
      limit p_limit
      for update skip locked
    ) due
   where j.id = due.id
  returning j.*;
end;
$$;
revoke execute on function public.claim_waiting_polls(text, integer) from public, anon, authenticated;
grant execute on function public.claim_waiting_polls(text, integer) to service_role;

-- spool.sweep() is the pg_cron safety net (replaces the dispatch migration's version: same
-- signature and result, one more reason to ring).
-- Contract: rescues expired leases and callback deadlines (rescue_jobs), then rings the doorbell
-- if a runnable pending job exists or a waiting job is due for a provider poll (silent for
-- waiting_poll_interval). Returns {"rescued": n, "rung": request id or null}. Idempotent.
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
  if exists (select 1 from public.jobs j where j.status = 'pending' and j.run_at <= v_now)
     or exists (select 1 from public.jobs j, spool.settings s
                where j.status = 'waiting' and j.updated_at <= v_now - s.waiting_poll_interval) then
    v_request := spool.ring_doorbell('sweep');
  end if;
  return jsonb_build_object('rescued', v_rescued, 'rung', v_request);
end;
$$;
