-- Spool: the database wakes the workers.
--
-- A job row is the truth; an HTTP call is only a doorbell. Inserting runnable jobs rings
-- job-worker at once through pg_net (which sends at commit, and never for a rolled-back
-- transaction). pg_cron is the safety net: it rescues expired leases and rings only when runnable
-- jobs exist, so an idle queue costs no invocations.
--
-- Configuration lives in Vault (see README, "Deploying"):
--   spool_project_url    https://<ref>.supabase.co (job-worker is <url>/functions/v1/job-worker)
--   spool_worker_secret  the secret (service role) key job-worker accepts

do $$
begin
  if not exists (select 1 from pg_extension where extname = 'pg_net') then
    create extension pg_net with schema extensions;
  end if;
  if not exists (select 1 from pg_extension where extname = 'pg_cron') then
    create extension pg_cron;
  end if;
end;
$$;

-- spool.ring_doorbell(reason) asks job-worker to drain the queue.
-- Contract: at most one ring per doorbell_debounce (default 1 s) across all sessions. Never waits:
-- if another transaction is ringing right now (holds the doorbell row) this call skips, because
-- that ring already covers it. Queues one net.http_post with an explicit timeout and returns its
-- request id, or null when debounced or when Vault (or the URL or secret in it) is missing
-- (recorded in spool.doorbell.skipped; an insert never fails because the doorbell is not
-- configured).
create function spool.ring_doorbell(p_reason text)
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
  where d.id and d.rung_at <= v_now - s.doorbell_debounce
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
revoke execute on function spool.ring_doorbell(text) from public;
grant execute on function spool.ring_doorbell(text) to service_role;

-- spool.jobs_inserted() rings the doorbell once per INSERT statement that added a runnable job.
-- Contract: statement-level trigger with a transition table: 1 or 10,000 rows in one statement
-- ring at most once; rows scheduled for later (run_at in the future) do not ring.
create function spool.jobs_inserted()
returns trigger
language plpgsql volatile
security definer
set search_path = ''
as $$
begin
  if exists (select 1 from new_jobs n where n.status = 'pending' and n.run_at <= spool.now()) then
    perform spool.ring_doorbell('insert');
  end if;
  return null;
end;
$$;

create trigger jobs_ring_doorbell
  after insert on public.jobs
  referencing new table as new_jobs
  for each statement
  execute function spool.jobs_inserted();

-- spool.sweep() is the pg_cron safety net.
-- Contract: rescues expired leases (rescue_jobs), then rings the doorbell only if a runnable
-- pending job exists. Returns {"rescued": n, "rung": request id or null}. Idempotent.
create function spool.sweep()
returns jsonb
language plpgsql volatile
security definer
set search_path = ''
as $$
declare
  v_rescued integer := public.rescue_jobs();
  v_request bigint;
begin
  if exists (select 1 from public.jobs j where j.status = 'pending' and j.run_at <= spool.now()) then
    v_request := spool.ring_doorbell('sweep');
  end if;
  return jsonb_build_object('rescued', v_rescued, 'rung', v_request);
end;
$$;
revoke execute on function spool.sweep() from public;
grant execute on function spool.sweep() to service_role;

-- spool.purge_history() deletes old pg_cron run logs and pg_net responses.
-- Contract: keeps 7 days of cron.job_run_details and 1 day of net._http_response. A table the
-- caller may not delete from is skipped with a NOTICE. Returns rows deleted.
create function spool.purge_history()
returns bigint
language plpgsql volatile
set search_path = ''
as $$
declare
  v_count bigint := 0;
  v_rows bigint;
begin
  begin
    delete from cron.job_run_details where end_time < pg_catalog.now() - interval '7 days';
    get diagnostics v_rows = row_count;
    v_count := v_count + v_rows;
  exception when insufficient_privilege then
    raise notice 'spool.purge_history: cannot delete from cron.job_run_details';
  end;
  begin
    delete from net._http_response where created < pg_catalog.now() - interval '1 day';
    get diagnostics v_rows = row_count;
    v_count := v_count + v_rows;
  exception when insufficient_privilege then
    raise notice 'spool.purge_history: cannot delete from net._http_response';
  end;
  return v_count;
end;
$$;
revoke execute on function spool.purge_history() from public;

-- Schedules. Seconds schedules need pg_cron 1.5 or later (Supabase ships 1.6); older builds
-- (Debian's 1.4.2) fall back to every minute. Scheduling an existing name replaces it.
do $$
declare
  v_version integer[] := (
    select regexp_match(extversion, '^(\d+)\.(\d+)')::integer[] from pg_extension where extname = 'pg_cron');
begin
  perform cron.schedule('spool-sweep',
    case when v_version >= array[1, 5] then '10 seconds' else '* * * * *' end,
    'select spool.sweep()');
  perform cron.schedule('spool-prune', '17 3 * * *', 'select public.prune_jobs()');
  perform cron.schedule('spool-purge-history', '47 3 * * *', 'select spool.purge_history()');
end;
$$;

-- Realtime: browsers watch their own jobs and notifications change (RLS applies per subscriber).
do $$
begin
  if not exists (select 1 from pg_publication where pubname = 'supabase_realtime') then
    create publication supabase_realtime;
  end if;
  if not exists (select 1 from pg_publication_tables
                 where pubname = 'supabase_realtime' and schemaname = 'public' and tablename = 'jobs') then
    alter publication supabase_realtime add table public.jobs;
  end if;
  if not exists (select 1 from pg_publication_tables
                 where pubname = 'supabase_realtime' and schemaname = 'public' and tablename = 'notifications') then
    alter publication supabase_realtime add table public.notifications;
  end if;
end;
$$;
