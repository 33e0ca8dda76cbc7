-- The inbox: a user's notifications (one row per job that ended, written by the SQL API in the
-- transaction that ends the job) are read in the browser's inbox, counted for its badge and
-- marked read through two functions, so clients never PATCH the table. The browser lists rows
-- with a plain select under the existing RLS policy ("Users can view their own notifications").

-- count_unread_notifications(): the caller's notifications with no read_at.
--   Who: authenticated (the caller is auth.uid(); 401 unauthorized without one).
--   Locks nothing; reads notifications_user_created_idx. Stable, idempotent.
--   Returns the count (0 when there are none).
create function public.count_unread_notifications()
returns integer
language plpgsql stable
security definer
set search_path = ''
as $$
declare
  v_user uuid := auth.uid();
begin
  if v_user is null then
    perform spool.throw(401, 'unauthorized', 'sign in to read your notifications');
  end if;
  return (select count(*)::integer from public.notifications n
          where n.user_id = v_user and n.read_at is null);
end;
$$;
comment on function public.count_unread_notifications() is
  'The caller''s unread notifications (read_at is null), for the inbox badge.';

-- mark_notifications_read(p_ids uuid[] default null): sets read_at = spool.now() on the caller's
-- unread notifications: those whose id is in p_ids, or all of them when p_ids is null.
--   Who: authenticated, owner only: ids of other users' rows (or ids that do not exist) are
--   skipped silently, as are rows already read (their read_at is kept). 401 without a user;
--   400 invalid_argument for more than 1000 ids.
--   Locks the rows it updates. Idempotent: a second call with the same ids returns 0.
--   Returns how many rows it marked.
create function public.mark_notifications_read(p_ids uuid[] default null)
returns integer
language plpgsql volatile
security definer
set search_path = ''
as $$
declare
  v_user uuid := auth.uid();
  v_count integer;
begin
  if v_user is null then
    perform spool.throw(401, 'unauthorized', 'sign in to mark your notifications read');
  end if;
  if p_ids is not null and pg_catalog.cardinality(p_ids) > 1000 then
    perform spool.throw(400, 'invalid_argument', 'mark at most 1000 notifications at once');
  end if;
  update public.notifications n
     set read_at = spool.now()
   where n.user_id = v_user
     and n.read_at is null
     and (p_ids is null or n.id = any (p_ids));
  get diagnostics v_count = row_count;
  return v_count;
end;
$$;
comment on function public.mark_notifications_read(uuid[]) is
  'Marks the caller''s unread notifications read (the listed ids, or all when null); returns how many.';

revoke execute on function public.count_unread_notifications() from public, anon;
revoke execute on function public.mark_notifications_read(uuid[]) from public, anon;
grant execute on function public.count_unread_notifications() to authenticated;
grant execute on function public.mark_notifications_read(uuid[]) to authenticated;

-- An unread backlog is counted per user without reading the read rows.
create index notifications_user_unread_idx on public.notifications (user_id, created_at desc)
  where read_at is null;

-- count_input_jobs(p_user_id, p_path): how many of the user's jobs take the input file p_path
-- (an object path in the inputs bucket) as one of their input's top-level values. The creators
-- call it before removing the file of a refused job, so a file another job of the same user still
-- reads (an earlier job started with the same upload) is never removed.
--   Who: service_role only (the creators, with the secret key). Locks nothing; reads the user's
--   jobs (jobs_user_created_idx). Stable, idempotent. Returns 0 when none does.
create function public.count_input_jobs(p_user_id uuid, p_path text)
returns integer
language sql stable
security definer
set search_path = ''
as $$
  select count(*)::integer
  from public.jobs j
  where j.user_id = p_user_id
    and exists (select 1 from pg_catalog.jsonb_each_text(j.input) e where e.value = p_path)
$$;
comment on function public.count_input_jobs(uuid, text) is
  'Jobs of the user whose input names this inputs-bucket path (before a refused job''s file is removed).';
revoke execute on function public.count_input_jobs(uuid, text) from public, anon, authenticated;
grant execute on function public.count_input_jobs(uuid, text) to service_role;
