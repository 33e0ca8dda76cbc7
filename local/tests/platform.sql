-- The local platform itself (local/sql/bootstrap.sql and the stand-in extensions): what
-- Supabase gives a project and migrations rely on. Run by `npm test` with pg_prove as the
-- postgres role, before the project's own suites in supabase/tests. Everything is rolled back.
begin;
select plan(45);

-- Roles -------------------------------------------------------------------------------------
select is(current_user::text, 'postgres', 'the suites run as postgres');
select ok(not rolsuper, 'postgres is not a superuser, as on Supabase')
  from pg_roles where rolname = current_user;
select ok(rolbypassrls and rolcreaterole, 'postgres bypasses RLS and may create roles')
  from pg_roles where rolname = current_user;
select has_role('anon');
select has_role('authenticated');
select ok(rolbypassrls, 'service_role bypasses RLS') from pg_roles where rolname = 'service_role';
select ok(pg_has_role('authenticator', 'authenticated', 'member'),
  'authenticator can switch to authenticated');

-- Extensions --------------------------------------------------------------------------------
select has_extension('pg_cron');
select has_extension('pg_net');
select has_extension('supabase_vault');
select has_extension('pgcrypto');
select has_extension('dblink');
select lives_ok($$create extension if not exists pg_net with schema extensions$$,
  'create extension if not exists pg_net is a no-op for postgres');
select ok(current_setting('search_path') like '%extensions%',
  'extensions is on the search path of postgres');

-- What typical migrations do, as postgres ------------------------------------------------------
select lives_ok($$
  create table public.platform_probe (
    id bigint generated always as identity primary key,
    owner uuid references auth.users on delete cascade,
    body text)
$$, 'postgres can create a table in public that references auth.users');
select lives_ok($$alter table public.platform_probe enable row level security$$,
  'postgres can enable RLS on its table');
select lives_ok($$
  create policy "owners read their probes" on public.platform_probe
    for select to authenticated using (owner = (select auth.uid()))
$$, 'postgres can create a policy on its table');
select table_privs_are('public', 'platform_probe', 'authenticated',
  array['DELETE', 'INSERT', 'REFERENCES', 'SELECT', 'TRIGGER', 'TRUNCATE', 'UPDATE'],
  'tables postgres creates in public are granted to the API roles by default');
select lives_ok($$
  insert into storage.buckets (id, name, public, file_size_limit)
  values ('platform-probe', 'platform-probe', false, 1048576)
$$, 'postgres can create a storage bucket');
select lives_ok($$
  create policy "users upload into their own folder" on storage.objects
    for insert to authenticated
    with check (bucket_id = 'platform-probe' and (storage.foldername(name))[1] = (select auth.uid()::text))
$$, 'postgres can create a policy on storage.objects');
select lives_ok($$
  create function public.platform_probe_on_signup() returns trigger language plpgsql
  security definer set search_path = '' as $f$ begin return new; end $f$
$$, 'postgres can create a security definer function');
select lives_ok($$
  create trigger platform_probe_on_signup after insert on auth.users
    for each row execute function public.platform_probe_on_signup()
$$, 'postgres can create a trigger on auth.users');
select lives_ok($$revoke execute on function public.platform_probe_on_signup() from public, anon, authenticated$$,
  'postgres can revoke execute on its function');
select lives_ok($$grant execute on function public.platform_probe_on_signup() to service_role$$,
  'postgres can grant execute on its function');
select lives_ok($$select cron.schedule('platform-probe', '* * * * *', 'select 1')$$,
  'postgres can schedule a pg_cron job');
select lives_ok($$alter publication supabase_realtime add table public.platform_probe$$,
  'postgres can add its table to the supabase_realtime publication');
select lives_ok($$
  insert into auth.users (id, email, aud, role)
  values ('00000000-0000-4000-8000-000000000001', 'probe@example.com', 'authenticated', 'authenticated')
$$, 'postgres can insert into auth.users');

-- auth helpers --------------------------------------------------------------------------------
set local request.jwt.claims =
  '{"sub":"00000000-0000-4000-8000-000000000001","role":"authenticated","email":"probe@example.com"}';
select is(auth.uid(), '00000000-0000-4000-8000-000000000001'::uuid, 'auth.uid() reads request.jwt.claims');
select is(auth.role(), 'authenticated', 'auth.role() reads request.jwt.claims');
select is(auth.email(), 'probe@example.com', 'auth.email() reads request.jwt.claims');
select is(auth.jwt() ->> 'sub', '00000000-0000-4000-8000-000000000001', 'auth.jwt() returns the claims');

-- storage helpers -------------------------------------------------------------------------------
select is(storage.foldername('inputs/abc/photo.png'), array['inputs', 'abc'], 'storage.foldername');
select is(storage.filename('inputs/abc/photo.png'), 'photo.png', 'storage.filename');
select is(storage.extension('inputs/abc/photo.png'), 'png', 'storage.extension');

-- pg_net stand-in -------------------------------------------------------------------------------
select isnt(net.http_post(url := 'http://127.0.0.1:9/probe', body := '{"a": 1}'::jsonb,
  timeout_milliseconds := 1000), null, 'net.http_post returns a request id');
select is(headers, '{"Content-Type": "application/json"}'::jsonb,
  'net.http_post adds Content-Type: application/json')
  from net.http_request_queue order by id desc limit 1;
select is(convert_from(body, 'UTF8'), '{"a": 1}', 'net.http_post stores the body as JSON text')
  from net.http_request_queue order by id desc limit 1;
select throws_ok($$select net.http_post('http://127.0.0.1:9/', headers := '{"content-type": "text/plain"}')$$,
  'Content-Type header must be "application/json"', 'net.http_post refuses another Content-Type');
select isnt(net.http_get('http://127.0.0.1:9/a', params := '{"q": "a b/é"}'), null, 'net.http_get queues a request');
select is(url, 'http://127.0.0.1:9/a?q=a%20b%2F%C3%A9', 'params are URL-encoded into the query string')
  from net.http_request_queue order by id desc limit 1;

-- Vault stand-in --------------------------------------------------------------------------------
select isnt(vault.create_secret('probe-secret', 'platform_probe_secret'), null, 'postgres can create a Vault secret');
select is(decrypted_secret, 'probe-secret', 'vault.decrypted_secrets returns it')
  from vault.decrypted_secrets where name = 'platform_probe_secret';

-- What the API roles may not do ----------------------------------------------------------------
set local role authenticated;
select throws_ok($$select net.http_post('http://127.0.0.1:9/')$$, '42501', null,
  'authenticated cannot call net.http_post');
select throws_ok($$select decrypted_secret from vault.decrypted_secrets$$, '42501', null,
  'authenticated cannot read Vault');
select throws_ok($$select * from cron.job$$, '42501', null, 'authenticated cannot read cron jobs');
reset role;

select * from finish();
rollback;
