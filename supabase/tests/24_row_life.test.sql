-- The cheaper row life (20261203110000_cheaper_row_life.sql) changes no behaviour; what it adds
-- that can be seen: job ids are RFC 9562 version 7 UUIDs, and locking a user's slot writes no new
-- row version. Completing a batch now fences by lease token alone (a token is set only while
-- running): the last test guards that a stranger's token still completes nothing.
begin;
select plan(8);

create function pg_temp.uid(p_name text) returns uuid language sql immutable
  as $$ select md5('spool-test:' || p_name)::uuid $$;
insert into auth.users (id, aud, role, email)
select pg_temp.uid(n), 'authenticated', 'authenticated', n || '@spool.test' from unnest(array['alice']) n;

-- Ids ------------------------------------------------------------------------------------------------
create temp table ids as select spool.uuid_v7() as id from generate_series(1, 200);
select is((select count(*)::integer from ids where substr(id::text, 15, 1) = '7'), 200,
  'every id carries version 7');
select is((select count(*)::integer from ids where substr(id::text, 20, 1) in ('8', '9', 'a', 'b')), 200,
  'and the RFC variant (10)');
select ok((select bool_and(abs(('x' || lpad(replace(substr(id::text, 1, 13), '-', ''), 16, '0'))::bit(64)::bigint
                               - floor(extract(epoch from clock_timestamp()) * 1000)::bigint) < 60000) from ids),
  'its first 48 bits are the Unix time in milliseconds');
select is((select count(distinct id)::integer from ids), 200, 'and its random bits make it unique');

-- The slot lock -----------------------------------------------------------------------------------------
select lives_ok($$select spool.lock_user_slot(pg_temp.uid('alice'))$$, 'a user''s first lock creates the slot row');
create temp table slot_before as select ctid as row_at, fair_at from spool.user_slots where user_id = pg_temp.uid('alice');
select is(spool.lock_user_slot(pg_temp.uid('alice')), (select fair_at from slot_before),
  'locking again returns the user''s next fair slot');
select is((select ctid from spool.user_slots where user_id = pg_temp.uid('alice')), (select row_at from slot_before),
  'and writes no new version of the row (a row lock only)');

-- Completing by lease token -------------------------------------------------------------------------------
set local role service_role;
select count(*) from public.create_job(pg_temp.uid('alice'), 'noop');
select id as job, lease_token as token from public.claim_jobs('w', 1) \gset
select is(array(select public.complete_jobs(jsonb_build_array(
            jsonb_build_object('id', :'job', 'lease_token', :'token', 'output', '{}'::jsonb),
            jsonb_build_object('id', :'job', 'lease_token', gen_random_uuid(), 'output', '{}'::jsonb)))),
  array[:'job'::uuid], 'the lease token is the fence: the entry with a stranger''s token completes nothing');
reset role;
select * from finish();
rollback;
