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

-- Notifications are written by the SQL API in the transaction that ends a job (see
-- spool.notify_ended in the API migration): set-based, so a batch completion costs one statement.
