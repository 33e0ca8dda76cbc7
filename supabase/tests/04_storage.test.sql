-- Storage: the inputs and outputs buckets are private; users write inputs/<their id>/... and read
-- their own inputs and outputs/<their id>/...; nobody reaches another user's folder; anon sees
-- nothing. Acted out on storage.objects rows, as the Storage API does with the caller's JWT: it
-- sets the role, the claims and storage.allow_delete_query = 'true' for each request (supabase/
-- storage src/internal/database/postgres/scope.ts). Outside the Storage API a DELETE on
-- storage.objects is refused by Storage's protect_objects_delete trigger (Storage >= 1.35).
begin;
set local search_path = public, extensions;
select plan(37);

create function pg_temp.tests_create_user(p_name text)
returns uuid
language sql
as $$
  insert into auth.users (id, email, aud, role)
  values (gen_random_uuid(), p_name || '@spool.test', 'authenticated', 'authenticated')
  returning id
$$;
create function pg_temp.tests_authenticate_as(p_user_id uuid)
returns void
language plpgsql
as $$
begin
  perform set_config('role', 'authenticated', true);
  perform set_config('request.jwt.claims',
    json_build_object('sub', p_user_id, 'role', 'authenticated')::text, true);
  perform set_config('storage.allow_delete_query', 'true', true);
end;
$$;
create function pg_temp.tests_authenticate_as_anon()
returns void
language plpgsql
as $$
begin
  perform set_config('role', 'anon', true);
  perform set_config('request.jwt.claims', '{"role": "anon"}', true);
  perform set_config('storage.allow_delete_query', 'true', true);
end;
$$;
create function pg_temp.tests_clear_authentication()
returns void
language plpgsql
as $$
begin
  perform set_config('role', 'none', true);
  perform set_config('request.jwt.claims', '', true);
  perform set_config('storage.allow_delete_query', '', true);
end;
$$;
-- Runs a statement as the current role and returns how many rows it touched.
create function pg_temp.tests_rows_affected(p_sql text)
returns integer
language plpgsql
as $$
declare
  v_rows integer;
begin
  execute p_sql;
  get diagnostics v_rows = row_count;
  return v_rows;
end;
$$;

create temp table tests_users (name text primary key, id uuid not null) on commit drop;
insert into tests_users values
  ('A', pg_temp.tests_create_user('storage-a')),
  ('B', pg_temp.tests_create_user('storage-b'));
create function pg_temp.tests_user(p_name text) returns uuid language sql stable
as $$ select id from tests_users where name = p_name $$;
-- The object path <user id>/<file> of a user.
create function pg_temp.tests_path(p_name text, p_file text) returns text language sql stable
as $$ select pg_temp.tests_user(p_name)::text || '/' || p_file $$;
grant select on tests_users to public;
grant execute on all functions in schema pg_temp to public;

-- Objects already stored: each user has an upload, and a result the worker wrote.
insert into storage.objects (bucket_id, name, owner)
values
  ('inputs', pg_temp.tests_path('A', 'photo.png'), pg_temp.tests_user('A')),
  ('outputs', pg_temp.tests_path('A', 'photo-graded.png'), null),
  ('inputs', pg_temp.tests_path('B', 'voice.wav'), pg_temp.tests_user('B')),
  ('outputs', pg_temp.tests_path('B', 'voice-clean.wav'), null);

-- ---------------------------------------------------------------------------------------------
-- Buckets
-- ---------------------------------------------------------------------------------------------
select results_eq(
  $$select id, public from storage.buckets where id in ('inputs', 'outputs') order by id$$,
  $$values ('inputs'::text, false), ('outputs'::text, false)$$,
  'the inputs and outputs buckets exist and are private');
select cmp_ok((select file_size_limit from storage.buckets where id = 'inputs'), '>', 0::bigint,
  'uploads to inputs are capped in size');
select ok((select allowed_mime_types @> array['image/png', 'image/jpeg', 'audio/wav']
             from storage.buckets where id = 'inputs'),
  'inputs accepts PNG and JPEG images and WAV audio');
select ok((select not allowed_mime_types && array['text/html', 'application/javascript', 'image/svg+xml']
             from storage.buckets where id = 'inputs'),
  'inputs refuses HTML, JavaScript and SVG, which a signed URL would serve as active content');
select cmp_ok((select file_size_limit from storage.buckets where id = 'outputs'), '>=',
              (select file_size_limit from storage.buckets where id = 'inputs'),
  'outputs may hold results at least as large as the inputs they came from');

-- ---------------------------------------------------------------------------------------------
-- Uploading, as user A
-- ---------------------------------------------------------------------------------------------
select pg_temp.tests_authenticate_as(pg_temp.tests_user('A'));

-- Storage tests an upload as the caller with metadata.mimetype set to the file's Content-Type
-- (supabase/storage Uploader.canUpload), as these inserts do.
select lives_ok(
  $$insert into storage.objects (bucket_id, name, owner, metadata)
    values ('inputs', pg_temp.tests_path('A', 'x.png'), pg_temp.tests_user('A'), '{"mimetype": "image/png"}')$$,
  'A can upload into inputs/<A>/');
select lives_ok(
  $$insert into storage.objects (bucket_id, name, owner, metadata)
    values ('inputs', pg_temp.tests_path('A', 'batch/1/x.png'), pg_temp.tests_user('A'), '{"mimetype": "image/png"}')$$,
  'A can upload into subfolders of inputs/<A>/');
select throws_ok(
  $$insert into storage.objects (bucket_id, name, owner, metadata)
    values ('inputs', pg_temp.tests_path('A', 'page.png'), pg_temp.tests_user('A'), '{"mimetype": "image/png/html"}')$$,
  '42501', 'new row violates row-level security policy for table "objects"',
  'A cannot upload under a type with a third part, which Storage''s two-part match lets through');
select throws_ok(
  $$insert into storage.objects (bucket_id, name, owner, metadata)
    values ('inputs', pg_temp.tests_path('A', 'page.png'), pg_temp.tests_user('A'), '{"mimetype": "image/png; charset=utf-8"}')$$,
  '42501', 'new row violates row-level security policy for table "objects"',
  'A cannot upload under a type with parameters');
select throws_ok(
  $$insert into storage.objects (bucket_id, name, owner)
    values ('inputs', pg_temp.tests_path('A', 'untyped.png'), pg_temp.tests_user('A'))$$,
  '42501', 'new row violates row-level security policy for table "objects"',
  'A cannot upload without a type (a signed upload URL created without one)');
select throws_ok(
  $$insert into storage.objects (bucket_id, name, owner)
    values ('inputs', pg_temp.tests_path('B', 'x.png'), pg_temp.tests_user('A'))$$,
  '42501', 'new row violates row-level security policy for table "objects"',
  'A cannot upload into inputs/<B>/');
select throws_ok(
  $$insert into storage.objects (bucket_id, name, owner)
    values ('inputs', 'x.png', pg_temp.tests_user('A'))$$,
  '42501', 'new row violates row-level security policy for table "objects"',
  'A cannot upload to the root of inputs, outside any user folder');
select throws_ok(
  $$insert into storage.objects (bucket_id, name, owner)
    values ('inputs', 'shared/' || pg_temp.tests_path('A', 'x.png'), pg_temp.tests_user('A'))$$,
  '42501', 'new row violates row-level security policy for table "objects"',
  'A cannot upload under another top-level folder that merely contains their id');
select throws_ok(
  $$insert into storage.objects (bucket_id, name, owner)
    values ('outputs', pg_temp.tests_path('A', 'forged.png'), pg_temp.tests_user('A'))$$,
  '42501', 'new row violates row-level security policy for table "objects"',
  'A cannot write into outputs/<A>/: only workers write results');

-- ---------------------------------------------------------------------------------------------
-- Reading, replacing and deleting
-- ---------------------------------------------------------------------------------------------
select set_eq(
  $$select bucket_id, name from storage.objects where bucket_id in ('inputs', 'outputs')$$,
  $$values ('inputs', pg_temp.tests_path('A', 'photo.png')),
           ('outputs', pg_temp.tests_path('A', 'photo-graded.png')),
           ('inputs', pg_temp.tests_path('A', 'x.png')),
           ('inputs', pg_temp.tests_path('A', 'batch/1/x.png'))$$,
  'A sees exactly their own inputs and outputs');
select is(
  pg_temp.tests_rows_affected(
    $$update storage.objects set metadata = '{"mimetype": "image/png", "size": 1}' where name = pg_temp.tests_path('A', 'photo.png')$$),
  1, 'A can replace their own upload');
select throws_ok(
  $$update storage.objects set metadata = '{"mimetype": "image/png/html"}' where name = pg_temp.tests_path('A', 'photo.png')$$,
  '42501', 'new row violates row-level security policy for table "objects"',
  'A cannot replace their upload with one under a malformed type');
select is(
  pg_temp.tests_rows_affected(
    $$update storage.objects set metadata = '{"size": 1}' where name = pg_temp.tests_path('B', 'voice.wav')$$),
  0, 'A replacing B''s upload changes nothing');
select throws_ok(
  $$update storage.objects set name = pg_temp.tests_path('B', 'photo.png')
     where name = pg_temp.tests_path('A', 'photo.png')$$,
  '42501', 'new row violates row-level security policy for table "objects"',
  'A cannot move their upload into B''s folder');
select is(
  pg_temp.tests_rows_affected(
    $$update storage.objects set name = pg_temp.tests_path('A', 'voice.wav')
       where name = pg_temp.tests_path('B', 'voice.wav')$$),
  0, 'A cannot take B''s upload by moving it into their own folder');
select is(
  pg_temp.tests_rows_affected(
    $$update storage.objects set metadata = '{"size": 1}' where name = pg_temp.tests_path('A', 'photo-graded.png')$$),
  0, 'A cannot overwrite a result in their outputs');
select is(
  pg_temp.tests_rows_affected($$delete from storage.objects where name = pg_temp.tests_path('B', 'voice.wav')$$),
  0, 'A deleting B''s upload changes nothing');
select is(
  pg_temp.tests_rows_affected($$delete from storage.objects where name = pg_temp.tests_path('A', 'photo-graded.png')$$),
  0, 'A cannot delete a result from their outputs');
select is(
  pg_temp.tests_rows_affected($$delete from storage.objects where name = pg_temp.tests_path('A', 'x.png')$$),
  1, 'A can delete their own upload');

select pg_temp.tests_authenticate_as(pg_temp.tests_user('B'));
select set_eq(
  $$select bucket_id, name from storage.objects where bucket_id in ('inputs', 'outputs')$$,
  $$values ('inputs', pg_temp.tests_path('B', 'voice.wav')),
           ('outputs', pg_temp.tests_path('B', 'voice-clean.wav'))$$,
  'B sees exactly their own inputs and outputs');
select is_empty(
  $$select name from storage.objects where name like pg_temp.tests_user('A')::text || '/%'$$,
  'B sees none of A''s objects');

select pg_temp.tests_clear_authentication();
select results_eq(
  $$select name, metadata from storage.objects
     where name in (pg_temp.tests_path('B', 'voice.wav'), pg_temp.tests_path('A', 'photo-graded.png'))
     order by name$$,
  $$select * from (values (pg_temp.tests_path('A', 'photo-graded.png'), null::jsonb),
                          (pg_temp.tests_path('B', 'voice.wav'), null::jsonb)) v order by 1$$,
  'B''s upload and A''s result are untouched after A''s attempts');
select is((select name from storage.objects where name = pg_temp.tests_path('A', 'photo.png')),
  pg_temp.tests_path('A', 'photo.png'),
  'A''s upload stayed in A''s folder after the attempted move');

-- ---------------------------------------------------------------------------------------------
-- Deleting outside the Storage API
-- ---------------------------------------------------------------------------------------------
select throws_ok(
  $$delete from storage.objects where name = pg_temp.tests_path('A', 'photo.png')$$,
  '42501', 'Direct deletion from storage tables is not allowed. Use the Storage API instead.',
  'the project''s own SQL cannot delete a stored object directly: it would orphan the file');
select throws_ok(
  $$delete from storage.objects where false$$,
  '42501', 'Direct deletion from storage tables is not allowed. Use the Storage API instead.',
  'a direct delete is refused even when it matches no object');
select pg_temp.tests_authenticate_as(pg_temp.tests_user('A'));
select set_config('storage.allow_delete_query', '', true);
select throws_ok(
  $$delete from storage.objects where name = pg_temp.tests_path('A', 'photo.png')$$,
  '42501', 'Direct deletion from storage tables is not allowed. Use the Storage API instead.',
  'a user''s delete is refused unless it comes through the Storage API');
select pg_temp.tests_clear_authentication();
select is((select count(*) from storage.objects where name = pg_temp.tests_path('A', 'photo.png')),
  1::bigint, 'A''s upload is still there after the refused deletes');

-- ---------------------------------------------------------------------------------------------
-- anon
-- ---------------------------------------------------------------------------------------------
select pg_temp.tests_authenticate_as_anon();
select is_empty($$select name from storage.objects where bucket_id in ('inputs', 'outputs')$$,
  'anon sees no objects in inputs or outputs');
select throws_ok(
  $$insert into storage.objects (bucket_id, name) values ('inputs', pg_temp.tests_path('A', 'anon.png'))$$,
  '42501', 'new row violates row-level security policy for table "objects"',
  'anon cannot upload into a user''s inputs folder');
select is(
  pg_temp.tests_rows_affected($$delete from storage.objects where bucket_id in ('inputs', 'outputs')$$),
  0, 'anon cannot delete any object');

-- ---------------------------------------------------------------------------------------------
-- Policies, one per operation, for authenticated users only
-- ---------------------------------------------------------------------------------------------
select pg_temp.tests_clear_authentication();
select results_eq(
  $$select policyname::text collate "default", cmd::text collate "default", roles::text[] collate "default"
      from pg_policies
     where schemaname = 'storage' and tablename = 'objects' and policyname like 'Spool %'
     order by policyname$$,
  $$values ('Spool users can delete their own inputs', 'DELETE', array['authenticated']),
           ('Spool users can read their own inputs', 'SELECT', array['authenticated']),
           ('Spool users can read their own outputs', 'SELECT', array['authenticated']),
           ('Spool users can replace their own inputs', 'UPDATE', array['authenticated']),
           ('Spool users can upload into their own inputs folder', 'INSERT', array['authenticated'])$$,
  'storage.objects has one Spool policy per operation, each for authenticated users only');
select is_empty(
  $$select policyname from pg_policies
     where schemaname = 'storage' and tablename = 'objects' and policyname like 'Spool %'
       and cmd in ('INSERT', 'UPDATE', 'DELETE')
       and coalesce(qual, '') || coalesce(with_check, '') like '%outputs%'$$,
  'no Spool policy lets users write or delete in outputs');
select * from finish();
rollback;
