-- Spool: the columns of a job that never leave the server.
--
-- Owners read their jobs through the Data API (PostgREST) and Realtime. With SELECT on the whole
-- table they could also read what only the queue uses: lease_token (the fencing token a worker
-- presents), worker_id, lease_expires_at, fair_at (scheduling), idempotency_key,
-- external_provider / external_id (the provider's handle) and parent_id. Now `authenticated`
-- may SELECT only the public columns: those of the jobs API's view
-- (supabase/functions/_shared/job-view.ts PUBLIC_JOB_FIELDS), plus user_id, which the jobs
-- API's list and the web client's Realtime filter (user_id=eq.<uid>) name, and priority, the
-- job's own priority as its creator set it (no secret; Data API clients sort and filter by it).
-- service_role keeps SELECT on the whole table; anon has none.
--
-- Column privileges reach every way out:
--   * PostgREST: a select list naming another column, or `select=*`, is refused (42501, 403).
--   * Realtime postgres_changes: realtime.apply_rls keeps in `record`, `old_record` and `columns`
--     only the columns pg_catalog.has_column_privilege(<subscriber's role>, table, column,
--     'SELECT') allows, and realtime.subscription_check_filters refuses a filter on any other
--     column (supabase/realtime, lib/realtime/tenants/repo/migrations: apply_rls and
--     subscription_check_filters). The local stand-in (local/gateway/realtime-cdc.mjs) does the
--     same.
--   * The owner's RPCs cancel_job and retry_job return a public.jobs row, which no column
--     privilege filters (the function reads the table as its owner): they now return it with
--     the server-only columns null (spool.owner_view).

revoke select on public.jobs from authenticated;
grant select (id, user_id, type, status, priority, progress, step, input, output, error, attempts,
              max_attempts, history, run_at, created_at, started_at, finished_at, updated_at)
  on public.jobs to authenticated;

-- spool.owner_view(job) is the job as its owner may see it.
-- Contract: the row with every column that authenticated may not SELECT set to null (today
-- lease_token, lease_expires_at, worker_id, fair_at, idempotency_key, external_provider,
-- external_id, parent_id, and any later column not granted above); every other column unchanged.
-- Reads only the catalog.
create function spool.owner_view(p_job public.jobs)
returns public.jobs
language sql stable
set search_path = ''
as $$
  select pg_catalog.jsonb_populate_record(null::public.jobs,
    pg_catalog.to_jsonb(p_job) operator(pg_catalog.-) coalesce(
      (select pg_catalog.array_agg(a.attname::text)
         from pg_catalog.pg_attribute a
        where a.attrelid = 'public.jobs'::pg_catalog.regclass and a.attnum > 0 and not a.attisdropped
          and not pg_catalog.has_column_privilege('authenticated', a.attrelid, a.attnum, 'SELECT')),
      '{}'::text[]))
$$;
revoke all on function spool.owner_view(public.jobs) from public, anon, authenticated, service_role;

-- The state changes stay where they were defined (cancel_job in 20261122120100_queue_api.sql,
-- retry_job in 20261202140000_retry_quotas.sql, contracts unchanged); they move to schema spool,
-- out of the Data API's reach, and the public functions of the same name wrap them.
alter function public.cancel_job(uuid) set schema spool;
alter function public.retry_job(uuid) set schema spool;
revoke all on function spool.cancel_job(uuid), spool.retry_job(uuid)
  from public, anon, authenticated, service_role;

-- cancel_job: spool.cancel_job (cancel a job that has not ended: pending, running or waiting ->
-- cancelled; idempotent on a cancelled job; PT409 invalid_transition for done or failed jobs;
-- PT404 for jobs the caller cannot see), returning spool.owner_view of the job.
-- Caller: the job's owner (authenticated) or service_role.
create function public.cancel_job(p_id uuid)
returns public.jobs
language sql volatile
security definer
set search_path = ''
as $$
  select spool.owner_view(spool.cancel_job(p_id))
$$;
revoke execute on function public.cancel_job(uuid) from public, anon;
grant execute on function public.cancel_job(uuid) to authenticated, service_role;

-- retry_job: spool.retry_job (run a failed or cancelled job again: quotas, not_retryable,
-- attempt history; see its header), returning spool.owner_view of the job.
-- Caller: the job's owner (authenticated) or service_role.
create function public.retry_job(p_id uuid)
returns public.jobs
language sql volatile
security definer
set search_path = ''
as $$
  select spool.owner_view(spool.retry_job(p_id))
$$;
revoke execute on function public.retry_job(uuid) from public, anon;
grant execute on function public.retry_job(uuid) to authenticated, service_role;
