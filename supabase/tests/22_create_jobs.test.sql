-- create_jobs: many jobs in one call, with create_job's rules: validation naming the element,
-- all or nothing, idempotency keys, quotas counting the whole batch, the same fair slots.
-- Acted out by job creators (service_role); concurrency is in local/tools/tests/queue-two-sessions.
begin;
select plan(23);

-- Helpers for acting out behaviour, temporary so they vanish with the session:
--   uid(name) / create_users(names) named test users with fixed uuids, inserted into auth.users
--   authenticate_as(name)           act as that user (role authenticated, their JWT claims)
--   authenticate_as_service_role()  act as the workers and Edge Functions (role service_role)
--   clear_authentication()          back to the connecting role
--   t(offset) / travel_to(at)       the test clock: 2030-01-01 00:00 UTC + offset; spool.now()
--   error_of(sql)                   '<SQLSTATE> <HINT>' of the error sql raises, or 'no error'
--   detail_of(sql)                  the DETAIL (jsonb) and message of the error sql raises
--   spec(name, extra)               one job description for create_jobs: {user_id, type noop} || extra
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
create function pg_temp.detail_of(p_sql text) returns jsonb language plpgsql as $$
declare
  v_detail text;
  v_message text;
begin
  execute p_sql;
  return null;
exception when others then
  get stacked diagnostics v_detail = pg_exception_detail, v_message = message_text;
  return coalesce(nullif(v_detail, ''), '{}')::jsonb || jsonb_build_object('message', v_message);
end $$;
create function pg_temp.spec(p_name text, p_extra jsonb default '{}') returns jsonb language sql immutable
  as $$ select jsonb_build_object('user_id', pg_temp.uid(p_name), 'type', 'noop') || p_extra $$;
grant execute on all functions in schema pg_temp to authenticated, service_role;


select pg_temp.create_users('alice', 'bob', 'carol', 'dave');
select pg_temp.travel_to(pg_temp.t());
select pg_temp.authenticate_as_service_role();

-- Many jobs, one call --------------------------------------------------------------------------------

create temporary table batch as
select row_number() over () - 1 as n, j.*
from public.create_jobs(jsonb_build_array(
  pg_temp.spec('alice'),
  pg_temp.spec('bob', '{"type": "image", "input": {"prompt": "a fox"}, "priority": 5, "max_attempts": 7, "cpu_ms": 40}'),
  pg_temp.spec('alice', '{"run_at": "2030-01-01T01:00:00Z"}'),
  pg_temp.spec('alice', '{"input": null, "priority": null}'))) j;

select results_eq(
  $$select n::integer, user_id, type, status::text, input, priority::integer, max_attempts, run_at, cpu_ms, attempts
      from batch order by n$$,
  $$values (0, pg_temp.uid('alice'), 'noop', 'pending', '{}'::jsonb, 0, 3, pg_temp.t(), 0, 0),
           (1, pg_temp.uid('bob'), 'image', 'pending', '{"prompt": "a fox"}'::jsonb, 5, 7, pg_temp.t(), 40, 0),
           (2, pg_temp.uid('alice'), 'noop', 'pending', '{}'::jsonb, 0, 3, pg_temp.t('1 hour'), 0, 0),
           (3, pg_temp.uid('alice'), 'noop', 'pending', '{}'::jsonb, 0, 3, pg_temp.t(), 0, 0)$$,
  'create_jobs returns one pending job per description, in order, with create_job''s defaults for what is missing or null');
select is((select count(*) from public.jobs), 4::bigint, 'and writes exactly those jobs');

-- Fair slots as create_job gives them one by one: carol gets the batch, dave the same calls.
select is(
  array(select j.fair_at - pg_temp.t() from public.create_jobs(jsonb_build_array(
          pg_temp.spec('carol'), pg_temp.spec('carol', '{"run_at": "2030-01-01T00:00:30Z"}'),
          pg_temp.spec('carol'), pg_temp.spec('carol', '{"run_at": "2029-12-31T23:59:00Z"}'),
          pg_temp.spec('carol'))) j),
  array[(select fair_at - pg_temp.t() from public.create_job(pg_temp.uid('dave'), 'noop')),
        (select fair_at - pg_temp.t() from public.create_job(pg_temp.uid('dave'), 'noop', p_run_at => pg_temp.t('30 seconds'))),
        (select fair_at - pg_temp.t() from public.create_job(pg_temp.uid('dave'), 'noop')),
        (select fair_at - pg_temp.t() from public.create_job(pg_temp.uid('dave'), 'noop', p_run_at => pg_temp.t('-1 minute'))),
        (select fair_at - pg_temp.t() from public.create_job(pg_temp.uid('dave'), 'noop'))],
  'a user''s jobs in one batch take the same fair slots as the same create_job calls one by one');
select pg_temp.clear_authentication();
select is((select fair_at from spool.user_slots where user_id = pg_temp.uid('carol')),
          (select fair_at from spool.user_slots where user_id = pg_temp.uid('dave')),
  'and leave the user''s next slot where those calls leave it');
select pg_temp.authenticate_as_service_role();

-- Refusals: all or nothing, naming the element ------------------------------------------------------

create temporary table before_refusals as select count(*) as n from public.jobs;
select is(pg_temp.error_of($$ select public.create_jobs('{"user_id": "x"}') $$),
  'PT400 invalid_argument', 'an argument that is not an array is refused');
select is(pg_temp.error_of($$ select public.create_jobs('[]') $$),
  'PT400 invalid_argument', 'an empty array is refused');
select is(pg_temp.detail_of($$ select public.create_jobs((select jsonb_agg(pg_temp.spec('alice')) from generate_series(1, 1001))) $$),
  '{"count": 1001, "message": "jobs must hold 1 to 1000 job descriptions"}'::jsonb,
  'more than 1000 descriptions are refused');
select is(
  array(select pg_temp.detail_of(format('select public.create_jobs(%L)', jsonb_build_array(pg_temp.spec('alice'), bad)))
        from unnest(array[
          '"a string"'::jsonb,
          pg_temp.spec('alice', '{"colour": "red"}'),
          '{"type": "noop"}'::jsonb,
          pg_temp.spec('alice', '{"user_id": "not-a-uuid"}'),
          pg_temp.spec('alice', '{"type": "Color Grade"}'),
          pg_temp.spec('alice', '{"input": [1, 2]}'),
          pg_temp.spec('alice', jsonb_build_object('input', jsonb_build_object('blob', repeat('x', 65536)))),
          pg_temp.spec('alice', '{"priority": 101}'),
          pg_temp.spec('alice', '{"priority": 1.5}'),
          pg_temp.spec('alice', '{"priority": "5"}'),
          pg_temp.spec('alice', '{"max_attempts": 0}'),
          pg_temp.spec('alice', '{"max_attempts": 1e30}'),
          pg_temp.spec('alice', '{"cpu_ms": -1}'),
          pg_temp.spec('alice', '{"idempotency_key": ""}'),
          pg_temp.spec('alice', '{"idempotency_key": 42}'),
          pg_temp.spec('alice', '{"parent_id": "p"}'),
          pg_temp.spec('alice', '{"run_at": "tomorrow-ish"}'),
          pg_temp.spec('alice', '{"run_at": "infinity"}'),
          pg_temp.spec('alice', '{"run_at": 1700000000}')]) bad),
  array[
    '{"index": 1, "message": "job 1: each job must be a JSON object"}'::jsonb,
    '{"index": 1, "message": "job 1: unknown field colour"}',
    '{"index": 1, "message": "job 1: user_id is required and must be a uuid"}',
    '{"index": 1, "message": "job 1: user_id is required and must be a uuid"}',
    '{"index": 1, "message": "job 1: type must be a lowercase slug like \"color-grade\""}',
    '{"index": 1, "message": "job 1: input must be a JSON object"}',
    '{"index": 1, "message": "job 1: input must be at most 64 KiB of JSON"}',
    '{"index": 1, "message": "job 1: priority must be between -100 and 100"}',
    '{"index": 1, "message": "job 1: priority must be between -100 and 100"}',
    '{"index": 1, "message": "job 1: priority must be between -100 and 100"}',
    '{"index": 1, "message": "job 1: max_attempts must be between 1 and 25"}',
    '{"index": 1, "message": "job 1: max_attempts must be between 1 and 25"}',
    '{"index": 1, "message": "job 1: cpu_ms must be between 0 and 3600000"}',
    '{"index": 1, "message": "job 1: idempotency key must be 1 to 200 characters"}',
    '{"index": 1, "message": "job 1: idempotency key must be 1 to 200 characters"}',
    '{"index": 1, "message": "job 1: parent_id must be a uuid"}',
    '{"index": 1, "message": "job 1: run_at must be a timestamp with a time zone, like \"2030-01-01T00:00:00Z\""}',
    '{"index": 1, "message": "job 1: run_at must be a timestamp with a time zone, like \"2030-01-01T00:00:00Z\""}',
    '{"index": 1, "message": "job 1: run_at must be a timestamp with a time zone, like \"2030-01-01T00:00:00Z\""}'],
  'each invalid description is refused with create_job''s message and its index, the valid one before it notwithstanding');
select is(pg_temp.error_of(format('select public.create_jobs(%L)',
            jsonb_build_array(pg_temp.spec('alice'), pg_temp.spec('nobody')))),
  'PT404 user_not_found', 'a job for an unknown user is refused as not found');
select is(pg_temp.detail_of(format('select public.create_jobs(%L)',
            jsonb_build_array(pg_temp.spec('alice'), pg_temp.spec('bob', jsonb_build_object('parent_id', (select id from batch where n = 0)))))),
  '{"index": 1, "message": "job 1: parent job not found"}'::jsonb,
  'a parent that belongs to another user is refused as not found');
select is((select count(*) from public.jobs), (select n from before_refusals),
  'refused batches write nothing, not even their valid jobs');

-- Idempotency keys ------------------------------------------------------------------------------------

select id as keyed from public.create_job(pg_temp.uid('alice'), 'image', '{"prompt": "a fox"}',
                                          p_idempotency_key => 'upload-42') \gset
create temporary table keyed_batch as
select row_number() over () - 1 as n, j.id
from public.create_jobs(jsonb_build_array(
  pg_temp.spec('alice', '{"type": "image", "input": {"prompt": "a fox"}, "idempotency_key": "upload-42"}'),
  pg_temp.spec('alice', '{"idempotency_key": "fresh"}'),
  pg_temp.spec('alice', '{"idempotency_key": "fresh"}'),
  pg_temp.spec('bob', '{"type": "image", "input": {"prompt": "a fox"}, "idempotency_key": "upload-42"}'))) j;
select is((select id from keyed_batch where n = 0), :'keyed'::uuid,
  'a description whose key exists for the same job returns that job');
select is((select id from keyed_batch where n = 2), (select id from keyed_batch where n = 1),
  'a description repeating an earlier one''s key and job returns the same job');
select is((select count(*) from public.jobs where idempotency_key in ('upload-42', 'fresh')), 3::bigint,
  'a key names one job per user: alice''s upload-42 and fresh, bob''s upload-42');
select is(pg_temp.detail_of(format('select public.create_jobs(%L)', jsonb_build_array(
            pg_temp.spec('alice', '{"type": "image", "input": {"prompt": "a cat"}, "idempotency_key": "upload-42"}')))),
  jsonb_build_object('index', 0, 'job_id', :'keyed'::uuid,
                     'message', 'job 0: this idempotency key was already used for a different job'),
  'a key already used for a different job is a conflict naming that job');
select is(pg_temp.error_of(format('select public.create_jobs(%L)', jsonb_build_array(
            pg_temp.spec('bob', '{"idempotency_key": "twice", "input": {"n": 1}}'),
            pg_temp.spec('bob', '{"idempotency_key": "twice", "input": {"n": 2}}')))),
  'PT409 idempotency_conflict', 'one key for two different jobs in one batch is a conflict');

-- Quotas: the whole batch counts, and replayed keys do not ------------------------------------------

update spool.settings set max_active_jobs_per_user = 5;
select is((select count(*) from public.jobs where user_id = pg_temp.uid('bob') and status = 'pending'), 2::bigint,
  'bob has two active jobs');
select is(pg_temp.detail_of(format('select public.create_jobs(%L)',
            (select jsonb_agg(pg_temp.spec('bob')) from generate_series(1, 4)))),
  jsonb_build_object('user_id', pg_temp.uid('bob'), 'active', 2, 'requested', 4, 'limit', 5,
                     'message', 'too many active jobs: 2 active and 4 more requested, 5 allowed'),
  'a batch that would take a user past max_active_jobs_per_user is refused whole');
select is((select count(*) from public.create_jobs(
            (select jsonb_agg(pg_temp.spec('bob')) from generate_series(1, 3))
            || jsonb_build_array(pg_temp.spec('bob', '{"type": "image", "input": {"prompt": "a fox"}, "idempotency_key": "upload-42"}')))),
  4::bigint, 'a batch that fills the quota exactly is accepted; its replayed key counts for nothing');
update spool.settings set max_active_jobs_per_user = 100, max_jobs_per_minute_per_user = 10;
select is(pg_temp.error_of(format('select public.create_jobs(%L)',
            (select jsonb_agg(pg_temp.spec('carol')) from generate_series(1, 6)))),
  'PT429 quota_rate', 'carol created 5 jobs this minute: 6 more would pass 10 a minute');
select is((select count(*) from public.create_jobs((select jsonb_agg(pg_temp.spec('carol')) from generate_series(1, 5)))),
  5::bigint, '5 more fill her minute exactly');
select pg_temp.travel_to(pg_temp.t('61 seconds'));
select lives_ok(format('select public.create_jobs(%L)', (select jsonb_agg(pg_temp.spec('carol')) from generate_series(1, 10))),
  'a minute later she may create 10 again');
update spool.settings set max_jobs_per_minute_per_user = 60;

-- Who may call it --------------------------------------------------------------------------------------

select pg_temp.authenticate_as('alice');
select throws_ok(format('select public.create_jobs(%L)', jsonb_build_array(pg_temp.spec('alice'))), '42501',
  'permission denied for function create_jobs', 'a user cannot create jobs directly, even their own');

select * from finish();
rollback;
