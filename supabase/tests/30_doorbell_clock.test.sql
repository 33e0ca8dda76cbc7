-- The doorbell's debounce trusts no ring recorded in the future: a ring made on a clock ahead of
-- the real one (the spool.now test clock, a host clock stepped back) must not silence every ring
-- after it until real time catches up. Time is moved with the spool.now setting, never by sleeping.
begin;
set local search_path = public, extensions;
select plan(4);

create function pg_temp.tests_at(p_at timestamptz)
returns void
language plpgsql
as $$
begin
  perform set_config('spool.now', p_at::text, true);
end;
$$;
create temp table tests_mark (last_id bigint not null) on commit drop;
insert into tests_mark select coalesce(max(id), 0) from net.http_request_queue;
create function pg_temp.tests_request_count()
returns integer
language sql
as $$ select count(*)::integer from net.http_request_queue q where q.id > (select last_id from tests_mark) $$;

update spool.doorbell set rung_at = '-infinity', rings = 0, skipped = null;
update spool.settings set doorbell_debounce = '1 second';
delete from vault.secrets where name in ('spool_project_url', 'spool_worker_secret');
select vault.create_secret('http://127.0.0.1:54321', 'spool_project_url');
select vault.create_secret('spool-test-worker-secret', 'spool_worker_secret');

-- A ring on a clock four years ahead.
select pg_temp.tests_at('2030-01-01 00:05:30+00');
select isnt(spool.ring_doorbell('future'), null::bigint, 'a ring on the 2030 clock goes out');
select is((select rung_at from spool.doorbell), '2030-01-01 00:05:30+00'::timestamptz,
  'and is recorded at its own (future) time');

-- Back on the real clock: the future ring is not "recent".
select pg_temp.tests_at(clock_timestamp());
select isnt(spool.ring_doorbell('real'), null::bigint,
  'a ring on the real clock goes out although the last ring is recorded in the future');
select is(pg_temp.tests_request_count(), 2, 'both rings queued a request');

select * from finish();
rollback;
