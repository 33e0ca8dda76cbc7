-- Spool: the queue's schema.
--
-- `public.jobs` is the single source of truth for every job; `public.notifications` tells a user
-- that one of their jobs ended. Both live in `public` so PostgREST, Realtime and the dashboard see
-- them; nobody but the SQL API writes them. Private state (settings, per-user fairness slots, the
-- doorbell) lives in schema `spool`, which is never exposed through the API.

-- pgcrypto (gen_random_bytes, gen_random_uuid) is enabled on every Supabase project; create it
-- only where it is missing, so a normal apply prints no notice.
do $$
begin
  if not exists (select 1 from pg_extension where extname = 'pgcrypto') then
    create extension pgcrypto with schema extensions;
  end if;
end;
$$;

create schema if not exists spool;
comment on schema spool is
  'Spool internals: settings, per-user slots, doorbell. Not exposed through the Data API.';
revoke all on schema spool from public;

-- Functions are not executable by everyone unless granted one by one (the Supabase default grants
-- EXECUTE on new functions in public to anon, authenticated and service_role).
alter default privileges revoke execute on functions from public;
alter default privileges in schema public revoke execute on functions from anon, authenticated, service_role;
alter default privileges in schema spool revoke execute on functions from public;

-- One vocabulary for job states, shared by SQL, TypeScript and the UI.
--   pending   waiting to be claimed (new, or retrying after backoff, or its lease expired)
--   running   claimed by a worker holding a lease
--   waiting   handed to an external provider that will call back
--   done      finished with an output          (terminal)
--   failed    gave up: permanent error or out of attempts (terminal)
--   cancelled cancelled by its owner or an admin (terminal)
create type public.job_status as enum ('pending', 'running', 'waiting', 'done', 'failed', 'cancelled');

-- spool.uuid_v7() returns a time-ordered UUID (RFC 9562 version 7): 48 bits of Unix milliseconds
-- followed by random bits. Job ids use it so that the primary-key index grows at its right edge
-- instead of splitting random pages, and ties in claim order fall back to creation order.
-- Like spool.now() below, it is not SECURITY DEFINER and qualifies every name, and it pins no
-- search_path on purpose: a SET clause stops Postgres inlining it into each row's default, which
-- the benchmark measured at ~10% of the claim + complete cost.
create function spool.uuid_v7() returns uuid
language sql volatile parallel safe
as $$
  select pg_catalog.encode(
    pg_catalog.set_bit(pg_catalog.set_bit(
      overlay(extensions.gen_random_bytes(16)
        placing substring(pg_catalog.int8send(
          pg_catalog.floor(extract(epoch from pg_catalog.clock_timestamp()) * 1000)::bigint) from 3)
        from 1 for 6),
      52, 1), 53, 1), 'hex')::uuid
$$;
comment on function spool.uuid_v7() is 'Time-ordered UUID v7 used for job ids.';

-- spool.now() is the clock every time rule reads (run_at, leases, backoff, quotas, retention).
-- It is transaction time, unless the session sets `spool.now` (tests do, to move time without
-- sleeping: `set local spool.now = '2030-01-01 00:00:00+00'`).
create function spool.now() returns timestamptz
language sql stable parallel safe
as $$
  select coalesce(nullif(pg_catalog.current_setting('spool.now', true), '')::timestamptz,
                  pg_catalog.now())
$$;
comment on function spool.now() is 'Transaction time, or the test override in GUC spool.now.';

create table public.jobs (
  id                uuid primary key default spool.uuid_v7(),
  user_id           uuid not null references auth.users (id) on delete cascade,
  type              text not null check (type ~ '^[a-z][a-z0-9-]{0,62}$'),
  status            public.job_status not null default 'pending',
  priority          smallint not null default 0 check (priority between -100 and 100),
  input             jsonb not null default '{}' check (jsonb_typeof(input) = 'object'),
  output            jsonb,
  progress          smallint not null default 0 check (progress between 0 and 100),
  step              text check (char_length(step) <= 200),
  error             jsonb,
  attempts          integer not null default 0 check (attempts >= 0),
  max_attempts      integer not null default 3 check (max_attempts between 1 and 25),
  run_at            timestamptz not null default spool.now(),
  fair_at           timestamptz not null default spool.now(),
  worker_id         text,
  lease_token       uuid,
  lease_expires_at  timestamptz,
  idempotency_key   text check (char_length(idempotency_key) between 1 and 200),
  external_provider text,
  external_id       text,
  parent_id         uuid references public.jobs (id) on delete set null,
  created_at        timestamptz not null default spool.now(),
  started_at        timestamptz,
  finished_at       timestamptz,
  updated_at        timestamptz not null default spool.now(),
  -- A running job always holds a lease; nothing else does.
  constraint jobs_lease_iff_running check ((status = 'running') = (lease_token is not null)),
  -- Terminal states carry their finishing time.
  constraint jobs_finished_iff_terminal
    check ((status in ('done', 'failed', 'cancelled')) = (finished_at is not null)),
  constraint jobs_external_pair check ((external_provider is null) = (external_id is null))
);
-- Heartbeats touch only unindexed columns, so leave room on each page for HOT updates. Every job
-- is updated at least twice (claim, finish) and each update leaves dead index entries that claims
-- and running-job counts must skip, so vacuum this table far more eagerly than the default 20%.
alter table public.jobs set (
  fillfactor = 80,
  autovacuum_vacuum_scale_factor = 0.02,
  autovacuum_vacuum_threshold = 1000,
  autovacuum_vacuum_insert_scale_factor = 0.05,
  autovacuum_analyze_scale_factor = 0.05
);

comment on table public.jobs is 'Spool jobs: one row per unit of background work. Written only through the SQL API.';
comment on column public.jobs.priority is 'Higher runs first (-100..100).';
comment on column public.jobs.run_at is 'Not claimable before this time (delays and retry backoff).';
comment on column public.jobs.fair_at is 'Virtual start time used to interleave users fairly; see create_job.';
comment on column public.jobs.lease_token is 'Fencing token: a fresh one per claim; every worker write must present it.';
comment on column public.jobs.lease_expires_at is 'Running: lease expiry. Waiting: deadline for the external provider.';
comment on column public.jobs.error is 'Last error as {"code","message",...}; kept across retries.';

-- Claiming reads only pending rows, in claim order. Partial, so finished history never slows it.
create index jobs_claim_idx on public.jobs (priority desc, fair_at, id) where status = 'pending';
-- Active jobs by state and owner: per-user running caps, active quotas, rescue, waiting sweeps.
create index jobs_active_idx on public.jobs (status, user_id)
  where status in ('pending', 'running', 'waiting');
-- A user's history, newest first (listing, and the jobs-per-minute quota).
create index jobs_user_created_idx on public.jobs (user_id, created_at desc);
-- Recently finished jobs: queue stats over a window, and pruning.
create index jobs_finished_idx on public.jobs (finished_at) where finished_at is not null;
create unique index jobs_idempotency_idx on public.jobs (user_id, idempotency_key)
  where idempotency_key is not null;
create unique index jobs_external_idx on public.jobs (external_provider, external_id)
  where external_id is not null;
create index jobs_parent_idx on public.jobs (parent_id) where parent_id is not null;

create table public.notifications (
  id         uuid primary key default spool.uuid_v7(),
  user_id    uuid not null references auth.users (id) on delete cascade,
  job_id     uuid not null,
  job_type   text not null,
  status     public.job_status not null check (status in ('done', 'failed', 'cancelled')),
  message    text not null,
  created_at timestamptz not null default spool.now(),
  read_at    timestamptz
);
comment on table public.notifications is
  'One row when a job ends, for its owner. job_id is not a foreign key: notifications outlive pruned jobs until their own retention.';
create index notifications_user_created_idx on public.notifications (user_id, created_at desc);

-- Queue-wide settings: one row, edited by admins with plain UPDATE.
create table spool.settings (
  id                           boolean primary key default true check (id),
  max_active_jobs_per_user     integer not null default 100 check (max_active_jobs_per_user > 0),
  max_jobs_per_minute_per_user integer not null default 60 check (max_jobs_per_minute_per_user > 0),
  max_running_per_user         integer not null default 10 check (max_running_per_user > 0),
  default_lease_seconds        integer not null default 60 check (default_lease_seconds between 5 and 3600),
  backoff_base_seconds         numeric not null default 5 check (backoff_base_seconds > 0),
  backoff_max_seconds          numeric not null default 3600 check (backoff_max_seconds > 0),
  fair_slot                    interval not null default '1 second' check (fair_slot >= '0'),
  doorbell_debounce            interval not null default '1 second' check (doorbell_debounce >= '0'),
  retention_done               interval not null default '14 days',
  retention_failed             interval not null default '30 days',
  retention_notifications      interval not null default '30 days'
);
comment on table spool.settings is 'Queue-wide limits and timings (one row). Change with UPDATE spool.settings SET ...';
comment on column spool.settings.fair_slot is
  'Virtual time each queued job of one user occupies: a user with N queued jobs pushes their N-th job N slots back, so other users interleave.';
insert into spool.settings default values;

-- Per-user scheduling state. The row is locked while a user's job is created, which makes the
-- quota checks exact under concurrency.
create table spool.user_slots (
  user_id uuid primary key references auth.users (id) on delete cascade,
  fair_at timestamptz not null
);
comment on table spool.user_slots is 'Next fair slot per user; its row lock serialises one user''s job creation.';

-- The doorbell: when it last rang, for debouncing.
create table spool.doorbell (
  id       boolean primary key default true check (id),
  rung_at  timestamptz not null default '-infinity',
  rings    bigint not null default 0,
  skipped  text
);
comment on table spool.doorbell is 'Last time the database woke job-worker; skipped says why the last ring did not go out.';
insert into spool.doorbell default values;

-- RLS on every table. Users get policies in the security migration; spool.* has none at all.
alter table public.jobs enable row level security;
alter table public.notifications enable row level security;
alter table spool.settings enable row level security;
alter table spool.user_slots enable row level security;
alter table spool.doorbell enable row level security;

-- Even the secret key goes through the SQL API to change a job: service_role reads the tables
-- (dashboards, the jobs function) but writes only through the functions, which enforce quotas,
-- fairness and leases. Admins who must repair a row by hand use the postgres role.
revoke all on public.jobs, public.notifications from anon, authenticated, service_role;
revoke all on spool.settings, spool.user_slots, spool.doorbell from anon, authenticated, service_role;
grant select on public.jobs, public.notifications to service_role;
grant usage on schema spool to service_role;
grant select, update on spool.settings to service_role;
grant select on spool.doorbell to service_role;
