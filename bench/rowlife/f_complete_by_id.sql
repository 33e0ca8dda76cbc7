-- Candidate (f), bench only (applied to the throwaway database by bench/rowlife.mjs, never a
-- migration): complete_jobs finds its jobs by primary key.
--
-- complete_jobs' UPDATE ... FROM jsonb_to_recordset(...) WHERE j.id = r.id AND j.status =
-- 'running' AND j.lease_token = r.lease_token lets the planner start from jobs_active_idx
-- (status = 'running'): the statistics (a queue that is mostly history) say running rows are
-- rare, and jsonb_to_recordset is estimated at 100 rows. The baseline's pg_stat_user_indexes show
-- it: one jobs_active_idx scan per complete_jobs call reading ~3,500 index entries (every running
-- job plus the dead 'running' versions vacuum has not removed yet) and ~3,800 heap pages per
-- batch of 50, instead of 50 primary-key probes. Its cost grows with the number of running jobs.
-- Here the status test goes: jobs_lease_iff_running (CHECK: status = 'running' exactly when
-- lease_token is not null) makes j.lease_token = r.lease_token imply it, so fencing is unchanged,
-- and the only index condition left is j.id = r.id (jobs_pkey). No behaviour changes.

create or replace function public.complete_jobs(p_results jsonb)
returns setof uuid
language plpgsql volatile
security definer
set search_path = ''
as $$
declare
  v_now timestamptz := spool.now();
begin
  if p_results is null or jsonb_typeof(p_results) <> 'array' then
    perform spool.throw(400, 'invalid_argument', 'results must be a JSON array of {id, lease_token, output}');
  end if;
  return query
  with done as (
    update public.jobs j
       set status = 'done',
           output = coalesce(r.output, '{}'),
           error = null,
           progress = 100,
           lease_token = null,
           lease_expires_at = null,
           finished_at = v_now,
           updated_at = v_now
      from jsonb_to_recordset(p_results) as r(id uuid, lease_token uuid, output jsonb)
     where j.id = r.id
       -- lease_token is set only while running (jobs_lease_iff_running): this is the fence.
       and j.lease_token = r.lease_token
    returning j.id, j.user_id, j.type
  ),
  notified as (
    insert into public.notifications (id, user_id, job_id, job_type, status, message, created_at)
    select spool.uuid_v7(), d.user_id, d.id, d.type, 'done', spool.ended_message(d.type, 'done', null), v_now
    from done d
    where (select pg_catalog.to_regclass('public.job_notifications')) is null
  )
  select d.id from done d;
end;
$$;

-- @undo
