// The database section of `npm run bench`: how fast Spool's SQL API drains a queue of no-op
// jobs, next to a bare SKIP LOCKED queue in the same database, and whether every job completed
// exactly once.
//
// For every cell of a claimers × batch-size grid, each system gets a fresh queue of `jobs` rows
// (Spool: public.jobs spread over `users` owners with fair_at as create_job would set it,
// fairness and per-user caps left at their defaults; bare: a minimal table with one partial
// index), VACUUM ANALYZE, then `claimers` connections loop claim → complete until it is empty.
// Claimers log in as postgres and `set role service_role`, as PostgREST does for the worker.
//
// Correctness is counted client-side (every id a claim or a completion returns, so a job
// claimed twice or completed twice is a duplicate) and checked server-side (every job must end
// done; a job not done is missing). Speed is reported, never asserted.

import fs from 'node:fs';
import os from 'node:os';
import { performance } from 'node:perf_hooks';
import pg from 'pg';

export const DEFAULTS = Object.freeze({
  jobs: 20_000,
  // Jobs for the batch-size-1 cells (two commits per job make them the slow ones); defaults to
  // `jobs`. The table says when it differs.
  batch1Jobs: undefined,
  // 400 owners × max_running_per_user (10) = 4,000 running slots, well above the 32 × 50 = 1,600
  // jobs the widest cell holds at once, so the per-user cap is on but never binds.
  users: 400,
  claimers: [1, 8, 32],
  batches: [1, 10, 50],
  // The cell the issue targets, run `repeats` times (median reported).
  target: { claimers: 8, batch: 50, minRatio: 0.8 },
  repeats: 3,
  // Jobs drained per system before the grid (warms caches and plans; not reported).
  warmupJobs: 2_000,
  // A cell that makes no progress for this long is stopped and its unfinished jobs are missing.
  stallMs: 30_000,
});

/** Server settings worth stating next to the numbers. */
const SETTINGS = [
  'server_version', 'fsync', 'synchronous_commit', 'full_page_writes', 'wal_level', 'wal_sync_method',
  'shared_buffers', 'work_mem', 'max_wal_size', 'checkpoint_timeout', 'autovacuum',
  'shared_preload_libraries', 'max_connections',
];

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------------------------
// The two systems under test
// ---------------------------------------------------------------------------------------------

/**
 * Spool: public.claim_jobs + public.complete_jobs, exactly as job-worker calls them. Profiling
 * may point `claimFn` / `completeFn` at a scratch copy of the SQL (never the migrations).
 */
export function spoolSystem({ name = 'spool', claimFn = 'public.claim_jobs', completeFn = 'public.complete_jobs' } = {}) {
  return {
    name,
    async reset(admin, jobs) {
      await admin.query('truncate public.jobs, public.job_attempts, public.notifications');
      await checkpoint(admin);
      // As create_job would leave them: each owner's k-th queued job is k fair slots back, owners
      // interleaved in creation (id) order. Inserted directly: create_job's per-user quotas
      // (100 active, 60 per minute) would refuse a backlog this deep, and enqueue is not measured.
      await admin.query(`
        insert into public.jobs (user_id, type, input, fair_at)
        select u.ids[1 + g % u.n], 'noop', '{}'::jsonb, now() + (g / u.n) * s.fair_slot
        from generate_series(0, $1::int - 1) g,
             (select array_agg(id order by id) ids, count(*)::int n from bench.users) u,
             spool.settings s
        order by g`, [jobs]);
      await admin.query(`
        insert into spool.user_slots (user_id, fair_at)
        select b.id, now() + ceil($1::numeric / (select count(*) from bench.users)) * s.fair_slot
        from bench.users b, spool.settings s
        on conflict (user_id) do update set fair_at = excluded.fair_at`, [jobs]);
      await admin.query('vacuum analyze public.jobs');
    },
    async claim(client, worker, batch) {
      const { rows } = await client.query({
        name: `${name}_claim`,
        text: `select id, lease_token, type, input from ${claimFn}($1, $2, null, null)`,
        values: [worker, batch],
      });
      return rows;
    },
    async complete(client, rows) {
      const results = rows.map((r) => ({ id: r.id, lease_token: r.lease_token, output: {} }));
      const { rows: done } = await client.query({
        name: `${name}_complete`,
        text: `select c as id from ${completeFn}($1::jsonb) c`,
        values: [JSON.stringify(results)],
      });
      return done.map((r) => r.id);
    },
    async verify(admin) {
      const { rows: [r] } = await admin.query(`
        select count(*)::int as total,
               count(*) filter (where status = 'done')::int as done,
               (select count(*)::int from public.notifications) as notifications
        from public.jobs`);
      return r;
    },
  };
}

const spool = spoolSystem();

/** The baseline: the smallest honest SKIP LOCKED queue (one partial index, no fairness). */
const bare = {
  name: 'bare',
  async reset(admin, jobs) {
    await admin.query('truncate bench.bare_jobs restart identity');
    await checkpoint(admin);
    await admin.query(`insert into bench.bare_jobs (payload) select '{}'::jsonb from generate_series(1, $1::int)`, [jobs]);
    await admin.query('vacuum analyze bench.bare_jobs');
  },
  async claim(client, worker, batch) {
    const { rows } = await client.query({
      name: 'bare_claim',
      text: `
        update bench.bare_jobs
           set status = 1, locked_by = $1, locked_at = now(), attempts = attempts + 1
         where id in (select id from bench.bare_jobs where status = 0
                      order by id limit $2 for update skip locked)
        returning id, payload`,
      values: [worker, batch],
    });
    return rows;
  },
  async complete(client, rows) {
    const { rows: done } = await client.query({
      name: 'bare_complete',
      text: `
        update bench.bare_jobs
           set status = 2, output = '{}', locked_by = null, finished_at = now()
         where id = any($1::bigint[]) and status = 1
        returning id`,
      values: [rows.map((r) => r.id)],
    });
    return done.map((r) => r.id);
  },
  async verify(admin) {
    const { rows: [r] } = await admin.query(`
      select count(*)::int as total, count(*) filter (where status = 2)::int as done
      from bench.bare_jobs`);
    return r;
  },
};

export const SYSTEMS = { spool, bare };

/**
 * CHECKPOINT between emptying a queue and refilling it: the seeding then writes every page the
 * drain will touch after the checkpoint, so the drain logs no full-page images. That is the
 * steady state of a busy queue between two checkpoints, and it is the same for both systems.
 */
async function checkpoint(admin) {
  await admin.query('checkpoint');
}

async function checkpointCount(admin) {
  const { rows: [r] } = await admin.query(
    'select (checkpoints_timed + checkpoints_req)::int as n from pg_stat_bgwriter');
  return r.n;
}

// ---------------------------------------------------------------------------------------------
// Setup
// ---------------------------------------------------------------------------------------------

/** Creates the bench schema: the owners of Spool's jobs and the bare baseline table. */
export async function setup(admin, { users }) {
  await admin.query(`
    drop schema if exists bench cascade;
    delete from auth.users where email like 'bench-%@spool.invalid';
    create schema bench;
    grant usage on schema bench to service_role;

    create table bench.users (id uuid primary key);
    create table bench.bare_jobs (
      id          bigserial primary key,
      status      smallint not null default 0,   -- 0 pending, 1 running, 2 done
      payload     jsonb not null default '{}',
      output      jsonb,
      attempts    integer not null default 0,
      locked_by   text,
      locked_at   timestamptz,
      created_at  timestamptz not null default now(),
      finished_at timestamptz
    );
    create index bare_jobs_pending_idx on bench.bare_jobs (id) where status = 0;
    grant select, insert, update, delete on bench.bare_jobs to service_role;
  `);
  await admin.query(`
    with u as (
      insert into auth.users (id, aud, role, email, created_at, updated_at)
      select gen_random_uuid(), 'authenticated', 'authenticated',
             format('bench-%s@spool.invalid', g), now(), now()
      from generate_series(1, $1::int) g
      returning id
    )
    insert into bench.users select id from u`, [users]);
}

/** The server settings and Spool settings the numbers were measured under. */
export async function readSettings(admin) {
  const { rows } = await admin.query(
    'select name, current_setting(name) as value from pg_settings where name = any($1) order by name', [SETTINGS]);
  const server = Object.fromEntries(rows.map((r) => [r.name, r.value]));
  const { rows: [spoolSettings] } = await admin.query(
    'select max_running_per_user, fair_slot::text, default_lease_seconds from spool.settings');
  return { server, spool: spoolSettings };
}

/** `n` connections as postgres, each `set role service_role` (what PostgREST does per request). */
export async function connectClaimers(url, n) {
  const clients = [];
  for (let i = 0; i < n; i++) {
    const c = new pg.Client({ connectionString: url, application_name: `spool-bench-${i}` });
    await c.connect();
    await c.query('set role service_role');
    c.backendPid = (await c.query('select pg_backend_pid() as pid')).rows[0].pid;
    clients.push(c);
  }
  return clients;
}

/**
 * CPU seconds (user + system) the given server processes have used, from /proc (the bench's
 * cluster runs on this machine). On a shared machine this is steadier than jobs/s (other
 * people's work slows a drain down far more than it inflates the drain's own CPU time), though
 * not immune to it. Null if /proc cannot be read.
 */
const CLOCK_TICKS = 100; // USER_HZ on Linux
function processCpuSeconds(pids) {
  try {
    let ticks = 0;
    for (const pid of pids) {
      const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      ticks += Number(fields[11]) + Number(fields[12]); // utime, stime (fields 14 and 15)
    }
    return ticks / CLOCK_TICKS;
  } catch {
    return null;
  }
}

/** The server's processes that write on the claimers' behalf: WAL writer, checkpointer, bgwriter. */
async function auxiliaryPids(admin) {
  const { rows } = await admin.query(`
    select pid from pg_stat_activity
    where backend_type in ('walwriter', 'checkpointer', 'background writer')`);
  return rows.map((r) => r.pid);
}

// ---------------------------------------------------------------------------------------------
// One drain
// ---------------------------------------------------------------------------------------------

/**
 * Seeds `jobs` jobs into `system`, drains them with the first `claimers` of `clients` taking
 * `batch` at a time, and checks the outcome. Returns the measurements and the correctness counts.
 */
export async function drainCell(system, { admin, clients, claimers, batch, jobs, stallMs = DEFAULTS.stallMs }) {
  await system.reset(admin, jobs);
  const checkpoints0 = await checkpointCount(admin);

  const claimed = new Set();
  const completed = new Set();
  const st = {
    dupClaims: 0, dupCompletions: 0, inflight: 0, done: 0, fenced: 0,
    claimCalls: 0, emptyClaims: 0, shortClaims: 0, claimMs: 0, completeCalls: 0, completeMs: 0,
    lastProgress: performance.now(), error: null, stalled: false,
  };
  const stop = () => st.error !== null || st.stalled;

  async function claimer(client, i) {
    const worker = `bench-${system.name}-${i}`;
    while (!stop()) {
      let t = performance.now();
      const rows = await system.claim(client, worker, batch);
      st.claimMs += performance.now() - t;
      st.claimCalls++;
      if (rows.length === 0) {
        // Empty: either everything left is held by other claimers (finish), or the rows left are
        // locked by concurrent claims right now / held back by a per-user cap (try again).
        if (st.done + st.inflight + st.fenced >= jobs) return;
        st.emptyClaims++;
        if (performance.now() - st.lastProgress > stallMs) {
          st.stalled = true;
          return;
        }
        await sleep(1);
        continue;
      }
      if (rows.length < batch && st.done + st.inflight + rows.length < jobs) st.shortClaims++;
      st.inflight += rows.length;
      for (const r of rows) {
        if (claimed.has(r.id)) st.dupClaims++;
        else claimed.add(r.id);
      }
      t = performance.now();
      const ids = await system.complete(client, rows);
      st.completeMs += performance.now() - t;
      st.completeCalls++;
      for (const id of ids) {
        if (completed.has(id)) st.dupCompletions++;
        else completed.add(id);
      }
      st.inflight -= rows.length;
      st.done += ids.length;
      st.fenced += rows.length - ids.length; // completions the lease check refused
      st.lastProgress = performance.now();
    }
  }

  const load = os.loadavg()[0];
  const active = clients.slice(0, claimers);
  const claimerPids = active.map((c) => c.backendPid);
  const auxPids = await auxiliaryPids(admin);
  const server0 = processCpuSeconds(claimerPids);
  const aux0 = processCpuSeconds(auxPids);
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  // A claimer that fails sets st.error, which stops the others at their next turn.
  await Promise.allSettled(active.map((c, i) => claimer(c, i).catch((err) => {
    st.error ??= err;
  })));
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const server1 = processCpuSeconds(claimerPids);
  const aux1 = processCpuSeconds(auxPids);
  const server = await system.verify(admin);
  const missing = jobs - server.done;
  const checkpoints = (await checkpointCount(admin)) - checkpoints0;
  return {
    system: system.name,
    claimers,
    batch,
    jobs,
    seconds: round(seconds, 3),
    jobsPerSecond: round(completed.size / seconds, 0),
    duplicates: st.dupClaims + st.dupCompletions,
    duplicateClaims: st.dupClaims,
    duplicateCompletions: st.dupCompletions,
    missing,
    // The client's count of distinct completions must agree with the server's done count.
    clientCompleted: completed.size,
    serverDone: server.done,
    serverTotal: server.total,
    ...(server.notifications !== undefined ? { notifications: server.notifications } : {}),
    fencedCompletions: st.fenced,
    claimCalls: st.claimCalls,
    emptyClaims: st.emptyClaims,
    shortClaims: st.shortClaims,
    avgClaimMs: round(st.claimMs / Math.max(1, st.claimCalls), 3),
    avgCompleteMs: round(st.completeMs / Math.max(1, st.completeCalls), 3),
    clientCpuPercent: round((100 * (cpu.user + cpu.system)) / 1e6 / seconds, 1),
    // CPU microseconds per job: the claimers' backends, and the WAL writer, checkpointer and
    // background writer (autovacuum workers come and go and are not counted).
    serverCpuUsPerJob: server0 === null || server1 === null ? null : round(((server1 - server0) * 1e6) / jobs, 1),
    auxCpuUsPerJob: aux0 === null || aux1 === null ? null : round(((aux1 - aux0) * 1e6) / jobs, 1),
    loadavg1: round(load, 2),
    // A checkpoint inside the measurement makes the next write of every page log a full image.
    checkpointsDuring: checkpoints,
    stalled: st.stalled,
    error: st.error ? String(st.error.message ?? st.error) : null,
  };
}

/** A cell result is correct when nothing was duplicated, lost, or left inconsistent. */
export function cellCorrect(r) {
  return r.duplicates === 0 && r.missing === 0 && r.clientCompleted === r.serverDone &&
    r.serverTotal === r.jobs && !r.stalled && !r.error &&
    (r.notifications === undefined || r.notifications === r.jobs);
}

// ---------------------------------------------------------------------------------------------
// The section
// ---------------------------------------------------------------------------------------------

/**
 * Runs the whole database section against a migrated Spool database.
 *   adminUrl     a superuser (seeding, TRUNCATE, VACUUM, CHECKPOINT)
 *   claimerUrl   the postgres role (password login), which `set role service_role`
 * Returns { settings, config, cells, target, ok }; `log` receives progress lines.
 */
export async function runDbBench({ adminUrl, claimerUrl, log = console.log, ...opts }) {
  const cfg = { ...DEFAULTS, ...Object.fromEntries(Object.entries(opts).filter(([, v]) => v !== undefined)) };
  const admin = new pg.Client({ connectionString: adminUrl, application_name: 'spool-bench-admin' });
  await admin.connect();
  const maxClaimers = Math.max(...cfg.claimers, cfg.target.claimers);
  let clients = [];
  try {
    await setup(admin, cfg);
    const settings = await readSettings(admin);
    clients = await connectClaimers(claimerUrl, maxClaimers);

    if (cfg.warmupJobs > 0) {
      log(`warming up (${cfg.warmupJobs} jobs per system, not reported)`);
      for (const sys of [spool, bare]) {
        await drainCell(sys, { admin, clients, claimers: cfg.target.claimers, batch: cfg.target.batch, jobs: cfg.warmupJobs, stallMs: cfg.stallMs });
      }
    }

    const runs = [];
    const jobsFor = (batch) => (batch === 1 ? cfg.batch1Jobs ?? cfg.jobs : cfg.jobs);
    const runCell = async (claimers, batch, order) => {
      for (const sys of order) {
        const r = await drainCell(sys, { admin, clients, claimers, batch, jobs: jobsFor(batch), stallMs: cfg.stallMs });
        runs.push(r);
        log(`  ${sys.name.padEnd(5)} claimers=${String(claimers).padStart(2)} batch=${String(batch).padStart(2)}: ` +
          `${fmt(r.jobsPerSecond).padStart(7)} jobs/s (${r.jobs} jobs in ${r.seconds}s; claim ${r.avgClaimMs} ms, ` +
          `complete ${r.avgCompleteMs} ms; server CPU ${r.serverCpuUsPerJob ?? '?'} µs/job)` +
          `${cellCorrect(r) ? '' : `  ✗ duplicates ${r.duplicates}, missing ${r.missing}${r.error ? `, error: ${r.error}` : ''}${r.stalled ? ', stalled' : ''}`}`);
      }
    };

    for (const claimers of cfg.claimers) {
      for (const batch of cfg.batches) await runCell(claimers, batch, [spool, bare]);
    }
    const isTarget = (r) => r.claimers === cfg.target.claimers && r.batch === cfg.target.batch;
    const targetInGrid = runs.filter(isTarget).length / 2;
    for (let i = targetInGrid; i < cfg.repeats; i++) {
      log(`target cell, run ${i + 1} of ${cfg.repeats}`);
      // Alternate which system goes first, so drift in machine load does not favour one.
      await runCell(cfg.target.claimers, cfg.target.batch, i % 2 ? [bare, spool] : [spool, bare]);
    }

    const cells = [];
    const keys = [...new Set(runs.map((r) => `${r.claimers}x${r.batch}`))];
    for (const key of keys) {
      const mine = runs.filter((r) => `${r.claimers}x${r.batch}` === key);
      const s = mine.filter((r) => r.system === 'spool');
      const b = mine.filter((r) => r.system === 'bare');
      const spoolJps = median(s.map((r) => r.jobsPerSecond));
      const bareJps = median(b.map((r) => r.jobsPerSecond));
      cells.push({
        claimers: s[0].claimers,
        batch: s[0].batch,
        jobs: s[0].jobs,
        runs: s.length,
        spoolJobsPerSecond: spoolJps,
        bareJobsPerSecond: bareJps,
        ratio: round(spoolJps / bareJps, 3),
        // Server CPU per job (claimer backends, µs): steadier than jobs/s on a shared machine.
        spoolCpuUsPerJob: median(s.map((r) => r.serverCpuUsPerJob ?? NaN)),
        bareCpuUsPerJob: median(b.map((r) => r.serverCpuUsPerJob ?? NaN)),
        duplicates: sum(s.map((r) => r.duplicates)),
        missing: sum(s.map((r) => r.missing)),
        bareDuplicates: sum(b.map((r) => r.duplicates)),
        bareMissing: sum(b.map((r) => r.missing)),
        correct: mine.every(cellCorrect),
        target: isTarget(s[0]),
        spool: s,
        bare: b,
      });
    }
    const t = cells.find((c) => c.target);
    const target = t && {
      claimers: t.claimers,
      batch: t.batch,
      runs: t.runs,
      spoolJobsPerSecond: t.spoolJobsPerSecond,
      bareJobsPerSecond: t.bareJobsPerSecond,
      ratio: t.ratio,
      ratios: t.spool.map((s, i) => round(s.jobsPerSecond / t.bare[i].jobsPerSecond, 3)),
      minRatio: cfg.target.minRatio,
      met: t.ratio >= cfg.target.minRatio,
    };
    return {
      settings,
      config: {
        jobs: cfg.jobs, batch1Jobs: cfg.batch1Jobs ?? cfg.jobs, users: cfg.users, claimers: cfg.claimers,
        batches: cfg.batches, target: cfg.target, repeats: cfg.repeats, warmupJobs: cfg.warmupJobs,
      },
      cells,
      target,
      ok: cells.every((c) => c.correct),
    };
  } finally {
    await Promise.allSettled(clients.map((c) => c.end()));
    await admin.query(`
      drop schema if exists bench cascade;
      delete from auth.users where email like 'bench-%@spool.invalid';`).catch(() => {});
    await admin.end().catch(() => {});
  }
}

/** The section's report, as lines of text. */
export function formatDbReport(result) {
  const { settings, config, cells, target } = result;
  const lines = [];
  const s = settings.server;
  lines.push(`Postgres ${s.server_version}: fsync=${s.fsync}, synchronous_commit=${s.synchronous_commit}, ` +
    `full_page_writes=${s.full_page_writes}, wal_level=${s.wal_level}, shared_buffers=${s.shared_buffers}, ` +
    `shared_preload_libraries=${s.shared_preload_libraries || '(none)'} (the settings npm start uses)`);
  lines.push(`Spool: max_running_per_user=${settings.spool.max_running_per_user}, fair_slot=${settings.spool.fair_slot} ` +
    `(fairness and per-user caps on, ${config.users} owners); claimers log in as postgres and set role service_role`);
  lines.push(`${fmt(config.jobs)} no-op jobs per cell` +
    `${config.batch1Jobs !== config.jobs ? `, ${fmt(config.batch1Jobs)} in the batch-1 cells` : ''}; ` +
    `the target cell is the median of ${target?.runs ?? 0} runs`);
  lines.push('');
  lines.push(...table(
    ['claimers', 'batch', 'spool jobs/s', 'bare jobs/s', 'ratio', 'duplicates', 'missing', ''],
    cells.map((c) => [
      c.claimers, c.batch, fmt(c.spoolJobsPerSecond), fmt(c.bareJobsPerSecond), c.ratio.toFixed(2),
      c.duplicates, c.missing, c.target ? `<- target, ratio >= ${target.minRatio}` : '',
    ]),
  ));
  if (target) {
    lines.push('');
    lines.push(`target (${target.claimers} claimers, batch ${target.batch}): spool ${fmt(target.spoolJobsPerSecond)} jobs/s, ` +
      `bare ${fmt(target.bareJobsPerSecond)} jobs/s, ratio ${target.ratio.toFixed(2)} of >= ${target.minRatio} ` +
      `(per run: ${target.ratios.map((r) => r.toFixed(2)).join(', ')}): ${target.met ? 'met' : 'NOT met'} (reported, not asserted)`);
  }
  if (cells.some((c) => Number.isFinite(c.spoolCpuUsPerJob))) {
    lines.push('');
    lines.push('Server CPU per job (the claimers\' backends; steadier than jobs/s when the machine is shared):');
    lines.push(...table(
      ['claimers', 'batch', 'spool µs/job', 'bare µs/job', 'spool/bare'],
      cells.map((c) => [c.claimers, c.batch, c.spoolCpuUsPerJob, c.bareCpuUsPerJob,
        `${(c.spoolCpuUsPerJob / c.bareCpuUsPerJob).toFixed(1)}x`]),
    ));
  }
  for (const c of cells.filter((x) => !x.correct)) {
    for (const r of [...c.spool, ...c.bare].filter((x) => !cellCorrect(x))) {
      lines.push(`✗ ${r.system} ${r.claimers}x${r.batch}: duplicates ${r.duplicates} (claims ${r.duplicateClaims}, ` +
        `completions ${r.duplicateCompletions}), missing ${r.missing}, client completed ${r.clientCompleted} ` +
        `vs server done ${r.serverDone} of ${r.serverTotal}` +
        `${r.notifications !== undefined ? `, notifications ${r.notifications}` : ''}` +
        `${r.stalled ? ', stalled' : ''}${r.error ? `, error: ${r.error}` : ''}`);
    }
  }
  return lines;
}

/** Right-aligned columns (a last empty-headed column is a left-aligned note). */
function table(head, rows) {
  const body = rows.map((r) => r.map(String));
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((r) => r[i].length)));
  const n = head[head.length - 1] === '' ? head.length - 1 : head.length;
  const row = (r) => r.map((v, i) => (i < n ? v.padStart(widths[i]) : v)).join('  ').trimEnd();
  return [row(head), widths.slice(0, n).map((w) => '-'.repeat(w)).join('  '), ...body.map(row)];
}

// ---------------------------------------------------------------------------------------------

function median(xs) {
  const a = [...xs].sort((x, y) => x - y);
  const m = a.length >> 1;
  return a.length % 2 ? a[m] : (a[m - 1] + a[m]) / 2;
}
const sum = (xs) => xs.reduce((a, b) => a + b, 0);
const round = (x, d) => Math.round(x * 10 ** d) / 10 ** d;
const fmt = (n) => Math.round(n).toLocaleString('en-US');
