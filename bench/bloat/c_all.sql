-- Remedy c (scratch): a and b together, plus an explicit VACUUM public.jobs every 10 s (what a
-- pg_cron job `cron.schedule('spool-vacuum-jobs', '10 seconds', 'vacuum public.jobs')` would
-- run; pg_cron >= 1.5 takes seconds schedules). A manual VACUUM is not cost-throttled
-- (vacuum_cost_delay = 0) and does not wait for the autovacuum launcher's naptime (60 s), so the
-- dead entries a snapshot pinned are removed within ~10 s of its end rather than up to a minute.
-- Lazy VACUUM does not hold back the xmin horizon of other sessions.
alter table public.jobs set (autovacuum_vacuum_cost_delay = 0);
-- @bench pruneLimit=1000
-- @bench vacuumEverySeconds=10
-- @undo
alter table public.jobs reset (autovacuum_vacuum_cost_delay);
