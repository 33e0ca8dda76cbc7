-- Candidate (a), bench only (applied to the throwaway database by bench/rowlife.mjs, never a
-- migration): notifications derived from finished jobs instead of written.
--
-- What changes: complete_jobs no longer inserts a public.notifications row per job (a heap
-- insert plus two btree inserts: notifications_pkey and notifications_user_created_idx), and
-- spool.notify_ended (fail for good, cancel, resume) writes nothing. A view returns, for every
-- finished job, the row the table would have held: same columns, message from
-- spool.ended_message, created_at = finished_at.
--
-- Behaviour it would affect (for the lead to weigh):
--   * read_at: a per-notification "read" mark has no row to live on; it would become one
--     watermark per user (e.g. spool.user_slots.notifications_seen_at: everything finished
--     before it is read), or a small table written only when a user marks something read.
--   * retention: notifications now live as long as their job (prune_jobs), not
--     retention_notifications (30 days) beyond a pruned job.
--   * Realtime: clients subscribed to public.notifications would watch public.jobs UPDATEs
--     with status in (done, failed, cancelled) instead (the web client already watches jobs).
--   * a retried job's earlier ending (it had a notification when it failed) is in history, not
--     in the view; the view shows the job's current ending only.
--   * listing "my notifications, newest first" reads jobs by (user_id, finished_at): with
--     jobs_user_created_idx (user_id, created_at desc) that is an index scan of the user's jobs
--     plus a sort, or it needs an index on (user_id, finished_at) where finished_at is not null
--     (which costs an index insert at complete again: smaller than heap + 2 indexes).

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
  return query
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
  returning j.id;
end;
$$;

create or replace function spool.notify_ended(p_job public.jobs)
returns void
language sql volatile
set search_path = ''
as $$
  select
$$;

create view public.job_notifications with (security_invoker = true) as
  select j.id, j.user_id, j.id as job_id, j.type as job_type, j.status,
         spool.ended_message(j.type, j.status, j.error) as message,
         j.finished_at as created_at
  from public.jobs j
  where j.finished_at is not null;

-- @undo
drop view public.job_notifications;
