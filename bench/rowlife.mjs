// The row-life section of `npm run bench` (issue 9, item 3): where a job's life costs the server,
// measured per job and per step, and what candidate schema changes would save.
//
// A job's life, as the shipped API runs it: create_job (one call and one transaction per job, as
// the creators call it) → claim_jobs (batches of `batch`, as job-worker) → complete_jobs (the same
// batches); and once, for a sample of `failJobs` jobs, fail_job (retryable, one call per job, as
// job-worker) → claim_jobs again after the backoff → complete_jobs.
//
// Setup. The section restarts the throwaway cluster with pg_stat_statements preloaded (ALTER
// SYSTEM, which postgresql.auto.conf applies after local/tools/db.mjs's spool.conf; track = all, so the
// statements inside the plpgsql functions are counted one by one) and creates pg_walinspect. Spool
// settings stay at their defaults except the two create quotas (active jobs and jobs per minute
// per user), raised so a backlog of `jobs` over `users` owners is not refused. The doorbell is
// held debounced (rung_at = infinity): every insert then does what it does on a busy queue (one
// skipped SELECT ... FOR UPDATE SKIP LOCKED), and no HTTP request is queued. Autovacuum is off
// in the section's cluster (ALTER SYSTEM), so its WAL and page writes are not charged to a
// step; the table is VACUUM ANALYZEd once the backlog is created (not measured), so
// the claim plans and the EXPLAIN see real statistics of a 20k backlog.
//
// Steps. Each life starts from empty tables and a CHECKPOINT. Claims are made in rounds of
// `roundJobs` (well under 400 owners × max_running_per_user 10, so the per-user cap is checked
// but never binds and no claim needs a second pass), each round completed before the next, by
// one connection; creates come from `createConnections` connections. Every step is bracketed by
// pg_current_wal_insert_lsn() and snapshots of pg_stat_statements (deltas per queryid, the
// claimer's and creators' statements only), pg_stat_user_tables/indexes and pg_statio, so the
// numbers of interleaved rounds add up per step.
//   server µs/job   pg_stat_statements total_exec_time of the top-level statements of the step
//                   (function calls; excludes commit and the client round trip) / jobs
//   WAL B/job       pg_wal_lsn_diff over the step / jobs, split by pg_walinspect into resource
//                   managers (Heap, Heap2, Btree, Transaction, ...), full-page images, and per
//                   relation (the first block a record references: jobs heap, each index, ...)
//   HOT             pg_stat_user_tables n_tup_hot_upd / n_tup_upd on public.jobs in the step, and
//                   the WAL's Heap UPDATE vs HOT_UPDATE record counts
//   buffers/job     shared blocks hit / read / dirtied / written by the step's top-level statements
// Plus: EXPLAIN (ANALYZE, BUFFERS) of claim_jobs' claiming statement (its CTE, with the
// function's variables as literals, rolled back) at the full backlog, of spool.users_at_cap, and
// of take_user_slot's two count queries for one heavy owner; index sizes at the backlog and at
// the end.
//
// Candidates (bench/rowlife/*.sql, applied only to this throwaway database, never to the
// migrations): each file's part before a line `-- @undo` is applied, the life is run again, then
// the undo part runs and every function of schemas public and spool is put back as it was
// (pg_get_functiondef saved before the first candidate). `all` applies those listed before it
// together (a, b, d, e; f redefines complete_jobs on its own, so it is measured alone). The report
// sets each against the baseline. Speed is reported, never asserted; a job lost, claimed twice or
// not ending done (or a notification count that does not match) makes the section fail.

import fs from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import * as localDb from '../local/tools/db.mjs';
import { connectClaimers, setup } from './db.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const CANDIDATE_DIR = path.join(HERE, 'rowlife');

export const DEFAULTS = Object.freeze({
  jobs: 20_000,
  users: 400,
  batch: 50,
  roundJobs: 2_000,
  // One creator: pg_stat_statements times are wall time inside the server, and more creators than
  // the 2 shared cores would count their waits for a CPU as the statements' time.
  createConnections: 1,
  failJobs: 1_000,
  // Lives per configuration; medians reported (WAL and buffers barely move, time does).
  repeats: 3,
  // Lives per candidate configuration (default: repeats).
  candidateRepeats: undefined,
  // Candidate files in bench/rowlife, by name without .sql, each measured alone; 'all' measures
  // the ones listed before it applied together (f redefines complete_jobs without (d)'s counter
  // upkeep, so it is measured alone).
  candidates: ['a_derived_notifications', 'b_fewer_indexes', 'd_slot_counters', 'e_slot_lock', 'all', 'f_complete_by_id'],
  // take_user_slot's counts are EXPLAINed for an owner with this many active jobs, recent jobs
  // (created in the last minute) and older finished jobs.
  heavy: { active: 2_000, recent: 10_000, old: 20_000 },
});

const STEPS = ['create', 'claim', 'complete', 'fail', 'reclaim', 'complete_retry'];
const STEP_LABEL = {
  create: 'create_job',
  claim: 'claim_jobs',
  complete: 'complete_jobs',
  fail: 'fail_job (retryable)',
  reclaim: 'claim_jobs after backoff',
  complete_retry: 'complete_jobs after retry',
};

// ---------------------------------------------------------------------------------------------
// The cluster: pg_stat_statements preloaded
// ---------------------------------------------------------------------------------------------

/**
 * Restarts the bench cluster in `dir` with pg_stat_statements preloaded (ALTER SYSTEM keeps
 * local/tools/db.mjs's pg_cron in the list) and creates pg_stat_statements and pg_walinspect.
 */
export async function preparePgStatStatements({ adminUrl, dir, port, fsync = true, log = console.log }) {
  await withClient(adminUrl, async (c) => {
    const { rows: [r] } = await c.query("select current_setting('shared_preload_libraries') as libs");
    const libs = r.libs.split(',').map((s) => s.trim()).filter(Boolean);
    if (!libs.includes('pg_stat_statements')) libs.push('pg_stat_statements');
    // A list setting: one quoted literal per library.
    await c.query(`alter system set shared_preload_libraries = ${libs.map((l) => `'${l}'`).join(', ')}`);
    await c.query("alter system set track_io_timing = 'on'");
    // No autovacuum or autoanalyze of any table while lives run: its WAL would land in a step.
    await c.query("alter system set autovacuum = 'off'");
    // The life's WAL is read back after each step; keep it even if a checkpoint comes between.
    await c.query("alter system set wal_keep_size = '2GB'");
  });
  log('rowlife: restarting the throwaway cluster with pg_stat_statements preloaded (track = all)');
  localDb.stopCluster({ dir }, { mode: 'fast', quiet: true });
  await localDb.startCluster({ dir, port, fsync });
  await withClient(adminUrl, async (c) => {
    await c.query('create extension if not exists pg_stat_statements with schema extensions');
    await c.query('create extension if not exists pg_walinspect with schema extensions');
    // The library's settings exist only once it is loaded; track is reloadable.
    await c.query("alter system set pg_stat_statements.track = 'all'");
    await c.query('select pg_reload_conf()');
  });
  await withClient(adminUrl, async (c) => {
    const { rows: [r] } = await c.query("select current_setting('pg_stat_statements.track') as t");
    if (r.t !== 'all') throw new Error(`pg_stat_statements.track is ${r.t}, not all`);
  });
}

async function withClient(url, fn) {
  const c = new pg.Client({ connectionString: url, application_name: 'spool-rowlife-admin' });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end().catch(() => {});
  }
}

// ---------------------------------------------------------------------------------------------
// Snapshots
// ---------------------------------------------------------------------------------------------

async function lsn(admin) {
  const { rows: [r] } = await admin.query('select pg_current_wal_insert_lsn()::text as l');
  return r.l;
}

/** pg_stat_statements of the given roles (the workers' statements), keyed by queryid+toplevel. */
async function pssSnapshot(admin, userIds) {
  const { rows } = await admin.query(`
    select queryid::text || ':' || toplevel::text as key, toplevel, query, calls::float8 as calls,
           rows::float8 as rows, total_exec_time as ms, shared_blks_hit::float8 as hit,
           shared_blks_read::float8 as read, shared_blks_dirtied::float8 as dirtied,
           shared_blks_written::float8 as written, wal_records::float8 as wal_records,
           wal_fpi::float8 as wal_fpi, wal_bytes::float8 as wal_bytes
    from extensions.pg_stat_statements
    where userid = any($1::oid[]) and dbid = (select oid from pg_database where datname = current_database())`,
  [userIds]);
  return new Map(rows.map((r) => [r.key, r]));
}

const PSS_NUM = ['calls', 'rows', 'ms', 'hit', 'read', 'dirtied', 'written', 'wal_records', 'wal_fpi', 'wal_bytes'];

function pssDelta(before, after) {
  const out = new Map();
  for (const [k, a] of after) {
    const b = before.get(k);
    const d = { key: k, toplevel: a.toplevel, query: a.query };
    for (const f of PSS_NUM) d[f] = a[f] - (b?.[f] ?? 0);
    if (d.calls > 0) out.set(k, d);
  }
  return out;
}

function pssAdd(acc, delta) {
  for (const [k, d] of delta) {
    const a = acc.get(k);
    if (!a) acc.set(k, { ...d });
    else for (const f of PSS_NUM) a[f] += d[f];
  }
}

/** Table and index counters of the Spool relations. */
async function relStats(admin) {
  await admin.query('select pg_stat_clear_snapshot()');
  const { rows: tables } = await admin.query(`
    select t.schemaname || '.' || t.relname as rel, t.n_tup_ins::float8 as ins, t.n_tup_upd::float8 as upd,
           t.n_tup_hot_upd::float8 as hot, t.n_tup_del::float8 as del,
           coalesce(io.heap_blks_hit, 0)::float8 as heap_hit, coalesce(io.heap_blks_read, 0)::float8 as heap_read,
           coalesce(io.idx_blks_hit, 0)::float8 as idx_hit, coalesce(io.idx_blks_read, 0)::float8 as idx_read
    from pg_stat_user_tables t join pg_statio_user_tables io using (relid)
    where t.schemaname in ('public', 'spool')`);
  const { rows: indexes } = await admin.query(`
    select i.schemaname || '.' || i.indexrelname as rel, i.relname as tbl, i.idx_scan::float8 as scans,
           i.idx_tup_read::float8 as tup_read, io.idx_blks_hit::float8 as hit, io.idx_blks_read::float8 as read
    from pg_stat_user_indexes i join pg_statio_user_indexes io using (indexrelid)
    where i.schemaname in ('public', 'spool')`);
  return {
    tables: Object.fromEntries(tables.map((r) => [r.rel, r])),
    indexes: Object.fromEntries(indexes.map((r) => [r.rel, r])),
  };
}

function relDelta(before, after) {
  const sub = (a, b) => Object.fromEntries(Object.entries(a).map(([k, v]) => [k, typeof v === 'number' ? v - (b?.[k] ?? 0) : v]));
  return {
    tables: Object.fromEntries(Object.entries(after.tables).map(([k, v]) => [k, sub(v, before.tables[k])])),
    indexes: Object.fromEntries(Object.entries(after.indexes).map(([k, v]) => [k, sub(v, before.indexes[k])])),
  };
}

function relAdd(acc, d) {
  for (const kind of ['tables', 'indexes']) {
    acc[kind] ??= {};
    for (const [k, v] of Object.entries(d[kind])) {
      const a = acc[kind][k];
      if (!a) acc[kind][k] = { ...v };
      else for (const [f, x] of Object.entries(v)) if (typeof x === 'number') a[f] += x;
    }
  }
}

/** relfilenode → relation name, for the WAL's block references. */
async function filenodeNames(admin) {
  const { rows } = await admin.query(`
    select pg_relation_filenode(c.oid)::text as node, n.nspname || '.' || c.relname as name
    from pg_class c join pg_namespace n on n.oid = c.relnamespace
    where pg_relation_filenode(c.oid) is not null`);
  return new Map(rows.map((r) => [r.node, r.name]));
}

/**
 * WAL between two LSNs from pg_walinspect: bytes and records by resource manager, by record type
 * and by relation (the relation of the record's first block reference; full-page image bytes
 * counted apart).
 */
async function walBetween(admin, from, to, names) {
  // pg_walinspect reads only flushed WAL.
  for (let i = 0; i < 100; i++) {
    const { rows: [r] } = await admin.query('select pg_wal_lsn_diff(pg_current_wal_flush_lsn(), $1::pg_lsn) >= 0 as ok', [to]);
    if (r.ok) break;
    await new Promise((res) => setTimeout(res, 20));
  }
  const { rows } = await admin.query(`
    select resource_manager as rmgr, record_type as type,
           substring(block_ref from 'rel \\d+/\\d+/(\\d+)') as node,
           count(*)::float8 as n, sum(record_length)::float8 as bytes, sum(fpi_length)::float8 as fpi
    from extensions.pg_get_wal_records_info($1::pg_lsn, $2::pg_lsn)
    group by 1, 2, 3`, [from, to]);
  const { rows: [d] } = await admin.query('select pg_wal_lsn_diff($2::pg_lsn, $1::pg_lsn)::float8 as bytes', [from, to]);
  const w = { bytes: d.bytes, recordBytes: 0, fpi: 0, records: 0, rmgr: {}, type: {}, rel: {} };
  for (const r of rows) {
    const rel = r.node ? names.get(r.node) ?? `filenode ${r.node}` : '(no relation)';
    w.recordBytes += r.bytes;
    w.fpi += r.fpi;
    w.records += r.n;
    add(w.rmgr, r.rmgr, { bytes: r.bytes, n: r.n, fpi: r.fpi });
    add(w.type, `${r.rmgr}/${r.type}`, { bytes: r.bytes, n: r.n, fpi: r.fpi });
    add(w.rel, rel, { bytes: r.bytes, n: r.n, fpi: r.fpi });
    add(w.rel, `${rel} ${r.rmgr}/${r.type}`, { bytes: r.bytes, n: r.n, fpi: r.fpi }, 'byType');
  }
  return w;
}

function add(obj, key, v, nest) {
  const target = nest ? (obj[nest] ??= {}) : obj;
  const a = target[key] ??= { bytes: 0, n: 0, fpi: 0 };
  a.bytes += v.bytes;
  a.n += v.n;
  a.fpi += v.fpi;
}

function walAdd(acc, w) {
  acc.bytes = (acc.bytes ?? 0) + w.bytes;
  acc.recordBytes = (acc.recordBytes ?? 0) + w.recordBytes;
  acc.fpi = (acc.fpi ?? 0) + w.fpi;
  acc.records = (acc.records ?? 0) + w.records;
  for (const f of ['rmgr', 'type', 'rel']) {
    acc[f] ??= {};
    for (const [k, v] of Object.entries(w[f])) {
      if (k === 'byType') {
        acc[f].byType ??= {};
        for (const [k2, v2] of Object.entries(v)) add(acc[f].byType, k2, v2);
      } else add(acc[f], k, v);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// One life
// ---------------------------------------------------------------------------------------------

/** Measures one step: runs fn(), attributes WAL, statements and counters to `step`. */
async function measured(ctx, step, jobs, fn) {
  const { admin } = ctx;
  const s = ctx.steps[step] ??= { jobs: 0, seconds: 0, wal: {}, pss: new Map(), rel: {} };
  const pss0 = await pssSnapshot(admin, ctx.userIds);
  const rel0 = await relStats(admin);
  const from = await lsn(admin);
  const cpu0 = processCpuSeconds(ctx.pids);
  const t0 = performance.now();
  const result = await fn();
  const seconds = (performance.now() - t0) / 1000;
  const cpu1 = processCpuSeconds(ctx.pids);
  const to = await lsn(admin);
  // Backends publish table counters when idle and at most once a second unless forced.
  await Promise.all(ctx.allClients.map((c) => c.query('select pg_stat_force_next_flush()')));
  const rel1 = await relStats(admin);
  const pss1 = await pssSnapshot(admin, ctx.userIds);
  s.jobs += jobs;
  s.seconds += seconds;
  s.cpuSeconds = cpu0 === null || cpu1 === null ? null : (s.cpuSeconds ?? 0) + (cpu1 - cpu0);
  walAdd(s.wal, await walBetween(admin, from, to, ctx.names));
  pssAdd(s.pss, pssDelta(pss0, pss1));
  relAdd(s.rel, relDelta(rel0, rel1));
  return result;
}

/**
 * CPU seconds (user + system) the given backends have used, from /proc (the cluster runs on this
 * machine; 10 ms ticks, so a step needs thousands of jobs to be read to the µs). Null if unreadable.
 */
function processCpuSeconds(pids) {
  try {
    let ticks = 0;
    for (const pid of pids) {
      const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      ticks += Number(fields[11]) + Number(fields[12]);
    }
    return ticks / 100;
  } catch {
    return null;
  }
}

async function resetQueue(admin) {
  await admin.query('truncate public.jobs, public.job_attempts, public.notifications, spool.user_slots, spool.retries');
  await admin.query(`update spool.doorbell set rung_at = 'infinity', skipped = null`);
  await admin.query('alter table public.jobs set (autovacuum_enabled = false)');
  await admin.query('alter table public.notifications set (autovacuum_enabled = false)');
  await admin.query('checkpoint');
}

async function createJobs(ctx, n) {
  const { creators, userList } = ctx;
  let next = 0;
  const ids = [];
  await Promise.all(creators.map(async (c) => {
    for (;;) {
      const k = next++;
      if (k >= n) return;
      const user = userList[(ctx.created + k) % userList.length];
      const { rows: [r] } = await c.query({
        name: 'rowlife_create',
        text: `select id from public.create_job($1::uuid, 'noop', '{}'::jsonb)`,
        values: [user],
      });
      ids.push(r.id);
    }
  }));
  ctx.created += n;
  return ids;
}

async function claimBatches(ctx, want) {
  const { worker, batch } = ctx;
  const claimed = [];
  while (claimed.length < want) {
    const { rows } = await worker.query({
      name: 'rowlife_claim',
      text: 'select id, lease_token from public.claim_jobs($1, $2, null, null)',
      values: ['rowlife-worker', Math.min(batch, want - claimed.length)],
    });
    if (rows.length === 0) break;
    for (const r of rows) {
      if (ctx.claimedIds.has(r.id)) ctx.dupClaims++;
      ctx.claimedIds.add(r.id);
    }
    claimed.push(rows);
  }
  return claimed;
}

async function completeBatches(ctx, batches) {
  let n = 0;
  for (const rows of batches) {
    const { rows: done } = await ctx.worker.query({
      name: 'rowlife_complete',
      text: 'select c as id from public.complete_jobs($1::jsonb) c',
      values: [JSON.stringify(rows.map((r) => ({ id: r.id, lease_token: r.lease_token, output: {} })))],
    });
    n += done.length;
    ctx.completedCount += done.length;
  }
  return n;
}

/** EXPLAIN (ANALYZE, BUFFERS) of a statement in a rolled-back transaction (second run reported). */
async function explain(admin, sql, values = []) {
  let out;
  for (let i = 0; i < 2; i++) {
    await admin.query('begin');
    try {
      const { rows } = await admin.query(`explain (analyze, buffers, format json) ${sql}`, values);
      out = rows[0]['QUERY PLAN'][0];
    } finally {
      await admin.query('rollback');
    }
  }
  const { rows: text } = await (async () => {
    await admin.query('begin');
    try {
      return await admin.query(`explain (analyze, buffers, costs off, timing off, summary off) ${sql}`, values);
    } finally {
      await admin.query('rollback');
    }
  })();
  const p = out.Plan;
  return {
    executionMs: round(out['Execution Time'], 3),
    planningMs: round(out['Planning Time'], 3),
    sharedHit: p['Shared Hit Blocks'],
    sharedRead: p['Shared Read Blocks'],
    sharedDirtied: p['Shared Dirtied Blocks'],
    rows: p['Actual Rows'],
    plan: text.map((r) => r['QUERY PLAN']),
  };
}

// claim_jobs' claiming statement with the function's variables as literals: the first pass of a
// claim of `$1` jobs, no types, no CPU budget, cap 10, the default 60 s lease.
const CLAIM_SQL = `
with candidates as (
  select j.id, j.user_id, j.priority, j.fair_at, j.cpu_ms
  from public.jobs j
  where j.status = 'pending' and j.run_at <= now() and j.user_id <> all ('{}'::uuid[])
  order by j.priority desc, j.fair_at, j.id
  limit $1
  for update skip locked
),
ranked as (
  select c.*, row_number() over (partition by c.user_id order by c.priority desc, c.fair_at, c.id) as nth
  from candidates c
),
running as materialized (
  select o.user_id,
         (select count(*) from public.jobs r where r.status = 'running' and r.user_id = o.user_id) as n
  from (select distinct c.user_id from candidates c) o
),
within_cap as (
  select r.id, r.cpu_ms, r.priority, r.fair_at
  from ranked r left join running u on u.user_id = r.user_id
  where r.nth + coalesce(u.n, 0) <= 10
),
picked as (
  select w.id
  from (select w.id, sum(w.cpu_ms) over (order by w.priority desc, w.fair_at, w.id) as cpu_upto
        from within_cap w) w
),
claimed as (
  update public.jobs j
     set status = 'running', attempts = j.attempts + 1, worker_id = 'explain',
         lease_token = gen_random_uuid(), lease_expires_at = now() + interval '60 seconds',
         started_at = now(), progress = 0, step = null, updated_at = now()
    from picked
   where j.id = picked.id
  returning j.*
)
select count(*) from claimed`;

const ACTIVE_COUNT_SQL = `select count(*) from public.jobs j
  where j.user_id = $1::uuid and j.status in ('pending', 'running', 'waiting')`;
const RATE_COUNT_SQL = `select count(*) from public.jobs j
  where j.user_id = $1::uuid and j.created_at > now() - interval '1 minute'`;

async function sizes(admin) {
  const { rows } = await admin.query(`
    select n.nspname || '.' || c.relname as rel, c.relkind as kind, pg_relation_size(c.oid)::float8 as bytes
    from pg_class c join pg_namespace n on n.oid = c.relnamespace
    where (c.oid in (select indexrelid from pg_index where indrelid in ('public.jobs'::regclass, 'public.notifications'::regclass))
           or c.oid in ('public.jobs'::regclass, 'public.notifications'::regclass))
    order by 1`);
  return Object.fromEntries(rows.map((r) => [r.rel, r.bytes]));
}

/**
 * One life of `jobs` jobs plus the retry sample, from empty tables. Returns the per-step
 * measurements, the EXPLAINs, sizes and correctness counts.
 */
async function runLife(ctx, cfg, { explainHeavy }) {
  const { admin } = ctx;
  await resetQueue(admin);
  Object.assign(ctx, { steps: {}, created: 0, claimedIds: new Set(), dupClaims: 0, completedCount: 0 });
  ctx.names = await filenodeNames(admin);

  // create
  await measured(ctx, 'create', cfg.jobs, () => createJobs(ctx, cfg.jobs));
  await admin.query('vacuum analyze public.jobs');
  const backlogSizes = await sizes(admin);
  const { rows: [pend] } = await admin.query("select count(*)::int as n from public.jobs where status = 'pending'");
  const claimExplain = await explain(admin, CLAIM_SQL, [cfg.batch]);
  const capExplain = await explain(admin, 'select spool.users_at_cap(10)');
  const capExplainInner = await explain(admin,
    "select j.user_id from public.jobs j where j.status = 'running' group by j.user_id having count(*) >= 10");

  // claim → complete, in rounds
  for (;;) {
    const batches = await measured(ctx, 'claim', 0, () => claimBatches(ctx, cfg.roundJobs));
    const n = batches.reduce((a, b) => a + b.length, 0);
    ctx.steps.claim.jobs += n;
    if (n === 0) break;
    const done = await measured(ctx, 'complete', 0, () => completeBatches(ctx, batches));
    ctx.steps.complete.jobs += done;
    if (n < cfg.roundJobs) break;
  }

  // the retry path, once: fresh jobs, claimed, failed (retryable), claimed after the backoff, done
  let retryOk = true;
  if (cfg.failJobs > 0) {
    await createJobs(ctx, cfg.failJobs);
    const batches = await claimBatches(ctx, cfg.failJobs);
    const leases = batches.flat();
    await measured(ctx, 'fail', leases.length, async () => {
      for (const r of leases) {
        const { rows: [j] } = await ctx.worker.query({
          name: 'rowlife_fail',
          text: `select status from public.fail_job($1, $2, '{"message": "bench: retry me"}'::jsonb, true)`,
          values: [r.id, r.lease_token],
        });
        if (j.status !== 'pending') retryOk = false;
      }
    });
    // Past any backoff (at most backoff_max_seconds, 1 hour): the claimer's clock moves on.
    await ctx.worker.query(`set spool.now = '${new Date(Date.now() + 2 * 3600_000).toISOString()}'`);
    ctx.claimedIds = new Set(); // the same jobs are claimed a second time, legitimately
    const again = await measured(ctx, 'reclaim', 0, () => claimBatches(ctx, cfg.failJobs));
    ctx.steps.reclaim.jobs = again.flat().length;
    const done = await measured(ctx, 'complete_retry', 0, () => completeBatches(ctx, again));
    ctx.steps.complete_retry.jobs = done;
    await ctx.worker.query('reset spool.now');
  }

  const endSizes = await sizes(admin);
  const { rows: [v] } = await admin.query(`
    select count(*)::int as total, count(*) filter (where status = 'done')::int as done,
           count(*) filter (where attempts = 2)::int as twice,
           (select count(*)::int from public.notifications) as notifications,
           (select count(*)::int from pg_views where schemaname = 'public' and viewname = 'job_notifications') as derived
    from public.jobs`);
  let derivedNotifications = null;
  if (v.derived) {
    const { rows: [d] } = await admin.query('select count(*)::int as n from public.job_notifications');
    derivedNotifications = d.n;
  }
  const expected = cfg.jobs + cfg.failJobs;
  const notificationsOk = v.derived ? derivedNotifications === expected : v.notifications === expected;
  const correctness = {
    expected, total: v.total, done: v.done, retriedTwice: v.twice, notifications: v.notifications,
    derivedNotifications, duplicateClaims: ctx.dupClaims, pendingAtBacklog: pend.n,
    ok: v.total === expected && v.done === expected && ctx.dupClaims === 0 && retryOk &&
      v.twice === cfg.failJobs && notificationsOk && pend.n === cfg.jobs,
  };

  let heavy = null;
  if (explainHeavy) heavy = await explainHeavyUser(admin, cfg.heavy);

  return {
    steps: summariseSteps(ctx.steps),
    explain: { claim: claimExplain, usersAtCap: capExplain, usersAtCapQuery: capExplainInner, backlog: pend.n },
    heavy,
    sizes: { backlog: backlogSizes, end: endSizes },
    correctness,
  };
}

/** take_user_slot's two counts, for one owner with many jobs (inserted directly, then deleted). */
async function explainHeavyUser(admin, heavy) {
  const { rows: [u] } = await admin.query('select id from bench.users order by id limit 1');
  await admin.query(`
    insert into public.jobs (user_id, type, status, created_at, finished_at, lease_token)
    select $1::uuid, 'noop', 'done'::public.job_status, now() - interval '2 hours' - g * interval '1 second', now() - interval '1 hour', null::uuid
      from generate_series(1, $4::int) g
    union all
    select $1::uuid, 'noop', 'done'::public.job_status, now() - interval '30 seconds', now() - interval '10 seconds', null
      from generate_series(1, $3::int) g
    union all
    select $1::uuid, 'noop', 'pending'::public.job_status, now() - interval '40 seconds', null, null
      from generate_series(1, $2::int) g`, [u.id, heavy.active, heavy.recent, heavy.old]);
  await admin.query('vacuum analyze public.jobs');
  const active = await explain(admin, ACTIVE_COUNT_SQL, [u.id]);
  const rate = await explain(admin, RATE_COUNT_SQL, [u.id]);
  await admin.query('delete from public.jobs where user_id = $1', [u.id]);
  return { ...heavy, active, rate };
}

function summariseSteps(steps) {
  const out = {};
  for (const step of STEPS) {
    const s = steps[step];
    if (!s || s.jobs === 0) continue;
    const per = (x) => x / s.jobs;
    const top = [...s.pss.values()].filter((d) => d.toplevel);
    const nested = [...s.pss.values()].filter((d) => !d.toplevel);
    const sumTop = (f) => top.reduce((a, d) => a + d[f], 0);
    const jobsT = s.rel.tables?.['public.jobs'] ?? {};
    const wal = s.wal;
    out[step] = {
      jobs: s.jobs,
      wallSeconds: round(s.seconds, 3),
      serverUsPerJob: round(per(sumTop('ms') * 1000), 1),
      // The worker's and creators' backends' CPU over the step (includes commits and parsing).
      backendCpuUsPerJob: s.cpuSeconds === null ? null : round(per(s.cpuSeconds * 1e6), 1),
      buffersPerJob: {
        hit: round(per(sumTop('hit')), 2), read: round(per(sumTop('read')), 2),
        dirtied: round(per(sumTop('dirtied')), 3), written: round(per(sumTop('written')), 3),
      },
      walBytesPerJob: round(per(wal.bytes), 1),
      walRecordsPerJob: round(per(wal.records), 2),
      walFpiBytesPerJob: round(per(wal.fpi), 1),
      walByRmgr: mapValues(wal.rmgr, (v) => ({ bytesPerJob: round(per(v.bytes), 1), recordsPerJob: round(per(v.n), 3) })),
      walByType: mapValues(wal.type, (v) => ({ bytesPerJob: round(per(v.bytes), 1), recordsPerJob: round(per(v.n), 3) })),
      walByRelation: mapValues(omit(wal.rel, 'byType'), (v) => ({ bytesPerJob: round(per(v.bytes), 1), recordsPerJob: round(per(v.n), 3) })),
      walByRelationType: mapValues(wal.rel.byType ?? {}, (v) => ({ bytesPerJob: round(per(v.bytes), 1), recordsPerJob: round(per(v.n), 3) })),
      pssWalBytesPerJob: round(per(sumTop('wal_bytes')), 1),
      jobsTable: {
        inserts: jobsT.ins ?? 0, updates: jobsT.upd ?? 0, hotUpdates: jobsT.hot ?? 0,
        hotRatio: jobsT.upd ? round(jobsT.hot / jobsT.upd, 3) : null,
      },
      tables: mapValues(s.rel.tables ?? {}, (v) => v, (v) => v.ins || v.upd || v.del || v.heap_hit || v.idx_hit),
      indexes: mapValues(s.rel.indexes ?? {}, (v) => v, (v) => v.scans || v.hit || v.read),
      statements: [...top, ...nested].sort((a, b) => b.ms - a.ms).map((d) => ({
        toplevel: d.toplevel,
        query: d.query.replace(/\s+/g, ' ').trim(),
        calls: d.calls,
        callsPerJob: round(per(d.calls), 3),
        rowsPerCall: round(d.rows / d.calls, 2),
        meanUs: round((d.ms * 1000) / d.calls, 1),
        usPerJob: round(per(d.ms * 1000), 2),
        hitPerCall: round(d.hit / d.calls, 2),
        readPerCall: round(d.read / d.calls, 2),
        dirtiedPerCall: round(d.dirtied / d.calls, 3),
        writtenPerCall: round(d.written / d.calls, 3),
        walBytesPerJob: round(per(d.wal_bytes), 1),
      })),
    };
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Candidates
// ---------------------------------------------------------------------------------------------

function readCandidate(name) {
  const file = path.join(CANDIDATE_DIR, `${name}.sql`);
  const sql = fs.readFileSync(file, 'utf8');
  const at = sql.search(/^-- @undo\s*$/m);
  return { name, file, apply: at < 0 ? sql : sql.slice(0, at), undo: at < 0 ? '' : sql.slice(at) };
}

async function functionDefs(admin) {
  const { rows } = await admin.query(`
    select p.oid::regprocedure::text as sig, pg_get_functiondef(p.oid) as def
    from pg_proc p join pg_namespace n on n.oid = p.pronamespace
    where n.nspname in ('public', 'spool') and p.prokind = 'f'`);
  return new Map(rows.map((r) => [r.sig, r.def]));
}

async function restoreFunctions(admin, saved) {
  const now = await functionDefs(admin);
  for (const [sig, def] of saved) {
    if (now.get(sig) !== def) await admin.query(def);
  }
}

// ---------------------------------------------------------------------------------------------
// The section
// ---------------------------------------------------------------------------------------------

/**
 * Runs the row-life section on a migrated throwaway database (bench/cluster.mjs), restarting it
 * with pg_stat_statements preloaded. `dir`, `port` and `fsync` are the cluster's (for the
 * restart). Returns { settings, config, configs: [{ name, lives, median }], ok }.
 */
export async function runRowlifeBench({ adminUrl, claimerUrl, dir, port, fsync = true, log = console.log, ...opts }) {
  const cfg = { ...DEFAULTS, ...Object.fromEntries(Object.entries(opts).filter(([, v]) => v !== undefined)) };
  await preparePgStatStatements({ adminUrl, dir, port, fsync, log });
  const admin = new pg.Client({ connectionString: adminUrl, application_name: 'spool-rowlife-admin' });
  await admin.connect();
  let clients = [];
  try {
    await setup(admin, cfg);
    await admin.query(`update spool.settings set max_active_jobs_per_user = 1000000,
                                                max_jobs_per_minute_per_user = 1000000`);
    const settings = await readSettingsRowlife(admin);
    clients = await connectClaimers(claimerUrl, cfg.createConnections + 1);
    const [worker, ...creators] = clients;
    const { rows: users } = await admin.query('select id from bench.users order by id');
    const { rows: roles } = await admin.query(
      "select array_agg(oid)::text[] as ids from pg_roles where rolname in ('service_role', 'postgres')");
    const ctx = {
      admin, worker, creators, allClients: clients, userList: users.map((u) => u.id),
      userIds: roles[0].ids, batch: cfg.batch, pids: clients.map((c) => c.backendPid),
    };
    const saved = await functionDefs(admin);

    const configs = [];
    const runConfig = async (name, files) => {
      const cands = files.map(readCandidate);
      const repeats = files.length === 0 ? cfg.repeats : cfg.candidateRepeats ?? cfg.repeats;
      for (const c of cands) await admin.query(c.apply);
      try {
        const lives = [];
        for (let i = 0; i < repeats; i++) {
          const life = await runLife(ctx, cfg, { explainHeavy: i === 0 });
          lives.push(life);
          const s = life.steps;
          log(`rowlife: ${name} life ${i + 1}/${repeats}: ` + STEPS.filter((k) => s[k]).map((k) =>
            `${k} ${s[k].serverUsPerJob} µs ${s[k].walBytesPerJob} B`).join(', ') +
            `${life.correctness.ok ? '' : `  ✗ ${JSON.stringify(life.correctness)}`}`);
        }
        configs.push({ name, candidates: cands.map((c) => path.relative(process.cwd(), c.file)), lives, median: medianLife(lives) });
      } finally {
        for (const c of [...cands].reverse()) if (c.undo) await admin.query(c.undo);
        await restoreFunctions(admin, saved);
      }
    };

    await runConfig('baseline', []);
    const singles = cfg.candidates.filter((c) => c !== 'all');
    for (const c of singles) await runConfig(c, [c]);
    const together = cfg.candidates.slice(0, Math.max(0, cfg.candidates.indexOf('all')));
    if (together.length > 1) await runConfig('all', together);

    return {
      settings,
      config: {
        jobs: cfg.jobs, users: cfg.users, batch: cfg.batch, roundJobs: cfg.roundJobs,
        createConnections: cfg.createConnections, failJobs: cfg.failJobs, repeats: cfg.repeats,
        candidateRepeats: cfg.candidateRepeats ?? cfg.repeats,
        candidates: cfg.candidates, heavy: cfg.heavy,
      },
      configs,
      ok: configs.every((c) => c.lives.every((l) => l.correctness.ok)),
    };
  } finally {
    await Promise.allSettled(clients.map((c) => c.end()));
    await admin.query(`
      drop schema if exists bench cascade;
      delete from auth.users where email like 'bench-%@spool.invalid';`).catch(() => {});
    await admin.end().catch(() => {});
  }
}

async function readSettingsRowlife(admin) {
  const names = ['server_version', 'fsync', 'synchronous_commit', 'full_page_writes', 'wal_level',
    'shared_buffers', 'shared_preload_libraries', 'pg_stat_statements.track', 'track_io_timing'];
  const { rows } = await admin.query(
    'select name, current_setting(name) as value from pg_settings where name = any($1)', [names]);
  const { rows: [sp] } = await admin.query(`select max_running_per_user, max_active_jobs_per_user,
    max_jobs_per_minute_per_user, fair_slot::text, default_lease_seconds from spool.settings`);
  return { server: Object.fromEntries(rows.map((r) => [r.name, r.value])), spool: sp };
}

/** Per step, the median over lives of each headline number (the first life's details kept). */
function medianLife(lives) {
  const steps = {};
  for (const step of STEPS) {
    const all = lives.map((l) => l.steps[step]).filter(Boolean);
    if (all.length === 0) continue;
    const m = (f) => median(all.map(f));
    steps[step] = {
      ...all[0],
      wallSeconds: m((s) => s.wallSeconds),
      serverUsPerJob: m((s) => s.serverUsPerJob),
      serverUsPerJobRuns: all.map((s) => s.serverUsPerJob),
      backendCpuUsPerJob: m((s) => s.backendCpuUsPerJob ?? NaN),
      walBytesPerJob: m((s) => s.walBytesPerJob),
      walFpiBytesPerJob: m((s) => s.walFpiBytesPerJob),
      buffersPerJob: mapValues(all[0].buffersPerJob, (_, k) => m((s) => s.buffersPerJob[k])),
    };
  }
  return {
    steps,
    claimExplainMs: median(lives.map((l) => l.explain.claim.executionMs)),
    explain: lives[0].explain,
    heavy: lives[0].heavy,
    sizes: lives[0].sizes,
  };
}

// ---------------------------------------------------------------------------------------------
// The report
// ---------------------------------------------------------------------------------------------

const LIFE = ['create', 'claim', 'complete'];

/** The section's report, as lines of text. */
export function formatRowlifeReport(result) {
  const { settings, config, configs } = result;
  const lines = [];
  const s = settings.server;
  lines.push(`Postgres ${s.server_version}: fsync=${s.fsync}, synchronous_commit=${s.synchronous_commit}, ` +
    `full_page_writes=${s.full_page_writes}, wal_level=${s.wal_level}, shared_buffers=${s.shared_buffers}, ` +
    `shared_preload_libraries=${s.shared_preload_libraries}, pg_stat_statements.track=${s['pg_stat_statements.track']}`);
  lines.push(`Spool: max_running_per_user=${settings.spool.max_running_per_user}, fair_slot=${settings.spool.fair_slot}; ` +
    `create quotas raised (${settings.spool.max_active_jobs_per_user} active, ${settings.spool.max_jobs_per_minute_per_user}/min) ` +
    `so the backlog is not refused`);
  lines.push(`life: ${fmt(config.jobs)} jobs over ${config.users} owners: create_job x1 per job (${config.createConnections} ` +
    `connections) → claim_jobs batch ${config.batch} → complete_jobs, in rounds of ${fmt(config.roundJobs)}; retry sample ` +
    `${fmt(config.failJobs)} jobs: fail_job → claim after backoff → complete. ${config.repeats} lives of the baseline, ` +
    `${config.candidateRepeats} of each candidate, ` +
    'medians (time is noisy: 2 shared cores; WAL and buffers are near-deterministic).');
  const base = configs.find((c) => c.name === 'baseline');
  if (!base) return lines;
  const b = base.median.steps;

  lines.push('');
  lines.push('Baseline, per job and step (server µs = pg_stat_statements exec time of the calls; WAL from pg_current_wal_insert_lsn):');
  lines.push(...table(
    ['step', 'jobs', 'server µs/job', 'runs', 'CPU µs/job', 'WAL B/job', 'FPI B/job', 'Heap', 'Heap2', 'Btree', 'Xact', 'hit/job', 'dirtied/job', 'jobs upd', 'HOT'],
    STEPS.filter((k) => b[k]).map((k) => {
      const x = b[k];
      const r = (m) => String(x.walByRmgr[m]?.bytesPerJob ?? 0);
      return [STEP_LABEL[k], x.jobs, x.serverUsPerJob, x.serverUsPerJobRuns.join('/'), x.backendCpuUsPerJob ?? '-', x.walBytesPerJob, x.walFpiBytesPerJob,
        r('Heap'), r('Heap2'), r('Btree'), r('Transaction'), x.buffersPerJob.hit, x.buffersPerJob.dirtied,
        x.jobsTable.updates, x.jobsTable.hotRatio === null ? '-' : `${Math.round(100 * x.jobsTable.hotRatio)}%`];
    }),
  ));
  const life = LIFE.reduce((a, k) => a + (b[k]?.serverUsPerJob ?? 0), 0);
  const lifeWal = LIFE.reduce((a, k) => a + (b[k]?.walBytesPerJob ?? 0), 0);
  lines.push(`one life (create + claim + complete): ${round(life, 1)} µs of server time, ${round(lifeWal, 0)} B of WAL per job`);

  lines.push('');
  lines.push('Baseline WAL per job by relation (bytes; records in parentheses):');
  const rels = [...new Set(LIFE.flatMap((k) => Object.keys(b[k]?.walByRelation ?? {})))];
  const relTotal = (r) => LIFE.reduce((a, k) => a + (b[k]?.walByRelation[r]?.bytesPerJob ?? 0), 0);
  rels.sort((x, y) => relTotal(y) - relTotal(x));
  lines.push(...table(
    ['relation', ...LIFE.map((k) => STEP_LABEL[k]), 'life'],
    rels.filter((r) => relTotal(r) >= 0.5).map((r) => [r, ...LIFE.map((k) => {
      const v = b[k]?.walByRelation[r];
      return v ? `${v.bytesPerJob} (${v.recordsPerJob})` : '-';
    }), round(relTotal(r), 1)]),
  ));

  lines.push('');
  lines.push('Baseline heap records on public.jobs per job (UPDATE = non-HOT: a new entry in every index whose predicate the new version matches):');
  lines.push(...table(
    ['step', 'Heap/INSERT', 'Heap/UPDATE', 'Heap/HOT_UPDATE', 'Heap/LOCK', 'Btree/INSERT_LEAF (all indexes)'],
    STEPS.filter((k) => b[k]).map((k) => {
      const t = b[k].walByRelationType;
      const g = (suffix) => String(Object.entries(t).filter(([n]) => n.startsWith('public.jobs ') && n.endsWith(suffix))
        .reduce((a, [, v]) => a + v.recordsPerJob, 0));
      const leaf = Object.entries(t).filter(([n]) => n.startsWith('public.jobs') && n.endsWith('Btree/INSERT_LEAF'))
        .reduce((a, [, v]) => a + v.recordsPerJob, 0);
      return [STEP_LABEL[k], g('Heap/INSERT'), g('Heap/UPDATE'), g('Heap/HOT_UPDATE'), g('Heap/LOCK'), round(leaf, 2)];
    }),
  ));

  for (const k of STEPS.filter((x) => b[x])) {
    lines.push('');
    lines.push(`Baseline statements in ${STEP_LABEL[k]} (top-level first by time; per call unless noted):`);
    lines.push(...table(
      ['statement', 'calls/job', 'rows/call', 'mean µs', 'µs/job', 'hit', 'read', 'dirtied', 'WAL B/job'],
      b[k].statements.slice(0, 12).map((st) => [
        `${st.toplevel ? '' : '  '}${st.query.slice(0, 78)}`, st.callsPerJob, st.rowsPerCall, st.meanUs, st.usPerJob,
        st.hitPerCall, st.readPerCall, st.dirtiedPerCall, st.walBytesPerJob]),
    ));
  }

  const e = base.median.explain;
  lines.push('');
  lines.push(`EXPLAIN (ANALYZE, BUFFERS) of claim_jobs' claiming statement, batch ${config.batch}, ${fmt(e.backlog)} pending: ` +
    `${e.claim.executionMs} ms, shared hit ${e.claim.sharedHit} read ${e.claim.sharedRead} dirtied ${e.claim.sharedDirtied} ` +
    `(median of lives ${base.median.claimExplainMs} ms); spool.users_at_cap: ${e.usersAtCap.executionMs} ms, hit ${e.usersAtCap.sharedHit}`);
  for (const l of e.claim.plan) lines.push(`  ${l}`);
  const h = base.median.heavy;
  if (h) {
    lines.push('');
    lines.push(`take_user_slot's counts for one owner with ${fmt(config.heavy.active)} active, ${fmt(config.heavy.recent)} created ` +
      `in the last minute, ${fmt(config.heavy.old)} older finished: active count ${h.active.executionMs} ms (hit ${h.active.sharedHit}), ` +
      `rate count ${h.rate.executionMs} ms (hit ${h.rate.sharedHit})`);
    for (const l of h.active.plan) lines.push(`  ${l}`);
    for (const l of h.rate.plan) lines.push(`  ${l}`);
  }

  lines.push('');
  lines.push('Index and table sizes (KiB) at the 20k backlog and at the end (all done):');
  const sz = base.median.sizes;
  lines.push(...table(['relation', 'backlog', 'end'],
    Object.keys(sz.end).map((r) => [r, round((sz.backlog[r] ?? 0) / 1024, 0), round(sz.end[r] / 1024, 0)])));

  lines.push('');
  lines.push('Candidates against the baseline (median per job; life = create + claim + complete; Δ vs baseline):');
  const row = (c) => {
    const st = c.median.steps;
    const us = LIFE.reduce((a, k) => a + (st[k]?.serverUsPerJob ?? 0), 0);
    const wal = LIFE.reduce((a, k) => a + (st[k]?.walBytesPerJob ?? 0), 0);
    const hit = LIFE.reduce((a, k) => a + (st[k]?.buffersPerJob.hit ?? 0), 0);
    return { us, wal, hit, st };
  };
  const B = row(base);
  lines.push(...table(
    ['configuration', 'create µs', 'claim µs', 'complete µs', 'fail µs', 'life µs', 'Δ µs', 'create B', 'claim B', 'complete B', 'life WAL B', 'Δ WAL', 'life hit', 'claim EXPLAIN ms'],
    configs.map((c) => {
      const R = row(c);
      const pct = (x, y) => `${x - y >= 0 ? '+' : ''}${round(x - y, 0)} (${round((100 * (x - y)) / y, 0)}%)`;
      return [c.name, R.st.create?.serverUsPerJob, R.st.claim?.serverUsPerJob, R.st.complete?.serverUsPerJob,
        R.st.fail?.serverUsPerJob ?? '-', round(R.us, 1), c === base ? '' : pct(R.us, B.us),
        R.st.create?.walBytesPerJob, R.st.claim?.walBytesPerJob, R.st.complete?.walBytesPerJob, round(R.wal, 0),
        c === base ? '' : pct(R.wal, B.wal), round(R.hit, 1), c.median.claimExplainMs];
    }),
  ));
  for (const c of configs) {
    for (const [i, l] of c.lives.entries()) {
      if (!l.correctness.ok) lines.push(`✗ ${c.name} life ${i + 1}: ${JSON.stringify(l.correctness)}`);
    }
  }
  return lines;
}

function table(head, rows) {
  const body = rows.map((r) => r.map((v) => String(v ?? '')));
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((r) => r[i].length)));
  const row = (r) => r.map((v, i) => (i === 0 ? v.padEnd(widths[i]) : v.padStart(widths[i]))).join('  ').trimEnd();
  return [row(head), widths.map((w) => '-'.repeat(w)).join('  '), ...body.map(row)];
}

function mapValues(obj, fn, keep = () => true) {
  return Object.fromEntries(Object.entries(obj).filter(([, v]) => keep(v)).map(([k, v]) => [k, fn(v, k)]));
}
function omit(obj, key) {
  const { [key]: _, ...rest } = obj;
  return rest;
}
function median(xs) {
  const a = xs.filter((x) => Number.isFinite(x)).sort((x, y) => x - y);
  if (a.length === 0) return null;
  const m = a.length >> 1;
  return a.length % 2 ? a[m] : (a[m - 1] + a[m]) / 2;
}
const round = (x, d) => Math.round(x * 10 ** d) / 10 ** d;
const fmt = (n) => Math.round(n).toLocaleString('en-US');
