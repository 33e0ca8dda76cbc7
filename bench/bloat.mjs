// The bloat section of `npm run bench` (issue 9, item 5): what a long-held snapshot does to a
// SKIP LOCKED queue that keeps draining, and how fast the queue recovers once it ends.
//
// The production pattern: a queue with a standing backlog that workers drain as fast as they can
// while producers keep it fed; somebody (a report, pg_dump, an idle-in-transaction client) holds
// one REPEATABLE READ snapshot open for a minute. While the snapshot holds the xmin horizon, no
// row version that died after it began can be removed: every claimed job leaves a dead entry at
// the head of jobs_claim_idx (the index the claim scans in claim order), each later claim walks
// all of them (a heap visit each) before it reaches pending rows, and vacuum can remove nothing.
//
// One drain. A fresh queue (TRUNCATE, CHECKPOINT) is seeded with a backlog of `backlog` no-op jobs
// over `users` owners (fair_at as create_job would set it, inserted directly as bench/db.mjs does:
// create_job's per-user quotas would refuse a backlog this deep, and enqueue is not measured), and
// VACUUM ANALYZEd. Then, at once:
//   claimers   `claimers` connections (postgres, `set role service_role`, as PostgREST) loop
//              public.claim_jobs(batch) → public.complete_jobs, as job-worker does
//   producer   keeps at least `backlog` jobs queued (chunks of `chunk` rows), so the claimers never
//              run dry; it stops once `jobs` jobs were created and the last phase has run
//   pruner     every `pruneEverySeconds`: public.prune_jobs() (its default limit, called again
//              while a call deletes a full 10,000) as service_role, and spool.purge_history(),
//              with spool.settings.retention_done shortened to `retentionDone`, so finished jobs
//              are pruned during the run (the shipped pg_cron schedule runs each once a day)
//   snapshot   (the `snapshot` drain only) after `baselineSeconds`, a separate session runs
//              BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT 1 FROM public.jobs LIMIT 1; holds it
//              for `snapshotSeconds`, then commits
//   sampler    every `windowSeconds`: jobs completed in the window (jobs/s), claim latency
//              p50/p99, pg_stat_user_tables n_live_tup / n_dead_tup / autovacuum_count of
//              public.jobs (the cumulative statistics lag: a busy backend flushes them at most once
//              a second, and n_dead_tup is the counters' estimate, reset by each vacuum),
//              pgstattuple_approx's dead_tuple_count (exact: it reads every page that is not
//              all-visible, and only those can hold dead tuples), the size of every index of
//              public.jobs, and idx_tup_read of jobs_claim_idx and jobs_active_idx per claim call
//              (index entries the claims had to look at, dead ones included until a scan marks
//              them killed)
//   explain    EXPLAIN (ANALYZE, BUFFERS) of claim_jobs' candidate scan (its FOR UPDATE SKIP
//              LOCKED select, rolled back) just before the snapshot, in its middle, at its end,
//              and 5, 30 and 60 s after it
// The run is time-based: `baselineSeconds` + `snapshotSeconds` + `afterSeconds`, extended until at
// least `jobs` jobs were created; then the producer stops and the backlog is drained (unmeasured).
// The `control` drain is the same with no snapshot: the fresh-table baseline, window by window.
//
// Recovery: the time from the snapshot's commit to the start of the first window from which two
// consecutive windows reach 90% of the control's median jobs/s. Autovacuum's own log lines for
// public.jobs (log_autovacuum_min_duration = 0, from the server log) say what each run removed
// and what it could not.
//
// Remedies (`applySql`, files in bench/bloat/): applied to the throwaway database only (never to
// the migrations), before a second pair of drains; the part of a file after a line `-- @undo` is
// run afterwards. Speed is reported, never asserted; a job lost, claimed twice, or not ending done
// or pruned makes the section fail.

import fs from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { connectClaimers, readSettings, setup } from './db.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const REMEDY_DIR = path.join(HERE, 'bloat');

export const DEFAULTS = Object.freeze({
  jobs: 200_000,
  snapshotSeconds: 60,
  baselineSeconds: 20,
  afterSeconds: 75,
  windowSeconds: 5,
  users: 400,
  claimers: 8,
  batch: 50,
  backlog: 20_000,
  chunk: 2_000,
  pruneEverySeconds: 10,
  // prune_jobs(p_limit): the shipped default, called again while a call deletes a full batch.
  pruneLimit: 10_000,
  // 0: none. Otherwise an explicit VACUUM public.jobs this often (what a pg_cron job would run).
  vacuumEverySeconds: 0,
  retentionDone: '30 seconds',
  // Drain pairs (control, snapshot) per configuration; medians reported.
  repeats: 1,
  // Remedy files (paths); each gets its own pair of drains after the shipped ones.
  applySql: [],
  // Within this fraction of the fresh throughput counts as recovered.
  recoveredRatio: 0.9,
  stallMs: 60_000,
});

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------------------------
// Sampling
// ---------------------------------------------------------------------------------------------

async function tableStats(admin, { pgstattuple }) {
  const { rows: [t] } = await admin.query(`
    select n_live_tup::bigint as live, n_dead_tup::bigint as dead, autovacuum_count::int as autovacuums,
           vacuum_count::int as vacuums, autoanalyze_count::int as autoanalyzes,
           pg_relation_size('public.jobs')::bigint as heap_bytes,
           (select count(*)::int from pg_stat_progress_vacuum v where v.relid = 'public.jobs'::regclass) as vacuuming,
           (select max(age(backend_xmin))::int from pg_stat_activity where backend_xmin is not null) as xmin_age
    from pg_stat_user_tables where relid = 'public.jobs'::regclass`);
  const { rows: idx } = await admin.query(`
    select indexrelname as name, idx_scan::bigint as scans, idx_tup_read::bigint as tup_read,
           idx_tup_fetch::bigint as tup_fetch, pg_relation_size(indexrelid)::bigint as bytes
    from pg_stat_user_indexes where relid = 'public.jobs'::regclass order by indexrelname`);
  let exactDead = null;
  if (pgstattuple) {
    const { rows: [a] } = await admin.query(
      `select dead_tuple_count::bigint as dead, approx_tuple_count::bigint as live, scanned_percent
       from pgstattuple_approx('public.jobs'::regclass)`);
    exactDead = { dead: Number(a.dead), live: Number(a.live), scannedPercent: Number(a.scanned_percent) };
  }
  return {
    live: Number(t.live), dead: Number(t.dead), autovacuums: t.autovacuums, vacuums: t.vacuums,
    autoanalyzes: t.autoanalyzes, heapBytes: Number(t.heap_bytes), vacuuming: t.vacuuming > 0,
    xminAge: t.xmin_age,
    exactDead,
    indexes: Object.fromEntries(idx.map((r) => [r.name, {
      scans: Number(r.scans), tupRead: Number(r.tup_read), tupFetch: Number(r.tup_fetch), bytes: Number(r.bytes),
    }])),
  };
}

/** The candidate scan of claim_jobs' first pass, as it runs it (variables as literals). */
const CLAIM_SCAN = `
  select j.id, j.user_id, j.priority, j.fair_at, j.cpu_ms
  from public.jobs j
  where j.status = 'pending'
    and j.run_at <= now()
    and j.user_id <> all ('{}'::uuid[])
  order by j.priority desc, j.fair_at, j.id
  limit $1
  for update skip locked`;

async function explainClaim(client, batch) {
  await client.query('begin');
  try {
    const { rows: [r] } = await client.query(
      `explain (analyze, buffers, format json) ${CLAIM_SCAN.replace('$1', String(Number(batch)))}`);
    const plan = r['QUERY PLAN'][0];
    const nodes = [];
    const walk = (n) => {
      nodes.push(n);
      for (const c of n.Plans ?? []) walk(c);
    };
    walk(plan.Plan);
    const scan = nodes.find((n) => /Index/.test(n['Node Type'])) ?? nodes[nodes.length - 1];
    return {
      ms: round(plan['Execution Time'], 3),
      rows: plan.Plan['Actual Rows'],
      scan: `${scan['Node Type']}${scan['Index Name'] ? ` on ${scan['Index Name']}` : ''}`,
      sharedHit: plan.Plan['Shared Hit Blocks'],
      sharedRead: plan.Plan['Shared Read Blocks'],
      scanHit: scan['Shared Hit Blocks'],
      rowsRemovedByFilter: scan['Rows Removed by Filter'] ?? 0,
    };
  } finally {
    await client.query('rollback');
  }
}

/**
 * One whole claim_jobs call (rolled back) under auto_explain (ANALYZE, BUFFERS, nested
 * statements), its plans read back from the server log: per index, the entries its scans
 * returned, their loops, and the buffers they touched. Null without a readable log.
 */
async function explainFullClaim(client, batch, logFile) {
  if (!logFile) return null;
  const offset = logSize(logFile);
  await client.query(`load 'auto_explain'`);
  await client.query(`set auto_explain.log_min_duration = 0; set auto_explain.log_analyze = on;
    set auto_explain.log_buffers = on; set auto_explain.log_nested_statements = on; set auto_explain.log_format = json`);
  const t = performance.now();
  let got;
  await client.query('begin');
  try {
    ({ rows: [got] } = await client.query('select count(*)::int as n from public.claim_jobs($1, $2, null, null)', ['bench-bloat-explain', batch]));
  } finally {
    await client.query('rollback');
    await client.query('set auto_explain.log_min_duration = -1');
  }
  const ms = performance.now() - t;
  await sleep(300);
  let text = '';
  try {
    const fd = fs.openSync(logFile, 'r');
    const size = fs.fstatSync(fd).size;
    const buf = Buffer.alloc(Math.max(0, size - offset));
    fs.readSync(fd, buf, 0, buf.length, offset);
    fs.closeSync(fd);
    text = buf.toString('utf8');
  } catch {
    return null;
  }
  const byIndex = {};
  const statements = [];
  for (const e of text.split(/\n(?=\d{4}-\d\d-\d\d )/)) {
    const at = e.indexOf('plan:');
    if (at < 0 || !/spool-bench-explain|claim_jobs|public\.jobs/.test(e)) continue;
    let plan;
    try {
      plan = JSON.parse(e.slice(at + 5).replace(/\n\t/g, '\n'));
    } catch {
      continue;
    }
    const walk = (n) => {
      if (n['Index Name']) {
        const x = byIndex[n['Index Name']] ??= { nodes: 0, loops: 0, rows: 0, sharedHit: 0, sharedRead: 0 };
        x.nodes++;
        x.loops += n['Actual Loops'] ?? 0;
        x.rows += (n['Actual Rows'] ?? 0) * (n['Actual Loops'] ?? 1);
        x.sharedHit += n['Shared Hit Blocks'] ?? 0;
        x.sharedRead += n['Shared Read Blocks'] ?? 0;
      }
      for (const c of n.Plans ?? []) walk(c);
    };
    walk(plan.Plan);
    statements.push({ query: String(plan['Query Text'] ?? '').replace(/\s+/g, ' ').slice(0, 80), ms: round(plan['Execution Time'] ?? NaN, 2),
      sharedHit: plan.Plan['Shared Hit Blocks'] });
  }
  return { ms: round(ms, 1), claimed: got?.n ?? null, byIndex, statements };
}

/** Autovacuum's log lines about public.jobs since `offset` of the server log. */
function autovacuumLog(logFile, offset) {
  if (!logFile) return [];
  let text;
  try {
    const fd = fs.openSync(logFile, 'r');
    const size = fs.fstatSync(fd).size;
    const buf = Buffer.alloc(Math.max(0, size - offset));
    fs.readSync(fd, buf, 0, buf.length, offset);
    fs.closeSync(fd);
    text = buf.toString('utf8');
  } catch {
    return [];
  }
  const out = [];
  // An entry starts with a timestamp line; its continuation lines are tab-indented.
  const entries = text.split(/\n(?=\d{4}-\d\d-\d\d )/);
  for (const e of entries) {
    const m = /^(\S+ \S+) UTC .*automatic vacuum of table "[^"]*\.public\.jobs"/.exec(e);
    if (!m) continue;
    const num = (re) => {
      const x = re.exec(e);
      return x ? Number(x[1]) : null;
    };
    const indexes = {};
    for (const x of e.matchAll(/index "(\w+)": pages: (\d+) in total, (\d+) newly deleted, (\d+) currently deleted/g)) {
      indexes[x[1]] = { pages: Number(x[2]), newlyDeleted: Number(x[3]), currentlyDeleted: Number(x[4]) };
    }
    out.push({
      at: new Date(`${m[1].replace(' ', 'T')}Z`).getTime(),
      removed: num(/tuples: (\d+) removed/),
      remain: num(/tuples: \d+ removed, (\d+) remain/),
      notRemovable: num(/(\d+) are dead but not yet removable/),
      indexScans: num(/index scans: (\d+)/),
      elapsedS: num(/elapsed: ([\d.]+) s/),
      indexes,
    });
  }
  return out;
}

function logSize(logFile) {
  try {
    return fs.statSync(logFile).size;
  } catch {
    return 0;
  }
}

// ---------------------------------------------------------------------------------------------
// One drain
// ---------------------------------------------------------------------------------------------

async function resetQueue(admin, cfg) {
  await admin.query('truncate public.jobs, public.job_attempts, public.notifications');
  await admin.query('checkpoint');
  await insertJobs(admin, 0, cfg.backlog, new Date());
  await admin.query('vacuum analyze public.jobs');
}

/** Jobs number `from` .. `from + n - 1`: owners round-robin, each owner's k-th job k fair slots on. */
async function insertJobs(client, from, n, base) {
  await client.query({
    name: 'bloat_insert',
    text: `
      insert into public.jobs (user_id, type, input, fair_at)
      select u.ids[1 + g % u.n], 'noop', '{}'::jsonb, $3::timestamptz + (g / u.n) * s.fair_slot
      from generate_series($1::bigint, $1::bigint + $2::int - 1) g,
           (select array_agg(id order by id) ids, count(*)::int n from bench.users) u,
           spool.settings s
      order by g`,
    values: [from, n, base],
  });
}

async function drain(kind, ctx) {
  const { admin, clients, producerClient, prunerClient, snapshotClient, explainClient, cfg, log } = ctx;
  const withSnapshot = kind === 'snapshot';
  await resetQueue(admin, cfg);
  const base = new Date();
  const logOffset = logSize(ctx.logFile);

  const claimed = new Set();
  const completed = new Set();
  const st = {
    produced: cfg.backlog, done: 0, inflight: 0, fenced: 0, dupClaims: 0, dupCompletions: 0,
    claimCalls: 0, emptyClaims: 0, lastProgress: performance.now(), error: null, stalled: false,
    producing: true, pruned: 0, pruneCalls: 0, pruneMs: [], pruneLog: [],
  };
  let lat = [];
  const stop = () => st.error !== null || st.stalled;
  const fail = (err) => {
    st.error ??= err;
  };

  const measureSeconds = cfg.baselineSeconds + (withSnapshot ? cfg.snapshotSeconds : cfg.snapshotSeconds) + cfg.afterSeconds;
  const snapAt = cfg.baselineSeconds * 1000;
  const snapEnd = snapAt + cfg.snapshotSeconds * 1000;
  let snapshot = null; // { beganMs, endedMs }

  async function claimer(client, i) {
    const worker = `bench-bloat-${i}`;
    while (!stop()) {
      const t = performance.now();
      const { rows } = await client.query({
        name: 'bloat_claim',
        text: 'select id, lease_token from public.claim_jobs($1, $2, null, null)',
        values: [worker, cfg.batch],
      });
      lat.push(performance.now() - t);
      st.claimCalls++;
      if (rows.length === 0) {
        if (!st.producing && st.done + st.inflight + st.fenced >= st.produced) return;
        st.emptyClaims++;
        if (performance.now() - st.lastProgress > cfg.stallMs) {
          st.stalled = true;
          return;
        }
        await sleep(1);
        continue;
      }
      st.inflight += rows.length;
      for (const r of rows) {
        if (claimed.has(r.id)) st.dupClaims++;
        else claimed.add(r.id);
      }
      const { rows: done } = await client.query({
        name: 'bloat_complete',
        text: 'select c as id from public.complete_jobs($1::jsonb) c',
        values: [JSON.stringify(rows.map((r) => ({ id: r.id, lease_token: r.lease_token, output: {} })))],
      });
      for (const { id } of done) {
        if (completed.has(id)) st.dupCompletions++;
        else completed.add(id);
      }
      st.inflight -= rows.length;
      st.done += done.length;
      st.fenced += rows.length - done.length;
      st.lastProgress = performance.now();
    }
  }

  const t0 = performance.now();
  const elapsed = () => performance.now() - t0;

  async function producer() {
    while (!stop()) {
      const over = elapsed() >= measureSeconds * 1000 && st.produced >= cfg.jobs;
      if (over) break;
      if (st.produced - st.done - st.inflight < cfg.backlog) {
        await insertJobs(producerClient, st.produced, cfg.chunk, base);
        st.produced += cfg.chunk;
      } else {
        await sleep(20);
      }
    }
    st.producing = false;
  }

  async function pruner() {
    while (st.producing && !stop()) {
      await sleep(cfg.pruneEverySeconds * 1000);
      if (!st.producing || stop()) break;
      const t = performance.now();
      for (;;) {
        const c0 = performance.now();
        const { rows: [r] } = await prunerClient.query('select public.prune_jobs($1) as n', [cfg.pruneLimit]);
        st.pruned += r.n;
        st.pruneCalls++;
        // Each call is one transaction: while it runs, it holds the xmin horizon too.
        st.pruneLog.push({ atS: round(elapsed() / 1000, 1), deleted: r.n, ms: round(performance.now() - c0, 0) });
        if (r.n < cfg.pruneLimit) break;
      }
      await admin.query('select spool.purge_history()');
      st.pruneMs.push(performance.now() - t);
    }
  }

  const vacuums = [];
  async function vacuumer() {
    if (!cfg.vacuumEverySeconds) return;
    while (st.producing && !stop()) {
      await sleep(cfg.vacuumEverySeconds * 1000);
      if (!st.producing || stop()) break;
      const t = performance.now();
      await ctx.vacuumClient.query('vacuum public.jobs');
      vacuums.push({ atS: round(elapsed() / 1000, 1), ms: round(performance.now() - t, 0) });
    }
  }

  async function holdSnapshot() {
    await sleep(snapAt);
    if (stop()) return;
    await snapshotClient.query('begin isolation level repeatable read');
    await snapshotClient.query('select 1 from public.jobs limit 1');
    snapshot = { beganMs: elapsed() };
    log(`    snapshot open at ${round(snapshot.beganMs / 1000, 1)} s (holding the xmin horizon for ${cfg.snapshotSeconds} s)`);
    await sleep(cfg.snapshotSeconds * 1000);
    await snapshotClient.query('commit');
    snapshot.endedMs = elapsed();
    log(`    snapshot committed at ${round(snapshot.endedMs / 1000, 1)} s`);
  }

  const explains = [];
  async function explainer() {
    const at = [
      { label: 'fresh', ms: snapAt - 3000 },
      { label: 'snapshot, middle', ms: snapAt + cfg.snapshotSeconds * 500 },
      { label: 'snapshot, end', ms: snapEnd - 2500 },
      { label: 'after +5 s', ms: snapEnd + 5000 },
      { label: 'after +30 s', ms: snapEnd + 30_000 },
      { label: 'after +60 s', ms: snapEnd + 60_000 },
    ].filter((x) => x.ms > 0 && x.ms < measureSeconds * 1000);
    for (const x of at) {
      const wait = x.ms - elapsed();
      if (wait > 0) await sleep(wait);
      if (!st.producing || stop()) return;
      const scan = await explainClaim(explainClient, cfg.batch);
      const full = await explainFullClaim(explainClient, cfg.batch, ctx.logFile).catch((err) => ({ error: String(err.message ?? err) }));
      explains.push({ label: withSnapshot ? x.label : x.label.replace(/^snapshot/, '(no snapshot)'), atS: round(elapsed() / 1000, 1), ...scan, full });
    }
  }

  const windows = [];
  async function sampler() {
    let prev = { t: 0, done: 0, calls: 0, stats: await tableStats(admin, ctx) };
    for (let k = 1; st.producing && !stop(); k++) {
      const wait = k * cfg.windowSeconds * 1000 - elapsed();
      if (wait > 0) await sleep(wait);
      if (!st.producing) break;
      const t = elapsed();
      const done = st.done;
      const calls = st.claimCalls;
      const l = lat;
      lat = [];
      const s0 = performance.now();
      const stats = await tableStats(admin, ctx);
      const sampleMs = performance.now() - s0;
      const dCalls = Math.max(1, calls - prev.calls);
      const perCall = (name) => {
        const a = stats.indexes[name];
        const b = prev.stats.indexes[name];
        return a && b ? round((a.tupRead - b.tupRead) / dCalls, 0) : null;
      };
      const mid = (prev.t + t) / 2;
      const phase = !withSnapshot ? 'control'
        : snapshot === null || mid < snapshot.beganMs ? 'fresh'
          : snapshot.endedMs === undefined || mid < snapshot.endedMs ? 'snapshot' : 'after';
      windows.push({
        fromS: round(prev.t / 1000, 1),
        toS: round(t / 1000, 1),
        phase,
        jobsPerSecond: round((done - prev.done) / ((t - prev.t) / 1000), 0),
        claimCalls: calls - prev.calls,
        claimP50Ms: round(quantile(l, 0.5), 2),
        claimP99Ms: round(quantile(l, 0.99), 2),
        liveTup: stats.live,
        deadTup: stats.dead,
        exactDead: stats.exactDead?.dead ?? null,
        heapMiB: round(stats.heapBytes / 2 ** 20, 1),
        claimIdxKiB: round((stats.indexes.jobs_claim_idx?.bytes ?? 0) / 1024, 0),
        activeIdxKiB: round((stats.indexes.jobs_active_idx?.bytes ?? 0) / 1024, 0),
        claimIdxReadPerClaim: perCall('jobs_claim_idx'),
        activeIdxReadPerClaim: perCall('jobs_active_idx'),
        autovacuums: stats.autovacuums - prev.stats.autovacuums,
        vacuuming: stats.vacuuming,
        xminAge: stats.xminAge,
        backlog: st.produced - st.done - st.inflight,
        sampleMs: round(sampleMs, 0),
        // The longest prune_jobs call that ended in this window (ms).
        pruneMaxMs: Math.max(0, ...st.pruneLog.filter((x) => x.atS * 1000 > prev.t && x.atS * 1000 <= t).map((x) => x.ms)),
      });
      const w = windows[windows.length - 1];
      log(`    ${String(w.toS).padStart(5)} s ${w.phase.padEnd(8)} ${fmt(w.jobsPerSecond).padStart(6)} jobs/s  ` +
        `claim p50 ${w.claimP50Ms} p99 ${w.claimP99Ms} ms  dead ${fmt(w.deadTup)} (exact ${w.exactDead === null ? '?' : fmt(w.exactDead)})  ` +
        `claim_idx ${fmt(w.claimIdxKiB)} KiB, ${w.claimIdxReadPerClaim} entries/claim  av ${w.autovacuums}${w.vacuuming ? ' (vacuuming)' : ''}`);
      prev = { t, done, calls, stats };
    }
  }

  const before = await tableStats(admin, ctx);
  const tasks = [
    ...clients.slice(0, cfg.claimers).map((c, i) => claimer(c, i).catch(fail)),
    producer().catch(fail),
    pruner().catch(fail),
    vacuumer().catch(fail),
    sampler().catch(fail),
    explainer().catch(fail),
    ...(withSnapshot ? [holdSnapshot().catch(fail)] : []),
  ];
  await Promise.allSettled(tasks);
  if (snapshot && snapshot.endedMs === undefined) await snapshotClient.query('rollback').catch(() => {});
  const seconds = elapsed() / 1000;
  const after = await tableStats(admin, ctx);

  // Every job created must have been completed once, and be done in the table or pruned.
  const { rows: [srv] } = await admin.query(`
    select count(*)::int as total, count(*) filter (where status = 'done')::int as done,
           (select count(*)::int from public.notifications) as notifications
    from public.jobs`);
  const missing = st.produced - (srv.done + st.pruned);
  const autovacuum = autovacuumLog(ctx.logFile, logOffset).map((a) => ({ ...a, atS: round((a.at - (Date.now() - elapsed())) / 1000, 1) }));
  return {
    kind,
    seconds: round(seconds, 1),
    jobs: st.produced,
    duplicates: st.dupClaims + st.dupCompletions,
    duplicateClaims: st.dupClaims,
    duplicateCompletions: st.dupCompletions,
    missing,
    clientCompleted: completed.size,
    serverDone: srv.done,
    serverTotal: srv.total,
    pruned: st.pruned,
    pruneCalls: st.pruneCalls,
    pruneMsMedian: round(quantile(st.pruneMs, 0.5), 1),
    pruneMsMax: round(Math.max(0, ...st.pruneMs), 1),
    pruneLog: st.pruneLog,
    vacuums,
    notifications: srv.notifications,
    fencedCompletions: st.fenced,
    claimCalls: st.claimCalls,
    emptyClaims: st.emptyClaims,
    snapshot: snapshot && { beganS: round(snapshot.beganMs / 1000, 1), endedS: round((snapshot.endedMs ?? NaN) / 1000, 1) },
    windows,
    explains,
    autovacuum,
    before: { heapBytes: before.heapBytes, indexes: mapValues(before.indexes, (x) => x.bytes) },
    after: { heapBytes: after.heapBytes, indexes: mapValues(after.indexes, (x) => x.bytes), autovacuums: after.autovacuums - before.autovacuums },
    stalled: st.stalled,
    error: st.error ? String(st.error.message ?? st.error) : null,
  };
}

function drainCorrect(r) {
  return r.duplicates === 0 && r.missing === 0 && r.clientCompleted === r.jobs && !r.stalled && !r.error &&
    r.serverTotal === r.serverDone && r.notifications === r.jobs;
}

/** Summary of a (control, snapshot) pair: the numbers the report's table shows. */
function summarise(control, snap, cfg) {
  const fresh = median(control.windows.slice(1).map((w) => w.jobsPerSecond));
  const ph = (p) => snap.windows.filter((w) => w.phase === p);
  const after = ph('after');
  const endS = snap.snapshot?.endedS ?? NaN;
  // The like-for-like reference: the control drain over the same span of time (its table has
  // aged as much, under the same pruning), and the fresh rate of its first windows.
  const span = (ws, from, to) => ws.filter((w) => w.fromS >= from - 0.01 && w.toS <= to + 0.01);
  const sameSpan = median(span(control.windows, endS, endS + cfg.afterSeconds).map((w) => w.jobsPerSecond));
  const early = median(control.windows.filter((w) => w.toS <= cfg.baselineSeconds + 0.01).slice(1).map((w) => w.jobsPerSecond));
  const recoveredAt = (ref) => {
    for (let i = 0; i + 1 < after.length; i++) {
      if (after[i].jobsPerSecond >= cfg.recoveredRatio * ref && after[i + 1].jobsPerSecond >= cfg.recoveredRatio * ref) {
        return after[i].fromS;
      }
    }
    return null;
  };
  const recoveredAtS = recoveredAt(sameSpan);
  const recoveredEarlyAtS = recoveredAt(early);
  const firstMinute = after.filter((w) => w.fromS < endS + 60);
  const lastOf = (ws, f) => (ws.length ? f(ws[ws.length - 1]) : null);
  const maxOf = (ws, f) => (ws.length ? Math.max(...ws.map(f)) : null);
  return {
    freshJobsPerSecond: fresh,
    controlEarlyJobsPerSecond: early,
    controlSameSpanJobsPerSecond: sameSpan,
    controlSnapshotSpanJobsPerSecond: median(span(control.windows, cfg.baselineSeconds, cfg.baselineSeconds + cfg.snapshotSeconds).map((w) => w.jobsPerSecond)),
    preSnapshotJobsPerSecond: median(ph('fresh').slice(1).map((w) => w.jobsPerSecond)),
    snapshotJobsPerSecond: median(ph('snapshot').map((w) => w.jobsPerSecond)),
    snapshotLastWindowJobsPerSecond: lastOf(ph('snapshot'), (w) => w.jobsPerSecond),
    afterFirstMinuteJobsPerSecond: median(firstMinute.map((w) => w.jobsPerSecond)),
    afterFirstWindowJobsPerSecond: after[0]?.jobsPerSecond ?? null,
    afterLastJobsPerSecond: median(after.slice(-3).map((w) => w.jobsPerSecond)),
    // A window that began just before the commit (its midpoint after it) counts as 0 s.
    recoverySeconds: recoveredAtS === null ? null : Math.max(0, round(recoveredAtS - endS, 1)),
    recoverySecondsVsEarly: recoveredEarlyAtS === null ? null : Math.max(0, round(recoveredEarlyAtS - endS, 1)),
    recoveredWithinMinute: recoveredAtS !== null && recoveredAtS - endS <= 60,
    claimP50Ms: {
      fresh: median(control.windows.slice(1).map((w) => w.claimP50Ms)),
      snapshotEnd: lastOf(ph('snapshot'), (w) => w.claimP50Ms),
      after: median(after.slice(-3).map((w) => w.claimP50Ms)),
    },
    claimP99Ms: {
      fresh: median(control.windows.slice(1).map((w) => w.claimP99Ms)),
      snapshotEnd: lastOf(ph('snapshot'), (w) => w.claimP99Ms),
      after: median(after.slice(-3).map((w) => w.claimP99Ms)),
    },
    deadTuples: {
      controlMax: maxOf(control.windows, (w) => w.exactDead ?? w.deadTup),
      before: lastOf(ph('fresh'), (w) => w.exactDead ?? w.deadTup),
      snapshotEnd: lastOf(ph('snapshot'), (w) => w.exactDead ?? w.deadTup),
      afterPlus60: after.find((w) => w.toS >= endS + 60)?.exactDead ?? null,
      afterEnd: lastOf(after, (w) => w.exactDead ?? w.deadTup),
      statsSnapshotEnd: lastOf(ph('snapshot'), (w) => w.deadTup),
    },
    claimIdxEntriesPerClaim: {
      fresh: median(control.windows.slice(1).map((w) => w.claimIdxReadPerClaim)),
      snapshotEnd: lastOf(ph('snapshot'), (w) => w.claimIdxReadPerClaim),
      afterFirst: after[0]?.claimIdxReadPerClaim ?? null,
      after: median(after.slice(-3).map((w) => w.claimIdxReadPerClaim)),
    },
    activeIdxEntriesPerClaim: {
      fresh: median(control.windows.slice(1).map((w) => w.activeIdxReadPerClaim)),
      snapshotEnd: lastOf(ph('snapshot'), (w) => w.activeIdxReadPerClaim),
      after: median(after.slice(-3).map((w) => w.activeIdxReadPerClaim)),
    },
    claimIdxKiB: {
      control: lastOf(control.windows, (w) => w.claimIdxKiB),
      snapshotEnd: lastOf(ph('snapshot'), (w) => w.claimIdxKiB),
      after: lastOf(after, (w) => w.claimIdxKiB),
    },
    heapMiB: {
      control: lastOf(control.windows, (w) => w.heapMiB),
      snapshotEnd: lastOf(ph('snapshot'), (w) => w.heapMiB),
      after: lastOf(after, (w) => w.heapMiB),
    },
    firstAutovacuumAfterSnapshotS: (() => {
      const a = snap.autovacuum.find((x) => x.atS >= endS);
      return a ? round(a.atS - endS, 1) : null;
    })(),
  };
}

// ---------------------------------------------------------------------------------------------
// The section
// ---------------------------------------------------------------------------------------------

/**
 * A remedy file: SQL to apply, the part after `-- @undo` to undo it, and `-- @bench k=v` lines
 * for what the bench itself must do differently (pruneLimit, vacuumEverySeconds: what a changed
 * pg_cron schedule would run).
 */
function splitRemedy(file) {
  const text = fs.readFileSync(file, 'utf8');
  const bench = {};
  for (const m of text.matchAll(/^-- @bench (\w+)=(\d+)\s*$/gm)) bench[m[1]] = Number(m[2]);
  const at = text.search(/^-- @undo\s*$/m);
  return at < 0 ? { apply: text, undo: '', bench } : { apply: text.slice(0, at), undo: text.slice(at), bench };
}
const hasSql = (text) => text.split('\n').some((l) => l.trim() && !l.trim().startsWith('--'));

/**
 * Runs the bloat section against a migrated throwaway Spool database.
 *   adminUrl, claimerUrl  as bench/db.mjs; dir: the cluster's folder (its postgres.log is read for
 *   autovacuum's lines). Returns { settings, config, configurations, ok }.
 */
export async function runBloatBench({ adminUrl, claimerUrl, dir, log = console.log, ...opts }) {
  const cfg = { ...DEFAULTS, ...Object.fromEntries(Object.entries(opts).filter(([, v]) => v !== undefined)) };
  const admin = new pg.Client({ connectionString: adminUrl, application_name: 'spool-bench-admin' });
  await admin.connect();
  const extra = [];
  const connect = async (name, role) => {
    const c = new pg.Client({ connectionString: role ? claimerUrl : adminUrl, application_name: name });
    await c.connect();
    if (role) await c.query(`set role ${role}`);
    extra.push(c);
    return c;
  };
  let clients = [];
  try {
    await setup(admin, cfg);
    let pgstattuple = true;
    try {
      await admin.query('create extension if not exists pgstattuple');
    } catch {
      pgstattuple = false;
    }
    // Autovacuum's own account of each run of public.jobs goes to the server log.
    await admin.query('alter system set log_autovacuum_min_duration = 0');
    await admin.query('select pg_reload_conf()');
    await admin.query(`update spool.settings set retention_done = $1::interval`, [cfg.retentionDone]);
    // Held debounced, as on a busy queue: every insert checks the doorbell and rings nothing.
    await admin.query(`update spool.doorbell set rung_at = 'infinity', skipped = null`);
    const settings = await readSettings(admin);
    const { rows: [av] } = await admin.query(`
      select (select array_agg(name || '=' || setting order by name) from pg_settings
              where name like 'autovacuum%' or name in ('vacuum_cost_limit', 'vacuum_cost_delay', 'log_autovacuum_min_duration')) as server,
             (select reloptions from pg_class where oid = 'public.jobs'::regclass) as jobs`);
    const { rows: [cron] } = await admin.query(`
      select array_agg(jobname || ' ' || schedule || ': ' || command order by jobname) as jobs from cron.job`).catch(() => ({ rows: [{}] }));
    settings.autovacuum = { server: av.server, jobsReloptions: av.jobs };
    settings.cron = cron.jobs ?? null;
    settings.retentionDone = cfg.retentionDone;

    clients = await connectClaimers(claimerUrl, cfg.claimers);
    const ctx = {
      admin, clients, cfg, log, pgstattuple,
      logFile: dir ? path.join(dir, 'postgres.log') : null,
      producerClient: await connect('spool-bench-producer'),
      prunerClient: await connect('spool-bench-pruner', 'service_role'),
      snapshotClient: await connect('spool-bench-snapshot'),
      explainClient: await connect('spool-bench-explain'),
      vacuumClient: await connect('spool-bench-vacuum'),
    };

    const configurations = [];
    const base = { pruneLimit: cfg.pruneLimit, vacuumEverySeconds: cfg.vacuumEverySeconds };
    const runPairs = async (name, bench = {}) => {
      Object.assign(cfg, base, bench);
      const pairs = [];
      for (let i = 0; i < cfg.repeats; i++) {
        const pair = {};
        for (const kind of i % 2 ? ['snapshot', 'control'] : ['control', 'snapshot']) {
          log(`bloat [${name}] ${kind} drain${cfg.repeats > 1 ? `, run ${i + 1} of ${cfg.repeats}` : ''}`);
          pair[kind] = await drain(kind, ctx);
          const r = pair[kind];
          log(`  ${kind}: ${fmt(r.jobs)} jobs in ${r.seconds} s, pruned ${fmt(r.pruned)}` +
            `${drainCorrect(r) ? '' : `  ✗ duplicates ${r.duplicates}, missing ${r.missing}${r.error ? `, error: ${r.error}` : ''}${r.stalled ? ', stalled' : ''}`}`);
        }
        pair.summary = summarise(pair.control, pair.snapshot, cfg);
        pairs.push(pair);
      }
      const med = (f) => median(pairs.map((p) => f(p.summary) ?? NaN));
      const recov = pairs.map((p) => p.summary.recoverySeconds);
      configurations.push({
        name,
        bench,
        pairs,
        median: {
          freshJobsPerSecond: med((s) => s.freshJobsPerSecond),
          controlEarlyJobsPerSecond: med((s) => s.controlEarlyJobsPerSecond),
          controlSnapshotSpanJobsPerSecond: med((s) => s.controlSnapshotSpanJobsPerSecond),
          controlSameSpanJobsPerSecond: med((s) => s.controlSameSpanJobsPerSecond),
          recoverySecondsVsEarlyPerRun: pairs.map((p) => p.summary.recoverySecondsVsEarly),
          snapshotJobsPerSecond: med((s) => s.snapshotJobsPerSecond),
          snapshotLastWindowJobsPerSecond: med((s) => s.snapshotLastWindowJobsPerSecond),
          afterFirstMinuteJobsPerSecond: med((s) => s.afterFirstMinuteJobsPerSecond),
          afterLastJobsPerSecond: med((s) => s.afterLastJobsPerSecond),
          // A run that never recovered counts as +infinity.
          recoverySeconds: median(recov.map((x) => x ?? Infinity)),
          recoverySecondsPerRun: recov,
        },
        correct: pairs.every((p) => drainCorrect(p.control) && drainCorrect(p.snapshot)),
      });
    };

    await runPairs('shipped');
    for (const file of cfg.applySql) {
      const name = path.basename(file, '.sql');
      const { apply, undo, bench } = splitRemedy(file);
      log(`bloat: applying remedy ${path.relative(process.cwd(), file)} to the throwaway database` +
        `${Object.keys(bench).length ? ` (bench: ${JSON.stringify(bench)})` : ''}`);
      if (hasSql(apply)) await admin.query(apply);
      try {
        await runPairs(name, bench);
      } finally {
        if (hasSql(undo)) await admin.query(undo);
        Object.assign(cfg, base);
      }
    }
    return {
      settings,
      config: {
        jobs: cfg.jobs, snapshotSeconds: cfg.snapshotSeconds, baselineSeconds: cfg.baselineSeconds,
        afterSeconds: cfg.afterSeconds, windowSeconds: cfg.windowSeconds, users: cfg.users, claimers: cfg.claimers,
        batch: cfg.batch, backlog: cfg.backlog, chunk: cfg.chunk, pruneEverySeconds: cfg.pruneEverySeconds,
        retentionDone: cfg.retentionDone, repeats: cfg.repeats, recoveredRatio: cfg.recoveredRatio,
        applySql: cfg.applySql.map((f) => path.relative(process.cwd(), f)), pgstattuple,
      },
      configurations,
      ok: configurations.every((c) => c.correct),
    };
  } finally {
    await Promise.allSettled([...clients, ...extra].map((c) => c.end()));
    await admin.query('alter system reset log_autovacuum_min_duration').catch(() => {});
    await admin.query(`
      drop schema if exists bench cascade;
      delete from auth.users where email like 'bench-%@spool.invalid';`).catch(() => {});
    await admin.end().catch(() => {});
  }
}

/** The section's report, as lines of text. */
export function formatBloatReport(result) {
  const { settings, config: c, configurations } = result;
  const s = settings.server;
  const lines = [];
  lines.push(`Postgres ${s.server_version}: fsync=${s.fsync}, synchronous_commit=${s.synchronous_commit}, shared_buffers=${s.shared_buffers}, ` +
    `autovacuum=${s.autovacuum}; public.jobs reloptions: ${(settings.autovacuum.jobsReloptions ?? []).join(', ')}`);
  lines.push(`${c.claimers} claimers × batch ${c.batch} (claim_jobs → complete_jobs as service_role), ${c.users} owners; a producer keeps ` +
    `≥ ${fmt(c.backlog)} jobs queued (≥ ${fmt(c.jobs)} created per drain); prune_jobs() + purge_history() every ${c.pruneEverySeconds} s ` +
    `with retention_done = ${c.retentionDone} (shipped: once a day); ${c.windowSeconds}-s windows`);
  lines.push(`timeline: ${c.baselineSeconds} s fresh, ${c.snapshotSeconds} s with a REPEATABLE READ snapshot open (snapshot drain) or ` +
    `without (control drain), ${c.afterSeconds} s after; recovered = start of the first two windows ≥ ${c.recoveredRatio * 100}% of the control ` +
    `drain's median over the same span (its table as old, pruned alike) or over its first ${c.baselineSeconds} s; jobs/s below`);
  if (configurations.some((x) => x.pairs.length > 1)) lines.push(`medians of ${configurations[0].pairs.length} pairs of drains`);
  lines.push('');
  lines.push(...table(
    ['configuration', 'control: first', 'all', 'snap span', 'after span', 'snapshot drain: snapshot', 'last snap window', 'after, 1st min',
      'after, end', 'recovery s (vs after span)', 'within 1 min', 'recovery s (vs first)'],
    configurations.map((x) => [
      x.name, fmt(x.median.controlEarlyJobsPerSecond), fmt(x.median.freshJobsPerSecond), fmt(x.median.controlSnapshotSpanJobsPerSecond),
      fmt(x.median.controlSameSpanJobsPerSecond),
      fmt(x.median.snapshotJobsPerSecond), fmt(x.median.snapshotLastWindowJobsPerSecond),
      fmt(x.median.afterFirstMinuteJobsPerSecond), fmt(x.median.afterLastJobsPerSecond),
      x.median.recoverySecondsPerRun.map((r) => (r === null ? 'never' : r)).join(', '),
      Number.isFinite(x.median.recoverySeconds) && x.median.recoverySeconds <= 60 ? 'yes' : 'NO',
      x.median.recoverySecondsVsEarlyPerRun.map((r) => (r === null ? 'never' : r)).join(', '),
    ]),
  ));
  lines.push('');
  lines.push(...table(
    ['configuration', 'dead: control max', 'before', 'snapshot end', 'after +60 s', 'after end',
      'claim_idx entries/claim fresh', 'snap end', 'after 1st', 'after', 'claim_idx KiB ctl', 'snap end', 'after', 'claim p99 ms fresh', 'snap end', 'after'],
    configurations.flatMap((x) => x.pairs.map((p, i) => {
      const m = p.summary;
      return [
        `${x.name}${x.pairs.length > 1 ? ` #${i + 1}` : ''}`, fmt(m.deadTuples.controlMax), fmt(m.deadTuples.before), fmt(m.deadTuples.snapshotEnd),
        fmt(m.deadTuples.afterPlus60), fmt(m.deadTuples.afterEnd),
        fmt(m.claimIdxEntriesPerClaim.fresh), fmt(m.claimIdxEntriesPerClaim.snapshotEnd), fmt(m.claimIdxEntriesPerClaim.afterFirst),
        fmt(m.claimIdxEntriesPerClaim.after),
        fmt(m.claimIdxKiB.control), fmt(m.claimIdxKiB.snapshotEnd), fmt(m.claimIdxKiB.after),
        m.claimP99Ms.fresh, m.claimP99Ms.snapshotEnd, m.claimP99Ms.after,
      ];
    })),
  ));
  lines.push('(dead = pgstattuple_approx dead_tuple_count of public.jobs; entries/claim = idx_tup_read of jobs_claim_idx per claim_jobs call)');
  for (const x of configurations) {
    const p = x.pairs[x.pairs.length - 1];
    lines.push('');
    lines.push(`[${x.name}] snapshot drain, window by window (last pair):`);
    lines.push(...table(
      ['to s', 'phase', 'jobs/s', 'control', 'p50 ms', 'p99 ms', 'n_dead_tup', 'exact dead', 'n_live_tup', 'heap MiB', 'claim_idx KiB', 'entries/claim', 'active_idx/claim', 'autovac', 'xmin age', 'prune ms'],
      p.snapshot.windows.map((w, i) => [w.toS, w.phase, fmt(w.jobsPerSecond), fmt(p.control.windows[i]?.jobsPerSecond), w.claimP50Ms, w.claimP99Ms, fmt(w.deadTup),
        w.exactDead === null ? '?' : fmt(w.exactDead), fmt(w.liveTup), w.heapMiB, fmt(w.claimIdxKiB), fmt(w.claimIdxReadPerClaim),
        fmt(w.activeIdxReadPerClaim), `${w.autovacuums}${w.vacuuming ? '*' : ''}`, fmt(w.xminAge ?? 0), w.pruneMaxMs || '']),
    ));
    lines.push('EXPLAIN (ANALYZE, BUFFERS) of the claim\'s candidate scan (LIMIT batch, FOR UPDATE SKIP LOCKED, rolled back):');
    lines.push(...table(
      ['when', 'at s', 'ms', 'rows', 'shared hit', 'read', 'node'],
      p.snapshot.explains.map((e) => [e.label, e.atS, e.ms, e.rows, fmt(e.sharedHit), fmt(e.sharedRead), e.scan]),
    ));
    const idxNames = [...new Set(p.snapshot.explains.flatMap((e) => Object.keys(e.full?.byIndex ?? {})))].sort();
    if (idxNames.length) {
      lines.push('one whole claim_jobs(batch) call under auto_explain (rolled back): ms, and per index entries returned / loops / shared buffers hit:');
      lines.push(...table(
        ['when', 'ms', ...idxNames],
        p.snapshot.explains.map((e) => [e.label, e.full?.ms, ...idxNames.map((n) => {
          const x = e.full?.byIndex?.[n];
          return x ? `${fmt(x.rows)} / ${fmt(x.loops)} / ${fmt(x.sharedHit)}` : '';
        })]),
      ));
    }
    if (p.snapshot.autovacuum.length) {
      lines.push('autovacuum of public.jobs (server log):');
      lines.push(...table(
        ['at s', 'elapsed s', 'removed', 'not yet removable', 'remain', 'index scans', 'claim_idx pages', 'newly deleted'],
        p.snapshot.autovacuum.map((a) => [a.atS, a.elapsedS, fmt(a.removed), fmt(a.notRemovable), fmt(a.remain), a.indexScans,
          fmt(a.indexes.jobs_claim_idx?.pages ?? NaN), fmt(a.indexes.jobs_claim_idx?.newlyDeleted ?? NaN)]),
      ));
    }
    for (const q of x.pairs) {
      for (const r of [q.control, q.snapshot]) {
        lines.push(`${drainCorrect(r) ? '✓' : '✗'} ${x.name} ${r.kind}: ${fmt(r.jobs)} jobs, ${fmt(r.clientCompleted)} completed once, ` +
          `duplicates ${r.duplicates}, missing ${r.missing}, pruned ${fmt(r.pruned)} in ${r.pruneCalls} calls ` +
          `(median ${r.pruneMsMedian} ms, max ${r.pruneMsMax} ms)${r.error ? `, error: ${r.error}` : ''}${r.stalled ? ', stalled' : ''}`);
      }
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

function quantile(xs, q) {
  if (!xs.length) return NaN;
  const a = [...xs].sort((x, y) => x - y);
  return a[Math.min(a.length - 1, Math.floor(q * a.length))];
}
function median(xs) {
  const a = xs.filter((x) => x !== null && !Number.isNaN(x)).sort((x, y) => x - y);
  if (!a.length) return NaN;
  const m = a.length >> 1;
  return a.length % 2 ? a[m] : (a[m - 1] + a[m]) / 2;
}
const mapValues = (o, f) => Object.fromEntries(Object.entries(o).map(([k, v]) => [k, f(v)]));
const round = (x, d) => (Number.isFinite(x) ? Math.round(x * 10 ** d) / 10 ** d : x);
const fmt = (n) => (n === null || n === undefined || Number.isNaN(n) ? '?' : !Number.isFinite(n) ? String(n) : Math.round(n).toLocaleString('en-US'));
