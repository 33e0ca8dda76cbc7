// The peers section of `npm run bench`: Spool next to graphile-worker and pg-boss, on the same
// throwaway cluster, in the same run, on the same workloads, with Spool's ratio to each.
//
// Each peer is installed by the library itself into its own schema of the same database
// (graphile_worker, pgboss); all three connect as the postgres role (not a superuser, as on
// Supabase), and Spool's connections `set role service_role` as PostgREST does for the worker.
// Everything runs in this one Node process on the same 2-core machine as the cluster, so a
// library that does more per job in JavaScript pays for it here, as it would in production.
//
// Workloads (jobs are no-ops; each measured cell starts from an empty queue):
//   enqueue-one  N jobs, one call per job, from 8 concurrent clients (Spool: public.create_job
//                over 400 owners; graphile-worker: addJob → graphile_worker.add_job; pg-boss:
//                send). jobs/s = N / (first call → last call answered).
//   bulk         N jobs in calls of 500 from one client (Spool: public.create_jobs; graphile-
//                worker: addJobs → graphile_worker.add_jobs; pg-boss: insert).
//   drain        N pre-enqueued jobs (seeded untimed, CHECKPOINT before and VACUUM ANALYZE
//                after the seeding as bench/db.mjs does) drained with 8 and with 32 workers.
//                Spool: bench/db.mjs's drainCell, claim_jobs/complete_jobs loops, batch 50,
//                per-user cap and fairness on. graphile-worker: one runner, the perf preset of
//                its docs (concurrentJobs = workers, maxPoolSize = workers + 1, localQueue.size
//                500, completeJobBatchDelay 0, failJobBatchDelay 0). pg-boss: work() with
//                batchSize 50, localConcurrency = workers, burstWhenBatchFull (fetch again at
//                once while batches come back full). jobs/s = N / (first handler start, or
//                Spool's first claim → every job committed done, as the database says).
//   pickup       one job every 20 ms for ~10 s into an idle system; latency = the enqueue call
//                answered (its COMMIT done) → the handler starts, in this process's clock.
//                graphile-worker and pg-boss are woken by LISTEN/NOTIFY (pg-boss with
//                useListenNotify and a notify queue, its documented fast path). Spool has no
//                LISTEN path in SQL: its real pickup is the doorbell → pg_net → job-worker path
//                bench/e2e.mjs measures. Here Spool is a SQL-level loop, one worker polling
//                claim_jobs (batch 50) every graphile-worker's default pollInterval (2000 ms),
//                and, for scale, every 100 ms.
// Correctness: every handler run is counted by job id (a second run of an id is a duplicate),
// and the database must say every job completed (a job not completed is missing). A duplicate
// or a missing job makes the section fail; speed is reported, never asserted.
//
// Spool's enqueue quotas (spool.settings max_jobs_per_minute_per_user 60 and
// max_active_jobs_per_user 100) would refuse a bench's enqueue after the first few dozen jobs per
// owner: the section raises both in the throwaway database and the report says so. The per-user
// running cap (max_running_per_user) and fair slots are left as shipped.

import os from 'node:os';
import { performance } from 'node:perf_hooks';
import pg from 'pg';
import { cellCorrect, connectClaimers, drainCell, readSettings, setup, spoolSystem } from './db.mjs';

export const DEFAULTS = Object.freeze({
  // Jobs per enqueue, bulk and drain cell (--peers-jobs).
  jobs: 20_000,
  users: 400,
  enqueueClients: 8,
  bulkBatch: 500,
  workers: [8, 32],
  batch: 50,
  // Measured runs per cell, median reported; the systems' order rotates from run to run.
  repeats: 3,
  // Jobs each system enqueues and drains once before the measured cells (not reported).
  warmupJobs: 1_000,
  pickupSeconds: 10,
  pickupIntervalMs: 20,
  pickupWorkers: 8,
  // graphile-worker's default pollInterval first (what the issue asks), then a tight poll.
  spoolPollMs: [2000, 100],
  // A drain that makes no progress for this long is stopped; its unfinished jobs are missing.
  stallMs: 60_000,
});

// The quotas the enqueue cells would hit, raised in the throwaway database only.
const RAISED_QUOTAS = { max_jobs_per_minute_per_user: 1_000_000_000, max_active_jobs_per_user: 1_000_000_000 };

const QUEUE = 'noop'; // pg-boss queue name and graphile-worker task identifier
const GW_SCHEMA = 'graphile_worker';
const BOSS_SCHEMA = 'pgboss';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------------------------
// Peer configuration
// ---------------------------------------------------------------------------------------------

/** graphile-worker's perf preset (worker.graphile.org/docs/performance), concurrency = workers. */
function graphilePreset(url, workers) {
  return {
    worker: {
      connectionString: url,
      schema: GW_SCHEMA,
      concurrentJobs: workers,
      // The docs' preset runs 24 jobs on a pool of 25.
      maxPoolSize: workers + 1,
      localQueue: { size: 500 },
      completeJobBatchDelay: 0,
      failJobBatchDelay: 0,
      // pollInterval left at its default (2000 ms); new jobs arrive by LISTEN/NOTIFY.
    },
  };
}

/** pg-boss instance options: its own pool, no background maintenance or cron during a cell. */
function bossOptions(url, max) {
  return {
    connectionString: url,
    schema: BOSS_SCHEMA,
    max,
    supervise: false,
    schedule: false,
    useListenNotify: true,
    application_name: 'spool-bench-pgboss',
  };
}

const BOSS_WORK = (workers, batch) => ({
  batchSize: batch,
  localConcurrency: workers,
  burstWhenBatchFull: true,
  // Its minimum; only a short fetch (the drain's tail) waits for it.
  pollingIntervalSeconds: 0.5,
});

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/** Tracks handler runs by job id: distinct ids, duplicates, first start, and a wait for `n`. */
function handledSet(n) {
  const seen = new Set();
  let dups = 0;
  let first = null;
  let last = performance.now();
  let resolve;
  const all = new Promise((r) => { resolve = r; });
  return {
    hit(id) {
      first ??= performance.now();
      last = performance.now();
      if (seen.has(id)) dups++;
      else seen.add(id);
      if (seen.size >= n) resolve();
    },
    all,
    get size() { return seen.size; },
    get dups() { return dups; },
    get first() { return first; },
    get last() { return last; },
  };
}

/**
 * Waits until every job is handled and `remaining()` (the database's count of jobs not yet
 * completed) reaches 0, or until nothing moved for `stallMs`. Returns the time it reached 0.
 */
async function untilDone(h, remaining, stallMs) {
  let stalled = false;
  while (h.size < h.n) {
    const r = await Promise.race([h.all.then(() => 'all'), sleep(250).then(() => 'tick')]);
    if (r === 'all') break;
    if (performance.now() - h.last > stallMs) {
      stalled = true;
      break;
    }
  }
  let t = performance.now();
  let left = await remaining();
  const since = performance.now();
  while (left > 0 && !stalled) {
    if (performance.now() - since > stallMs) {
      stalled = true;
      break;
    }
    await sleep(2);
    left = await remaining();
    t = performance.now();
  }
  return { end: t, left, stalled };
}

function stats(xs) {
  const a = xs.filter(Number.isFinite).sort((x, y) => x - y);
  if (a.length === 0) return { n: 0 };
  const q = (p) => a[Math.min(a.length - 1, Math.max(0, Math.ceil(p * a.length) - 1))];
  return {
    n: a.length,
    p50: round(q(0.5), 1),
    p95: round(q(0.95), 1),
    p99: round(q(0.99), 1),
    max: round(a[a.length - 1], 1),
    min: round(a[0], 1),
    mean: round(a.reduce((s, x) => s + x, 0) / a.length, 1),
  };
}

function cpuPercent(cpu0, seconds) {
  const c = process.cpuUsage(cpu0);
  return round((100 * (c.user + c.system)) / 1e6 / seconds, 1);
}

// ---------------------------------------------------------------------------------------------
// The three systems, one object each: reset, enqueueOne, bulk, drain, pickup
// ---------------------------------------------------------------------------------------------

function spoolPeer(ctx) {
  const sys = spoolSystem();
  const { admin, clients, users } = ctx;
  const count = async () => (await admin.query('select count(*)::int n from public.jobs')).rows[0].n;
  const reset = async () => {
    await admin.query('truncate public.jobs, public.job_attempts, public.notifications');
    await admin.query('checkpoint');
  };
  return {
    name: 'spool',
    async enqueueOne(jobs) {
      await reset();
      let next = 0;
      const active = clients.slice(0, ctx.cfg.enqueueClients);
      const cpu0 = process.cpuUsage();
      const t0 = performance.now();
      await Promise.all(active.map(async (c) => {
        for (let i = next++; i < jobs; i = next++) {
          await c.query({
            name: 'peers_create_job',
            text: 'select id from public.create_job($1::uuid, $2, $3::jsonb)',
            values: [users[i % users.length], 'noop', '{}'],
          });
        }
      }));
      const seconds = (performance.now() - t0) / 1000;
      return { seconds, clientCpuPercent: cpuPercent(cpu0, seconds), stored: await count() };
    },
    async bulk(jobs, batchSize) {
      await reset();
      const c = clients[0];
      const cpu0 = process.cpuUsage();
      const t0 = performance.now();
      let returned = 0;
      for (let i = 0; i < jobs; i += batchSize) {
        const n = Math.min(batchSize, jobs - i);
        const batch = Array.from({ length: n }, (_, k) => ({ user_id: users[(i + k) % users.length], type: 'noop' }));
        const { rowCount } = await c.query({
          name: 'peers_create_jobs',
          text: 'select id from public.create_jobs($1::jsonb)',
          values: [JSON.stringify(batch)],
        });
        returned += rowCount;
      }
      const seconds = (performance.now() - t0) / 1000;
      return { seconds, clientCpuPercent: cpuPercent(cpu0, seconds), stored: await count(), returned };
    },
    async drain(jobs, workers) {
      const cpu0 = process.cpuUsage();
      const r = await drainCell(sys, {
        admin, clients, claimers: workers, batch: ctx.cfg.batch, jobs, stallMs: ctx.cfg.stallMs,
      });
      return {
        seconds: r.seconds,
        handled: r.clientCompleted,
        duplicates: r.duplicates,
        missing: r.missing,
        correct: cellCorrect(r),
        clientCpuPercent: cpuPercent(cpu0, r.seconds),
        detail: {
          avgClaimMs: r.avgClaimMs, avgCompleteMs: r.avgCompleteMs, claimCalls: r.claimCalls,
          emptyClaims: r.emptyClaims, shortClaims: r.shortClaims, serverCpuUsPerJob: r.serverCpuUsPerJob,
          auxCpuUsPerJob: r.auxCpuUsPerJob, checkpointsDuring: r.checkpointsDuring, stalled: r.stalled, error: r.error,
        },
      };
    },
    /** One worker polling claim_jobs every `pollMs` while idle; a non-empty claim claims again. */
    async pickup({ seconds, intervalMs, pollMs }) {
      await reset();
      const poller = clients[0];
      const producer = clients[1];
      const starts = new Map();
      let stop = false;
      let wake = null;
      let claims = 0;
      const loop = (async () => {
        while (!stop) {
          const { rows } = await poller.query({
            name: 'peers_pickup_claim',
            text: 'select id, lease_token, input from public.claim_jobs($1, $2, null, null)',
            values: ['bench-pickup', ctx.cfg.batch],
          });
          claims++;
          if (rows.length > 0) {
            const t = performance.now();
            for (const r of rows) if (!starts.has(r.input.seq)) starts.set(r.input.seq, t);
            await poller.query({
              name: 'peers_pickup_complete',
              text: 'select count(*) from public.complete_jobs($1::jsonb)',
              values: [JSON.stringify(rows.map((r) => ({ id: r.id, lease_token: r.lease_token, output: {} })))],
            });
            continue;
          }
          await new Promise((r) => {
            wake = r;
            setTimeout(r, pollMs);
          });
        }
      })();
      const enqueue = (seq) => producer.query({
        name: 'peers_pickup_create',
        text: 'select id from public.create_job($1::uuid, $2, $3::jsonb)',
        values: [users[seq % users.length], 'noop', JSON.stringify({ seq })],
      });
      const out = await pickupRun({ seconds, intervalMs, enqueue, starts, settleMs: pollMs + 5000 });
      stop = true;
      wake?.();
      await loop;
      return { ...out, claims, config: `1 worker polling claim_jobs every ${pollMs} ms, batch ${ctx.cfg.batch}` };
    },
  };
}

function graphilePeer(ctx, gw) {
  const { admin, url } = ctx;
  let utils;
  let pool;
  const logger = new gw.Logger(() => (level, message) => {
    if (level === 'error' || level === 'warning') ctx.log(`graphile-worker ${level}: ${message}`);
  });
  const count = async () => (await admin.query(`select count(*)::int n from ${GW_SCHEMA}._private_jobs`)).rows[0].n;
  const reset = async () => {
    await admin.query(`truncate ${GW_SCHEMA}._private_jobs`);
    await admin.query('checkpoint');
  };
  const seed = async (jobs) => {
    for (let i = 0; i < jobs; i += 1000) {
      const n = Math.min(1000, jobs - i);
      await utils.addJobs(Array.from({ length: n }, () => ({ identifier: QUEUE, payload: {} })));
    }
  };
  const startRunner = (workers, onJob) => gw.run({
    noHandleSignals: true,
    logger,
    taskList: { [QUEUE]: async (payload, helpers) => onJob(payload, helpers) },
    parsedCronItems: [],
    preset: graphilePreset(url, workers),
  });
  return {
    name: 'graphile-worker',
    async install() {
      pool = new pg.Pool({ connectionString: url, max: ctx.cfg.enqueueClients, application_name: 'spool-bench-gw-utils' });
      pool.on('error', (err) => ctx.log(`graphile-worker utils pool: ${err.message}`));
      pool.on('connect', (client) => client.on('error', (err) => ctx.log(`graphile-worker utils client: ${err.message}`)));
      utils = await gw.makeWorkerUtils({ pgPool: pool, schema: GW_SCHEMA, logger });
      await utils.migrate();
    },
    async close() {
      await utils?.release();
      await pool?.end();
    },
    async enqueueOne(jobs) {
      await reset();
      let next = 0;
      const cpu0 = process.cpuUsage();
      const t0 = performance.now();
      await Promise.all(Array.from({ length: ctx.cfg.enqueueClients }, async () => {
        for (let i = next++; i < jobs; i = next++) await utils.addJob(QUEUE, {});
      }));
      const seconds = (performance.now() - t0) / 1000;
      return { seconds, clientCpuPercent: cpuPercent(cpu0, seconds), stored: await count() };
    },
    async bulk(jobs, batchSize) {
      await reset();
      const cpu0 = process.cpuUsage();
      const t0 = performance.now();
      let returned = 0;
      for (let i = 0; i < jobs; i += batchSize) {
        const n = Math.min(batchSize, jobs - i);
        const added = await utils.addJobs(Array.from({ length: n }, () => ({ identifier: QUEUE, payload: {} })));
        returned += added.length;
      }
      const seconds = (performance.now() - t0) / 1000;
      return { seconds, clientCpuPercent: cpuPercent(cpu0, seconds), stored: await count(), returned };
    },
    async drain(jobs, workers) {
      await reset();
      await seed(jobs);
      await admin.query(`vacuum analyze ${GW_SCHEMA}._private_jobs`);
      const h = handledSet(jobs);
      h.n = jobs;
      const cpu0 = process.cpuUsage();
      const tRun = performance.now();
      const runner = await startRunner(workers, (_p, helpers) => h.hit(String(helpers.job.id)));
      let done;
      try {
        done = await untilDone(h, count, ctx.cfg.stallMs);
      } finally {
        await runner.stop();
      }
      const t0 = h.first ?? tRun;
      const seconds = (done.end - t0) / 1000;
      const left = await count();
      const missing = Math.max(left, jobs - h.size);
      return {
        seconds,
        handled: h.size,
        duplicates: h.dups,
        missing,
        correct: h.dups === 0 && missing === 0 && !done.stalled,
        clientCpuPercent: cpuPercent(cpu0, (done.end - tRun) / 1000),
        detail: { startupMs: round(t0 - tRun, 1), leftInTable: left, stalled: done.stalled },
      };
    },
    async pickup({ seconds, intervalMs, workers }) {
      await reset();
      const starts = new Map();
      const runner = await startRunner(workers, (payload) => {
        if (!starts.has(payload.seq)) starts.set(payload.seq, performance.now());
      });
      await sleep(500); // idle, listening
      try {
        const out = await pickupRun({ seconds, intervalMs, enqueue: (seq) => utils.addJob(QUEUE, { seq }), starts, settleMs: 5000 });
        return { ...out, config: `one runner, concurrentJobs ${workers}, perf preset, LISTEN/NOTIFY (pollInterval 2000 ms as fallback)` };
      } finally {
        await runner.stop();
      }
    },
  };
}

function bossPeer(ctx, PgBoss) {
  const { admin, url } = ctx;
  let producer;
  const count = async () => (await admin.query(
    `select count(*)::int n from ${BOSS_SCHEMA}.job where name = $1 and state <> 'completed'`, [QUEUE])).rows[0].n;
  const stored = async () => (await admin.query(
    `select count(*)::int n from ${BOSS_SCHEMA}.job where name = $1`, [QUEUE])).rows[0].n;
  const reset = async () => {
    await admin.query(`truncate ${BOSS_SCHEMA}.job cascade`);
    await admin.query('checkpoint');
  };
  const start = async (max) => {
    const boss = new PgBoss(bossOptions(url, max));
    boss.on('error', (err) => ctx.log(`pg-boss error: ${err.message}`));
    await boss.start();
    return boss;
  };
  return {
    name: 'pg-boss',
    async install() {
      producer = await start(ctx.cfg.enqueueClients);
      // A queue that NOTIFYs its workers on every insert (its documented low-latency setup).
      await producer.createQueue(QUEUE, { notify: true });
    },
    async close() {
      await producer?.stop({ graceful: false, close: true, timeout: 1000 });
    },
    async enqueueOne(jobs) {
      await reset();
      let next = 0;
      const cpu0 = process.cpuUsage();
      const t0 = performance.now();
      await Promise.all(Array.from({ length: ctx.cfg.enqueueClients }, async () => {
        for (let i = next++; i < jobs; i = next++) await producer.send(QUEUE, {});
      }));
      const seconds = (performance.now() - t0) / 1000;
      return { seconds, clientCpuPercent: cpuPercent(cpu0, seconds), stored: await stored() };
    },
    async bulk(jobs, batchSize) {
      await reset();
      const cpu0 = process.cpuUsage();
      const t0 = performance.now();
      let returned = 0;
      for (let i = 0; i < jobs; i += batchSize) {
        const n = Math.min(batchSize, jobs - i);
        // returnId: the ids back, as create_jobs and add_jobs return their rows.
        const ids = await producer.insert(QUEUE, Array.from({ length: n }, () => ({ data: {} })), { returnId: true });
        returned += ids?.length ?? 0;
      }
      const seconds = (performance.now() - t0) / 1000;
      return { seconds, clientCpuPercent: cpuPercent(cpu0, seconds), stored: await stored(), returned };
    },
    async drain(jobs, workers) {
      await reset();
      for (let i = 0; i < jobs; i += 1000) {
        await producer.insert(QUEUE, Array.from({ length: Math.min(1000, jobs - i) }, () => ({ data: {} })));
      }
      await admin.query(`vacuum analyze ${BOSS_SCHEMA}.job`);
      const h = handledSet(jobs);
      h.n = jobs;
      const cpu0 = process.cpuUsage();
      const tRun = performance.now();
      const boss = await start(workers + 2);
      let done;
      try {
        await boss.work(QUEUE, BOSS_WORK(workers, ctx.cfg.batch), async (batch) => {
          for (const j of batch) h.hit(j.id);
        });
        done = await untilDone(h, count, ctx.cfg.stallMs);
      } finally {
        await boss.stop({ graceful: true, close: true, timeout: 10_000 });
      }
      const t0 = h.first ?? tRun;
      const seconds = (done.end - t0) / 1000;
      const left = await count();
      const missing = Math.max(left, jobs - h.size);
      return {
        seconds,
        handled: h.size,
        duplicates: h.dups,
        missing,
        correct: h.dups === 0 && missing === 0 && !done.stalled,
        clientCpuPercent: cpuPercent(cpu0, (done.end - tRun) / 1000),
        detail: { startupMs: round(t0 - tRun, 1), leftNotCompleted: left, stalled: done.stalled },
      };
    },
    async pickup({ seconds, intervalMs, workers }) {
      await reset();
      const starts = new Map();
      const boss = await start(workers + 2);
      try {
        await boss.work(QUEUE, { ...BOSS_WORK(workers, ctx.cfg.batch), pollingIntervalSeconds: 2 }, async (batch) => {
          const t = performance.now();
          for (const j of batch) if (!starts.has(j.data.seq)) starts.set(j.data.seq, t);
        });
        await sleep(500); // idle, listening
        const out = await pickupRun({ seconds, intervalMs, enqueue: (seq) => producer.send(QUEUE, { seq }), starts, settleMs: 5000 });
        return { ...out, config: `work() localConcurrency ${workers}, batchSize ${ctx.cfg.batch}, useListenNotify + notify queue (polling 2 s as fallback)` };
      } finally {
        await boss.stop({ graceful: true, close: true, timeout: 10_000 });
      }
    },
  };
}

/**
 * Enqueues one job every `intervalMs` for `seconds` (on a fixed schedule, not waiting for the
 * previous call) and waits for their handlers; latency = enqueue answered → handler start.
 */
async function pickupRun({ seconds, intervalMs, enqueue, starts, settleMs }) {
  const n = Math.floor((seconds * 1000) / intervalMs);
  const sent = new Array(n);
  const acked = new Array(n);
  const calls = [];
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    const wait = t0 + i * intervalMs - performance.now();
    if (wait > 0) await sleep(wait);
    sent[i] = performance.now();
    calls.push(enqueue(i).then(() => { acked[i] = performance.now(); }));
  }
  await Promise.all(calls);
  const deadline = performance.now() + settleMs;
  while (starts.size < n && performance.now() < deadline) await sleep(10);
  const pickupMs = [];
  const fromSendMs = [];
  for (let i = 0; i < n; i++) {
    const s = starts.get(i);
    if (s === undefined) continue;
    pickupMs.push(s - acked[i]);
    fromSendMs.push(s - sent[i]);
  }
  const enqueueMs = acked.map((a, i) => a - sent[i]);
  return {
    jobs: n,
    started: starts.size,
    missing: n - Math.min(n, starts.size),
    pickupMs: stats(pickupMs),
    fromSendMs: stats(fromSendMs),
    enqueueMs: stats(enqueueMs),
    rate: round(n / ((performance.now() - t0) / 1000), 1),
  };
}

// ---------------------------------------------------------------------------------------------
// The section
// ---------------------------------------------------------------------------------------------

/**
 * Runs the peers section against a migrated Spool database.
 *   adminUrl    a superuser (TRUNCATE, VACUUM, CHECKPOINT, spool.settings)
 *   claimerUrl  the postgres role: Spool's clients (set role service_role) and both peers
 * Returns { settings, config, versions, enqueueOne, bulk, drain, pickup, ok, failures }.
 */
export async function runPeersBench({ adminUrl, claimerUrl, log = console.log, ...opts }) {
  const cfg = { ...DEFAULTS, ...Object.fromEntries(Object.entries(opts).filter(([, v]) => v !== undefined)) };
  const gw = await import('graphile-worker');
  const { PgBoss } = await import('pg-boss');
  const versions = await peerVersions();
  const admin = new pg.Client({ connectionString: adminUrl, application_name: 'spool-bench-admin' });
  await admin.connect();
  let clients = [];
  const peers = [];
  const failures = [];
  try {
    await setup(admin, cfg);
    const quotasBefore = (await admin.query(
      'select max_jobs_per_minute_per_user, max_active_jobs_per_user from spool.settings')).rows[0];
    await admin.query(
      'update spool.settings set max_jobs_per_minute_per_user = $1, max_active_jobs_per_user = $2',
      [RAISED_QUOTAS.max_jobs_per_minute_per_user, RAISED_QUOTAS.max_active_jobs_per_user]);
    const settings = await readSettings(admin);
    settings.spoolQuotas = { shipped: quotasBefore, raised: RAISED_QUOTAS };
    const users = (await admin.query('select id from bench.users order by id')).rows.map((r) => r.id);
    clients = await connectClaimers(claimerUrl, Math.max(...cfg.workers, cfg.enqueueClients, 2));

    const ctx = { admin, clients, users, cfg, url: claimerUrl, log };
    const spool = spoolPeer(ctx);
    const graphile = graphilePeer(ctx, gw);
    const boss = bossPeer(ctx, PgBoss);
    log(`peers: installing graphile-worker ${versions['graphile-worker']} (schema ${GW_SCHEMA}) and pg-boss ${versions['pg-boss']} (schema ${BOSS_SCHEMA})`);
    await graphile.install();
    peers.push(graphile);
    await boss.install();
    peers.push(boss);
    const systems = [spool, graphile, boss];
    const rotate = (r) => systems.map((_, i) => systems[(i + r) % systems.length]);

    if (cfg.warmupJobs > 0) {
      log(`peers: warming up (${cfg.warmupJobs} jobs enqueued and drained per system, not reported)`);
      for (const s of systems) {
        await s.enqueueOne(cfg.warmupJobs);
        await s.bulk(cfg.warmupJobs, cfg.bulkBatch);
        await s.drain(cfg.warmupJobs, cfg.workers[0]);
      }
    }

    const throughputCell = async (label, fn, check) => {
      const runs = Object.fromEntries(systems.map((s) => [s.name, []]));
      for (let r = 0; r < cfg.repeats; r++) {
        for (const s of rotate(r)) {
          const out = await fn(s);
          const jps = round(cfg.jobs / out.seconds, 0);
          const res = { run: r + 1, jobsPerSecond: jps, seconds: round(out.seconds, 3), ...out };
          res.seconds = round(out.seconds, 3);
          const bad = check(res);
          if (bad) failures.push(`${label} ${s.name} run ${r + 1}: ${bad}`);
          runs[s.name].push(res);
          log(`  ${label.padEnd(14)} ${s.name.padEnd(15)} run ${r + 1}: ${fmt(jps).padStart(7)} jobs/s ` +
            `(${cfg.jobs} jobs in ${res.seconds}s, client CPU ${res.clientCpuPercent}%)${bad ? `  ✗ ${bad}` : ''}`);
        }
      }
      return summarize(runs);
    };
    const stored = (res) => (res.stored !== cfg.jobs ? `${res.stored} jobs stored, expected ${cfg.jobs}` : null);

    log(`peers: enqueue one by one, ${cfg.jobs} jobs from ${cfg.enqueueClients} clients`);
    const enqueueOne = await throughputCell('enqueue-one', (s) => s.enqueueOne(cfg.jobs), stored);
    log(`peers: bulk enqueue, ${cfg.jobs} jobs in calls of ${cfg.bulkBatch} from one client`);
    const bulk = await throughputCell('bulk', (s) => s.bulk(cfg.jobs, cfg.bulkBatch),
      (res) => stored(res) ?? (res.returned !== cfg.jobs ? `${res.returned} ids returned, expected ${cfg.jobs}` : null));
    const drain = {};
    for (const w of cfg.workers) {
      log(`peers: drain ${cfg.jobs} no-op jobs with ${w} workers`);
      drain[w] = await throughputCell(`drain-${w}`, (s) => s.drain(cfg.jobs, w), (res) => (res.correct ? null
        : `duplicates ${res.duplicates}, missing ${res.missing}${res.detail?.stalled ? ', stalled' : ''}${res.detail?.error ? `, ${res.detail.error}` : ''}`));
    }

    log(`peers: pickup latency, one job every ${cfg.pickupIntervalMs} ms for ${cfg.pickupSeconds} s into an idle system`);
    const pickup = [];
    const pickupArgs = { seconds: cfg.pickupSeconds, intervalMs: cfg.pickupIntervalMs, workers: cfg.pickupWorkers };
    for (const [name, fn] of [
      ['graphile-worker', () => graphile.pickup(pickupArgs)],
      ['pg-boss', () => boss.pickup(pickupArgs)],
      ...cfg.spoolPollMs.map((p) => [`spool (poll ${p} ms)`, () => spool.pickup({ ...pickupArgs, pollMs: p })]),
    ]) {
      const out = await fn();
      const bad = out.missing > 0 ? `${out.missing} of ${out.jobs} jobs not picked up` : null;
      if (bad) failures.push(`pickup ${name}: ${bad}`);
      pickup.push({ system: name, ...out });
      log(`  pickup ${name.padEnd(22)} p50 ${out.pickupMs.p50} ms, p95 ${out.pickupMs.p95} ms, p99 ${out.pickupMs.p99} ms ` +
        `(${out.started}/${out.jobs} jobs at ${out.rate}/s)${bad ? `  ✗ ${bad}` : ''}`);
    }

    await admin.query('update spool.settings set max_jobs_per_minute_per_user = $1, max_active_jobs_per_user = $2',
      [quotasBefore.max_jobs_per_minute_per_user, quotasBefore.max_active_jobs_per_user]);
    return {
      settings,
      versions,
      config: {
        jobs: cfg.jobs, users: cfg.users, enqueueClients: cfg.enqueueClients, bulkBatch: cfg.bulkBatch,
        workers: cfg.workers, batch: cfg.batch, repeats: cfg.repeats, warmupJobs: cfg.warmupJobs,
        pickupSeconds: cfg.pickupSeconds, pickupIntervalMs: cfg.pickupIntervalMs, pickupWorkers: cfg.pickupWorkers,
        spoolPollMs: cfg.spoolPollMs, graphilePreset: graphilePreset('(claimer url)', cfg.workers[0]).worker,
        bossOptions: { ...bossOptions('(claimer url)', cfg.workers[0] + 2), work: BOSS_WORK(cfg.workers[0], cfg.batch), queue: { notify: true } },
      },
      enqueueOne,
      bulk,
      drain,
      pickup,
      machine: { loadavgEnd: os.loadavg().map((x) => round(x, 2)) },
      ok: failures.length === 0,
      failures,
    };
  } finally {
    for (const p of peers) await p.close().catch((err) => log(`peers: closing ${p.name}: ${err.message}`));
    await Promise.allSettled(clients.map((c) => c.end()));
    await admin.query(`
      drop schema if exists bench cascade;
      delete from auth.users where email like 'bench-%@spool.invalid';`).catch(() => {});
    await admin.end().catch(() => {});
  }
}

/** Per system: the runs, the median jobs/s; and Spool's ratio to each peer (median / median). */
function summarize(runs) {
  const systems = Object.fromEntries(Object.entries(runs).map(([name, rs]) => [name, {
    jobsPerSecond: median(rs.map((r) => r.jobsPerSecond)),
    runs: rs,
  }]));
  const s = systems.spool.jobsPerSecond;
  const ratio = {};
  for (const name of Object.keys(systems)) if (name !== 'spool') ratio[name] = round(s / systems[name].jobsPerSecond, 3);
  return { systems, spoolRatio: ratio };
}

async function peerVersions() {
  const out = {};
  for (const name of ['graphile-worker', 'pg-boss']) {
    try {
      const { createRequire } = await import('node:module');
      const require = createRequire(import.meta.url);
      const fs = await import('node:fs');
      const path = await import('node:path');
      // The package's own package.json (not importable through "exports"): found from its entry.
      let dir = path.dirname(require.resolve(name));
      while (!fs.existsSync(path.join(dir, 'package.json')) ||
        JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')).name !== name) dir = path.dirname(dir);
      out[name] = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')).version;
    } catch {
      out[name] = '?';
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// The report
// ---------------------------------------------------------------------------------------------

/** The section's report, as lines of text. */
export function formatPeersReport(result) {
  const { settings, config, versions } = result;
  const lines = [];
  const s = settings.server;
  const peersNames = ['graphile-worker', 'pg-boss'];
  lines.push(`Postgres ${s.server_version}: fsync=${s.fsync}, synchronous_commit=${s.synchronous_commit}, ` +
    `shared_buffers=${s.shared_buffers} (the settings npm start uses); one cluster, one database, one run; ` +
    `2 shared cores: numbers are noisy, medians of ${config.repeats} run(s), systems' order rotated per run`);
  lines.push(`graphile-worker ${versions['graphile-worker']} (perf preset: localQueue.size 500, completeJobBatchDelay 0, ` +
    `failJobBatchDelay 0, concurrentJobs = workers, maxPoolSize = workers + 1); pg-boss ${versions['pg-boss']} ` +
    `(work() batchSize ${config.batch}, localConcurrency = workers, burstWhenBatchFull; notify queue)`);
  lines.push(`Spool: max_running_per_user=${settings.spool.max_running_per_user}, fair_slot=${settings.spool.fair_slot} ` +
    `(caps and fairness on, ${config.users} owners); enqueue quotas raised for the bench: max_jobs_per_minute_per_user ` +
    `${settings.spoolQuotas.shipped.max_jobs_per_minute_per_user} → ${fmt(settings.spoolQuotas.raised.max_jobs_per_minute_per_user)}, ` +
    `max_active_jobs_per_user ${settings.spoolQuotas.shipped.max_active_jobs_per_user} → ${fmt(settings.spoolQuotas.raised.max_active_jobs_per_user)}`);
  lines.push('');
  const rows = [];
  const addRow = (label, cell, extra = () => '') => {
    const sj = cell.systems.spool.jobsPerSecond;
    rows.push([label, fmt(sj), ...peersNames.map((n) => fmt(cell.systems[n].jobsPerSecond)),
      ...peersNames.map((n) => `${cell.spoolRatio[n].toFixed(2)}x`), extra(cell)]);
  };
  const dupsMissing = (cell) => {
    const all = Object.entries(cell.systems).map(([n, c]) =>
      `${n} ${sum(c.runs.map((r) => r.duplicates))}/${sum(c.runs.map((r) => r.missing))}`);
    return `dup/missing: ${all.join(', ')}`;
  };
  addRow(`enqueue one by one (${config.enqueueClients} clients)`, result.enqueueOne);
  addRow(`bulk enqueue (calls of ${config.bulkBatch}, 1 client)`, result.bulk);
  for (const w of config.workers) addRow(`drain ${fmt(config.jobs)}, ${w} workers`, result.drain[w], dupsMissing);
  lines.push(`jobs/s, median of ${config.repeats} (${fmt(config.jobs)} jobs per cell); ratio = Spool / peer (above 1: Spool faster):`);
  lines.push(...table(['workload', 'spool', 'graphile-worker', 'pg-boss', 'vs graphile', 'vs pg-boss', ''], rows));
  lines.push('');
  const t = (cell, peer) => `${cell.spoolRatio[peer].toFixed(2)}x`;
  lines.push('Targets (reported, never asserted):');
  lines.push(`  enqueue one by one >= 1.0x graphile-worker: ${t(result.enqueueOne, 'graphile-worker')} ${result.enqueueOne.spoolRatio['graphile-worker'] >= 1 ? 'met' : 'NOT met'}`);
  lines.push(`  bulk >= 1.0x graphile-worker add_jobs: ${t(result.bulk, 'graphile-worker')} ${result.bulk.spoolRatio['graphile-worker'] >= 1 ? 'met' : 'NOT met'}`);
  for (const w of config.workers) {
    lines.push(`  drain at ${w} workers >= 1.0x graphile-worker/perf: ${t(result.drain[w], 'graphile-worker')} ` +
      `${result.drain[w].spoolRatio['graphile-worker'] >= 1 ? 'met' : 'NOT met'}`);
  }
  const drainBad = config.workers.flatMap((w) => Object.values(result.drain[w].systems).flatMap((c) => c.runs))
    .filter((r) => r.duplicates || r.missing);
  lines.push(`  0 duplicates, 0 missing in every drain: ${drainBad.length === 0 ? 'yes' : `NO (${drainBad.length} runs)`}`);
  lines.push('');
  lines.push(`Pickup latency, ms from the enqueue call answered (COMMIT done) to the handler's start, ` +
    `one job every ${config.pickupIntervalMs} ms for ${config.pickupSeconds} s into an idle system:`);
  lines.push(...table(['system', 'n', 'p50', 'p95', 'p99', 'max', 'enqueue call p50/p99', ''],
    result.pickup.map((p) => [p.system, `${p.started}/${p.jobs}`, p.pickupMs.p50, p.pickupMs.p95, p.pickupMs.p99, p.pickupMs.max,
      `${p.enqueueMs.p50}/${p.enqueueMs.p99}`, p.config])));
  lines.push('  graphile-worker and pg-boss are woken by LISTEN/NOTIFY. Spool\'s rows are a SQL-level poll loop (no LISTEN path');
  lines.push('  in Spool); its real pickup (doorbell → pg_net → job-worker) is measured by the e2e section (bench/e2e.mjs).');
  const sd = config.workers.map((w) => {
    const r = result.drain[w].systems.spool.runs;
    const d = r.map((x) => x.detail);
    return `${w} workers: claim ${median(d.map((x) => x.avgClaimMs))} ms, complete ${median(d.map((x) => x.avgCompleteMs))} ms per call ` +
      `(batch ${config.batch}), claimer backends ${median(d.map((x) => x.serverCpuUsPerJob ?? NaN))} µs CPU/job, ` +
      `WAL writer etc. ${median(d.map((x) => x.auxCpuUsPerJob ?? NaN))} µs/job, client CPU ${median(r.map((x) => x.clientCpuPercent))}%`;
  });
  lines.push('');
  lines.push('Where Spool\'s drain time goes (medians):');
  for (const l of sd) lines.push(`  ${l}`);
  const cpuRow = (cell) => Object.entries(cell.systems).map(([n, c]) => `${n} ${median(c.runs.map((r) => r.clientCpuPercent))}%`).join(', ');
  lines.push(`Client (this Node process) CPU, medians: enqueue-one ${cpuRow(result.enqueueOne)}; bulk ${cpuRow(result.bulk)}; ` +
    config.workers.map((w) => `drain-${w} ${cpuRow(result.drain[w])}`).join('; '));
  for (const f of result.failures) lines.push(`✗ ${f}`);
  return lines;
}

/** Right-aligned columns (a last empty-headed column is a left-aligned note); first column left. */
function table(head, rows) {
  const body = rows.map((r) => r.map(String));
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((r) => r[i].length)));
  const n = head[head.length - 1] === '' ? head.length - 1 : head.length;
  const row = (r) => r.map((v, i) => (i === 0 ? v.padEnd(widths[i]) : i < n ? v.padStart(widths[i]) : v)).join('  ').trimEnd();
  return [row(head), widths.slice(0, n).map((w) => '-'.repeat(w)).join('  '), ...body.map(row)];
}

function median(xs) {
  const a = xs.filter(Number.isFinite).sort((x, y) => x - y);
  if (a.length === 0) return null;
  const m = a.length >> 1;
  return a.length % 2 ? a[m] : (a[m - 1] + a[m]) / 2;
}
const sum = (xs) => xs.reduce((a, b) => a + b, 0);
const round = (x, d) => Math.round(x * 10 ** d) / 10 ** d;
const fmt = (n) => (n === null || n === undefined ? '?' : Math.round(n).toLocaleString('en-US'));
