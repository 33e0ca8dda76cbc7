-- spool-stand-in
-- Spool's local stand-in for Supabase's pg_net (0.20 SQL API): the tables and functions Spool
-- uses, with the real argument checks and grants (pg_net >= 0.12: SECURITY INVOKER, EXECUTE and
-- schema net with its tables and sequences for PUBLIC); `params` is refused unless empty. No worker
-- in the database: net.http_post queues a row and NOTIFYs 'spool_pg_net' (sent at COMMIT, never on
-- ROLLBACK, like pg_net's wake-at-commit); local/standins/pgnet.mjs sends it and writes the response.

\echo Use "CREATE EXTENSION pg_net" to load this file. \quit

create schema if not exists net;

-- Pending requests; the delivery process deletes what it sends.
create unlogged table net.http_request_queue (
  id bigserial,
  method text not null, -- pg_net's domain net.http_method; only net.http_post queues here
  url text not null,
  headers jsonb,
  body bytea,
  timeout_milliseconds int not null
);

-- One row per finished request; id = the request's id.
create unlogged table net._http_response (
  id bigint,
  status_code integer,
  content_type text,
  headers jsonb,
  content text,
  timed_out bool,
  error_msg text,
  created timestamptz not null default now()
);

create index on net._http_response (created);

-- Raises unless the local delivery process (application_name 'spool-pg-net') is connected.
create function net.check_worker_is_up()
returns void
language plpgsql
as $$
begin
  if not exists (
    select 1 from pg_catalog.pg_stat_activity where application_name = 'spool-pg-net'
  ) then
    raise exception using
      message = 'the pg_net background worker is not up',
      hint = 'start the local platform with npm start';
  end if;
end
$$;

create function net.http_post(
  url text,
  body jsonb default '{}'::jsonb,
  params jsonb default '{}'::jsonb,
  headers jsonb default '{"Content-Type": "application/json"}'::jsonb,
  timeout_milliseconds int default 5000
)
returns bigint
language plpgsql
as $$
declare
  request_id bigint;
  content_type text;
begin
  select header_value into content_type
  from jsonb_each_text(coalesce(headers, '{}'::jsonb)) as r(header_name, header_value)
  where lower(header_name) = 'content-type'
  limit 1;

  if content_type is null then
    headers := headers || '{"Content-Type": "application/json"}'::jsonb;
  end if;

  if content_type <> 'application/json' then
    raise exception 'Content-Type header must be "application/json"';
  end if;

  if body is null then
    raise exception 'body must not be null';
  end if;

  if coalesce(params, '{}'::jsonb) <> '{}'::jsonb then
    raise exception 'net.http_post params are not supported by the local pg_net stand-in'
      using hint = 'Spool passes none: put the query string in the url';
  end if;

  insert into net.http_request_queue (method, url, headers, body, timeout_milliseconds)
  values (
    'POST',
    url,
    headers,
    convert_to(body::text, 'UTF8'),
    timeout_milliseconds
  )
  returning id into request_id;

  perform pg_catalog.pg_notify('spool_pg_net', request_id::text);
  return request_id;
end
$$;

grant usage on schema net to public;
grant all on all sequences in schema net to public;
grant all on all tables in schema net to public;
