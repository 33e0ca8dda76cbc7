-- spool-stand-in
-- Spool's local stand-in for Supabase Vault (supabase_vault 0.3.x SQL API): the table, view and
-- functions Spool uses, with the real signatures and privileges (every function revoked from
-- PUBLIC; create_secret / update_secret SECURITY DEFINER; bootstrap.sql grants them to postgres,
-- as Supabase does). The real one encrypts vault.secrets.secret with libsodium; this stand-in
-- stores it base64 encoded, NOT encrypted: never put a real secret in a local cluster you share.

\echo Use "CREATE EXTENSION supabase_vault" to load this file. \quit

create table vault.secrets (
  id uuid primary key default gen_random_uuid(),
  name text,
  description text not null default '',
  secret text not null,
  created_at timestamptz not null default current_timestamp,
  updated_at timestamptz not null default current_timestamp
);

create unique index on vault.secrets using btree (name) where name is not null;

create view vault.decrypted_secrets as
select s.*, convert_from(decode(s.secret, 'base64'), 'utf8') as decrypted_secret
from vault.secrets s;

create function vault.create_secret(
  new_secret text,
  new_name text = null,
  new_description text = '',
  -- unused, as upstream
  new_key_id uuid = null
)
returns uuid
language sql
security definer
set search_path = ''
as $$
  insert into vault.secrets (secret, name, description)
  values (pg_catalog.encode(pg_catalog.convert_to(new_secret, 'utf8'), 'base64'), new_name, new_description)
  returning id
$$;

create function vault.update_secret(
  secret_id uuid,
  new_secret text = null,
  new_name text = null,
  new_description text = null,
  -- unused, as upstream
  new_key_id uuid = null
)
returns void
language sql
security definer
set search_path = ''
as $$
  update vault.secrets s
  set
    secret = coalesce(pg_catalog.encode(pg_catalog.convert_to(new_secret, 'utf8'), 'base64'), s.secret),
    name = coalesce(new_name, s.name),
    description = coalesce(new_description, s.description),
    updated_at = pg_catalog.now()
  where s.id = secret_id
$$;

revoke all on function
  vault.create_secret(text, text, text, uuid),
  vault.update_secret(uuid, text, text, text, uuid)
from public;
