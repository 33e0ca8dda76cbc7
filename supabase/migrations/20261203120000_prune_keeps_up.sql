-- Spool: pruning keeps up with the queue, and autovacuum keeps up with pruning.
--
-- Measured by `npm run bench -- --only bloat` (bench/bloat.mjs: 8 claimers draining a fed queue,
-- a REPEATABLE READ snapshot held 60 s, pruning on):
--   * The pg_cron job spool-prune ran `select public.prune_jobs()` once a day: at most 10,000 jobs
--     a day. A queue that finishes more than that grew without bound. And one call of 10,000 rows
--     was one transaction of 0.5 to 2.9 s, which holds back the xmin horizon (vacuum) like a short
--     snapshot. Now spool.prune_history() deletes in batches of 1,000 (about 150 ms each), each
--     its own transaction, until a batch comes back short or 50 s have passed, and pg_cron calls
--     it every minute: up to ~300,000 jobs a minute (50 s of 150 ms batches), never a long transaction.
--   * Each claim and completion leaves dead index entries that claims must step over until
--     vacuum removes them. With the default autovacuum cost delay (2 ms) a vacuum of jobs took
--     7 to 10 s; unthrottled (cost delay 0) throughput came back to the control's within the
--     first 5 s window after the snapshot ended (15 s before), and dead tuples 60 s later halved
--     (94k to 45k). jobs is small and hot: vacuuming it at full speed is cheap.

alter table public.jobs set (autovacuum_vacuum_cost_delay = 0);

-- spool.prune_history(batch, max_seconds): prune_jobs in batches, each committed on its own.
-- Caller: pg_cron (spool-prune, every minute), as a top-level CALL: it commits between batches,
-- so it cannot run inside a transaction block (nor as SECURITY DEFINER; it runs as its caller,
-- the project's postgres role, which may call prune_jobs). Stops after a batch that deleted fewer
-- than p_batch jobs, or once p_max_seconds have passed. Deletes what prune_jobs deletes.
create procedure spool.prune_history(p_batch integer default 1000, p_max_seconds integer default 50)
language plpgsql
as $$
declare
  v_until timestamptz := pg_catalog.clock_timestamp() + pg_catalog.make_interval(secs => p_max_seconds);
  v_deleted integer;
begin
  loop
    v_deleted := public.prune_jobs(p_batch);
    commit;
    exit when v_deleted < p_batch or pg_catalog.clock_timestamp() >= v_until;
  end loop;
end;
$$;
revoke all on procedure spool.prune_history(integer, integer) from public, anon, authenticated, service_role;

-- The command is the CALL alone: pg_cron runs a command string of several statements as one
-- transaction, in which the procedure could not commit (citusdata/pg_cron#85).
do $$
begin
  perform cron.schedule('spool-prune', '* * * * *', 'call spool.prune_history()');
end;
$$;
