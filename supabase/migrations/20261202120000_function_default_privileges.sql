-- Spool: give the project's functions back Supabase's default privileges, and state who may
-- execute each Spool function one by one.
--
-- 20261122120000_queue_schema.sql changed the default privileges of the role that runs the
-- migrations (postgres): no EXECUTE for PUBLIC on any function it creates, and none for anon,
-- authenticated and service_role in schema public. That reached past Spool: every function the
-- project's postgres role created afterwards, its own RPCs included, silently lost Supabase's
-- defaults. Here they are as Supabase sets them (supabase/postgres, migrations/db/init-scripts/
-- 00000000000000-initial-schema.sql, run as postgres): Postgres' built-in EXECUTE for PUBLIC, and
-- in schema public all privileges on functions to postgres, anon, authenticated and service_role.
alter default privileges for role postgres grant execute on functions to public;
alter default privileges for role postgres in schema public
  grant all on functions to postgres, anon, authenticated, service_role;

-- Spool's own functions were created while those defaults were off, so none of them is
-- executable by PUBLIC, anon or authenticated unless granted; the functions in public already
-- say so next to their definitions (revoke from public, anon, authenticated; grant to whom
-- calls them). The internals in schema spool relied on the defaults; they are meant for no one
-- but their owner and the SECURITY DEFINER functions that call them, which now reads here:
revoke all on function
  spool.backoff_delay(integer),
  spool.lock_user_slot(uuid),
  spool.take_user_slot(uuid, timestamptz, boolean),
  spool.uuid_v7(),
  spool.now(),
  spool.throw(integer, text, text, jsonb),
  spool.users_at_cap(integer),
  spool.leased_job(uuid, uuid),
  spool.ended_message(text, public.job_status, jsonb),
  spool.notify_ended(public.jobs),
  spool.retry_or_fail(public.jobs, jsonb, boolean),
  spool.owned_job(uuid),
  spool.jobs_inserted(),
  spool.purge_history()
  from public, anon, authenticated, service_role;
-- What service_role calls from schema spool (granted where they are defined, restated):
revoke all on function spool.ring_doorbell(text), spool.sweep()
  from public, anon, authenticated;
grant execute on function spool.ring_doorbell(text), spool.sweep() to service_role;
