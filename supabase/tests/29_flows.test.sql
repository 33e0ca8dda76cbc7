-- Flows: dependencies, fan-out, fan-in exactly once, fail_fast and partial policies, cancel and
-- retry cascades, quotas and fairness over a whole flow, and RLS (20261203160000_flows.sql).
-- The same finish in two real sessions at once: local/tools/tests/flows-two-sessions.test.mjs.
begin;
select plan(57);

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
--   owners_part(row jsonb)          a job row without the columns authenticated may not select
create function pg_temp.owners_part(p_row jsonb) returns jsonb language sql stable as $$
  select p_row - coalesce(array_agg(a.attname::text), '{}') from pg_attribute a
   where a.attrelid = 'public.jobs'::regclass and a.attnum > 0 and not a.attisdropped
     and not has_column_privilege('authenticated', a.attrelid, a.attnum, 'SELECT') $$;

-- Flow helpers: each scenario uses its own job types, so a claim takes exactly its jobs.
--   flow(sql)              the ids create_flow returned, in order (parent first), as uuid[]
--   claim(type, n)         claim up to n pending jobs of that type as worker-1; how many
--   complete(id, output)   complete a running job with its current lease
--   fail(id, message[, retryable])  fail a running job (by default not retryable); a job
--                          created with max_attempts 1 fails for good either way
--   st(id)                 a job's status
--   notes(id)              how many notifications a job has
create function pg_temp.flow(p_sql text) returns uuid[] language plpgsql as $$
declare v uuid[];
begin
  execute 'select array_agg(f.id order by f.ordinality) from ' || p_sql || ' with ordinality f' into v;
  return v;
end $$;
create function pg_temp.claim(p_type text, p_n integer default 100) returns integer language sql as $$
  select count(*)::integer from public.claim_jobs('worker-1', p_n, p_types => array[p_type]) $$;
create function pg_temp.complete(p_id uuid, p_output jsonb default '{}') returns void language sql as $$
  select from public.complete_job(p_id, (select j.lease_token from public.jobs j where j.id = p_id), p_output) $$;
create function pg_temp.fail(p_id uuid, p_message text, p_retryable boolean default false) returns void language sql as $$
  select from public.fail_job(p_id, (select j.lease_token from public.jobs j where j.id = p_id),
                              jsonb_build_object('message', p_message), p_retryable) $$;
create function pg_temp.st(p_id uuid) returns text language sql as $$
  select status::text from public.jobs where id = p_id $$;
create function pg_temp.notes(p_id uuid) returns integer language sql as $$
  select count(*)::integer from public.notifications where job_id = p_id $$;
grant execute on all functions in schema pg_temp to authenticated, service_role;

select pg_temp.create_users('alice', 'bob', 'carol', 'dave', 'erin');
select pg_temp.travel_to(pg_temp.t());
select pg_temp.authenticate_as_service_role();

-- Fan-out ------------------------------------------------------------------------------------------

select pg_temp.flow(format($$public.create_flow(%L, 'pack', '{"prompt": "a lamp"}',
  '[{"type": "fo-img", "input": {"view": 0}}, {"type": "fo-img", "input": {"view": 1}},
    {"type": "fo-txt", "input": {"view": 2}}]')$$, pg_temp.uid('alice'))) as fo \gset
select is((select array_agg(status::text || ':' || type || ':' || coalesce(input ->> 'view', '-') || ':'
                            || (parent_id is not distinct from (:'fo'::uuid[])[1])::text
                            order by array_position(:'fo'::uuid[], id))
           from public.jobs where id = any(:'fo'::uuid[])),
  array['waiting:pack:-:false', 'pending:fo-img:0:true', 'pending:fo-img:1:true', 'pending:fo-txt:2:true'],
  'create_flow creates the parent waiting and its children pending, parent first, children in order');
select is(pg_temp.claim('pack'), 0, 'a flow parent is never claimed');

-- An idempotency key (the parent's) returns the flow it created instead of a second one.
select pg_temp.flow(format($$public.create_flow(%L, 'pack', '{"prompt": "p"}', '[{"type": "idem"}, {"type": "idem"}]',
  p_idempotency_key => 'pack-1')$$, pg_temp.uid('carol'))) as idem \gset
select is(pg_temp.flow(format($$public.create_flow(%L, 'pack', '{"prompt": "p"}', '[{"type": "idem"}, {"type": "idem"}]',
  p_idempotency_key => 'pack-1')$$, pg_temp.uid('carol'))), :'idem'::uuid[],
  'the same idempotency key returns the existing parent and children, in order');
select is((select count(*)::integer from public.jobs where user_id = pg_temp.uid('carol')), 3, 'and creates nothing');
select is(pg_temp.error_of(format($$select public.create_flow(%L, 'pack', '{"prompt": "q"}', '[]', p_idempotency_key => 'pack-1')$$,
  pg_temp.uid('carol'))), 'PT409 idempotency_conflict', 'the same key with another input is a conflict');

-- Fan-in ---------------------------------------------------------------------------------------------

select pg_temp.claim('fo-img');
select pg_temp.claim('fo-txt');
select pg_temp.complete((:'fo'::uuid[])[4], '{"text": "A+ copy"}');
select pg_temp.complete((:'fo'::uuid[])[2], '{"path": "outputs/v0.png"}');
select is(pg_temp.st((:'fo'::uuid[])[1]), 'waiting', 'the parent waits while a child has not ended');
select pg_temp.complete((:'fo'::uuid[])[3], '{"path": "outputs/v1.png"}');
select is(pg_temp.st((:'fo'::uuid[])[1]), 'done', 'the last child''s completion finishes the parent');
select is((select output from public.jobs where id = (:'fo'::uuid[])[1]),
  jsonb_build_object('children', jsonb_build_array(
      jsonb_build_object('index', 0, 'id', (:'fo'::uuid[])[2], 'type', 'fo-img', 'status', 'done', 'output', '{"path": "outputs/v0.png"}'::jsonb),
      jsonb_build_object('index', 1, 'id', (:'fo'::uuid[])[3], 'type', 'fo-img', 'status', 'done', 'output', '{"path": "outputs/v1.png"}'::jsonb),
      jsonb_build_object('index', 2, 'id', (:'fo'::uuid[])[4], 'type', 'fo-txt', 'status', 'done', 'output', '{"text": "A+ copy"}'::jsonb)),
    'done', 3, 'failed', 0, 'cancelled', 0),
  'the parent''s output aggregates the children''s in creation order, whatever order they ended in');
select is(pg_temp.notes((:'fo'::uuid[])[1]), 1, 'the parent finished once: one notification');

-- The last two children completed in one complete_jobs call: the parent finishes once.
select pg_temp.flow(format($$public.create_flow(%L, 'pack', '{}',
  '[{"type": "fi2"}, {"type": "fi2"}]')$$, pg_temp.uid('alice'))) as fi \gset
select pg_temp.claim('fi2');
select count(*) from public.complete_jobs((select jsonb_agg(jsonb_build_object('id', id, 'lease_token', lease_token, 'output', '{}'::jsonb))
                                           from public.jobs where id = any(:'fi'::uuid[])));
select is(pg_temp.st((:'fi'::uuid[])[1]) || ':' || pg_temp.notes((:'fi'::uuid[])[1]), 'done:1',
  'two last children ended in one statement finish the parent once');

-- Dependencies ---------------------------------------------------------------------------------------

select id as dep_a from public.create_job(pg_temp.uid('alice'), 'dep-a', '{"n": 1}') \gset
select pg_temp.flow(format($$public.create_flow(%L, 'dep-b', '{"n": 2}', p_depends_on => array[%L]::uuid[])$$,
  pg_temp.uid('alice'), :'dep_a')) as dep_b \gset
select is(pg_temp.st((:'dep_b'::uuid[])[1]), 'waiting', 'a job whose dependency is not done is created waiting');
select is(pg_temp.claim('dep-b'), 0, 'a job waiting on its dependencies is not claimable');
select pg_temp.claim('dep-a');
-- The doorbell is set up to ring (Vault secrets, no debounce), so a release is seen ringing.
select pg_temp.clear_authentication();
select vault.create_secret('http://127.0.0.1:54321', 'spool_project_url');
select vault.create_secret('spool-test-worker-secret', 'spool_worker_secret');
update spool.doorbell set rung_at = '-infinity', rings = 0, skipped = null;
select pg_temp.authenticate_as_service_role();
select pg_temp.complete(:'dep_a', '{"path": "outputs/a.png"}');
select is(pg_temp.st((:'dep_b'::uuid[])[1]), 'pending', 'its last dependency done, the job is pending at once');
select is((select rings from spool.doorbell), 1::bigint, 'the release rang the doorbell');
select is((select dependency_outputs from public.jobs where id = (:'dep_b'::uuid[])[1]),
  jsonb_build_array(jsonb_build_object('id', :'dep_a'::uuid, 'type', 'dep-a', 'status', 'done',
                                       'output', '{"path": "outputs/a.png"}'::jsonb)),
  'the released job receives its dependencies'' outputs in dependency_outputs');
select is((select count(*)::integer from public.claim_jobs('worker-1', 10, p_types => array['dep-b'])
           where dependency_outputs -> 0 ->> 'status' = 'done'), 1,
  'claim_jobs hands the worker the outputs with the job');

-- A job that depends on a whole flow runs when the flow's parent is done, with its aggregate.
select pg_temp.flow(format($$public.create_flow(%L, 'pack', '{}', '[{"type": "after-a"}]')$$, pg_temp.uid('alice'))) as af \gset
select pg_temp.flow(format($$public.create_flow(%L, 'after-b', '{}', p_depends_on => array[%L]::uuid[])$$,
  pg_temp.uid('alice'), (:'af'::uuid[])[1])) as af_next \gset
select pg_temp.claim('after-a');
select pg_temp.complete((:'af'::uuid[])[2], '{"img": 1}');
select is((select status::text || ' ' || (dependency_outputs -> 0 -> 'output' ->> 'done')
                  || ' ' || (dependency_outputs -> 0 -> 'output' -> 'children' -> 0 -> 'output' ->> 'img')
           from public.jobs where id = (:'af_next'::uuid[])[1]),
  'pending 1 1', 'a job depending on a flow is released when the flow is done, with the flow''s aggregated output');

-- Within a flow: a child that depends on an earlier child (two dependencies, released by the last).
select pg_temp.flow(format($$public.create_flow(%L, 'dag', '{}',
  '[{"type": "dag-a"}, {"type": "dag-a"}, {"type": "dag-c", "depends_on": [1, 0]}]')$$, pg_temp.uid('alice'))) as dag \gset
select is(pg_temp.st((:'dag'::uuid[])[4]), 'waiting', 'a child depending on siblings is created waiting');
select pg_temp.claim('dag-a');
select pg_temp.complete((:'dag'::uuid[])[2], '{"k": "first"}');
select is(pg_temp.st((:'dag'::uuid[])[4]), 'waiting', 'one dependency of two done: still waiting');
select pg_temp.complete((:'dag'::uuid[])[3], '{"k": "second"}');
select is((select status::text || ':' || (dependency_outputs -> 0 -> 'output' ->> 'k') || ',' || (dependency_outputs -> 1 -> 'output' ->> 'k')
           from public.jobs where id = (:'dag'::uuid[])[4]),
  'pending:second,first', 'the last one done releases it, outputs in the order depends_on named them');

-- A dependency that fails cancels its dependent, naming it; with on_dependency_failure run, it runs.
select id as dep_f from public.create_job(pg_temp.uid('alice'), 'dep-f', '{}', null, 1) \gset
select pg_temp.flow(format($$public.create_flow(%L, 'dep-g', '{}', p_depends_on => array[%L]::uuid[])$$,
  pg_temp.uid('alice'), :'dep_f')) as dep_g \gset
select pg_temp.flow(format($$public.create_flow(%L, 'dep-h', '{}', p_depends_on => array[%L]::uuid[],
  p_on_dependency_failure => 'run')$$, pg_temp.uid('alice'), :'dep_f')) as dep_h \gset
select pg_temp.claim('dep-f');
select pg_temp.fail(:'dep_f', 'model refused', true);
select is((select status::text || ' ' || (error ->> 'code') || ' ' || (error ->> 'dependency_id')
                  || ' ' || (position(:'dep_f' in error ->> 'message') > 0)::text
           from public.jobs where id = (:'dep_g'::uuid[])[1]),
  'cancelled dependency_failed ' || :'dep_f' || ' true',
  'a failed dependency cancels its dependent, and the error names the dependency');
select is((select status::text || ' ' || (dependency_outputs -> 0 -> 'error' ->> 'message')
           from public.jobs where id = (:'dep_h'::uuid[])[1]),
  'pending model refused', 'with on_dependency_failure run, the dependent runs and gets the error');
select is(pg_temp.error_of(format($$select public.create_flow(%L, 'dep-i', '{}', p_depends_on => array[%L]::uuid[])$$,
  pg_temp.uid('alice'), :'dep_f')), 'PT409 dependency_failed', 'a dependency that already failed is refused');
select is(pg_temp.error_of(format($$select public.retry_job(%L)$$, (:'dep_g'::uuid[])[1])), 'PT409 dependency_failed',
  'retrying a dependent whose dependency failed asks for the dependency to be retried first');
select public.retry_job(:'dep_f');
select public.retry_job((:'dep_g'::uuid[])[1]);
select is(pg_temp.st((:'dep_g'::uuid[])[1]), 'waiting', 'once the dependency is retried, the dependent retried waits again');

-- fail_fast --------------------------------------------------------------------------------------------

select pg_temp.flow(format($$public.create_flow(%L, 'pack', '{}',
  '[{"type": "ff-a"}, {"type": "ff-b"}, {"type": "ff-c"}, {"type": "ff-d", "depends_on": [2]}]')$$, pg_temp.uid('alice'))) as ff \gset
select pg_temp.claim('ff-a');
select pg_temp.claim('ff-b');
select lease_token as ff_b_token from public.jobs where id = (:'ff'::uuid[])[3] \gset
select pg_temp.fail((:'ff'::uuid[])[2], 'provider 500');
select is((select array_agg(status::text order by array_position(:'ff'::uuid[], id)) from public.jobs where id = any(:'ff'::uuid[])),
  array['failed', 'failed', 'cancelled', 'cancelled', 'cancelled'],
  'fail_fast: a failed child fails the parent and cancels its running, pending and waiting siblings');
select is((select (error ->> 'code') || ' ' || (error ->> 'child_index') || ' ' || (error ->> 'message')
           from public.jobs where id = (:'ff'::uuid[])[1]),
  'child_failed 0 child 0 (ff-a) failed: provider 500', 'the parent''s error names the failed child');
select is((select (output ->> 'failed') || ' ' || (output ->> 'cancelled') || ' ' || (output -> 'children' -> 1 -> 'error' ->> 'code')
           from public.jobs where id = (:'ff'::uuid[])[1]),
  '1 3 cancelled', 'the failed parent''s output reports every child, siblings as cancelled');
select is(pg_temp.error_of(format($$select public.heartbeat_job(%L, %L)$$, (:'ff'::uuid[])[3], :'ff_b_token')),
  'PT409 lease_lost', 'a cancelled running sibling''s worker learns at its next heartbeat');
select is(pg_temp.notes((:'ff'::uuid[])[1]), 1, 'the failed parent is notified once');

-- Retrying the parent retries only its failed and cancelled children and waits again.
select pg_temp.flow(format($$public.create_flow(%L, 'pack', '{}',
  '[{"type": "rt-a"}, {"type": "rt-b", "max_attempts": 1}, {"type": "rt-c"}]')$$, pg_temp.uid('alice'))) as rt \gset
select pg_temp.claim('rt-a');
select pg_temp.complete((:'rt'::uuid[])[2], '{"kept": true}');
select pg_temp.claim('rt-b');
select pg_temp.fail((:'rt'::uuid[])[3], 'boom', true);
select pg_temp.authenticate_as('alice');
select is((public.retry_job((:'rt'::uuid[])[1])).status::text, 'waiting', 'the owner retries the failed parent: waiting again');
select pg_temp.authenticate_as_service_role();
select is((select array_agg(status::text || ':' || coalesce(output ->> 'kept', '-') order by array_position(:'rt'::uuid[], id))
           from public.jobs where id = any(:'rt'::uuid[])),
  array['waiting:-', 'done:true', 'pending:-', 'pending:-'],
  'only the failed and cancelled children run again; the done one keeps its output');
select pg_temp.claim('rt-b');
select pg_temp.claim('rt-c');
select pg_temp.complete((:'rt'::uuid[])[3]);
select pg_temp.complete((:'rt'::uuid[])[4]);
select is((select status::text || ' ' || (output ->> 'done') from public.jobs where id = (:'rt'::uuid[])[1]),
  'done 3', 'the retried flow finishes done when its children have');

-- partial ----------------------------------------------------------------------------------------------

select pg_temp.flow(format($$public.create_flow(%L, 'pack', '{}',
  '[{"type": "pa"}, {"type": "pa"}, {"type": "pa"}]', 'partial')$$, pg_temp.uid('alice'))) as pa \gset
select pg_temp.claim('pa');
select pg_temp.fail((:'pa'::uuid[])[3], 'bad view');
select is(pg_temp.st((:'pa'::uuid[])[1]) || ' ' || pg_temp.st((:'pa'::uuid[])[2]), 'waiting running',
  'partial: a failed child neither fails the parent nor cancels its siblings');
select pg_temp.complete((:'pa'::uuid[])[2], '{"v": 0}');
select pg_temp.complete((:'pa'::uuid[])[4], '{"v": 2}');
select is((select status::text || ' ' || (output ->> 'done') || ' ' || (output ->> 'failed') || ' '
                  || (output -> 'children' -> 1 -> 'error' ->> 'message') || ' ' || (output -> 'children' -> 2 -> 'output' ->> 'v')
           from public.jobs where id = (:'pa'::uuid[])[1]),
  'done 2 1 bad view 2', 'partial: the parent finishes done with the successes and a report of the failure');
select pg_temp.flow(format($$public.create_flow(%L, 'pack', '{}', '[{"type": "pz"}]', 'partial')$$, pg_temp.uid('alice'))) as pz \gset
select pg_temp.claim('pz');
select pg_temp.fail((:'pz'::uuid[])[2], 'no');
select is((select status::text || ' ' || (error ->> 'code') from public.jobs where id = (:'pz'::uuid[])[1]),
  'failed all_children_failed', 'partial: a flow none of whose children succeeded fails');

-- Cancel cascade ----------------------------------------------------------------------------------------

select pg_temp.flow(format($$public.create_flow(%L, 'pack', '{}',
  '[{"type": "cc-a"}, {"type": "cc-b"}, {"type": "cc-c", "depends_on": [0]}]')$$, pg_temp.uid('alice'))) as cc \gset
select pg_temp.claim('cc-a');
select pg_temp.complete((:'cc'::uuid[])[2]);
select pg_temp.claim('cc-c');
select pg_temp.authenticate_as('alice');
select is((public.cancel_job((:'cc'::uuid[])[1])).status::text, 'cancelled', 'the owner cancels the parent');
select pg_temp.authenticate_as_service_role();
select is((select array_agg(status::text order by array_position(:'cc'::uuid[], id)) from public.jobs where id = any(:'cc'::uuid[])),
  array['cancelled', 'done', 'cancelled', 'cancelled'],
  'cancelling a parent cancels its unfinished children (pending and running), not the done ones');

-- Readers of waiting -------------------------------------------------------------------------------------

select pg_temp.flow(format($$public.create_flow(%L, 'pack', '{}', '[{"type": "rd"}]')$$, pg_temp.uid('carol'))) as rd \gset
select pg_temp.travel_to(pg_temp.t('3 days'));
select public.rescue_jobs();
select is(pg_temp.st((:'rd'::uuid[])[1]), 'waiting', 'rescue_jobs leaves a parent waiting on children alone, however long');
-- Nothing else runnable (every pending job pushed to the end of time), so a ring could only
-- come from a waiting job due for a provider poll: jobs waiting on jobs are not polled.
select pg_temp.clear_authentication();
update public.jobs set run_at = 'infinity' where status = 'pending';
update spool.doorbell set rung_at = '-infinity';
select is(spool.sweep() ->> 'rung', null, 'the sweep does not ring for jobs waiting on jobs, however long they wait');
select pg_temp.authenticate_as_service_role();
select pg_temp.travel_to(pg_temp.t());

-- Quotas on fan-out: all or nothing -------------------------------------------------------------------------

select pg_temp.clear_authentication();
update spool.settings set max_active_jobs_per_user = 10;
select pg_temp.authenticate_as_service_role();
select is(pg_temp.error_of(format($$select public.create_flow(%L, 'pack', '{}',
  (select jsonb_agg(jsonb_build_object('type', 'qt', 'input', jsonb_build_object('i', i))) from generate_series(1, 10) i))$$,
  pg_temp.uid('dave'))), 'PT429 quota_active_jobs', 'a flow of 10 children and its parent exceed a quota of 10 active jobs');
select is((select count(*)::integer from public.jobs where user_id = pg_temp.uid('dave')), 0,
  'the refused flow left nothing behind');
select is(cardinality(pg_temp.flow(format($$public.create_flow(%L, 'pack', '{}',
  (select jsonb_agg(jsonb_build_object('type', 'qt', 'input', jsonb_build_object('i', i))) from generate_series(1, 9) i))$$,
  pg_temp.uid('dave')))), 10, 'nine children and the parent fit exactly');
select pg_temp.clear_authentication();
update spool.settings set max_active_jobs_per_user = 100;
select pg_temp.authenticate_as_service_role();
select is(pg_temp.error_of(format($$select public.create_flow(%L, 'pack', '{}',
  (select jsonb_agg(jsonb_build_object('type', 'qt')) from generate_series(1, 60) i))$$, pg_temp.uid('erin'))),
  'PT429 quota_rate', 'a flow of 60 children and its parent exceed 60 jobs a minute');

-- Fairness: one user's 50 children do not starve another user's single job ----------------------------------

select pg_temp.travel_to(pg_temp.t('10 minutes'));
select cardinality(pg_temp.flow(format($$public.create_flow(%L, 'pack', '{}',
  (select jsonb_agg(jsonb_build_object('type', 'fair', 'input', jsonb_build_object('i', i))) from generate_series(1, 50) i))$$,
  pg_temp.uid('erin'))));
select id as single from public.create_job(pg_temp.uid('bob'), 'fair', '{"single": true}') \gset
select ok(:'single' in (select id::text from public.claim_jobs('worker-1', 2, p_types => array['fair'])),
  'another user''s job created after a fan-out of 50 is among the first two claimed');

-- Validation -----------------------------------------------------------------------------------------------

select is(pg_temp.error_of(format($$select public.create_flow(%L, 'pack', '{}', '[{"type": "v", "user_id": "%s"}]')$$,
  pg_temp.uid('alice'), pg_temp.uid('bob'))), 'PT400 invalid_argument', 'a child may not name its owner');
select is(pg_temp.error_of(format($$select public.create_flow(%L, 'pack', '{}', '[{"type": "v", "depends_on": [0]}]')$$,
  pg_temp.uid('alice'))), 'PT400 invalid_argument', 'a child may depend only on earlier children (no cycles)');
select is(pg_temp.error_of(format($$select public.create_flow(%L, 'pack', '{}', '[{"type": "v"}]', p_depends_on => array[%L]::uuid[])$$,
  pg_temp.uid('alice'), :'dep_a')), 'PT400 invalid_argument', 'a parent with children takes no dependencies');
select is(pg_temp.error_of(format($$select public.create_flow(%L, 'v', '{}', p_depends_on => array[%L]::uuid[])$$,
  pg_temp.uid('bob'), :'dep_a')), 'PT404 job_not_found', 'a dependency must be the user''s own job');
select is(pg_temp.error_of(format($$select public.create_flow(%L, 'pack', '{}', '[{"type": "v"}]', 'maybe')$$,
  pg_temp.uid('alice'))), 'PT400 invalid_argument', 'the policy is fail_fast or partial');

-- RLS: another user can neither see nor cancel nor retry my flow -------------------------------------------------

select pg_temp.flow(format($$public.create_flow(%L, 'pack', '{}', '[{"type": "rls"}]')$$, pg_temp.uid('alice'))) as mine \gset
select pg_temp.authenticate_as('bob');
select is((select count(*)::integer from public.jobs where id = any(:'mine'::uuid[]) or id = any(:'ff'::uuid[])), 0,
  'another user sees none of my flow''s jobs');
select is(pg_temp.error_of(format('select public.cancel_job(%L)', (:'mine'::uuid[])[1])), 'PT404 job_not_found',
  'another user cannot cancel my flow');
select is(pg_temp.error_of(format('select public.retry_job(%L)', (:'ff'::uuid[])[1])), 'PT404 job_not_found',
  'another user cannot retry my flow');
select is(pg_temp.error_of('select count(*) from spool.flows'), '42501 -', 'users cannot read the flow tables');
select pg_temp.authenticate_as('alice');
select is((select count(*)::integer from public.jobs where id = any(:'mine'::uuid[])), 2, 'the owner sees the parent and its child');
select pg_temp.clear_authentication();
select is(pg_temp.st((:'mine'::uuid[])[1]), 'waiting', 'the flow is untouched');

-- Deleting jobs (prune_jobs, a deleted user) forgets their flows and dependency edges.
select pg_temp.clear_authentication();
delete from public.jobs where id = any(:'fo'::uuid[]) or id = any(:'dag'::uuid[]);
select is((select count(*)::integer from spool.flows where job_id = any(:'fo'::uuid[] || :'dag'::uuid[]))
          + (select count(*)::integer from spool.job_dependencies where job_id = any(:'dag'::uuid[]) or depends_on = any(:'dag'::uuid[])),
  0, 'deleting a flow''s jobs deletes its spool.flows and spool.job_dependencies rows');

select * from finish();
rollback;
