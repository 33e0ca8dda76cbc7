-- Spool: the buckets jobs read from and write to. Both are private; downloads use signed URLs.
--
--   inputs/<user id>/...   written and read by the user who owns the folder (uploads), read by
--                          the service (workers); size-capped, media types only.
--   outputs/<user id>/...  written only by the service (workers), read by the folder's owner.

insert into storage.buckets (id, name, public, file_size_limit, allowed_mime_types)
values
  ('inputs', 'inputs', false, 52428800, array[
     'image/png', 'image/jpeg', 'image/webp',
     'audio/wav', 'audio/x-wav', 'audio/wave', 'audio/vnd.wave', 'audio/mpeg', 'audio/mp4', 'audio/flac',
     'video/mp4', 'video/quicktime', 'video/webm']),
  ('outputs', 'outputs', false, 209715200, null)
on conflict (id) do update
  set public = excluded.public,
      file_size_limit = excluded.file_size_limit,
      allowed_mime_types = excluded.allowed_mime_types;

create policy "Spool users can upload into their own inputs folder"
  on storage.objects for insert to authenticated
  with check (bucket_id = 'inputs' and (storage.foldername(name))[1] = (select auth.uid()::text));

create policy "Spool users can read their own inputs"
  on storage.objects for select to authenticated
  using (bucket_id = 'inputs' and (storage.foldername(name))[1] = (select auth.uid()::text));

create policy "Spool users can replace their own inputs"
  on storage.objects for update to authenticated
  using (bucket_id = 'inputs' and (storage.foldername(name))[1] = (select auth.uid()::text))
  with check (bucket_id = 'inputs' and (storage.foldername(name))[1] = (select auth.uid()::text));

create policy "Spool users can delete their own inputs"
  on storage.objects for delete to authenticated
  using (bucket_id = 'inputs' and (storage.foldername(name))[1] = (select auth.uid()::text));

create policy "Spool users can read their own outputs"
  on storage.objects for select to authenticated
  using (bucket_id = 'outputs' and (storage.foldername(name))[1] = (select auth.uid()::text));
