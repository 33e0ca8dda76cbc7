-- Spool: owners may see which flow a job belongs to (jobs.parent_id).
--
-- 20261202141000_job_columns.sql kept parent_id among the server-only columns when nothing read
-- it. Flows (20261203160000_flows.sql) made it the owner's business: the web client shows a pack
-- as one card with its children, finds them with the jobs API's GET /jobs?parent=<id> (a
-- PostgREST filter parent_id=eq.<id>, run as the owner) and follows them over Realtime with the
-- filter parent_id=eq.<id>. It names only a job of the same owner (create_jobs checks it), so it
-- gives nothing away. Column privileges are how every way out decides:
--   * PostgREST: selecting or filtering on parent_id needs SELECT on the column (granted here).
--   * Realtime postgres_changes: realtime.apply_rls keeps a column in `record` / `old_record`
--     when has_column_privilege(<subscriber's role>, ..., 'SELECT') allows it, and
--     realtime.subscription_check_filters accepts a filter on such a column; both read the
--     privilege at each change or subscription, so this grant is all Realtime needs (the table
--     is in the supabase_realtime publication with every column already).
--   * cancel_job / retry_job return spool.owner_view of the job, which nulls exactly the columns
--     authenticated may not SELECT (read from the catalog): they now return parent_id too.
-- The rest stay server-only: lease_token, lease_expires_at, worker_id, fair_at, idempotency_key,
-- external_provider, external_id (and every later column not granted).

grant select (parent_id) on public.jobs to authenticated;
