-- Spool: a cheaper life for every job, with no change in behaviour.
--
-- Measured by `npm run bench -- --only rowlife` (bench/rowlife.mjs: pg_stat_statements,
-- pg_walinspect, buffers, per step of create_job → claim_jobs → complete_jobs; 20,000 jobs over 400
-- owners). Before: 1,191 µs of server time and 2,568 B of WAL per job, 107 buffer hits per create
-- and 92 per completion. The changes, with what each saved there (bench/rowlife/e_slot_lock.sql
-- and f_complete_by_id.sql are the same changes as candidates):
--
--   * complete_jobs finds its jobs by primary key. It matched `status = 'running' and lease_token
--     = $token`, and with a queue that is mostly history the planner started from jobs_active_idx
--     (status = 'running'): one scan of every running job (and their dead versions) per batch,
--     ~3,500 index entries and ~3,800 heap pages per 50 jobs. The lease token alone is the fence
--     (jobs_lease_iff_running: a lease token is set exactly while running), so the status test
--     goes and the only index condition left is the id. Completion: 92 → 24 buffer hits and
--     133 → 78 µs of CPU per job.
--   * spool.lock_user_slot locks the slot row with SELECT ... FOR UPDATE, and inserts only for a
--     user's first job. The upsert it was (INSERT ... ON CONFLICT DO UPDATE) wrote a new row
--     version at every call, twice per create_job, and as a SQL function with a pinned
--     search_path it was re-planned at every call: 170 → 56 µs and 250 B less WAL per create.
--   * spool.uuid_v7() sets the version and variant bits. It set bits 52 and 53 of 16 random bytes,
--     which makes a v7 UUID only when those bytes were a v4 UUID's (version 0100, variant 10):
--     job ids carried a random version nibble. Now it starts from gen_random_uuid(), as the
--     well-known construction does. Ids stay time-ordered; nothing reads the version.
--
-- Measured and not done here (bench/rowlife/ has each as a candidate, with its numbers):
-- notifications derived from finished jobs (−387 B WAL per job, but read_at, retention and the
-- Realtime contract of public.notifications change), counters for the quotas on
-- spool.user_slots (fewer buffers at create, but +124 B WAL per job net and a fixed rate window),
-- narrower indexes (−141 B, no measurable time). HOT updates are out of reach while status is
-- an index key: every claim and completion is a non-HOT update.

-- complete_jobs: finish a batch of running jobs with their outputs.
-- Caller: service_role. p_results is a JSON array of {"id", "lease_token", "output"}.
-- Fencing: an entry completes its job only if the job holds that lease token, which it does only
-- while running (jobs_lease_iff_running); other entries are ignored. A completed job's error (of
-- an earlier attempt of its run) is cleared: a done job carries no error. Writes each completed
-- job's notification. Returns the ids that were completed. Idempotent: completing again completes
-- nothing. Reads the jobs by primary key.
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
  -- One statement for the whole batch, notifications included: per-row work here is what
  -- bounds throughput (see bench/).
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
       -- The fence, and all it takes: a lease token is set exactly while the job runs. No
       -- status test, which would let the planner scan every running job instead of the ids.
       and j.lease_token = r.lease_token
    returning j.id, j.user_id, j.type
  ),
  notified as (
    insert into public.notifications (id, user_id, job_id, job_type, status, message, created_at)
    select spool.uuid_v7(), d.user_id, d.id, d.type, 'done', spool.ended_message(d.type, 'done', null), v_now
    from done d
  )
  select d.id from done d;
end;
$$;

-- spool.lock_user_slot(user) locks the user's scheduling row, creating it on first use.
-- Contract (unchanged): holds the row lock on spool.user_slots until the transaction ends, so
-- everything a transaction checks about one user (idempotency keys, quotas) cannot race another
-- transaction creating or retrying that user's jobs. Returns the user's next fair slot. Writes
-- nothing when the row exists (a row lock only); inserts it for the user's first job, and an
-- insert racing another first insert falls back to locking the row that won.
create or replace function spool.lock_user_slot(p_user_id uuid)
returns timestamptz
language plpgsql volatile
set search_path = ''
as $$
declare
  v_fair timestamptz;
begin
  select u.fair_at into v_fair from spool.user_slots u where u.user_id = p_user_id for update;
  if found then
    return v_fair;
  end if;
  insert into spool.user_slots as u (user_id, fair_at) values (p_user_id, spool.now())
  on conflict (user_id) do update set fair_at = u.fair_at
  returning u.fair_at into v_fair;
  return v_fair;
end;
$$;
revoke all on function spool.lock_user_slot(uuid) from public, anon, authenticated, service_role;

-- spool.uuid_v7() returns a time-ordered UUID (RFC 9562 version 7): 48 bits of Unix milliseconds,
-- version 0111, 74 random bits and variant 10. gen_random_uuid() (version 4: version 0100,
-- variant 10) supplies the random bits and the variant; setting bits 52 and 53 turns its version
-- into 0111. Like spool.now(), not SECURITY DEFINER, every name qualified, no pinned search_path
-- (a SET clause would stop Postgres inlining it into each row's default).
create or replace function spool.uuid_v7() returns uuid
language sql volatile parallel safe
as $$
  select pg_catalog.encode(
    pg_catalog.set_bit(pg_catalog.set_bit(
      overlay(pg_catalog.uuid_send(pg_catalog.gen_random_uuid())
        placing substring(pg_catalog.int8send(
          pg_catalog.floor(extract(epoch from pg_catalog.clock_timestamp()) * 1000)::bigint) from 3)
        from 1 for 6),
      52, 1), 53, 1), 'hex')::uuid
$$;
