-- The local platform itself (local/standins/sql/bootstrap.sql and the stand-in extensions): what
-- Supabase gives a project and migrations rely on. Run by `npm test` with pg_prove as the
-- postgres role, before the project's own suites in supabase/tests. Everything is rolled back.
begin;
select plan(54);

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
select ok(not pg_has_role('postgres', 'supabase_storage_admin', 'member')
          and not pg_has_role('postgres', 'supabase_auth_admin', 'member'),
  'postgres is a member of neither supabase_storage_admin nor supabase_auth_admin, as on Supabase since 2025-04');

-- Extensions --------------------------------------------------------------------------------
select has_extension('pg_cron');
select has_extension('pg_net');
select has_extension('supabase_vault');
select has_extension('pgcrypto');
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
$$, 'postgres can create a policy on storage.objects (supautils policy_grants)');
select lives_ok($$
  alter policy "users upload into their own folder" on storage.objects to authenticated, service_role
$$, 'postgres can alter its policy on storage.objects');
select ok(not pg_has_role('postgres', 'supabase_storage_admin', 'member'),
  'a policy statement leaves postgres no membership in supabase_storage_admin');
select throws_ok($$alter table storage.objects add column platform_probe text$$, '42501',
  'must be owner of table objects', 'postgres cannot alter storage.objects, which it does not own');
select throws_ok($$alter table auth.users disable row level security$$, '42501',
  'must be owner of table users', 'postgres cannot alter auth.users, which it does not own');
select lives_ok($$
  create function public.platform_probe_on_signup() returns trigger language plpgsql
  security definer set search_path = '' as $f$ begin return new; end $f$
$$, 'postgres can create a security definer function');
select lives_ok($$
  create trigger platform_probe_on_signup after insert on auth.users
    for each row execute function public.platform_probe_on_signup()
$$, 'postgres can create a trigger on auth.users');
savepoint before_drop_trigger;
select lives_ok($$drop trigger platform_probe_on_signup on auth.users$$,
  'postgres can drop its trigger on auth.users (supautils drop_trigger_grants)');
rollback to savepoint before_drop_trigger;
select lives_ok($$revoke execute on function public.platform_probe_on_signup() from public, anon, authenticated$$,
  'postgres can revoke execute on its function');
select lives_ok($$grant execute on function public.platform_probe_on_signup() to service_role$$,
  'postgres can grant execute on its function');
select lives_ok($$select cron.schedule('platform-probe', '* * * * *', 'select 1')$$,
  'postgres can schedule a pg_cron job');
select is((select count(*) from cron.job where jobname = 'platform-probe'), 1::bigint,
  'postgres can read cron.job');
select throws_ok($$update cron.job set active = false where jobname = 'platform-probe'$$, '42501',
  'permission denied for table job', 'postgres may only read cron.job, as on Supabase: it changes jobs through pg_cron''s functions');
select throws_ok($$
  create trigger platform_probe after insert on cron.job_run_details
    for each row execute function public.platform_probe_on_signup()
$$, '42501', 'permission denied for table job_run_details',
  'postgres cannot create a trigger on cron.job_run_details');
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
select is(auth.jwt() ->> 'sub', '00000000-0000-4000-8000-000000000001', 'auth.jwt() returns the claims');

-- storage helpers -------------------------------------------------------------------------------
select is(storage.foldername('inputs/abc/photo.png'), array['inputs', 'abc'], 'storage.foldername');

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
select throws_ok($$select net.http_post('http://127.0.0.1:9/a', params := '{"q": "a"}')$$,
  'net.http_post params are not supported by the local pg_net stand-in', 'net.http_post refuses params');
select throws_ok($$select net.http_post('http://127.0.0.1:9/', body := null)$$,
  'body must not be null', 'net.http_post refuses a NULL body, as pg_net does');

select isnt_definer('net', 'http_post', array['text', 'jsonb', 'jsonb', 'jsonb', 'integer'],
  'net.http_post is SECURITY INVOKER, as in pg_net >= 0.12');
select ok(exists (select 1 from pg_proc p, aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a
                   where p.oid = 'net.http_post(text, jsonb, jsonb, jsonb, integer)'::regprocedure
                     and a.grantee = 0 and a.privilege_type = 'EXECUTE'),
  'PUBLIC may execute net.http_post, as on Supabase');

-- Vault stand-in --------------------------------------------------------------------------------
select isnt(vault.create_secret('probe-secret', 'platform_probe_secret'), null, 'postgres can create a Vault secret');
select is(decrypted_secret, 'probe-secret', 'vault.decrypted_secrets returns it')
  from vault.decrypted_secrets where name = 'platform_probe_secret';

-- What the API roles may and may not do -------------------------------------------------------
set local role authenticated;
select isnt(net.http_post('http://127.0.0.1:9/from-authenticated'), null,
  'authenticated can queue a request with net.http_post, as on Supabase (a project revokes it if it must)');
select throws_ok($$select decrypted_secret from vault.decrypted_secrets$$, '42501', null,
  'authenticated cannot read Vault');
select throws_ok($$select * from cron.job$$, '42501', null, 'authenticated cannot read cron jobs');
reset role;
set local role service_role;
select throws_ok($$select decrypted_secret from vault.decrypted_secrets$$, '42501', null,
  'service_role cannot read Vault: Supabase grants Vault to postgres only');
select throws_ok($$select vault.create_secret('x', 'platform_probe_service_role')$$, '42501', null,
  'service_role cannot create a Vault secret');
reset role;

select * from finish();
rollback;
