-- Spool: an upload into inputs names exactly one media type.
--
-- Storage checks a file's Content-Type against the bucket's allowed_mime_types by its first two
-- '/' parts only (supabase/storage src/storage/uploader.ts validateMimeType), so `image/png/html`
-- or `image/png/../../text/html` passes as image/png and is served back under that header. Before
-- Storage writes anything it tests the INSERT (or, for an upsert, the UPDATE) as the caller, with
-- the row's metadata.mimetype set to that Content-Type (Uploader.canUpload). The inputs policies
-- now also require that type to be one RFC 9110 type/subtype in lower case, with no third part and
-- no parameters; together with Storage's own two-part match against allowed_mime_types (all exact
-- lower-case types), only a listed type gets in. An upload without a type in its metadata (a
-- signed upload URL created without one) is refused too: inputs are uploaded directly, as the
-- user, with their type.

-- The type check is written out in each policy: the policies run as the caller, who has no
-- USAGE on schema spool, so no helper function of Spool's can hold it.

drop policy "Spool users can upload into their own inputs folder" on storage.objects;
create policy "Spool users can upload into their own inputs folder"
  on storage.objects for insert to authenticated
  with check (bucket_id = 'inputs' and (storage.foldername(name))[1] = (select auth.uid()::text)
              and coalesce((metadata ->> 'mimetype') ~ '^[a-z0-9!#$&^_.+-]+/[a-z0-9!#$&^_.+-]+$', false));

drop policy "Spool users can replace their own inputs" on storage.objects;
create policy "Spool users can replace their own inputs"
  on storage.objects for update to authenticated
  using (bucket_id = 'inputs' and (storage.foldername(name))[1] = (select auth.uid()::text))
  with check (bucket_id = 'inputs' and (storage.foldername(name))[1] = (select auth.uid()::text)
              and coalesce((metadata ->> 'mimetype') ~ '^[a-z0-9!#$&^_.+-]+/[a-z0-9!#$&^_.+-]+$', false));
