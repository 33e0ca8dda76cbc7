-- The columns of a job that never leave the server: authenticated may read only the public
-- columns of its own jobs (column privileges, which the Data API and Realtime both apply), and
-- the owner's calls (cancel_job, retry_job) return the server-only columns as null. parent_id
-- is public since 20261203180000_parent_visible.sql (a flow's children are the owner's to list).
begin;
select plan(16);

-- Helpers for acting out behaviour, temporary so they vanish with the session:
--   uid(name) / create_users(names) named test users with fixed uuids, inserted into auth.users
--   authenticate_as(name)           act as that user (role authenticated, their JWT claims)
--   authenticate_as_service_role()  act as the workers and Edge Functions (role service_role)
--   clear_authentication()          back to the connecting role
--   t(offset) / travel_to(at)       the test clock: 2030-01-01 00:00 UTC + offset; spool.now()
--   error_of(sql)                   '<SQLSTATE> <HINT>' of the error sql raises, or 'no error'
create function pg_temp.uid(p_name text) returns uuid language sql immutable
  as $$ select md5('spool-test:' || p_name)::uuid $$;
create function pg_temp.create_users(variadic p_names text[]) returns void language sql
  as $$ insert into auth.users (id, aud, role, email)
        select pg_temp.uid(n), 'authenticated', 'authenticated', n || '@spool.test'
        from unnest(p_names) n $$;
create function pg_temp.authenticate_as(p_name text) returns void language plpgsql as $$
begin
  perform set_config('role', 'authenticated', true);
  perform set_config('request.jwt.claims',
    json_build_object('sub', pg_temp.uid(p_name), 'role', 'authenticated')::text, true);
end $$;
create function pg_temp.authenticate_as_service_role() returns void language plpgsql as $$
begin
  perform set_config('role', 'service_role', true);
  perform set_config('request.jwt.claims', '{"role":"service_role"}', true);
end $$;
create function pg_temp.clear_authentication() returns void language plpgsql as $$
begin
  perform set_config('request.jwt.claims', '', true);
  reset role;
end $$;
create function pg_temp.t(p_offset interval default '0') returns timestamptz language sql immutable
  as $$ select '2030-01-01 00:00:00+00'::timestamptz + p_offset $$;
create function pg_temp.travel_to(p_at timestamptz) returns void language sql
  as $$ select set_config('spool.now', p_at::text, true) $$;
create function pg_temp.error_of(p_sql text) returns text language plpgsql as $$
declare
  v_state text;
  v_hint text;
begin
  execute p_sql;
  return 'no error';
exception when others then
  get stacked diagnostics v_state = returned_sqlstate, v_hint = pg_exception_hint;
  return v_state || ' ' || coalesce(nullif(v_hint, ''), '-');
end $$;
grant execute on all functions in schema pg_temp to authenticated, service_role;

select pg_temp.create_users('alice');
select pg_temp.travel_to(pg_temp.t());

select is(
  (select array_agg(a.attname::text order by a.attnum) from pg_attribute a
    where a.attrelid = 'public.jobs'::regclass and a.attnum > 0 and not a.attisdropped
      and has_column_privilege('authenticated', a.attrelid, a.attnum, 'SELECT')),
  array['id', 'user_id', 'type', 'status', 'priority', 'input', 'output', 'progress', 'step', 'error',
        'attempts', 'max_attempts', 'run_at', 'parent_id', 'created_at', 'started_at', 'finished_at',
        'updated_at', 'history'],
  'authenticated may select exactly the public columns of jobs');
select is(
  (select array_agg(a.attname::text order by a.attnum) from pg_attribute a
    where a.attrelid = 'public.jobs'::regclass and a.attnum > 0 and not a.attisdropped
      and not has_column_privilege('service_role', a.attrelid, a.attnum, 'SELECT')),
  null, 'service_role still selects every column');

-- alice's job, running under a lease, created with an idempotency key.
select pg_temp.authenticate_as_service_role();
select id as job from public.create_job(pg_temp.uid('alice'), 'roto', '{"n": 1}', 0, 3, null, 'key-1') \gset
select lease_token as token from public.claim_jobs('worker-1', 1) \gset

select pg_temp.authenticate_as('alice');
select throws_ok(format('select lease_token from public.jobs where id = %L', :'job'), '42501',
  'permission denied for table jobs', 'an owner cannot read the lease token of her job');
select throws_ok(format('select worker_id from public.jobs where id = %L', :'job'), '42501',
  'permission denied for table jobs', 'an owner cannot read which worker runs her job');
select throws_ok(format('select fair_at from public.jobs where id = %L', :'job'), '42501',
  'permission denied for table jobs', 'an owner cannot read the fair-queueing slot of her job');
select throws_ok(format('select idempotency_key from public.jobs where id = %L', :'job'), '42501',
  'permission denied for table jobs', 'an owner cannot read the idempotency key of her job');
select throws_ok(format('select * from public.jobs where id = %L', :'job'), '42501',
  'permission denied for table jobs', 'select * is refused (PostgREST''s select=* too)');
select throws_ok(format('select id from public.jobs where worker_id = %L', 'worker-1'), '42501',
  'permission denied for table jobs', 'nor can she filter on a server-only column');
select is(
  (select jsonb_build_object('status', status, 'attempts', attempts) from public.jobs where id = :'job'),
  '{"status": "running", "attempts": 1}'::jsonb,
  'she reads the public columns of her job');

-- A flow of hers: she finds its children by parent_id (the jobs API's GET /jobs?parent=<id>).
select pg_temp.authenticate_as_service_role();
select id as parent from public.create_flow(pg_temp.uid('alice'), 'pack', '{}',
  '[{"type": "image", "input": {"n": 1}}, {"type": "text", "input": {"n": 2}}]') limit 1 \gset
select pg_temp.authenticate_as('alice');
select is((select count(*)::integer from public.jobs where parent_id = :'parent'), 2,
  'she filters her jobs on parent_id: a flow''s children');
select is((select parent_id from public.jobs where parent_id = :'parent' limit 1), :'parent'::uuid,
  'and reads which flow a job belongs to');

select is(
  (select jsonb_build_object('status', status, 'lease_token', lease_token, 'worker_id', worker_id,
                             'fair_at', fair_at, 'idempotency_key', idempotency_key,
                             'lease_expires_at', lease_expires_at, 'external_id', external_id)
   from public.cancel_job(:'job')),
  '{"status": "cancelled", "lease_token": null, "worker_id": null, "fair_at": null, "idempotency_key": null, "lease_expires_at": null, "external_id": null}'::jsonb,
  'cancel_job returns her job without its server-only columns');
select pg_temp.authenticate_as_service_role();
select is((select jsonb_build_object('worker_id', worker_id, 'idempotency_key', idempotency_key)
           from public.jobs where id = :'job'),
  '{"worker_id": "worker-1", "idempotency_key": "key-1"}'::jsonb,
  'while the row keeps them');
select pg_temp.authenticate_as('alice');
select is(
  (select jsonb_build_object('status', status, 'fair_at', fair_at, 'idempotency_key', idempotency_key)
   from public.retry_job(:'job')),
  '{"status": "pending", "fair_at": null, "idempotency_key": null}'::jsonb,
  'retry_job returns her job without its server-only columns');
select pg_temp.authenticate_as_service_role();
select is((select fair_at from public.retry_job(:'job')), null,
  'service_role calls get the same owner''s view: fair_at null');
select pg_temp.clear_authentication();
select is(
  (select array_agg(p.proname::text order by p.proname) from pg_proc p
    where p.pronamespace = 'spool'::regnamespace and p.proname in ('cancel_job', 'retry_job', 'owner_view')
      and (has_function_privilege('authenticated', p.oid, 'EXECUTE')
           or has_function_privilege('anon', p.oid, 'EXECUTE')
           or has_function_privilege('service_role', p.oid, 'EXECUTE'))),
  null, 'the wrapped state changes in spool are executable by no API role');

select * from finish();
rollback;
