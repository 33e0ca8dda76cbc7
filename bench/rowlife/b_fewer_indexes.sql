-- Candidate (b), bench only (applied to the throwaway database by bench/rowlife.mjs, never a
-- migration): fewer and narrower indexes on public.jobs.
--
-- Every claim and every completion is a non-HOT update (status is an indexed column and in the
-- partial indexes' predicates), so each new row version gets an entry in every index whose
-- predicate it matches. Today, per life:
--   jobs_pkey              insert, claim, complete                        3 entries
--   jobs_user_created_idx  insert, claim, complete (key never changes)    3 entries
--   jobs_claim_idx         insert (pending)                               1 entry
--   jobs_active_idx        insert (pending), claim (running)              2 entries
--   jobs_finished_idx      complete (finished_at set)                     1 entry
-- This candidate:
--   * jobs_active_idx (status, user_id) where status in (pending, running, waiting) becomes
--     jobs_running_idx (user_id) where status in (running, waiting): no entry at insert, and a
--     key of one uuid. Still served by it: claim_jobs' per-owner running count
--     (status = 'running' and user_id = $1), spool.users_at_cap, rescue_jobs' scan of running
--     and waiting jobs, get_queue_stats' running/waiting depth. No longer served: the count of a
--     user's *pending* jobs in take_user_slot's active quota (it then reads the user's rows
--     through jobs_user_created_idx and filters by status: see this candidate's heavy-user
--     EXPLAIN), so this goes with candidate (d) (counters), which drops that count; and
--     get_queue_stats' pending depth by type, which reads jobs_claim_idx (all pending rows).
--   * jobs_finished_idx (finished_at) where finished_at is not null, a btree entry per
--     completion, becomes a BRIN index on finished_at (one summary tuple per 32 pages; a
--     completion changes it only when its page range is summarized and the time is outside the
--     range): get_queue_stats' window (finished_at > now() - window) and prune_jobs'
--     (finished_at < cutoff order by finished_at limit n) become a bitmap scan of the matching
--     page ranges plus a recheck, instead of an index range scan. finished_at follows insertion
--     order only roughly (a long job finishes late on an early page), which widens the ranges.
--   * jobs_user_created_idx is kept: it is the user's history, newest first (the jobs API's
--     list) and the rate quota's count; (d) removes the latter, the list stays.

drop index public.jobs_active_idx;
create index jobs_running_idx on public.jobs (user_id) where status in ('running', 'waiting');
drop index public.jobs_finished_idx;
create index jobs_finished_brin on public.jobs using brin (finished_at) with (pages_per_range = 32);

-- @undo
drop index public.jobs_running_idx;
drop index public.jobs_finished_brin;
create index jobs_active_idx on public.jobs (status, user_id)
  where status in ('pending', 'running', 'waiting');
create index jobs_finished_idx on public.jobs (finished_at) where finished_at is not null;
