-- Per-type limits: a row per job type, project-wide, edited by admins with one UPDATE.
--
--   update spool.job_types set max_running = 5, rate_per_minute = 50 where type = 'image';
--
-- A type without a row runs with the defaults of the columns below (no project-wide cap, no rate,
-- a 600 s timeout, 3 attempts, priority 0, the queue-wide retention): an app may enqueue a new
-- type from SQL before it registers one. The shipped kinds have rows.
--
-- What each column governs:
--   max_running      jobs of this type running at once across the project (claim_jobs), whatever
--                    the number of users; null: no cap (the per-user cap still holds)
--   rate_per_minute  jobs of this type started per minute across the project (claim_jobs), for
--                    provider limits such as OpenAI's; null: no rate
--   timeout_seconds  a running attempt older than this is aborted by its worker (jobs.timeout_at,
--                    set at claim) and failed by rescue_jobs if the worker is gone
--   max_attempts     attempts of a job created without its own (create_job, create_jobs)
--   priority         priority of a job created without its own
--   retention_done / retention_failed   how long finished jobs of this type are kept (prune);
--                    null: spool.settings' retention

create table spool.job_types (
  type             text primary key check (type ~ '^[a-z][a-z0-9-]{0,62}$'),
  max_running      integer check (max_running >= 0),
  rate_per_minute  integer check (rate_per_minute >= 0),
  timeout_seconds  integer not null default 600 check (timeout_seconds between 1 and 86400),
  max_attempts     integer not null default 3 check (max_attempts between 1 and 25),
  priority         smallint not null default 0 check (priority between -100 and 100),
  retention_done   interval check (retention_done >= '0'),
  retention_failed interval check (retention_failed >= '0'),
  updated_at       timestamptz not null default now()
);
comment on table spool.job_types is
  'Per-type limits, project-wide (one row per job type; a type without a row gets the column defaults). Change with UPDATE spool.job_types SET ... WHERE type = ...';
alter table spool.job_types enable row level security;
grant select, insert, update, delete on spool.job_types to service_role;

-- The deadline of the running attempt: claim_jobs sets it from the type's timeout_seconds; the
-- worker aborts its handler there and rescue_jobs fails an attempt left past it.
alter table public.jobs add column timeout_at timestamptz;
comment on column public.jobs.timeout_at is
  'When the latest attempt times out (its claim time + spool.job_types.timeout_seconds); set by each claim and only read while the job is running.';

-- The shipped kinds. Each OpenAI image attempt costs money: retry once at most.
insert into spool.job_types (type, max_running, rate_per_minute, timeout_seconds, max_attempts) values
  ('color-grade', null, null, 300, 3),
  ('audio-clean', null, null, 300, 3),
  ('roto',        null, null, 300, 3),
  ('image',       null, null, 300, 2),
  ('noop',        null, null, 600, 3);
