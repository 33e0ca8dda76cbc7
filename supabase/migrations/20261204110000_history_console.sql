-- Spool: history that scales, and the operations console (issue 12, items 3 and 4).
--
--   * public.list_jobs: one page of jobs, newest first, by filter: statuses, types, a creation
--     date range, a search of the input's file name (the last segment of input.input_path, what
--     the creators store: the owner's folder is left out) or prompt (input.prompt), a flow
--     parent, and a keyset cursor (created_at, id) instead of an offset. A user lists their own
--     jobs (auth.uid()); service_role (the jobs function, after checking the caller is an admin)
--     lists everyone's, or one user's.
--   * public.cancel_jobs / public.retry_jobs: the same filter, as a bulk action. Each job goes
--     through cancel_job / retry_job, so every rule holds as it does for one job: retries count
--     against the owner's rate and stop at it (the rest of that owner's jobs are reported
--     refused, not tried), a permanent failure is not retried unchanged. Returns
--     {"matched", "changed", "refused": {code: n}, "reasons": {code: message}}.
--   * public.job_series: finished jobs per minute, per type and outcome, with run-time p50/p95
--     (started_at -> finished_at: the last attempt's work, never its wait) and queue-wait p50
--     (run_at -> started_at: from runnable to claimed), over jobs_finished_idx. The console draws
--     the last hour from it at once.
--   * public.queue_diagnosis: why pending jobs are not running: owners at max_running_per_user,
--     types at their cap or out of rate, jobs scheduled later or waiting on dependencies or a
--     provider, and when the pg_cron safety-net sweep runs next. The jobs function adds what only
--     it knows: which providers are configured.
--
-- Indexes (measured on 100,000 jobs of one user, see the README's numbers): the user's history is
-- jobs_user_created_idx (user_id, created_at desc); a status filter on it reads past every row of
-- the other statuses, so jobs_user_status_created_idx serves "my failed jobs" directly; the
-- console's list of everyone's jobs, newest first, is jobs_created_idx. The search is a trigram
-- index (pg_trgm) over the text it searches, kept in a table of its own, spool.job_search,
-- written once when a job is created (its input never changes): on public.jobs the index would
-- be written again at every state change (a status change is never a HOT update), and measured
-- it made creating, claiming and completing jobs about twice as slow. Without it a search for a
-- rare file name reads the user's whole history (~1 s at 100,000 jobs; ~6 ms with it).

create extension if not exists pg_trgm with schema extensions;

-- spool.search_text(input) is what the history search matches: the input file's name (the last
-- segment of input.input_path: the owner's folder is left out, so a search for part of a user id
-- finds nothing; the web client's upload prefix, mx5snp22-, stays) and the prompt, lower case,
-- joined by a space. Contract: immutable; ' ' for an input with neither.
create function spool.search_text(p_input jsonb)
returns text
language sql immutable parallel safe
set search_path = ''
as $$
  select pg_catalog.lower(
    coalesce(pg_catalog.regexp_replace(p_input ->> 'input_path', '^.*/', ''), '') || ' ' ||
    coalesce(p_input ->> 'prompt', ''))
$$;
revoke all on function spool.search_text(jsonb) from public, anon, authenticated, service_role;

create index jobs_user_status_created_idx on public.jobs (user_id, status, created_at desc);
-- Across users (the console): newest first over the whole table.
create index jobs_created_idx on public.jobs (created_at desc);

-- What the search reads: one row per job that has a file or a prompt.
create table spool.job_search (
  job_id  uuid primary key,
  user_id uuid not null,
  text    text not null
);
comment on table spool.job_search is
  'The history search''s text of each job with a file or a prompt (spool.search_text of its input), written when the job is created, deleted with it.';
create index job_search_text_idx on spool.job_search using gin (text extensions.gin_trgm_ops);
alter table spool.job_search enable row level security;
revoke all on spool.job_search from public, anon, authenticated, service_role;
insert into spool.job_search (job_id, user_id, text)
select j.id, j.user_id, spool.search_text(j.input) from public.jobs j
where pg_catalog.btrim(spool.search_text(j.input)) <> '';

-- spool.job_search_inserted() (statement trigger jobs_search_insert) writes the search text of
-- the jobs a statement created; spool.job_search_deleted() (jobs_search_delete) removes that of
-- the jobs a statement deleted (prune). Once per statement, not per row.
create function spool.job_search_inserted()
returns trigger
language plpgsql volatile
security definer
set search_path = ''
as $$
begin
  insert into spool.job_search (job_id, user_id, text)
  select n.id, n.user_id, spool.search_text(n.input) from new_jobs n
  where pg_catalog.btrim(spool.search_text(n.input)) <> '';
  return null;
end;
$$;
create function spool.job_search_deleted()
returns trigger
language plpgsql volatile
security definer
set search_path = ''
as $$
begin
  delete from spool.job_search s using gone g where s.job_id = g.id;
  return null;
end;
$$;
revoke all on function spool.job_search_inserted(), spool.job_search_deleted()
  from public, anon, authenticated, service_role;
create trigger jobs_search_insert
  after insert on public.jobs
  referencing new table as new_jobs
  for each statement
  execute function spool.job_search_inserted();
create trigger jobs_search_delete
  after delete on public.jobs
  referencing old table as gone
  for each statement
  execute function spool.job_search_deleted();

-- Scope and filter ------------------------------------------------------------------------------

-- spool.job_scope(user) is whose jobs the caller may list or change in bulk.
-- Contract: service_role (and an admin on a direct connection, as spool.owned_job) gets p_user_id
-- (null: every user's jobs); an authenticated user gets their own id, and PT403 forbidden when
-- p_user_id names someone else; anyone else PT401 unauthorized.
create function spool.job_scope(p_user_id uuid)
returns uuid
language plpgsql stable
set search_path = ''
as $$
begin
  if auth.role() = 'service_role'
     or (auth.jwt() is null and pg_catalog.pg_has_role(session_user, 'postgres', 'member')) then
    return p_user_id;
  end if;
  if auth.uid() is null then
    perform spool.throw(401, 'unauthorized', 'sign in first');
  end if;
  if p_user_id is not null and p_user_id <> auth.uid() then
    perform spool.throw(403, 'forbidden', 'only admins list other users'' jobs');
  end if;
  return auth.uid();
end;
$$;

-- spool.job_filter(...) is the WHERE clause of a job filter, for EXECUTE ... USING, with the
-- values bound as $1 scope user (null: all), $2 statuses, $3 types, $4 created from (inclusive),
-- $5 created before (exclusive), $6 search pattern (a LIKE pattern over spool.job_search), $7
-- parent. Only the filters given appear, so each query is planned for the indexes it can use.
-- Contract: validates the filter: PT400 invalid_argument for a range that ends before it starts,
-- or a search longer than 200 characters. Pure.
create function spool.job_filter(
  p_scope uuid, p_statuses public.job_status[], p_types text[], p_created_from timestamptz,
  p_created_before timestamptz, p_search text, p_parent_id uuid
)
returns text
language plpgsql immutable
set search_path = ''
as $$
declare
  v_where text := 'true';
begin
  if p_created_from is not null and p_created_before is not null and p_created_before <= p_created_from then
    perform spool.throw(400, 'invalid_argument', 'the date range ends before it starts');
  end if;
  if p_search is not null and pg_catalog.char_length(p_search) > 200 then
    perform spool.throw(400, 'invalid_argument', 'a search is at most 200 characters');
  end if;
  if p_scope is not null then v_where := v_where || ' and j.user_id = $1'; end if;
  if p_statuses is not null then v_where := v_where || ' and j.status = any ($2)'; end if;
  if p_types is not null then v_where := v_where || ' and j.type = any ($3)'; end if;
  if p_created_from is not null then v_where := v_where || ' and j.created_at >= $4'; end if;
  if p_created_before is not null then v_where := v_where || ' and j.created_at < $5'; end if;
  if nullif(pg_catalog.btrim(p_search), '') is not null then
    v_where := v_where || ' and j.id in (select s.job_id from spool.job_search s where s.text like $6'
                       || case when p_scope is not null then ' and s.user_id = $1' else '' end || ')';
  end if;
  if p_parent_id is not null then v_where := v_where || ' and j.parent_id = $7'; end if;
  return v_where;
end;
$$;

-- spool.search_pattern(search) is the LIKE pattern of a search: lower case, its own % _ and \
-- taken literally, matching anywhere. Null for no search.
create function spool.search_pattern(p_search text)
returns text
language sql immutable
set search_path = ''
as $$
  select '%' || pg_catalog.replace(pg_catalog.replace(pg_catalog.replace(
           pg_catalog.lower(pg_catalog.btrim(p_search)), '\', '\\'), '%', '\%'), '_', '\_') || '%'
  where nullif(pg_catalog.btrim(p_search), '') is not null
$$;

revoke all on function spool.job_scope(uuid),
  spool.job_filter(uuid, public.job_status[], text[], timestamptz, timestamptz, text, uuid),
  spool.search_pattern(text)
  from public, anon, authenticated, service_role;

-- Listing ------------------------------------------------------------------------------------------

-- list_jobs: one page of jobs matching a filter, newest first (created_at desc, id desc).
-- Caller: an authenticated user (their own jobs; p_user_id must be null or theirs) or
-- service_role (every user's, or p_user_id's).
-- Filter: p_statuses and p_types match any of their values; p_created_from <= created_at <
-- p_created_before; p_search matches the input file's name or the prompt, case-insensitively,
-- anywhere (spool.search_text); p_parent_id keeps a flow's children. Null: no filter.
-- Pages: p_limit rows (1..1000) after the cursor (p_cursor_created_at, p_cursor_id: the last row of
-- the previous page; both or neither). Keyset, so page 500 costs what page 1 does.
-- Returns jobs rows; for a user, the columns authenticated may not SELECT are null (as
-- spool.owner_view). Read-only, no lock. PT400 invalid_argument for a bad limit, cursor or filter.
create function public.list_jobs(
  p_statuses public.job_status[] default null,
  p_types text[] default null,
  p_created_from timestamptz default null,
  p_created_before timestamptz default null,
  p_search text default null,
  p_parent_id uuid default null,
  p_user_id uuid default null,
  p_cursor_created_at timestamptz default null,
  p_cursor_id uuid default null,
  p_limit integer default 20
)
returns setof public.jobs
language plpgsql stable
security definer
set search_path = ''
as $$
declare
  v_scope uuid := spool.job_scope(p_user_id);
  v_owner boolean := auth.role() is distinct from 'service_role' and auth.jwt() is not null;
  v_hidden text[] := '{}';
  v_sql text;
begin
  if p_limit is null or p_limit not between 1 and 1000 then
    perform spool.throw(400, 'invalid_argument', 'limit must be between 1 and 1000');
  end if;
  if (p_cursor_created_at is null) <> (p_cursor_id is null) then
    perform spool.throw(400, 'invalid_argument', 'a cursor has both created_at and id');
  end if;
  if v_owner then
    select coalesce(pg_catalog.array_agg(a.attname::text), '{}') into v_hidden
    from pg_catalog.pg_attribute a
    where a.attrelid = 'public.jobs'::pg_catalog.regclass and a.attnum > 0 and not a.attisdropped
      and not pg_catalog.has_column_privilege('authenticated', a.attrelid, a.attnum, 'SELECT');
  end if;
  -- The page first, then each of its rows as the caller may see it (a few rows, not every match).
  v_sql := 'select r.* from (select j from public.jobs j where '
        || spool.job_filter(v_scope, p_statuses, p_types, p_created_from, p_created_before, p_search, p_parent_id)
        -- Keyset: created_at <= the cursor's is an index condition; the tie on id is a filter.
        || case when p_cursor_id is not null
             then ' and j.created_at <= $8 and (j.created_at < $8 or j.id < $9)' else '' end
        || ' order by j.created_at desc, j.id desc limit $10) p'
        || ' cross join lateral pg_catalog.jsonb_populate_record(null::public.jobs,'
        || ' pg_catalog.to_jsonb(p.j) operator(pg_catalog.-) $11) r'
        || ' order by r.created_at desc, r.id desc';
  return query execute v_sql
    using v_scope, p_statuses, p_types, p_created_from, p_created_before,
          spool.search_pattern(p_search), p_parent_id, p_cursor_created_at, p_cursor_id, p_limit,
          v_hidden;
end;
$$;
revoke execute on function public.list_jobs(public.job_status[], text[], timestamptz, timestamptz,
  text, uuid, uuid, timestamptz, uuid, integer) from public, anon;
grant execute on function public.list_jobs(public.job_status[], text[], timestamptz, timestamptz,
  text, uuid, uuid, timestamptz, uuid, integer) to authenticated, service_role;

-- Bulk actions ---------------------------------------------------------------------------------------

-- The most jobs one bulk call changes; the rest are reported refused as "limit" (call again).
create function spool.bulk_limit() returns integer language sql immutable set search_path = ''
  as $$ select 1000 $$;
revoke all on function spool.bulk_limit() from public, anon, authenticated, service_role;

-- spool.bulk_result(matched, changed, refused, reasons) is a bulk action's answer.
create function spool.bulk_result(p_matched integer, p_changed integer, p_refused jsonb, p_reasons jsonb)
returns jsonb
language sql immutable
set search_path = ''
as $$
  select pg_catalog.jsonb_build_object('matched', p_matched, 'changed', p_changed,
                                       'refused', p_refused, 'reasons', p_reasons)
$$;
revoke all on function spool.bulk_result(integer, integer, jsonb, jsonb)
  from public, anon, authenticated, service_role;

-- cancel_jobs: cancel every job matching a filter that has not ended (pending, running or
-- waiting, within p_statuses when given: "cancel all queued" passes {pending}).
-- Caller: an authenticated user (their own jobs) or service_role (everyone's, or p_user_id's).
-- Each job is cancelled by cancel_job (its cascades, notification and doorbell included), oldest
-- first, at most spool.bulk_limit() per call. Never waits for a job row: one that another
-- transaction is writing right now (a worker completing it) is refused as "busy". A job that
-- ended before its turn is refused as "invalid_transition", unless it ended cancelled (by a
-- flow cascade of this call): then it counts as changed.
-- Returns {"matched": jobs matching, "changed": cancelled, "refused": {code: n}, "reasons":
-- {code: message}}: matched = changed + the refused counts. Idempotent: a second call matches
-- only what the first left. p_dry_run: only counts (matched), changes nothing, locks nothing.
create function public.cancel_jobs(
  p_statuses public.job_status[] default null,
  p_types text[] default null,
  p_created_from timestamptz default null,
  p_created_before timestamptz default null,
  p_search text default null,
  p_parent_id uuid default null,
  p_user_id uuid default null,
  p_dry_run boolean default false
)
returns jsonb
language plpgsql volatile
security definer
set search_path = ''
as $$
declare
  v_scope uuid := spool.job_scope(p_user_id);
  v_states public.job_status[] := array(
    select s from pg_catalog.unnest(array['pending', 'running', 'waiting']::public.job_status[]) s
    where p_statuses is null or s = any (p_statuses));
  v_where text := spool.job_filter(v_scope, v_states, p_types, p_created_from, p_created_before,
                                   p_search, p_parent_id);
  v_matched integer;
  v_changed integer := 0;
  v_done integer := 0;
  v_refused jsonb := '{}';
  v_reasons jsonb := '{}';
  v_id uuid;
  v_job public.jobs;
  v_code text;
begin
  execute 'select count(*) from public.jobs j where ' || v_where
    into v_matched
    using v_scope, v_states, p_types, p_created_from, p_created_before, spool.search_pattern(p_search), p_parent_id;
  if p_dry_run then
    return spool.bulk_result(v_matched, 0, '{}', '{}');
  end if;
  for v_id in execute 'select j.id from public.jobs j where ' || v_where
                      || ' order by j.created_at, j.id limit $8'
    using v_scope, v_states, p_types, p_created_from, p_created_before, spool.search_pattern(p_search),
          p_parent_id, spool.bulk_limit()
  loop
    v_done := v_done + 1;
    v_code := null;
    select * into v_job from public.jobs j where j.id = v_id for update skip locked;
    if not found then
      v_code := 'busy';
      v_reasons := v_reasons || pg_catalog.jsonb_build_object(v_code,
        'a worker was writing the job at that moment: try again');
    elsif v_job.status = 'cancelled' then
      v_changed := v_changed + 1;
    elsif v_job.status in ('done', 'failed') then
      v_code := 'invalid_transition';
      v_reasons := v_reasons || pg_catalog.jsonb_build_object(v_code, 'the job ended before it could be cancelled');
    else
      perform public.cancel_job(v_id);
      v_changed := v_changed + 1;
    end if;
    if v_code is not null then
      v_refused := v_refused || pg_catalog.jsonb_build_object(v_code, coalesce((v_refused ->> v_code)::integer, 0) + 1);
    end if;
  end loop;
  if v_matched > v_done then
    v_refused := v_refused || pg_catalog.jsonb_build_object('limit', v_matched - v_done);
    v_reasons := v_reasons || pg_catalog.jsonb_build_object('limit',
      pg_catalog.format('at most %s jobs per call: run it again for the rest', spool.bulk_limit()));
    end if;
  return spool.bulk_result(greatest(v_matched, v_done), v_changed, v_refused, v_reasons);
end;
$$;
revoke execute on function public.cancel_jobs(public.job_status[], text[], timestamptz, timestamptz,
  text, uuid, uuid, boolean) from public, anon;
grant execute on function public.cancel_jobs(public.job_status[], text[], timestamptz, timestamptz,
  text, uuid, uuid, boolean) to authenticated, service_role;

-- retry_jobs: retry every failed or cancelled job matching a filter (within p_statuses when
-- given: "retry all failed" passes {failed}).
-- Caller: an authenticated user (their own jobs) or service_role (everyone's, or p_user_id's).
-- Each job is retried by retry_job, oldest first, at most spool.bulk_limit() per call, with its
-- rules: a permanent failure whose input was not replaced is refused "not_retryable" (decided
-- here, as retry_job would, without trying it, before any quota); the owner's quotas (quota_rate, counting every
-- retry of this call, and quota_active_jobs) refuse the job that meets them and then every later
-- job of that owner with the same code, untried: the bulk stops at the quota. Any other refusal
-- of retry_job (a flow child whose dependency failed: dependency_failed) is counted under its
-- code and the call goes on. Never waits for a job row ("busy", as cancel_jobs). A job that a
-- flow parent's retry earlier in this call already retried counts as changed.
-- Returns {"matched", "changed", "refused": {code: n}, "reasons": {code: message}}: matched =
-- changed + the refused counts. p_dry_run: only counts (matched), changes nothing, locks nothing.
create function public.retry_jobs(
  p_statuses public.job_status[] default null,
  p_types text[] default null,
  p_created_from timestamptz default null,
  p_created_before timestamptz default null,
  p_search text default null,
  p_parent_id uuid default null,
  p_user_id uuid default null,
  p_dry_run boolean default false
)
returns jsonb
language plpgsql volatile
security definer
set search_path = ''
as $$
declare
  v_scope uuid := spool.job_scope(p_user_id);
  v_states public.job_status[] := array(
    select s from pg_catalog.unnest(array['failed', 'cancelled']::public.job_status[]) s
    where p_statuses is null or s = any (p_statuses));
  v_where text := spool.job_filter(v_scope, v_states, p_types, p_created_from, p_created_before,
                                   p_search, p_parent_id);
  v_matched integer;
  v_changed integer := 0;
  v_done integer := 0;
  v_refused jsonb := '{}';
  v_reasons jsonb := '{}';
  -- Owners whose quota this call met, and the code it met.
  v_stopped jsonb := '{}';
  v_id uuid;
  v_job public.jobs;
  v_code text;
  v_message text;
  v_state text;
begin
  execute 'select count(*) from public.jobs j where ' || v_where
    into v_matched
    using v_scope, v_states, p_types, p_created_from, p_created_before, spool.search_pattern(p_search), p_parent_id;
  if p_dry_run then
    return spool.bulk_result(v_matched, 0, '{}', '{}');
  end if;
  for v_id in execute 'select j.id from public.jobs j where ' || v_where
                      || ' order by j.created_at, j.id limit $8'
    using v_scope, v_states, p_types, p_created_from, p_created_before, spool.search_pattern(p_search),
          p_parent_id, spool.bulk_limit()
  loop
    v_done := v_done + 1;
    v_code := null;
    select * into v_job from public.jobs j where j.id = v_id for update skip locked;
    if not found then
      v_code := 'busy';
      v_message := 'a worker was writing the job at that moment: try again';
    elsif v_job.status not in ('failed', 'cancelled') then
      if v_job.status = 'done' then
        v_code := 'invalid_transition';
        v_message := 'the job was done before it could be retried';
      else
        v_changed := v_changed + 1; -- running again already: a flow parent's retry took it along
      end if;
    elsif v_job.status = 'failed' and (v_job.error ->> 'retryable') = 'false'
          and not exists (select 1 from spool.flows f where f.job_id = v_id)
          and not spool.input_replaced(v_job) then
      v_code := 'not_retryable';
      v_message := 'it failed permanently and its input was not replaced: start a new job instead';
    elsif v_stopped ? v_job.user_id::text then
      v_code := v_stopped ->> v_job.user_id::text;
    else
      begin
        perform public.retry_job(v_id);
        v_changed := v_changed + 1;
      exception when others then
        get stacked diagnostics v_state = returned_sqlstate, v_code = pg_exception_hint,
                                v_message = message_text;
        if v_state not like 'PT%' then
          raise;
        end if;
        v_code := coalesce(nullif(v_code, ''), 'error');
        if v_code in ('quota_rate', 'quota_active_jobs') then
          v_stopped := v_stopped || pg_catalog.jsonb_build_object(v_job.user_id::text, v_code);
        end if;
      end;
    end if;
    if v_code is not null then
      v_refused := v_refused || pg_catalog.jsonb_build_object(v_code, coalesce((v_refused ->> v_code)::integer, 0) + 1);
      if not v_reasons ? v_code and v_message is not null then
        v_reasons := v_reasons || pg_catalog.jsonb_build_object(v_code, v_message);
      end if;
    end if;
  end loop;
  if v_matched > v_done then
    v_refused := v_refused || pg_catalog.jsonb_build_object('limit', v_matched - v_done);
    v_reasons := v_reasons || pg_catalog.jsonb_build_object('limit',
      pg_catalog.format('at most %s jobs per call: run it again for the rest', spool.bulk_limit()));
  end if;
  return spool.bulk_result(greatest(v_matched, v_done), v_changed, v_refused, v_reasons);
end;
$$;
revoke execute on function public.retry_jobs(public.job_status[], text[], timestamptz, timestamptz,
  text, uuid, uuid, boolean) from public, anon;
grant execute on function public.retry_jobs(public.job_status[], text[], timestamptz, timestamptz,
  text, uuid, uuid, boolean) to authenticated, service_role;

-- The console's time series ----------------------------------------------------------------------------

-- job_series: jobs finished per minute over the last p_minutes minutes (1..1440), per type and
-- outcome.
-- Caller: service_role (the jobs function's console endpoint, admins in the SQL editor).
-- Returns one row per (minute, type, status) that saw a job finish, and one per (minute, status)
-- with type null for all types together, ordered by minute, type (null first) and status: minute (the start of the bucket, date_trunc('minute', finished_at)), type, status (done,
-- failed or cancelled), finished (how many), run_p50_ms and run_p95_ms (started_at -> finished_at
-- of those that started: the last attempt's work, not its wait), wait_p50_ms (run_at ->
-- started_at: from runnable to claimed; null when none started). Minutes without a finish have no
-- row. Window: finished_at in (now - p_minutes, now], now = spool.now(). Read-only; reads that
-- range of jobs_finished_idx.
create function public.job_series(p_minutes integer default 60)
returns table (
  minute timestamptz, type text, status public.job_status, finished integer,
  run_p50_ms numeric, run_p95_ms numeric, wait_p50_ms numeric
)
language plpgsql stable
security definer
set search_path = ''
as $$
declare
  v_now timestamptz := spool.now();
begin
  if p_minutes is null or p_minutes not between 1 and 1440 then
    perform spool.throw(400, 'invalid_argument', 'minutes must be between 1 and 1440');
  end if;
  return query
  select pg_catalog.date_trunc('minute', j.finished_at), j.type, j.status, count(*)::integer,
         pg_catalog.round(pg_catalog.percentile_cont(0.5) within group (
           order by extract(epoch from j.finished_at - j.started_at) * 1000)::numeric, 1),
         pg_catalog.round(pg_catalog.percentile_cont(0.95) within group (
           order by extract(epoch from j.finished_at - j.started_at) * 1000)::numeric, 1),
         pg_catalog.round(pg_catalog.percentile_cont(0.5) within group (
           order by case when j.started_at is not null
                         then greatest(extract(epoch from j.started_at - j.run_at), 0) * 1000 end)::numeric, 1)
  from public.jobs j
  where j.finished_at > v_now - pg_catalog.make_interval(mins => p_minutes)
    and j.finished_at <= v_now
  -- Per type, and for all types together (type null): percentiles do not add up across types.
  group by grouping sets ((1, 2, 3), (1, 3))
  order by 1, 2 nulls first, 3;
end;
$$;
revoke execute on function public.job_series(integer) from public, anon, authenticated;
grant execute on function public.job_series(integer) to service_role;

-- Why the queue is not moving -------------------------------------------------------------------------

-- queue_diagnosis: what holds back the jobs that are not running, as one JSON document.
-- Caller: service_role (the jobs function's console endpoint, which adds the providers it knows).
-- Returns {"at", "pending": n (all), "due": n (run_at <= now), "claimable": n (due, and both their
-- owner and their type have room: claim_jobs would take them now), "running": n,
--  "scheduled": {"count", "next_run_at"} (pending with run_at in the future),
--  "user_cap": {"limit": max_running_per_user, "users": n, "jobs": n, "top": [{"user_id",
--     "running", "due"}]} (owners at the cap who have due jobs, those jobs, the 5 with most),
--  "types": [{"type", "max_running", "running", "rate_per_minute", "started", "due",
--     "reason": "type_cap" | "type_rate", "reopens_at"}] (limited types with no room and due jobs;
--     reopens_at: for a rate, when the oldest start counted leaves the window),
--  "due_by_type": [{"type", "due"}],
--  "waiting": {"dependencies": n, "children": n, "providers": [{"provider", "count"}]},
--  "sweep": {"schedule", "active", "last_run_at", "next_run_at"} (pg_cron's spool-sweep; null
--     without it), "doorbell": {"rung_at", "skipped"},
--  "reasons": [{"code", "count", "message"}] (the codes: user_cap, type_cap, type_rate,
--     scheduled, dependencies, provider, not_rung: claimable jobs and nothing running, so the
--     next ring (a new job, or the sweep at next_run_at) starts them)}.
-- Read-only, no lock: counts as committed, advisory like job_type_stats.
create function public.queue_diagnosis()
returns jsonb
language plpgsql stable
security definer
set search_path = ''
as $$
declare
  v_now timestamptz := spool.now();
  v_cap integer := (select s.max_running_per_user from spool.settings s);
  v_at_cap uuid[] := spool.users_at_cap(v_cap);
  v_full text[];
  v_pending integer;
  v_due integer;
  v_claimable integer;
  v_running integer;
  v_capped_jobs integer;
  v_doc jsonb;
  v_sweep jsonb;
  v_reasons jsonb := '[]';
  v_types jsonb;
  v_sched jsonb;
  v_wait jsonb;
  v_user_cap jsonb;
begin
  select coalesce(pg_catalog.array_agg(r.type), '{}') into v_full
  from spool.type_room(null, v_now) r where r.room = 0;

  select count(*)::integer, count(*) filter (where j.run_at <= v_now)::integer,
         count(*) filter (where j.run_at <= v_now and j.user_id <> all (v_at_cap)
                            and j.type <> all (v_full))::integer,
         count(*) filter (where j.run_at <= v_now and j.user_id = any (v_at_cap))::integer
    into v_pending, v_due, v_claimable, v_capped_jobs
  from public.jobs j where j.status = 'pending';
  select count(*)::integer into v_running from public.jobs j where j.status = 'running';

  v_sched := (select pg_catalog.jsonb_build_object('count', count(*), 'next_run_at', min(j.run_at))
              from public.jobs j where j.status = 'pending' and j.run_at > v_now);

  v_user_cap := pg_catalog.jsonb_build_object('limit', v_cap,
    'users', (select count(distinct j.user_id) from public.jobs j
              where j.status = 'pending' and j.run_at <= v_now and j.user_id = any (v_at_cap)),
    'jobs', v_capped_jobs,
    'top', coalesce((select pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
                       'user_id', t.user_id, 'running', t.running, 'due', t.due) order by t.due desc, t.user_id)
                     from (select j.user_id, count(*) as due,
                                  (select count(*) from public.jobs r
                                   where r.status = 'running' and r.user_id = j.user_id) as running
                           from public.jobs j
                           where j.status = 'pending' and j.run_at <= v_now and j.user_id = any (v_at_cap)
                           group by j.user_id order by count(*) desc, j.user_id limit 5) t), '[]'));

  v_types := coalesce((
    select pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
             'type', r.type, 'max_running', t.max_running, 'running', r.running,
             'rate_per_minute', t.rate_per_minute, 'started', r.started, 'due', d.due,
             'reason', case when t.max_running is not null and r.running >= t.max_running
                            then 'type_cap' else 'type_rate' end,
             'reopens_at', case when not (t.max_running is not null and r.running >= t.max_running)
                                then (select min(e.at) + interval '60 seconds'
                                      from spool.type_slots s, pg_catalog.unnest(s.start_at) e(at)
                                      where s.type = r.type and e.at > v_now - interval '60 seconds') end)
             order by r.type)
    from spool.type_room(null, v_now) r
    join spool.job_types t on t.type = r.type
    join (select j.type, count(*) as due from public.jobs j
          where j.status = 'pending' and j.run_at <= v_now group by j.type) d on d.type = r.type
    where r.room = 0), '[]');

  v_wait := pg_catalog.jsonb_build_object(
    'dependencies', (select count(*) from public.jobs j
                     where j.status = 'waiting' and j.external_provider is null
                       and not exists (select 1 from spool.flows f where f.job_id = j.id)),
    'children', (select count(*) from public.jobs j
                 where j.status = 'waiting' and exists (select 1 from spool.flows f where f.job_id = j.id)),
    'providers', coalesce((select pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object('provider', p.provider, 'count', p.n)
                                                       order by p.provider)
                           from (select j.external_provider as provider, count(*) as n from public.jobs j
                                 where j.status = 'waiting' and j.external_provider is not null
                                 group by j.external_provider) p), '[]'));

  -- pg_cron's safety-net sweep: "10 seconds" (pg_cron >= 1.5) or a cron line.
  begin
    select pg_catalog.jsonb_build_object('schedule', c.schedule, 'active', c.active,
             'last_run_at', l.last, 'next_run_at',
             case when not c.active then null
                  when c.schedule ~ '^\d+ seconds?$'
                    then greatest(coalesce(l.last, v_now) + (c.schedule)::interval, v_now)
                  else spool.next_cron_after(c.schedule, 'UTC', v_now) end)
      into v_sweep
    from cron.job c
    left join lateral (select max(d.start_time) as last from cron.job_run_details d where d.jobid = c.jobid) l on true
    where c.jobname = 'spool-sweep';
  exception when others then
    v_sweep := null; -- no pg_cron here, or a schedule spool.next_cron_after does not read
  end;

  if v_capped_jobs > 0 then
    v_reasons := v_reasons || pg_catalog.jsonb_build_array(pg_catalog.jsonb_build_object('code', 'user_cap',
      'count', v_capped_jobs,
      'message', pg_catalog.format('%s due job(s) of %s owner(s) at the per-user cap of %s running',
        v_capped_jobs, v_user_cap ->> 'users', v_cap)));
  end if;
  v_reasons := v_reasons || coalesce((select pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
      'code', t ->> 'reason', 'count', (t ->> 'due')::integer,
      'message', case t ->> 'reason'
        when 'type_cap' then pg_catalog.format('%s: %s due, at its cap of %s running', t ->> 'type', t ->> 'due', t ->> 'max_running')
        else pg_catalog.format('%s: %s due, %s started in the last minute of %s allowed%s', t ->> 'type', t ->> 'due',
               t ->> 'started', t ->> 'rate_per_minute',
               coalesce(', room again at ' || pg_catalog.to_char((t ->> 'reopens_at')::timestamptz at time zone 'UTC', 'HH24:MI:SS') || ' UTC', ''))
      end)) from pg_catalog.jsonb_array_elements(v_types) t), '[]');
  if (v_sched ->> 'count')::integer > 0 then
    v_reasons := v_reasons || pg_catalog.jsonb_build_array(pg_catalog.jsonb_build_object('code', 'scheduled',
      'count', (v_sched ->> 'count')::integer,
      'message', pg_catalog.format('%s job(s) scheduled for later (run_at), the next at %s UTC', v_sched ->> 'count',
        pg_catalog.to_char((v_sched ->> 'next_run_at')::timestamptz at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS'))));
  end if;
  if (v_wait ->> 'dependencies')::integer > 0 then
    v_reasons := v_reasons || pg_catalog.jsonb_build_array(pg_catalog.jsonb_build_object('code', 'dependencies',
      'count', (v_wait ->> 'dependencies')::integer,
      'message', pg_catalog.format('%s job(s) waiting for the jobs they depend on', v_wait ->> 'dependencies')));
  end if;
  v_reasons := v_reasons || coalesce((select pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object('code', 'provider',
      'count', (p ->> 'count')::integer, 'provider', p ->> 'provider',
      'message', pg_catalog.format('%s job(s) waiting for %s to call back', p ->> 'count', p ->> 'provider')))
    from pg_catalog.jsonb_array_elements(v_wait -> 'providers') p), '[]');
  if v_claimable > 0 and v_running = 0 then
    v_reasons := v_reasons || pg_catalog.jsonb_build_array(pg_catalog.jsonb_build_object('code', 'not_rung',
      'count', v_claimable,
      'message', pg_catalog.format('%s job(s) could run and none is running: the next doorbell starts them%s', v_claimable,
        coalesce(' (the sweep at ' || pg_catalog.to_char((v_sweep ->> 'next_run_at')::timestamptz at time zone 'UTC', 'HH24:MI:SS') || ' UTC)', ''))));
  end if;

  v_doc := pg_catalog.jsonb_build_object(
    'at', v_now, 'pending', v_pending, 'due', v_due, 'claimable', v_claimable, 'running', v_running,
    'scheduled', v_sched, 'user_cap', v_user_cap, 'types', v_types,
    'due_by_type', coalesce((select pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object('type', d.type, 'due', d.n) order by d.type)
                             from (select j.type, count(*) as n from public.jobs j
                                   where j.status = 'pending' and j.run_at <= v_now group by j.type) d), '[]'),
    'waiting', v_wait, 'sweep', v_sweep,
    'doorbell', (select pg_catalog.jsonb_build_object('rung_at', case when b.rung_at = '-infinity' then null else b.rung_at end,
                                                      'skipped', b.skipped) from spool.doorbell b),
    'reasons', v_reasons);
  return v_doc;
end;
$$;
revoke execute on function public.queue_diagnosis() from public, anon, authenticated;
grant execute on function public.queue_diagnosis() to service_role;
