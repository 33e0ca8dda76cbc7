-- Spool: run times count work, never waiting. The console's per-minute series (job_series) and
-- the health document (get_queue_stats) measured a job's run time from jobs.started_at, which is
-- the claim: a job that a worker claimed and then held while it waited for a free media slot
-- (step 'queued') had that wait counted as work ("Finished in 21.7 s" with 17 s of it waiting).
-- public.job_attempts (20261204100000_run_history.sql) records when each attempt's work really
-- began; both functions now read the job's last attempt for it, and fall back to jobs.started_at
-- for jobs claimed before attempts were recorded. Their signatures and documents are unchanged.

-- spool.work_started(job): when the work of the job's last attempt began.
-- Contract: the started_at of job_attempts (job, attempt = jobs.attempts) when that row exists and
-- has begun; else jobs.started_at (a job claimed before 20261204100000, or one that ended while
-- it still waited for a slot: then its claim); null for a job never claimed. One primary-key
-- lookup. Read-only; called only by the SECURITY DEFINER functions below.
create function spool.work_started(p_job public.jobs)
returns table (started_at timestamptz)
language sql stable
set search_path = ''
as $$
  select coalesce((select a.started_at from public.job_attempts a
                   where a.job_id = p_job.id and a.attempt = p_job.attempts),
                  p_job.started_at)
$$;
revoke execute on function spool.work_started(public.jobs) from public, anon, authenticated, service_role;

-- job_series: as in 20261204110000_history_console.sql; run p50/p95 are work start -> finished and
-- the wait p50 is run_at -> work start (in line and waiting for a slot together).
create or replace function public.job_series(p_minutes integer default 60)
returns table (
  minute timestamptz, type text, status public.job_status, finished integer,
  run_p50_ms numeric, run_p95_ms numeric, wait_p50_ms numeric
)
language plpgsql stable
security definer
set search_path = ''
as $$
declare
  v_now timestamptz := spool.now();
begin
  if p_minutes is null or p_minutes not between 1 and 1440 then
    perform spool.throw(400, 'invalid_argument', 'minutes must be between 1 and 1440');
  end if;
  return query
  select pg_catalog.date_trunc('minute', j.finished_at), j.type, j.status, count(*)::integer,
         pg_catalog.round(pg_catalog.percentile_cont(0.5) within group (
           order by extract(epoch from j.finished_at - w.started_at) * 1000)::numeric, 1),
         pg_catalog.round(pg_catalog.percentile_cont(0.95) within group (
           order by extract(epoch from j.finished_at - w.started_at) * 1000)::numeric, 1),
         pg_catalog.round(pg_catalog.percentile_cont(0.5) within group (
           order by case when w.started_at is not null
                         then greatest(extract(epoch from w.started_at - j.run_at), 0) * 1000 end)::numeric, 1)
  from public.jobs j
  cross join lateral spool.work_started(j) w
  where j.finished_at > v_now - pg_catalog.make_interval(mins => p_minutes)
    and j.finished_at <= v_now
  -- Per type, and for all types together (type null): percentiles do not add up across types.
  group by grouping sets ((1, 2, 3), (1, 3))
  order by 1, 2 nulls first, 3;
end;
$$;

-- get_queue_stats: as in 20261122120100_queue_api.sql; durations are work start -> finished.
create or replace function public.get_queue_stats(p_window interval default '1 hour')
returns jsonb
language sql stable
security definer
set search_path = ''
as $$
  with now_ as (select spool.now() as t),
  active as (
    select j.type, j.status, count(*) as n, min(j.run_at) filter (where j.status = 'pending') as oldest
    from public.jobs j
    where j.status in ('pending', 'running', 'waiting')
    group by j.type, j.status
  ),
  finished as (
    select j.type, j.status,
           extract(epoch from (j.finished_at - coalesce(w.started_at, j.created_at))) * 1000 as ms
    from public.jobs j
    cross join now_
    cross join lateral spool.work_started(j) w
    where j.finished_at > now_.t - p_window
  ),
  summary as (
    select f.type,
           count(*) as finished,
           count(*) filter (where f.status = 'done') as done,
           count(*) filter (where f.status = 'failed') as failed,
           count(*) filter (where f.status = 'cancelled') as cancelled,
           percentile_cont(0.5) within group (order by f.ms) filter (where f.status = 'done') as p50,
           percentile_cont(0.95) within group (order by f.ms) filter (where f.status = 'done') as p95
    from finished f
    group by grouping sets ((f.type), ())
  )
  select jsonb_build_object(
    'at', (select t from now_),
    'window_seconds', extract(epoch from p_window)::bigint,
    'depth', coalesce((select jsonb_agg(jsonb_build_object('type', a.type, 'status', a.status, 'count', a.n)
                                        order by a.type, a.status) from active a), '[]'),
    'oldest_pending_seconds', (select extract(epoch from ((select t from now_) - min(a.oldest)))
                               from active a where a.oldest <= (select t from now_)),
    'running', coalesce((select sum(a.n) from active a where a.status = 'running'), 0),
    'waiting', coalesce((select sum(a.n) from active a where a.status = 'waiting'), 0),
    'window', coalesce((select jsonb_build_object(
        'finished', s.finished, 'done', s.done, 'failed', s.failed, 'cancelled', s.cancelled,
        'success_rate', case when s.done + s.failed > 0 then round(s.done::numeric / (s.done + s.failed), 4) end,
        'p50_ms', round(s.p50::numeric, 1), 'p95_ms', round(s.p95::numeric, 1))
      from summary s where s.type is null),
      jsonb_build_object('finished', 0, 'done', 0, 'failed', 0, 'cancelled', 0,
                         'success_rate', null, 'p50_ms', null, 'p95_ms', null)),
    'by_type', coalesce((select jsonb_agg(jsonb_build_object(
        'type', s.type, 'finished', s.finished, 'done', s.done, 'failed', s.failed, 'cancelled', s.cancelled,
        'success_rate', case when s.done + s.failed > 0 then round(s.done::numeric / (s.done + s.failed), 4) end,
        'p50_ms', round(s.p50::numeric, 1), 'p95_ms', round(s.p95::numeric, 1)) order by s.type)
      from summary s where s.type is not null), '[]')
  )
$$;
