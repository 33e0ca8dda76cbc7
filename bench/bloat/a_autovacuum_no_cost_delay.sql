-- Remedy a (scratch, throwaway database only): autovacuum of public.jobs unthrottled.
-- Why: a shipped autovacuum of public.jobs (~100-140 MiB at the bench's churn) takes 7-10 s at
-- autovacuum_vacuum_cost_delay = 2 ms / cost_limit 200, and the launcher looks at a database once
-- per autovacuum_naptime (60 s); until it has run, every claim walks the dead entries it left.
-- A per-table reloption, so a migration can set it (autovacuum_naptime is server-wide).
alter table public.jobs set (autovacuum_vacuum_cost_delay = 0);
-- @undo
alter table public.jobs reset (autovacuum_vacuum_cost_delay);
