-- Candidate (e), bench only (applied to the throwaway database by bench/rowlife.mjs, never a
-- migration): lock the user's slot row without writing a new version of it.
--
-- spool.lock_user_slot is an upsert, INSERT ... ON CONFLICT DO UPDATE SET fair_at = u.fair_at:
-- when the row exists (every create but a user's first) it locks the row and writes a new row
-- version (a HOT update, WAL with the whole tuple), and create_job calls it twice (itself, then
-- through take_user_slot), before take_user_slot's own UPDATE: three versions of the row per
-- create. Here it is SELECT ... FOR UPDATE first (one Heap/LOCK record the first time in a
-- transaction, nothing the second time: the transaction already holds the lock), and the upsert
-- only for a user's first job (or when a concurrent first insert races it: ON CONFLICT covers it).
-- Contract unchanged: holds the row lock until the transaction ends, creates the row on first
-- use, returns the user's next fair slot. No behaviour changes.

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

-- @undo
