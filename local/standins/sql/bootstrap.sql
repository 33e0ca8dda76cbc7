-- The Supabase roles, schemas and grants that migrations rely on, on a plain Postgres 15 cluster,
-- as Supabase's init scripts (supabase/postgres migrations/db/init-scripts) and the auth and
-- storage services make them: only the subset Spool touches. Run by local/tools/db.mjs as the
-- superuser supabase_admin, in one transaction, on database postgres; idempotent.

set local client_min_messages = warning;

-- Roles ----------------------------------------------------------------------------------------
do $$
declare
  r text[];
begin
  foreach r slice 1 in array array[['anon', 'nologin noinherit'], ['authenticated', 'nologin noinherit'],
    ['service_role', 'nologin noinherit bypassrls'], ['authenticator', 'login noinherit'],
    ['supabase_auth_admin', 'login noinherit createrole noreplication'],
    ['supabase_storage_admin', 'login noinherit createrole noreplication'], ['postgres', 'login']]
  loop
    if not exists (select from pg_roles where rolname = r[1]) then
      execute format('create role %I %s', r[1], r[2]);
    end if;
  end loop;
end $$;

-- The role migrations run as on Supabase: not a superuser.
alter role postgres with login nosuperuser inherit createrole createdb replication bypassrls
  password 'postgres';
-- Local-only password, as `supabase start` uses; the stand-in services log in with it.
alter role authenticator with password 'postgres';

grant anon, authenticated, service_role to authenticator;
grant anon, authenticated, service_role, authenticator to postgres with admin option;
-- As on Supabase since 2025-04 (supabase/postgres migration revoke_admin_roles_from_postgres),
-- postgres is not a member of the auth and storage owners (see the supautils stand-in below).
revoke supabase_auth_admin, supabase_storage_admin from postgres;

alter role supabase_admin set search_path to "$user", public, auth, extensions;
alter role postgres set search_path to "$user", public, extensions;
alter role anon set statement_timeout = '3s';
alter role authenticated set statement_timeout = '8s';

-- Database and schema public -------------------------------------------------------------------
grant create, connect, temporary on database postgres to postgres;
alter schema public owner to postgres;
grant usage on schema public to anon, authenticated, service_role;
-- What postgres (the migrations) creates in public is usable by the API roles; RLS keeps rows private.
alter default privileges for role postgres in schema public grant all on tables to anon, authenticated, service_role;
alter default privileges for role postgres in schema public grant all on sequences to anon, authenticated, service_role;
alter default privileges for role postgres in schema public grant all on functions to anon, authenticated, service_role;

-- Extensions -----------------------------------------------------------------------------------
create schema if not exists extensions;
grant usage, create on schema extensions to postgres;
grant usage on schema extensions to anon, authenticated, service_role;

create extension if not exists pgcrypto with schema extensions;
create extension if not exists pgtap with schema extensions;
-- pg_cron: in pg_catalog as on Supabase, its tables in schema cron, granted as Supabase does:
-- all to postgres, except that it may only read cron.job (it schedules through cron.schedule())
-- and may not create triggers on cron.job_run_details.
create extension if not exists pg_cron with schema pg_catalog;
grant usage on schema cron to postgres with grant option;
grant all on all tables in schema cron to postgres with grant option;
revoke all on table cron.job from postgres;
grant select on table cron.job to postgres with grant option;
revoke trigger on table cron.job_run_details from postgres;
-- pg_net (stand-in, local/standins/extensions/pg_net): objects in schema net. Its script grants
-- PUBLIC what real pg_net (>= 0.12) does, which covers what Supabase's grant_pg_net_access() adds.
create extension if not exists pg_net with schema extensions;
-- Vault (stand-in), with Supabase's grants (its after-create script): to postgres only.
create extension if not exists supabase_vault;
grant usage on schema vault to postgres with grant option;
grant select, delete on vault.secrets, vault.decrypted_secrets to postgres with grant option;
grant execute on function vault.create_secret(text, text, text, uuid), vault.update_secret(uuid, text, text, text, uuid)
  to postgres with grant option;

-- auth: the users table and the JWT helpers (owned by supabase_auth_admin, as on Supabase) ------
create schema if not exists auth authorization supabase_auth_admin;
set local role supabase_auth_admin;

-- The columns of GoTrue's auth.users that Spool, its tests and the Auth stand-in use.
create table if not exists auth.users (
  instance_id uuid, id uuid not null primary key, aud varchar(255), role varchar(255), email varchar(255),
  email_confirmed_at timestamptz, last_sign_in_at timestamptz, raw_app_meta_data jsonb, raw_user_meta_data jsonb,
  created_at timestamptz, updated_at timestamptz, phone text unique default null,
  is_anonymous boolean not null default false
);
-- GoTrue's users_email_partial_key is unique where not is_sso_user: here no user is an SSO one.
create unique index if not exists users_email_partial_key on auth.users (email);

-- As GoTrue defines them: the legacy request.jwt.claim.* settings first, then request.jwt.claims.
create or replace function auth.uid() returns uuid language sql stable as $$
  select coalesce(nullif(current_setting('request.jwt.claim.sub', true), ''),
                  (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub'))::uuid $$;
create or replace function auth.role() returns text language sql stable as $$
  select coalesce(nullif(current_setting('request.jwt.claim.role', true), ''),
                  (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'role'))::text $$;
create or replace function auth.jwt() returns jsonb language sql stable as $$
  select coalesce(nullif(current_setting('request.jwt.claim', true), ''),
                  nullif(current_setting('request.jwt.claims', true), ''))::jsonb $$;

grant usage on schema auth to anon, authenticated, service_role, postgres;
grant all on auth.users to postgres;
reset role;

-- storage: buckets, objects and the path helpers (owned by supabase_storage_admin) -------------
create schema if not exists storage authorization supabase_storage_admin;
set local role supabase_storage_admin;

-- The columns of Storage's tables that Spool and the Storage stand-in use.
create table if not exists storage.buckets (
  id text not null primary key, name text not null, public boolean default false, file_size_limit bigint,
  allowed_mime_types text[]
);
create unique index if not exists bname on storage.buckets using btree (name);
create table if not exists storage.objects (
  id uuid not null default gen_random_uuid() primary key, bucket_id text references storage.buckets (id),
  name text, owner uuid, owner_id text, created_at timestamptz default now(), updated_at timestamptz default now(),
  last_accessed_at timestamptz default now(), metadata jsonb, version text, user_metadata jsonb
);
create unique index if not exists bucketid_objname on storage.objects using btree (bucket_id, name);
alter table storage.buckets enable row level security;
alter table storage.objects enable row level security;

create or replace function storage.foldername(name text) returns text[] language sql immutable as $$
  select (string_to_array(name, '/'))[1:array_length(string_to_array(name, '/'), 1) - 1] $$;

create or replace function storage.update_updated_at_column() returns trigger language plpgsql as $$
begin
  new.updated_at = now();
  return new;
end $$;
drop trigger if exists update_objects_updated_at on storage.objects;
create trigger update_objects_updated_at before update on storage.objects
  for each row execute function storage.update_updated_at_column();

-- As Storage >= 1.35 (supabase/storage migrations/tenant/0055-prevent-direct-deletes.sql):
-- a DELETE on storage.buckets or storage.objects is refused unless the transaction set
-- storage.allow_delete_query to 'true', as the Storage API (and local/standins/storage.mjs) does
-- for each request it serves. Statement-level: it fires even when the DELETE matches no row.
create or replace function storage.protect_delete() returns trigger language plpgsql as $$
begin
  if coalesce(current_setting('storage.allow_delete_query', true), 'false') != 'true' then
    raise exception 'Direct deletion from storage tables is not allowed. Use the Storage API instead.'
      using hint = 'This prevents accidental data loss from orphaned objects.', errcode = '42501';
  end if;
  return null;
end $$;
drop trigger if exists protect_buckets_delete on storage.buckets;
create trigger protect_buckets_delete before delete on storage.buckets
  for each statement execute function storage.protect_delete();
drop trigger if exists protect_objects_delete on storage.objects;
create trigger protect_objects_delete before delete on storage.objects
  for each statement execute function storage.protect_delete();

grant usage on schema storage to anon, authenticated, service_role;
grant usage on schema storage to postgres with grant option;
grant all on storage.buckets, storage.objects to anon, authenticated, service_role;
grant all on storage.buckets, storage.objects to postgres with grant option;
reset role;

-- Realtime: the (empty) publication, owned by postgres so migrations can add tables to it ------
do $$
begin
  if not exists (select from pg_publication where pubname = 'supabase_realtime') then
    create publication supabase_realtime;
  end if;
end $$;
alter publication supabase_realtime owner to postgres;

-- supautils stand-in: policy_grants and drop_trigger_grants for postgres -----------------------
-- On Supabase, postgres owns neither auth's nor storage's tables, yet may CREATE/ALTER/DROP
-- POLICY and DROP TRIGGER on those in supautils.policy_grants / drop_trigger_grants (supabase/
-- postgres conf.d/supautils.conf), which every table the two owner roles own here is. Debian has
-- no supautils: an event trigger makes postgres a member of both owners when such a statement of
-- its starts and takes it back when it ends, inside the statement (a failing one leaves nothing).
create or replace function extensions.spool_supautils() returns event_trigger language plpgsql
  security definer set search_path = '' as $$
begin
  if tg_event = 'ddl_command_end' then
    if pg_catalog.current_setting('spool_supautils.granted', true) = 'on' then
      revoke supabase_storage_admin, supabase_auth_admin from postgres;
      perform pg_catalog.set_config('spool_supautils.granted', 'off', true);
    end if;
  -- The role the statement runs as (this function runs as its owner).
  elsif (case when pg_catalog.current_setting('role') = 'none' then session_user
              else pg_catalog.current_setting('role')::name end) = 'postgres'
        and not pg_catalog.pg_has_role('postgres', 'supabase_storage_admin', 'MEMBER')
        and not pg_catalog.pg_has_role('postgres', 'supabase_auth_admin', 'MEMBER') then
    grant supabase_storage_admin, supabase_auth_admin to postgres;
    perform pg_catalog.set_config('spool_supautils.granted', 'on', true);
  end if;
end $$;
drop event trigger if exists spool_supautils_before;
drop event trigger if exists spool_supautils_after;
create event trigger spool_supautils_before on ddl_command_start
  when tag in ('CREATE POLICY', 'ALTER POLICY', 'DROP POLICY', 'DROP TRIGGER')
  execute function extensions.spool_supautils();
create event trigger spool_supautils_after on ddl_command_end
  when tag in ('CREATE POLICY', 'ALTER POLICY', 'DROP POLICY', 'DROP TRIGGER')
  execute function extensions.spool_supautils();
