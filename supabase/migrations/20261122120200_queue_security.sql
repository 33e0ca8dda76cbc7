-- Spool: who may see what.
--
-- End users (role authenticated, including anonymous sign-ins) read their own jobs and
-- notifications and may mark a notification read. They never write jobs directly: creation goes
-- through the job-creator Edge Functions, cancel and retry through cancel_job / retry_job.
-- anon sees nothing. service_role bypasses RLS (as on Supabase) and holds the privileged functions.

grant select on public.jobs to authenticated;
grant select on public.notifications to authenticated;
grant update (read_at) on public.notifications to authenticated;

create policy "Users can view their own jobs"
  on public.jobs for select to authenticated
  using (user_id = (select auth.uid()));

create policy "Users can view their own notifications"
  on public.notifications for select to authenticated
  using (user_id = (select auth.uid()));

create policy "Users can mark their own notifications read"
  on public.notifications for update to authenticated
  using (user_id = (select auth.uid()))
  with check (user_id = (select auth.uid()));

-- spool.notify_job_ended() writes the owner's notification when a job reaches a terminal state.
-- Contract: row trigger on jobs, fired only on a transition into done, failed or cancelled;
-- inserts exactly one notifications row per such transition. SECURITY DEFINER: the transition may
-- be made by any API function.
create function spool.notify_job_ended()
returns trigger
language plpgsql volatile
security definer
set search_path = ''
as $$
begin
  insert into public.notifications (user_id, job_id, job_type, status, message)
  values (new.user_id, new.id, new.type, new.status,
          case new.status
            when 'done' then format('Your %s job is done.', new.type)
            when 'failed' then format('Your %s job failed: %s', new.type,
                                      coalesce(new.error ->> 'message', 'unknown error'))
            else format('Your %s job was cancelled.', new.type)
          end);
  return null;
end;
$$;

create trigger jobs_notify_ended
  after update of status on public.jobs
  for each row
  when (new.status in ('done', 'failed', 'cancelled') and old.status is distinct from new.status)
  execute function spool.notify_job_ended();
