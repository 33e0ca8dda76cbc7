-- spool-stand-in
-- Spool's local stand-in for Supabase's pg_net (0.20 SQL API).
--
-- Same schema, tables and signatures as the real extension for what Spool uses (net.http_post,
-- net._http_response, net.check_worker_is_up); http_get, http_delete and the response collectors
-- are not here. What differs:
--   * There is no background worker in the database. Each request function inserts into
--     net.http_request_queue and calls pg_notify('spool_pg_net', <request id>). NOTIFY is
--     delivered at COMMIT and dropped on ROLLBACK, like pg_net's wake-at-commit, so a local
--     delivery process that LISTENs on 'spool_pg_net' (application_name 'spool-pg-net') can
--     drain the queue and write net._http_response rows the way the worker does.
--   * URL encoding is done in SQL instead of C (same unreserved set as curl_easy_escape).
--   * Grants and security are the real extension's (pg_net >= 0.12, supabase/pg_net
--     sql/pg_net.sql): every function is SECURITY INVOKER and keeps the default EXECUTE for
--     PUBLIC, and PUBLIC may use schema net and all of its tables and sequences (an invoker
--     queues a request by inserting into net.http_request_queue). local/standins/sql/bootstrap.sql adds
--     what Supabase's grant_pg_net_access() grants.

\echo Use "CREATE EXTENSION pg_net" to load this file. \quit

create schema if not exists net;

create domain net.http_method as text
check (
  value ilike 'get'
  or value ilike 'post'
  or value ilike 'delete'
);

-- Pending requests; the delivery process deletes what it sends.
create unlogged table net.http_request_queue (
  id bigserial,
  method net.http_method not null,
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
      detail = 'Spool local stand-in: no process with application_name spool-pg-net is connected',
      hint = 'start the local platform with npm start';
  end if;
end
$$;

-- Percent-encodes everything but the unreserved characters A-Z a-z 0-9 - . _ ~
create function net._urlencode_string(string varchar)
returns text
language sql
immutable
strict
as $$
  select coalesce(
    string_agg(
      case
        when b between 48 and 57 or b between 65 and 90 or b between 97 and 122
          or b in (45, 46, 95, 126)
        then chr(b)
        else '%' || upper(lpad(to_hex(b), 2, '0'))
      end,
      '' order by i),
    '')
  from (
    select i, get_byte(convert_to(string, 'UTF8'), i) as b
    from generate_series(0, octet_length(convert_to(string, 'UTF8')) - 1) as i
  ) as bytes
$$;

create function net._encode_url_with_params_array(url text, params_array text[])
returns text
language sql
immutable
as $$
  select case
    when coalesce(cardinality(params_array), 0) = 0 then url
    else url || case when strpos(url, '?') > 0 then '&' else '?' end
             || array_to_string(params_array, '&')
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
  params_array text[];
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

  select coalesce(array_agg(net._urlencode_string(key) || '=' || net._urlencode_string(value)), '{}')
  into params_array
  from jsonb_each_text(params);

  insert into net.http_request_queue (method, url, headers, body, timeout_milliseconds)
  values (
    'POST',
    net._encode_url_with_params_array(url, params_array),
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
