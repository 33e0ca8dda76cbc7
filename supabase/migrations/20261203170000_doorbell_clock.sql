-- A ring recorded in the future never silences the doorbell.
--
-- spool.ring_doorbell debounces on spool.doorbell.rung_at: it rings only when the last ring is at
-- least doorbell_debounce old. A ring made on a clock ahead of the real one (a session with the
-- spool.now test clock set, or a host clock stepped back after a ring) left rung_at in the future,
-- and every later ring on the real clock saw it as "just rung": nothing rang until real time
-- caught up (found by npm test: a test ringing on the 2030 clock left the doorbell silent, so a
-- browser test's job waited for a sweep that, at the cap, came too late). Now a rung_at later than
-- the ringing clock counts as stale.

-- spool.ring_doorbell: unchanged contract (dispatch migration): rings job-worker through pg_net
-- at most once per doorbell_debounce, unless the debounce row is locked by another ringer (then
-- it returns null at once); a rung_at ahead of the ringing clock does not count as recent.
create or replace function spool.ring_doorbell(p_reason text)
returns bigint
language plpgsql volatile
security definer
set search_path = ''
as $$
declare
  -- Wall-clock time, so a long transaction does not ring with a stale clock; tests override it.
  v_now timestamptz := coalesce(nullif(pg_catalog.current_setting('spool.now', true), '')::timestamptz,
                                pg_catalog.clock_timestamp());
  v_url text;
  v_secret text;
  v_request bigint;
begin
  perform 1 from spool.doorbell d, spool.settings s
  where d.id and (d.rung_at <= v_now - s.doorbell_debounce or d.rung_at > v_now)
  for update of d skip locked;
  if not found then
    return null;
  end if;

  if pg_catalog.to_regclass('vault.decrypted_secrets') is null then
    update spool.doorbell set skipped = 'Vault (supabase_vault) is not enabled' where id;
    return null;
  end if;
  select ds.decrypted_secret into v_url from vault.decrypted_secrets ds where ds.name = 'spool_project_url';
  select ds.decrypted_secret into v_secret from vault.decrypted_secrets ds where ds.name = 'spool_worker_secret';
  if v_url is null or v_secret is null then
    update spool.doorbell
       set skipped = 'Vault secrets spool_project_url and spool_worker_secret are not both set'
     where id;
    return null;
  end if;

  v_request := net.http_post(
    url := pg_catalog.rtrim(v_url, '/') || '/functions/v1/job-worker',
    body := jsonb_build_object('reason', p_reason),
    headers := jsonb_build_object('Content-Type', 'application/json',
                                  'apikey', v_secret,
                                  'Authorization', 'Bearer ' || v_secret),
    timeout_milliseconds := 5000);
  update spool.doorbell set rung_at = v_now, rings = rings + 1, skipped = null where id;
  return v_request;
end;
$$;
