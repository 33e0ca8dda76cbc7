#!/usr/bin/env node
// `npm run bench`: Spool's benchmarks on a throwaway local database.
//
// Sections (each a module exporting its runner and its report), in this order:
//   db   bench/db.mjs   the SQL API's claim/complete throughput against a bare SKIP LOCKED queue
//   e2e  bench/e2e.mjs  noop jobs through the real path on a throwaway stack: insert trigger →
//                       doorbell → pg_net → job-worker (Deno) → claim/complete; throughput, pickup
//                       latency while idle, worker invocations per idle hour
//   rowlife bench/rowlife.mjs  a job's life (create_job → claim_jobs → complete_jobs, and one
//                       fail_job → retry) per job and step: server µs (pg_stat_statements), WAL
//                       bytes by resource manager and relation (pg_walinspect), buffers, HOT
//                       ratio, EXPLAINs at a 20k backlog; then the candidates in bench/rowlife/
//   bloat bench/bloat.mjs  drain with a REPEATABLE READ snapshot held open (60 s) and pruning on:
//                       claim throughput, dead tuples, index sizes and claim latency in 5-s
//                       windows against a fresh control drain; recovery time once it ends
//   peers bench/peers.mjs  Spool next to graphile-worker (its perf preset) and pg-boss on the same
//                       cluster, run and workloads: enqueue one by one from 8 clients, bulk
//                       enqueue, drain with 8 and 32 workers, pickup latency at 50 jobs/s;
//                       Spool's ratio to each
//   flows bench/flows.mjs  flows made by create_flow (a parent, N noop children) drained by SQL
//                       claimers (claim_jobs batch 50 + complete_jobs): children/s, flows/s, the
//                       fan-in latency per parent, each parent finished exactly once; the same
//                       number of plain jobs drained on the same cluster for the ratio
//   realtime bench/realtime.mjs  commit-to-event latency of job INSERTs/UPDATEs at a supabase-js
//                       subscriber (filter user_id=eq., RLS) through the Realtime stand-in:
//                       median, p95; events/s in a burst
//
// Each section's results go to bench/results/<section>-<timestamp>.json. The exit status is
// non-zero only if a section found a correctness problem (a duplicate or a missing job) or could
// not run; speed is reported, never asserted.
//
//   npm run bench [-- options]
//     --only db|e2e|rowlife|bloat|peers|flows|realtime  run one section (default: all)
//     --quick           a smoke run: db 2000 jobs per cell, 1 repeat, no warm-up; e2e 2000 jobs
//                       (cold run 500), 1 repeat, 30 latency samples
//   db section:
//     --jobs N          jobs per cell (default 20000)
//     --batch1-jobs N   jobs in the batch-size-1 cells (default: --jobs)
//     --users N         job owners (default 400)
//     --claimers 1,8,32 claimer counts
//     --batches 1,10,50 batch sizes
//     --repeats N       runs of the target cell (8 claimers, batch 50), median reported (default 3)
//     --keep            leave the database running afterwards (prints how to stop it)
//   e2e section:
//     --e2e-jobs N      jobs per throughput run (default 10000)
//     --e2e-users N     job owners (default 1000)
//     --e2e-repeats N   throughput runs, median reported (default 3)
//     --e2e-cold-jobs N jobs in the cold first run, reported apart (default: --e2e-jobs; 0: none)
//     --latency-samples N  idle pickup samples (default 200)
//     --shipped-timings keep the worker's 1.5 s linger and the 1 s doorbell debounce (the idle
//                       samples then take ~5 minutes; by default both are scaled down together)
//     --e2e-apply-sql F an experiment: run SQL file F in the throwaway database after the
//                       migrations (e.g. a candidate claim_jobs); the report says so
//     --e2e-env K=V     an experiment: extra job-worker env (repeatable, e.g.
//                       SPOOL_WORKER_JOB_LOGS=false); the report lists the env used
//   rowlife section (--quick: 2000 jobs, 1 life, 200 retried):
//     --rowlife-jobs N  jobs per life, all pending at once before the first claim (default 20000)
//     --rowlife-repeats N  lives of the baseline, medians reported (default 3)
//     --rowlife-candidate-repeats N  lives of each candidate configuration (default: --rowlife-repeats)
//     --rowlife-fail-jobs N  jobs in the fail_job → retry sample (default 1000; 0: none)
//     --rowlife-candidates a,b  candidate files of bench/rowlife/ (names without .sql), each
//                       alone; 'all' adds the ones before it together; 'none': the baseline only
//                       (default: a, b, d, e, all, f)
//   bloat section (--quick: 20000 jobs, 15 s snapshot, 10 s fresh, 25 s after):
//     --bloat-jobs N    jobs created per drain, at least (default 200000); the producer keeps a
//                       backlog of 20000 and goes on until the timeline has run
//     --bloat-snapshot-seconds N  how long the snapshot is held (default 60)
//     --bloat-after-seconds N  measured after the snapshot ends (default 75)
//     --bloat-repeats N (control, snapshot) pairs per configuration, medians (default 1)
//     --bloat-apply-sql F,G  remedies: SQL files (bench/bloat/*.sql) applied to the throwaway
//                       database after the shipped runs, each measured with its own pairs
//   peers section (--quick: 2000 jobs, 1 repeat, no warm-up, 5 s of pickup; --only peers):
//     --peers-jobs N    jobs per enqueue, bulk and drain cell (default 20000)
//     --peers-repeats N runs per cell, medians reported (default 3)
//   flows section (--quick: 100 flows, 1 run, no warm-up):
//     --flows N         flows per drain (default 1000), over --users owners
//     --flow-children N children per flow (default 10, at most 999); the plain drain has
//                       flows × children jobs
//     --flow-claimers N claimer sessions (default 8)
//     --flow-repeats N  (flows, plain) drain pairs, medians reported (default 3)
//   realtime section (--quick: 50 samples, a burst of 500):
//     --rt-samples N    changes made one at a time, INSERT/UPDATE alternating (default 200)
//     --rt-burst N      INSERTs of the burst, half for the subscriber (default 2000)

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { PlatformError, startBenchDatabase } from './cluster.mjs';
import { formatDbReport, runDbBench } from './db.mjs';
import { formatE2eReport, runE2eBench } from './e2e.mjs';
import { formatPeersReport, runPeersBench } from './peers.mjs';
import { formatBloatReport, runBloatBench } from './bloat.mjs';
import { formatRowlifeReport, runRowlifeBench } from './rowlife.mjs';
import { formatFlowsReport, runFlowsBench } from './flows.mjs';
import { formatRealtimeReport, runRealtimeBench } from './realtime.mjs';

const SECTIONS = ['db', 'e2e', 'rowlife', 'bloat', 'peers', 'flows', 'realtime'];
const HERE = path.dirname(fileURLToPath(import.meta.url));
const RESULTS = path.join(HERE, 'results');

// The usage text: this header from `npm run bench` to the end of the comment.
const USAGE = (() => {
  const lines = fs.readFileSync(fileURLToPath(import.meta.url), 'utf8').split('\n');
  const from = lines.findIndex((l) => l.startsWith('//   npm run bench'));
  const to = lines.findIndex((l, i) => i > from && !l.startsWith('//'));
  return lines.slice(from, to).map((l) => l.slice(3)).join('\n');
})();

function parseArgs(argv) {
  const opts = { e2e: {}, rowlife: {} };
  opts.peers = {};
  opts.bloat = {};
  opts.flows = {};
  opts.realtime = {};
  const list = (v) => v.split(',').map((x) => positiveInt(x));
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = () => {
      if (i + 1 >= argv.length) throw new PlatformError(`${a} needs a value\n${USAGE}`);
      return argv[++i];
    };
    if (a === '--only') {
      opts.only = next();
      if (!SECTIONS.includes(opts.only)) throw new PlatformError(`--only takes one of ${SECTIONS.join(', ')}\n${USAGE}`);
    } else if (a === '--e2e-jobs') opts.e2e.jobs = positiveInt(next());
    else if (a === '--e2e-users') opts.e2e.users = positiveInt(next());
    else if (a === '--e2e-repeats') opts.e2e.repeats = positiveInt(next());
    else if (a === '--latency-samples') opts.e2e.latencySamples = positiveInt(next());
    else if (a === '--e2e-cold-jobs') opts.e2e.coldJobs = nonNegativeInt(next());
    else if (a === '--e2e-apply-sql') opts.e2e.applySql = path.resolve(next());
    else if (a === '--e2e-env') {
      const m = /^([A-Z_][A-Z0-9_]*)=(.*)$/.exec(next());
      if (!m) throw new PlatformError(`--e2e-env takes NAME=value\n${USAGE}`);
      opts.e2e.functionEnv = { ...opts.e2e.functionEnv, [m[1]]: m[2] };
    }
    else if (a === '--shipped-timings') opts.e2e.shippedTimings = true;
    else if (a === '--rowlife-jobs') opts.rowlife.jobs = positiveInt(next());
    else if (a === '--rowlife-repeats') opts.rowlife.repeats = positiveInt(next());
    else if (a === '--rowlife-candidate-repeats') opts.rowlife.candidateRepeats = positiveInt(next());
    else if (a === '--rowlife-fail-jobs') opts.rowlife.failJobs = nonNegativeInt(next());
    else if (a === '--rowlife-candidates') opts.rowlife.candidates = next() === 'none' ? [] : argv[i].split(',');
    else if (a === '--peers-jobs') opts.peers.jobs = positiveInt(next());
    else if (a === '--peers-repeats') opts.peers.repeats = positiveInt(next());
    else if (a === '--flows') opts.flows.flows = positiveInt(next());
    else if (a === '--flow-children') opts.flows.children = positiveInt(next());
    else if (a === '--flow-claimers') opts.flows.claimers = positiveInt(next());
    else if (a === '--flow-repeats') opts.flows.repeats = positiveInt(next());
    else if (a === '--rt-samples') opts.realtime.samples = positiveInt(next());
    else if (a === '--rt-burst') opts.realtime.burst = positiveInt(next());
    else if (a === '--jobs') opts.jobs = positiveInt(next());
    else if (a === '--batch1-jobs') opts.batch1Jobs = positiveInt(next());
    else if (a === '--users') opts.users = positiveInt(next());
    else if (a === '--claimers') opts.claimers = list(next());
    else if (a === '--batches') opts.batches = list(next());
    else if (a === '--repeats') opts.repeats = positiveInt(next());
    else if (a === '--bloat-jobs') opts.bloat.jobs = positiveInt(next());
    else if (a === '--bloat-snapshot-seconds') opts.bloat.snapshotSeconds = positiveInt(next());
    else if (a === '--bloat-after-seconds') opts.bloat.afterSeconds = positiveInt(next());
    else if (a === '--bloat-repeats') opts.bloat.repeats = positiveInt(next());
    else if (a === '--bloat-apply-sql') opts.bloat.applySql = next().split(',').map((f) => path.resolve(f));
    else if (a === '--quick') {
      Object.assign(opts.bloat, { jobs: 20_000, snapshotSeconds: 15, baselineSeconds: 10, afterSeconds: 25, ...opts.bloat });
      Object.assign(opts, { jobs: 2000, repeats: 1, warmupJobs: 0 });
      Object.assign(opts.e2e, { jobs: 2000, repeats: 1, coldJobs: 500, latencySamples: 30, ...opts.e2e });
      Object.assign(opts.peers, { jobs: 2000, repeats: 1, warmupJobs: 0, pickupSeconds: 5, ...opts.peers });
      Object.assign(opts.rowlife, { jobs: 2000, repeats: 1, failJobs: 200, ...opts.rowlife });
      Object.assign(opts.flows, { flows: 100, repeats: 1, warmupFlows: 0, ...opts.flows });
      Object.assign(opts.realtime, { samples: 50, burst: 500, ...opts.realtime });
    }
    else if (a === '--keep') opts.keep = true;
    else if (a === '--help' || a === '-h') opts.help = true;
    else throw new PlatformError(`unknown argument ${a}\n${USAGE}`);
  }
  return opts;
}

function nonNegativeInt(v) {
  return v === '0' ? 0 : positiveInt(v);
}

function positiveInt(v) {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new PlatformError(`expected a positive integer, got ${JSON.stringify(v)}`);
  return n;
}

function machine() {
  return {
    node: process.version,
    platform: `${os.type()} ${os.release()} ${os.arch()}`,
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model,
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    loadavg: os.loadavg().map((x) => Math.round(x * 100) / 100),
  };
}

function writeResults(section, result, startedAt) {
  fs.mkdirSync(RESULTS, { recursive: true });
  const stamp = startedAt.toISOString().replace(/[:.]/g, '-');
  const file = path.join(RESULTS, `${section}-${stamp}.json`);
  fs.writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`);
  return path.relative(process.cwd(), file);
}

async function main() {
  const { keep, help, only, e2e: e2eOpts, peers: peersOpts, rowlife: rowlifeOpts, bloat: bloatOpts, flows: flowsOpts, realtime: realtimeOpts, ...opts } = parseArgs(process.argv.slice(2));
  if (help) {
    console.log(USAGE);
    return 0;
  }
  const log = (m) => console.log(`bench: ${m}`);
  const startedAt = new Date();
  const machineBefore = machine();
  log(`${machineBefore.cpus} CPUs (${machineBefore.cpuModel}), load ${machineBefore.loadavg.join(' ')}, node ${machineBefore.node}`);

  // What a signal must stop: the db section's database, the e2e section's stack.
  const live = new Set();
  const onSignal = (sig) => {
    console.error(`bench: ${sig}, stopping the throwaway database and stack`);
    for (const stop of live) {
      try {
        stop();
      } catch {
        // best effort on the way out
      }
    }
    process.exit(130);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  let ok = true;
  // --- db section --------------------------------------------------------------------------
  if (!only || only === 'db') {
    const database = await startBenchDatabase({ log });
    live.add(database.stop);
    try {
      log('db: Spool claim_jobs + complete_jobs vs a bare SKIP LOCKED queue');
      const t0 = Date.now();
      const result = await runDbBench({ adminUrl: database.adminUrl, claimerUrl: database.claimerUrl, log, ...opts });
      const file = writeResults('db', {
        section: 'db',
        startedAt: startedAt.toISOString(),
        seconds: Math.round((Date.now() - t0) / 1000),
        machine: { ...machineBefore, loadavgAfter: machine().loadavg },
        ...result,
      }, startedAt);
      console.log('');
      for (const line of formatDbReport(result)) console.log(line);
      console.log('');
      log(`db: ${result.ok ? 'every job completed exactly once' : 'CORRECTNESS FAILURE (see ✗ above)'}; ` +
        `${Math.round((Date.now() - t0) / 1000)} s; results in ${file}`);
      ok &&= result.ok;
    } finally {
      live.delete(database.stop);
      if (keep) {
        log(`database left running: ${database.claimerUrl} (superuser ${database.adminUrl});\n` +
          `       stop it with: node -e "import('./local/tools/db.mjs').then((db) => db.stopCluster({ dir: '${database.dir}' }))" && rm -rf ${database.dir}`);
      } else {
        database.stop();
      }
    }
  }

  // --- e2e section -------------------------------------------------------------------------
  if (!only || only === 'e2e') {
    log('e2e: noop jobs through insert trigger → doorbell → pg_net → job-worker → claim/complete');
    const t0 = Date.now();
    const e2eMachine = machine();
    const stamp = startedAt.toISOString().replace(/[:.]/g, '-');
    const result = await runE2eBench({
      log: (m) => log(`e2e: ${m}`),
      onStack: (kill) => live.add(kill),
      offStack: (kill) => live.delete(kill),
      // The gateway's log (job-worker's lines other than per-job ones) is kept on a failure.
      keepLogOnFailure: path.join(RESULTS, `e2e-${stamp}-gateway.log`),
      ...e2eOpts,
    });
    const file = writeResults('e2e', {
      section: 'e2e',
      startedAt: startedAt.toISOString(),
      seconds: Math.round((Date.now() - t0) / 1000),
      machine: { ...e2eMachine, loadavgAfter: machine().loadavg },
      ...result,
    }, startedAt);
    console.log('');
    for (const line of formatE2eReport(result)) console.log(line);
    console.log('');
    log(`e2e: ${result.ok ? 'every job done exactly once' : 'CORRECTNESS FAILURE (see ✗ above)'}; ` +
      `${Math.round((Date.now() - t0) / 1000)} s; results in ${file}` +
      `${result.ok ? '' : `; gateway log in ${path.relative(process.cwd(), result.gatewayLog ?? '')}`}`);
    ok &&= result.ok;
  }

  // --- rowlife section ---------------------------------------------------------------------
  if (!only || only === 'rowlife') {
    // Its own throwaway database: the section restarts it with pg_stat_statements preloaded.
    const database = await startBenchDatabase({ log });
    live.add(database.stop);
    try {
      log('rowlife: per-job cost of create_job → claim_jobs → complete_jobs, and the candidates in bench/rowlife/');
      const t0 = Date.now();
      const rowlifeMachine = machine();
      const result = await runRowlifeBench({
        adminUrl: database.adminUrl, claimerUrl: database.claimerUrl, dir: database.dir, port: database.port,
        log, users: opts.users, ...rowlifeOpts,
      });
      const file = writeResults('rowlife', {
        section: 'rowlife',
        startedAt: startedAt.toISOString(),
        seconds: Math.round((Date.now() - t0) / 1000),
        machine: { ...rowlifeMachine, loadavgAfter: machine().loadavg },
        ...result,
      }, startedAt);
      console.log('');
      for (const line of formatRowlifeReport(result)) console.log(line);
      console.log('');
      log(`rowlife: ${result.ok ? 'every job done exactly once' : 'CORRECTNESS FAILURE (see ✗ above)'}; ` +
        `${Math.round((Date.now() - t0) / 1000)} s; results in ${file}`);
      ok &&= result.ok;
    } finally {
      live.delete(database.stop);
      database.stop();
    }
  }

  // --- bloat section -----------------------------------------------------------------------
  if (!only || only === 'bloat') {
    const database = await startBenchDatabase({ log });
    live.add(database.stop);
    try {
      log('bloat: draining with a long REPEATABLE READ snapshot open, pruning on, against a fresh control');
      const t0 = Date.now();
      const bloatMachine = machine();
      const result = await runBloatBench({
        adminUrl: database.adminUrl, claimerUrl: database.claimerUrl, dir: database.dir,
        log, users: opts.users, ...bloatOpts,
      });
      const file = writeResults('bloat', {
        section: 'bloat',
        startedAt: startedAt.toISOString(),
        seconds: Math.round((Date.now() - t0) / 1000),
        machine: { ...bloatMachine, loadavgAfter: machine().loadavg },
        ...result,
      }, startedAt);
      console.log('');
      for (const line of formatBloatReport(result)) console.log(line);
      console.log('');
      log(`bloat: ${result.ok ? 'every job completed exactly once (done or pruned)' : 'CORRECTNESS FAILURE (see ✗ above)'}; ` +
        `${Math.round((Date.now() - t0) / 1000)} s; results in ${file}`);
      ok &&= result.ok;
    } finally {
      live.delete(database.stop);
      if (keep) {
        log(`database left running: ${database.claimerUrl} (superuser ${database.adminUrl})`);
      } else {
        database.stop();
      }
    }
  }

  // --- peers section -----------------------------------------------------------------------
  if (!only || only === 'peers') {
    const database = await startBenchDatabase({ log });
    live.add(database.stop);
    try {
      log('peers: Spool vs graphile-worker and pg-boss, same cluster, same run, same workloads');
      const t0 = Date.now();
      const peersMachine = machine();
      const result = await runPeersBench({
        adminUrl: database.adminUrl, claimerUrl: database.claimerUrl, log, users: opts.users, ...peersOpts,
      });
      const file = writeResults('peers', {
        section: 'peers',
        startedAt: startedAt.toISOString(),
        seconds: Math.round((Date.now() - t0) / 1000),
        machine: { ...peersMachine, loadavgAfter: machine().loadavg },
        ...result,
      }, startedAt);
      console.log('');
      for (const line of formatPeersReport(result)) console.log(line);
      console.log('');
      log(`peers: ${result.ok ? 'every job handled exactly once' : 'CORRECTNESS FAILURE (see ✗ above)'}; ` +
        `${Math.round((Date.now() - t0) / 1000)} s; results in ${file}`);
      ok &&= result.ok;
    } finally {
      live.delete(database.stop);
      database.stop();
    }
  }

  // --- flows section -----------------------------------------------------------------------
  if (!only || only === 'flows') {
    const database = await startBenchDatabase({ log });
    live.add(database.stop);
    try {
      log('flows: create_flow fan-out drained by SQL claimers, fan-in latency, against plain jobs');
      const t0 = Date.now();
      const flowsMachine = machine();
      const result = await runFlowsBench({
        adminUrl: database.adminUrl, claimerUrl: database.claimerUrl, log, users: opts.users, ...flowsOpts,
      });
      const file = writeResults('flows', {
        section: 'flows',
        startedAt: startedAt.toISOString(),
        seconds: Math.round((Date.now() - t0) / 1000),
        machine: { ...flowsMachine, loadavgAfter: machine().loadavg },
        ...result,
      }, startedAt);
      console.log('');
      for (const line of formatFlowsReport(result)) console.log(line);
      console.log('');
      log(`flows: ${result.ok ? 'every child done exactly once, every parent finished once' : 'CORRECTNESS FAILURE (see ✗ above)'}; ` +
        `${Math.round((Date.now() - t0) / 1000)} s; results in ${file}`);
      ok &&= result.ok;
    } finally {
      live.delete(database.stop);
      database.stop();
    }
  }
  // --- realtime section --------------------------------------------------------------------
  if (!only || only === 'realtime') {
    const database = await startBenchDatabase({ log });
    live.add(database.stop);
    try {
      log('realtime: commit-to-event latency through the Realtime stand-in to a supabase-js subscriber');
      const t0 = Date.now();
      const rtMachine = machine();
      const result = await runRealtimeBench({ port: database.port, log, ...realtimeOpts });
      const file = writeResults('realtime', {
        section: 'realtime',
        startedAt: startedAt.toISOString(),
        seconds: Math.round((Date.now() - t0) / 1000),
        machine: { ...rtMachine, loadavgAfter: machine().loadavg },
        ...result,
      }, startedAt);
      console.log('');
      for (const line of formatRealtimeReport(result)) console.log(line);
      console.log('');
      log(`realtime: ${result.ok ? 'every change arrived exactly once, none of another user' : 'CORRECTNESS FAILURE (see ✗ above)'}; ` +
        `${Math.round((Date.now() - t0) / 1000)} s; results in ${file}`);
      ok &&= result.ok;
    } finally {
      live.delete(database.stop);
      database.stop();
    }
  }
  return ok ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (err) => {
    console.error(`bench: ${err instanceof PlatformError ? err.message : err.stack}`);
    process.exit(2);
  },
);
