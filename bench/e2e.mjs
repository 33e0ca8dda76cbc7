// The end-to-end section of `npm run bench`: no-op jobs through the real dispatch path on a
// throwaway local stack (local/tools/stack.mjs startStack: Postgres with fsync on, as `npm start` runs
// it; the gateway with job-worker in Deno, the PostgREST stand-in and the pg_net deliverer):
//
//   INSERT commits → statement trigger rings the doorbell (net.http_post, debounced) → pg_net
//   stand-in POSTs /functions/v1/job-worker → 202, then EdgeRuntime.waitUntil drains:
//   claim_jobs / complete_jobs through the PostgREST stand-in.
//
// Four measurements (speed is reported against its target, never asserted):
//
//   throughput  `jobs` noop jobs in ONE bulk INSERT (as the postgres role, spread over `users`
//               owners with fair_at as create_job would set it), drained by whatever the doorbell
//               wakes. jobs/s = jobs / (insert COMMIT returned → the 50 ms poll of the done count
//               first sees all of them). `repeats` runs, median reported, after a cold run (a
//               fresh stack: Deno not yet warm, public.jobs never analyzed, as on a new project's
//               first burst), which is reported on its own line. Each run starts from the same
//               state: an empty jobs table whose planner statistics come from ANALYZE of the
//               previous run's finished jobs, as autovacuum leaves a live queue (history of done
//               jobs; pending ones rare). An autovacuum or autoanalyze of jobs during a run is
//               recorded with it, since it can change claim_jobs' plans mid-run.
//               Invocations = job-worker's own `drain` log line per invocation (its reason, claims,
//               jobs), checked against pg_net's responses. Correctness: every job done, attempts
//               = 1 (a retry would be reported separately), one notification per job, and one
//               handler execution per job (job-worker's per-job log lines, counted by job id).
//   capped      `cappedJobs` (1,000) noop jobs of ONE owner, each sleeping `cappedSleepMs` (50 ms),
//               with max_running_per_user (10): the backlog a capped user builds. Drain time
//               (as throughput's) against the ideal jobs × sleep / cap, and the invocations and
//               claims it took; correctness as for throughput.
//   latency     `latencySamples` single-job INSERTs, each its own transaction, each made when no
//               job-worker invocation is running (the previous job is done and the worker's linger
//               has passed: the gap is the protocol). Pickup latency = the job's started_at (set by
//               claim_jobs to the claiming transaction's start: the handler starts a few ms later,
//               after the RPC returns) − clock_timestamp() read in the inserting transaction just
//               before COMMIT (so the commit's own WAL flush counts against the latency; the commit
//               time is printed too). Done latency uses finished_at (complete_jobs' transaction
//               start) the same way.
//   idle        with an empty queue, `select spool.sweep()` 360 times (pg_cron's 10-second
//               schedule for an hour, Supabase) and 60 times (the 1-minute schedule of pg_cron 1.4):
//               doorbell requests queued (net.http_request_queue's id sequence, spool.doorbell.rings)
//               and job-worker invocations observed. Then a sanity check: one runnable job that no
//               insert rang for (run_at a moment ahead) and one sweep, which must ring and get it done.
//
// Timings: the worker lingers SPOOL_WORKER_LINGER_MS (shipped: 1500 ms) polling after each
// invocation so that inserts the doorbell debounced (doorbell_debounce, shipped: 1 s) are still
// picked up. An idle sample must wait out both, so with the shipped values 200 samples take over
// five minutes. By default the bench scales both down together (linger 250 ms > debounce 200 ms,
// the same relation as shipped); neither is on the measured path (the debounce only decides
// whether an insert rings, the linger only what a finished invocation does next). The report and
// the JSON say which values ran; `shippedTimings` runs with the shipped ones.
//
// CPU per component (from /proc, over each throughput run): this Node process (the gateway: the
// Edge Functions proxy, the PostgREST stand-in, the pg_net deliverer, plus this bench's poller),
// the job-worker Deno process, and Postgres split by connection (the stand-in's pool = the
// worker's RPCs, the pg_net deliverer, the rest), with the whole machine's busy time beside them
// (2 shared cores: what is not ours is other tenants).

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import pg from 'pg';
import { freePort, PlatformError } from '../local/tools/db.mjs';
import { startStack } from '../local/tools/stack.mjs';

export const E2E_DEFAULTS = Object.freeze({
  jobs: 10_000,
  // 1,000 owners × max_running_per_user (10) = 10,000 running slots ≥ jobs: the per-user cap is
  // on and can never bind (a worker holds at most its concurrency, 200 jobs, anyway).
  users: 1_000,
  repeats: 3,
  // The cold run (first on the fresh stack; not in the median). 0 skips it.
  coldJobs: undefined, // default: `jobs`
  pollMs: 50,
  // A throughput run that makes no progress for this long stops; its unfinished jobs are missing.
  stallMs: 20_000,
  latencySamples: 200,
  // One owner's backlog at the per-user cap: jobs, and how long each noop handler sleeps.
  cappedJobs: 1_000,
  cappedSleepMs: 50,
  // How often a latency sample's job is looked up until it is done (not part of the figure).
  latencyPollMs: 10,
  // A latency sample not done within this long is missing (pg_cron's 1-minute sweep included).
  latencyTimeoutMs: 70_000,
  idleTicks: [360, 60],
  shippedTimings: false,
  // The scaled-down timings (see the header); shippedTimings keeps the migration's and config.ts's.
  scaled: { lingerMs: 250, debounceMs: 200 },
  shipped: { lingerMs: 1500, debounceMs: 1000 },
  targets: { jobsPerSecond: 5_000, pickupP50Ms: 25, pickupP99Ms: 100, idleInvocationsPerHour: 0 },
});

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const epochMs = () => performance.timeOrigin + performance.now();

// ---------------------------------------------------------------------------------------------
// What the gateway logs: job-worker's invocations and per-job outcomes, worker processes
// ---------------------------------------------------------------------------------------------

/** A log sink for startStack that keeps what the bench counts and writes the rest to `file`. */
function gatewayWatcher(file) {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const fd = fs.openSync(file, 'a');
  const w = {
    file,
    drains: [], // job-worker's `drain` summary lines, one per finished invocation
    jobRuns: new Map(), // job id -> handler outcomes logged (per-job lines of job-worker)
    jobLines: 0,
    problems: [], // warn/error lines (first 50)
    events: [], // edge-runtime worker lifecycle events
    pids: new Map(), // worker pid -> function name
    countJobs: true,
  };
  w.sink = (line) => {
    if (line.function === 'job-worker' && line.stream === 'stdout' && line.msg.startsWith('{')) {
      // Per-job lines are 1 per job: counted, not written.
      if (line.msg.includes('"msg":"job"')) {
        w.jobLines++;
        if (w.countJobs) {
          try {
            const j = JSON.parse(line.msg);
            const runs = w.jobRuns.get(j.job_id);
            if (runs) runs.push(j.outcome);
            else w.jobRuns.set(j.job_id, [j.outcome]);
            if (j.outcome !== 'done' && w.problems.length < 50) w.problems.push(line);
          } catch {
            // not ours
          }
        }
        return;
      }
      if (line.msg.includes('"msg":"drain"')) {
        try {
          w.drains.push({ ...JSON.parse(line.msg), seenAt: epochMs() });
        } catch {
          // fall through to the file
        }
      }
    }
    if (line.service === 'edge-runtime' && line.event) {
      w.events.push({ ...line, seenAt: epochMs() });
      if (line.event === 'worker_spawned') w.pids.set(line.pid, line.function);
    }
    const level = line.level ?? (line.stream === 'stderr' ? 'stderr' : null);
    if ((level === 'warn' || level === 'error' || level === 'stderr') && w.problems.length < 50) {
      w.problems.push(line);
    }
    fs.writeSync(fd, `${JSON.stringify(line)}\n`);
  };
  w.close = () => fs.closeSync(fd);
  return w;
}

// ---------------------------------------------------------------------------------------------
// CPU accounting from /proc
// ---------------------------------------------------------------------------------------------

const CLOCK_TICKS = 100; // getconf CLK_TCK on Linux

/** { pid: { ppid, comm, cpu seconds } } of every process. */
function processTable() {
  const out = new Map();
  let entries;
  try {
    entries = fs.readdirSync('/proc');
  } catch {
    return out;
  }
  for (const e of entries) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const s = fs.readFileSync(`/proc/${e}/stat`, 'utf8');
      const close = s.lastIndexOf(')');
      const comm = s.slice(s.indexOf('(') + 1, close);
      const f = s.slice(close + 2).split(' ');
      out.set(Number(e), { ppid: Number(f[1]), comm, cpu: (Number(f[11]) + Number(f[12])) / CLOCK_TICKS });
    } catch {
      // exited meanwhile
    }
  }
  return out;
}

/** Busy and total CPU seconds of the whole machine (/proc/stat). */
function machineCpu() {
  try {
    const f = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
    const total = f.slice(0, 8).reduce((a, b) => a + b, 0);
    const idle = f[3] + f[4];
    return { busy: (total - idle) / CLOCK_TICKS, total: total / CLOCK_TICKS };
  } catch {
    return null;
  }
}

/**
 * A CPU snapshot of the stack: this process, its Deno children (job-worker apart), and the
 * postmaster's children by role (REST stand-in pool, pg_net deliverer, other).
 */
async function cpuSnapshot(admin, postmasterPid, watcher) {
  const { rows } = await admin.query('select pid, application_name, backend_type from pg_stat_activity');
  const roleOf = new Map(rows.map((r) => [r.pid, r.application_name === 'spool-rest'
    ? 'pgRest'
    : r.application_name === 'spool-pg-net' ? 'pgNet' : 'pgOther']));
  const procs = processTable();
  const usage = process.cpuUsage();
  const snap = { node: (usage.user + usage.system) / 1e6, procs: new Map(), machine: machineCpu() };
  for (const [pid, p] of procs) {
    let part = null;
    if (pid === postmasterPid) part = 'pgOther';
    else if (p.ppid === postmasterPid) part = roleOf.get(pid) ?? 'pgOther';
    else if (p.ppid === process.pid && watcher.pids.has(pid)) {
      part = watcher.pids.get(pid) === 'job-worker' ? 'denoWorker' : 'denoOther';
    }
    if (part) snap.procs.set(pid, { part, cpu: p.cpu });
  }
  return snap;
}

/** CPU seconds per component between two snapshots (processes that started meanwhile count whole). */
function cpuDelta(a, b, seconds) {
  const parts = { node: b.node - a.node, denoWorker: 0, denoOther: 0, pgRest: 0, pgNet: 0, pgOther: 0 };
  for (const [pid, p] of b.procs) {
    const before = a.procs.get(pid);
    parts[p.part] += p.cpu - (before ? before.cpu : 0);
  }
  const ours = Object.values(parts).reduce((x, y) => x + y, 0);
  const machine = a.machine && b.machine ? b.machine.busy - a.machine.busy : null;
  const out = {};
  for (const [k, v] of Object.entries(parts)) out[k] = round(v, 2);
  return {
    seconds: out,
    // As a share of one core over the run (2 cores = 200 %).
    percentOfCore: Object.fromEntries(Object.entries(parts).map(([k, v]) => [k, round((100 * v) / seconds, 0)])),
    ours: round(ours, 2),
    machineBusy: machine === null ? null : round(machine, 2),
    others: machine === null ? null : round(Math.max(0, machine - ours), 2),
    machineCapacity: round(os.cpus().length * seconds, 2),
  };
}

// ---------------------------------------------------------------------------------------------
// The stack and its state
// ---------------------------------------------------------------------------------------------

/** Invocations asked for so far: pg_net deliveries answered 2xx plus successors workers rang. */
async function invocationsStarted(admin, watcher) {
  const { rows: [r] } = await admin.query(
    `select count(*)::int as n from net._http_response where status_code between 200 and 299`);
  return r.n + watcher.drains.filter((d) => d.rang).length;
}

/**
 * Waits until every job-worker invocation asked for has logged its end (and pg_net has nothing
 * queued or in flight). Returns false on timeout.
 */
async function quiesce(admin, watcher, timeoutMs = 15_000) {
  const until = performance.now() + timeoutMs;
  while (performance.now() < until) {
    const { rows: [q] } = await admin.query('select count(*)::int as n from net.http_request_queue');
    const started = await invocationsStarted(admin, watcher);
    if (q.n === 0 && watcher.drains.length >= started) return true;
    await sleep(25);
  }
  return false;
}

async function waitDebounced(admin) {
  for (let i = 0; i < 200; i++) {
    const { rows: [r] } = await admin.query(`
      select d.rung_at <= clock_timestamp() - s.doorbell_debounce as ready,
             case when d.rung_at > '-infinity' then
               extract(epoch from (d.rung_at + s.doorbell_debounce - clock_timestamp())) * 1000 end as wait_ms
      from spool.doorbell d, spool.settings s`);
    if (r.ready) return;
    await sleep(Math.max(5, Math.ceil(r.wait_ms)));
  }
}

async function doorbellState(admin) {
  const { rows: [r] } = await admin.query(`
    select (select case when is_called then last_value else 0 end from net.http_request_queue_id_seq)::int as requests,
           (select count(*) from net.http_request_queue)::int as queued,
           (select count(*) from net._http_response)::int as responses,
           (select rings from spool.doorbell)::int as rings`);
  return r;
}

// ---------------------------------------------------------------------------------------------
// Throughput
// ---------------------------------------------------------------------------------------------

/**
 * One drain of `jobs` noop jobs inserted in one statement. `owners` (default: all bench users)
 * spreads them; `input` is each job's noop input (e.g. {"sleep_ms": 50}).
 */
async function throughputRun(ctx, jobs, label, { owners = null, input = {} } = {}) {
  const { admin, app, poller, watcher, cfg, postmasterPid } = ctx;
  if (!(await quiesce(admin, watcher))) ctx.log(`${label}: job-worker invocations still running before the run`);
  await admin.query('truncate public.jobs, public.job_attempts, public.notifications');
  await admin.query('delete from spool.user_slots where user_id in (select id from bench_e2e.users)');
  await admin.query('checkpoint');
  const checkpoints0 = await checkpointCount(admin);
  await waitDebounced(admin);
  watcher.jobRuns = new Map();
  const drains0 = watcher.drains.length;
  const responses = async () => (await admin.query(`
    select count(*)::int as n, count(*) filter (where status_code = 202)::int as accepted
    from net._http_response`)).rows[0];
  const resp0 = await responses();
  const vac0 = await autovacuumCounts(admin);
  const load = os.loadavg()[0];

  // One bulk INSERT as the postgres role: each owner's k-th job k fair slots back (as create_job
  // spaces a user's backlog), owners interleaved in creation order.
  const tInsert = performance.now();
  await app.query('begin');
  await app.query(`
    insert into public.jobs (user_id, type, input, fair_at)
    select u.ids[1 + g % u.n], 'noop', $3::jsonb, now() + (g / u.n) * s.fair_slot
    from generate_series(0, $1::int - 1) g,
         (select array_agg(id order by id) ids, count(*)::int n
            from (select id from bench_e2e.users order by id limit $2) b) u,
         spool.settings s
    order by g`, [jobs, owners, JSON.stringify(input)]);
  const [{ rows: [pre] }] = await app.query(
    'select extract(epoch from clock_timestamp())::float8 * 1000 as t; commit');
  const tCommit = performance.now();
  const commitEpoch = epochMs();
  // CPU is counted over the drain: from COMMIT to the poll that saw all jobs done.
  const cpu0 = await cpuSnapshot(admin, postmasterPid, watcher);

  // Measurement: the done count every pollMs until all are done or nothing moves for stallMs.
  let done = 0;
  let tDone = null;
  let lastProgress = performance.now();
  let cpu1 = null;
  const curve = [];
  while (true) {
    await sleep(cfg.pollMs);
    const { rows: [c] } = await poller.query(
      `select count(*) filter (where status = 'done')::int as done from public.jobs`);
    const now = performance.now();
    if (c.done > done) lastProgress = now;
    done = c.done;
    curve.push([Math.round(now - tCommit), done]);
    if (done >= jobs) {
      tDone = now;
      cpu1 = await cpuSnapshot(admin, postmasterPid, watcher);
      break;
    }
    if (now - lastProgress > cfg.stallMs) break;
  }
  const seconds = ((tDone ?? performance.now()) - tCommit) / 1000;
  cpu1 ??= await cpuSnapshot(admin, postmasterPid, watcher);
  const checkpoints = (await checkpointCount(admin)) - checkpoints0;
  const vac1 = await autovacuumCounts(admin);

  const settled = await quiesce(admin, watcher);
  const { rows: [v] } = await admin.query(`
    select count(*)::int as total,
           count(*) filter (where status = 'done')::int as done,
           count(*) filter (where attempts <> 1)::int as reattempted,
           count(*) filter (where attempts <> 1 and error is null)::int as reattempted_unexplained,
           max(attempts)::int as max_attempts,
           extract(epoch from min(started_at))::float8 * 1000 as first_start,
           extract(epoch from max(finished_at))::float8 * 1000 as last_finish,
           (select count(*) from public.notifications)::int as notifications,
           (select count(distinct job_id) from public.notifications)::int as notified_jobs
    from public.jobs`);
  const resp1 = await responses();
  // The next run plans with statistics of finished jobs, as autovacuum leaves a live queue.
  await admin.query('analyze public.jobs');
  const drains = watcher.drains.slice(drains0);
  let handlerRuns = 0;
  let extraRuns = 0;
  for (const outcomes of watcher.jobRuns.values()) {
    handlerRuns += outcomes.length;
    extraRuns += outcomes.length - 1;
  }
  const serverSeconds = (v.last_finish - pre.t) / 1000;
  const duplicates = (v.notifications - v.notified_jobs) + extraRuns + v.reattempted_unexplained;
  return {
    label,
    jobs,
    seconds: round(seconds, 3),
    jobsPerSecond: round(done / seconds, 0),
    // Server clocks: insert's clock_timestamp() before COMMIT → the last complete_jobs' transaction.
    serverSeconds: round(serverSeconds, 3),
    serverJobsPerSecond: round(v.done / serverSeconds, 0),
    insertMs: round(tCommit - tInsert, 1),
    firstPickupMs: round(v.first_start - pre.t, 1),
    commitToClientMs: round(commitEpoch - pre.t, 1),
    invocations: drains.length,
    invocationReasons: countBy(drains.map((d) => d.reason)),
    invocationsSettled: settled,
    pgNetRequests: resp1.n - resp0.n,
    pgNetAccepted: resp1.accepted - resp0.accepted,
    claims: sum(drains.map((d) => d.claims)),
    workerDone: sum(drains.map((d) => d.done)),
    workerStops: countBy(drains.map((d) => d.stop)),
    handlerRuns,
    done: v.done,
    total: v.total,
    missing: jobs - v.done,
    duplicates,
    extraHandlerRuns: extraRuns,
    reattempted: v.reattempted,
    maxAttempts: v.max_attempts,
    notifications: v.notifications,
    notifiedJobs: v.notified_jobs,
    stalled: tDone === null,
    checkpointsDuring: checkpoints,
    // Autovacuum / autoanalyze of public.jobs while the run drained (it can change plans).
    autovacuumDuring: vac1.vacuums - vac0.vacuums,
    autoanalyzeDuring: vac1.analyzes - vac0.analyzes,
    loadavg1: round(load, 2),
    cpu: cpuDelta(cpu0, cpu1, seconds),
    // [ms since COMMIT, jobs done] at each poll: the drain curve.
    curve,
  };
}

function runCorrect(r) {
  return r.missing === 0 && r.duplicates === 0 && r.total === r.jobs && !r.stalled &&
    r.notifications === r.jobs && r.notifiedJobs === r.jobs;
}

async function autovacuumCounts(admin) {
  const { rows: [r] } = await admin.query(`
    select autovacuum_count::int as vacuums, autoanalyze_count::int as analyzes
    from pg_stat_user_tables where relid = 'public.jobs'::regclass`);
  return r;
}

async function checkpointCount(admin) {
  const { rows: [r] } = await admin.query(
    'select (checkpoints_timed + checkpoints_req)::int as n from pg_stat_bgwriter');
  return r.n;
}

// ---------------------------------------------------------------------------------------------
// Pickup latency while idle
// ---------------------------------------------------------------------------------------------

async function latencyPhase(ctx) {
  const { admin, app, poller, watcher, cfg, timings } = ctx;
  await quiesce(admin, watcher);
  await admin.query('truncate public.jobs, public.job_attempts, public.notifications');
  const { rows: users } = await admin.query('select id from bench_e2e.users order by id');
  const events0 = watcher.events.length;
  const drains0 = watcher.drains.length;
  const { rows: [d0] } = await admin.query('select rings::int as rings from spool.doorbell');
  const { rows: [r0] } = await admin.query('select coalesce(max(id), 0)::bigint as id from net._http_response');
  // The protocol's gap: after a sample's job is done, the invocation that ran it lingers
  // lingerMs from its start; wait that out (and the doorbell's debounce) before the next insert.
  const gapMs = Math.max(timings.lingerMs, timings.debounceMs) + 100;
  const samples = [];
  const t0 = performance.now();
  let slow = 0;
  for (let i = 0; i < cfg.latencySamples; i++) {
    await sleep(gapMs);
    const user = users[i % users.length].id;
    await app.query('begin');
    const { rows: [job] } = await app.query(
      `insert into public.jobs (user_id, type, input) values ($1, 'noop', '{}') returning id`, [user]);
    const tc0 = performance.now();
    const [{ rows: [pre] }] = await app.query(
      'select extract(epoch from clock_timestamp())::float8 * 1000 as t; commit');
    const commitMs = performance.now() - tc0;
    const sent = performance.now();
    let status = null;
    while (performance.now() - sent < cfg.latencyTimeoutMs) {
      const { rows: [r] } = await poller.query('select status from public.jobs where id = $1', [job.id]);
      status = r.status;
      if (status === 'done' || status === 'failed') break;
      await sleep(cfg.latencyPollMs);
    }
    const waitedMs = performance.now() - sent;
    if (waitedMs > 5_000) slow++;
    samples.push({ i, id: job.id, t: pre.t, commitMs: round(commitMs, 2), status, waitedMs: Math.round(waitedMs) });
    if (slow > 3) {
      ctx.log(`latency: more than 3 samples took over 5 s to finish; stopping after ${i + 1}`);
      break;
    }
  }
  const phaseSeconds = (performance.now() - t0) / 1000;
  await quiesce(admin, watcher);

  const { rows } = await admin.query(`
    select id, status, attempts, worker_id,
           extract(epoch from started_at)::float8 * 1000 as started,
           extract(epoch from finished_at)::float8 * 1000 as finished
    from public.jobs where id = any($1::uuid[])`, [samples.map((s) => s.id)]);
  const byId = new Map(rows.map((r) => [r.id, r]));
  const drains = watcher.drains.slice(drains0);
  const drainOf = new Map(drains.map((d) => [d.worker_id, d]));
  const servedBy = countBy(rows.map((r) => r.worker_id));
  for (const s of samples) {
    const r = byId.get(s.id);
    s.status = r.status;
    s.attempts = r.attempts;
    s.pickupMs = r.started === null ? null : round(r.started - s.t, 2);
    s.doneMs = r.finished === null ? null : round(r.finished - s.t, 2);
    const d = drainOf.get(r.worker_id);
    // How the job was reached: a fresh invocation the insert's doorbell started (the path
    // measured), or one that was still running (lingering) or came from a sweep.
    s.via = !d ? 'unknown' : servedBy[r.worker_id] > 1 ? `shared:${d.reason}` : d.reason;
  }
  const { rows: [d1] } = await admin.query('select rings::int as rings from spool.doorbell');
  // Each sample rang once, in order: its doorbell request is the i-th one of the phase. Its
  // response row is written when job-worker's 202 reached the pg_net deliverer.
  const { rows: answered } = await admin.query(`
    select extract(epoch from created)::float8 * 1000 as at from net._http_response
    where id > $1 order by id`, [r0.id]);
  const mapped = answered.length === samples.length && d1.rings - d0.rings === samples.length;
  if (mapped) {
    samples.forEach((s, k) => {
      s.answeredMs = round(answered[k].at - s.t, 2);
    });
  }
  for (const s of samples) delete s.t;
  const ok = samples.filter((s) => s.status === 'done');
  const pick = ok.map((s) => s.pickupMs);
  const done = ok.map((s) => s.doneMs);
  const lifecycle = watcher.events.slice(events0)
    .filter((e) => e.function === 'job-worker' && e.event !== 'worker_spawned')
    .map((e) => ({ event: e.event, reason: e.reason ?? null, readyMs: e.readyMs ?? null }));
  return {
    samples: samples.length,
    gapMs,
    phaseSeconds: round(phaseSeconds, 1),
    done: ok.length,
    missing: samples.length - ok.length,
    duplicates: samples.filter((s) => s.attempts > 1).length,
    via: countBy(samples.map((s) => s.via)),
    doorbellRings: d1.rings - d0.rings,
    invocations: drains.length,
    pickupMs: stats(pick),
    doneMs: stats(done),
    commitMs: stats(samples.map((s) => s.commitMs)),
    // When the pg_net deliverer recorded job-worker's 202 (its transaction's start), same origin.
    answeredMs: mapped ? stats(samples.map((s) => s.answeredMs)) : null,
    slowest: [...ok].sort((a, b) => b.pickupMs - a.pickupMs).slice(0, 5)
      .map(({ i, pickupMs, doneMs, via }) => ({ i, pickupMs, doneMs, via })),
    workerLifecycle: lifecycle,
    perSample: samples,
  };
}

// ---------------------------------------------------------------------------------------------
// Invocations per idle hour
// ---------------------------------------------------------------------------------------------

async function idlePhase(ctx) {
  const { admin, app, poller, watcher, cfg, timings } = ctx;
  await quiesce(admin, watcher);
  await admin.query('truncate public.jobs, public.job_attempts, public.notifications');
  await app.query('set role service_role');
  const out = { ticks: [] };
  try {
    for (const ticks of cfg.idleTicks) {
      const s0 = await doorbellState(admin);
      const drains0 = watcher.drains.length;
      let rung = 0;
      let rescued = 0;
      const t0 = performance.now();
      // Each tick its own transaction, as pg_cron runs it.
      for (let i = 0; i < ticks; i++) {
        const { rows: [r] } = await app.query('select spool.sweep() as s');
        if (r.s.rung !== null) rung++;
        rescued += r.s.rescued;
      }
      const ms = performance.now() - t0;
      // Anything rung would reach job-worker within a pg_net poll; wait it out, then count.
      await sleep(1_200 + timings.lingerMs);
      await quiesce(admin, watcher);
      const s1 = await doorbellState(admin);
      out.ticks.push({
        ticks,
        schedule: ticks === 360 ? '10 seconds (pg_cron >= 1.5, Supabase)' : ticks === 60 ? '* * * * * (pg_cron 1.4)' : `${ticks} per hour`,
        sweepMs: round(ms / ticks, 2),
        rungBySweep: rung,
        rescued,
        doorbellRequests: s1.requests - s0.requests,
        doorbellRings: s1.rings - s0.rings,
        pgNetResponses: s1.responses - s0.responses,
        invocations: watcher.drains.length - drains0,
      });
    }

    // Sanity: a runnable job nobody rang for. run_at a moment ahead keeps the insert's trigger
    // quiet (it rings only for jobs runnable now); once it is due, one sweep must ring.
    await waitDebounced(admin);
    const s0 = await doorbellState(admin);
    const drains0 = watcher.drains.length;
    await app.query('reset role');
    const { rows: [user] } = await admin.query('select id from bench_e2e.users limit 1');
    const { rows: [job] } = await app.query(`
      insert into public.jobs (user_id, type, input, run_at)
      values ($1, 'noop', '{}', clock_timestamp() + interval '300 milliseconds') returning id`, [user.id]);
    await sleep(400);
    const s1 = await doorbellState(admin);
    await app.query('set role service_role');
    const t0 = performance.now();
    const { rows: [sw] } = await app.query('select spool.sweep() as s');
    let status = null;
    while (performance.now() - t0 < 10_000) {
      const { rows: [r] } = await poller.query('select status from public.jobs where id = $1', [job.id]);
      status = r.status;
      if (status === 'done') break;
      await sleep(10);
    }
    const doneMs = performance.now() - t0;
    await quiesce(admin, watcher);
    const s2 = await doorbellState(admin);
    const drains = watcher.drains.slice(drains0);
    const resp = sw.s.rung === null ? null : (await admin.query(
      'select status_code from net._http_response where id = $1', [sw.s.rung])).rows[0];
    out.sanity = {
      insertRang: s1.rings - s0.rings,
      sweepRang: sw.s.rung !== null,
      requestId: sw.s.rung,
      responseStatus: resp?.status_code ?? null,
      doorbellRequests: s2.requests - s1.requests,
      invocations: drains.length,
      invocationReasons: countBy(drains.map((d) => d.reason)),
      jobStatus: status,
      sweepToDoneMs: Math.round(doneMs),
      ok: s1.rings === s0.rings && sw.s.rung !== null && status === 'done',
    };
  } finally {
    await app.query('reset role').catch(() => {});
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// The section
// ---------------------------------------------------------------------------------------------

/**
 * Runs the end-to-end section on its own throwaway stack. Returns { settings, config, throughput,
 * latency, idle, ok, failures }; `log` receives progress lines.
 */
export async function runE2eBench({ log = console.log, onStack, offStack, keepLogOnFailure, ...opts } = {}) {
  const cfg = { ...E2E_DEFAULTS, ...Object.fromEntries(Object.entries(opts).filter(([, v]) => v !== undefined)) };
  const timings = cfg.shippedTimings ? cfg.shipped : cfg.scaled;
  const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'spool-bench-e2e-'));
  const watcher = gatewayWatcher(path.join(stateDir, 'gateway.log'));
  const functionEnv = {
    SPOOL_ENABLE_NOOP: 'true', // the test/bench-only kind; never set on a deployed project
    SPOOL_WORKER_LINGER_MS: String(timings.lingerMs),
    // An experiment's extra worker settings (e.g. SPOOL_WORKER_BATCH); the report lists them all.
    ...(cfg.functionEnv ?? {}),
  };
  let stack = null;
  let killStack = null;
  let result = null;
  const clients = [];
  const tStart = performance.now();
  const phaseSeconds = {};
  try {
    const dbPort = await freePort();
    const apiPort = await freePort();
    log(`starting a throwaway stack in ${stateDir} (Postgres on ${dbPort}, fsync on as npm start; gateway on ${apiPort})`);
    let t = performance.now();
    stack = await startStack({ dbPort, apiPort, stateDir, env: functionEnv, fsync: true, log: watcher.sink });
    killStack = () => {
      stack.killSync();
      fs.rmSync(stateDir, { recursive: true, force: true });
    };
    onStack?.(killStack);
    const connect = async (url, name) => {
      const c = new pg.Client({ connectionString: url, application_name: name });
      await c.connect();
      clients.push(c);
      return c;
    };
    const admin = await connect(stack.superuserUrl, 'spool-bench-e2e-admin');
    const app = await connect(stack.dbUrl, 'spool-bench-e2e-insert'); // the postgres role
    const poller = await connect(stack.dbUrl, 'spool-bench-e2e-poll');
    const postmasterPid = Number(fs.readFileSync(path.join(stack.db.dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
    // job-worker's first start must be ready before anything is timed.
    for (let i = 0; i < 600 && !watcher.events.some((e) => e.event === 'worker_ready' && e.function === 'job-worker'); i++) {
      await sleep(50);
    }

    await admin.query(`
      drop schema if exists bench_e2e cascade;
      create schema bench_e2e;
      create table bench_e2e.users (id uuid primary key);
      grant usage on schema bench_e2e to postgres;
      grant select on bench_e2e.users to postgres;`);
    await admin.query(`
      with u as (
        insert into auth.users (id, aud, role, email, created_at, updated_at)
        select gen_random_uuid(), 'authenticated', 'authenticated', format('bench-e2e-%s@spool.invalid', g), now(), now()
        from generate_series(1, $1::int) g
        returning id
      )
      insert into bench_e2e.users select id from u`, [cfg.users]);
    await admin.query(`update spool.settings set doorbell_debounce = make_interval(secs => $1::float8 / 1000)`, [timings.debounceMs]);
    if (cfg.applySql) {
      // An experiment (e.g. a candidate change to claim_jobs) in this throwaway database only.
      log(`applying ${cfg.applySql} to the throwaway database (an experiment: not the migrations)`);
      await admin.query(fs.readFileSync(cfg.applySql, 'utf8'));
    }
    const settings = await readE2eSettings(admin);
    settings.functionEnv = functionEnv;
    settings.timings = { ...timings, shipped: cfg.shippedTimings };
    phaseSeconds.start = round((performance.now() - t) / 1000, 1);
    const ctx = { admin, app, poller, watcher, cfg, timings, postmasterPid, log };

    // --- throughput ------------------------------------------------------------------------
    t = performance.now();
    const coldJobs = cfg.coldJobs ?? cfg.jobs;
    let cold = null;
    if (coldJobs > 0) {
      const { rows: [st] } = await admin.query(`
        select c.reltuples::float8 as reltuples,
               (select count(*) from pg_statistic where starelid = c.oid)::int as stats
        from pg_class c where c.oid = 'public.jobs'::regclass`);
      cold = await throughputRun(ctx, coldJobs, 'cold');
      cold.jobsTableAnalyzedBefore = st.stats > 0;
      log(`throughput cold run (fresh stack, jobs table ${st.stats > 0 ? 'analyzed' : 'never analyzed'}): ` +
        `${fmt(cold.jobsPerSecond)} jobs/s (${fmt(cold.jobs)} jobs in ${cold.seconds} s; not in the median)` +
        `${runCorrect(cold) ? '' : `  ✗ missing ${cold.missing}, duplicates ${cold.duplicates}${cold.stalled ? ', stalled' : ''}`}`);
    }
    const runs = [];
    for (let i = 0; i < cfg.repeats; i++) {
      const r = await throughputRun(ctx, cfg.jobs, `run ${i + 1}`);
      runs.push(r);
      const c = r.cpu.percentOfCore;
      log(`throughput run ${i + 1}/${cfg.repeats}: ${fmt(r.jobsPerSecond)} jobs/s (${fmt(r.jobs)} jobs in ${r.seconds} s; ` +
        `${r.invocations} invocation(s), ${r.claims} claims${r.autoanalyzeDuring || r.autovacuumDuring ? '; autovacuum ran on jobs meanwhile' : ''}; ` +
        `CPU % of a core: node ${c.node}, deno ${c.denoWorker}, ` +
        `pg ${c.pgRest + c.pgNet + c.pgOther}, others ${r.cpu.others === null ? '?' : Math.round((100 * r.cpu.others) / r.seconds)})` +
        `${runCorrect(r) ? '' : `  ✗ missing ${r.missing}, duplicates ${r.duplicates}${r.stalled ? ', stalled' : ''}`}`);
    }
    const jpsMedian = median(runs.map((r) => r.jobsPerSecond));
    const medianRun = [...runs].sort((a, b) => a.jobsPerSecond - b.jobsPerSecond)[runs.length >> 1];
    const throughput = {
      jobs: cfg.jobs,
      users: cfg.users,
      cold,
      runs,
      jobsPerSecond: jpsMedian,
      serverJobsPerSecond: median(runs.map((r) => r.serverJobsPerSecond)),
      invocations: median(runs.map((r) => r.invocations)),
      cpu: medianRun.cpu,
      target: cfg.targets.jobsPerSecond,
      met: jpsMedian >= cfg.targets.jobsPerSecond,
      ok: runs.every(runCorrect) && (cold === null || runCorrect(cold)),
    };
    phaseSeconds.throughput = round((performance.now() - t) / 1000, 1);

    // --- one owner at the running cap --------------------------------------------------------
    // The issue's stall: one user's backlog behind max_running_per_user. Ideal: jobs × sleep /
    // cap (the cap's own pace); the ratio says how close the worker keeps every slot busy.
    t = performance.now();
    let capped = null;
    if (cfg.cappedJobs > 0) {
      const cap = settings.spool.max_running_per_user;
      const r = await throughputRun(ctx, cfg.cappedJobs, 'capped', { owners: 1, input: { sleep_ms: cfg.cappedSleepMs } });
      const idealSeconds = (cfg.cappedJobs * cfg.cappedSleepMs) / cap / 1000;
      capped = { ...r, owners: 1, cap, sleepMs: cfg.cappedSleepMs, idealSeconds, ratioToIdeal: round(r.seconds / idealSeconds, 2) };
      log(`capped: ${fmt(cfg.cappedJobs)} jobs of one owner, cap ${cap}, ${cfg.cappedSleepMs} ms handlers: ` +
        `drained in ${r.seconds} s against an ideal of ${idealSeconds} s (${capped.ratioToIdeal}×); ` +
        `${r.invocations} invocation(s), ${r.claims} claims` +
        `${runCorrect(r) ? '' : `  ✗ missing ${r.missing}, duplicates ${r.duplicates}${r.stalled ? ', stalled' : ''}`}`);
    }
    phaseSeconds.capped = round((performance.now() - t) / 1000, 1);

    // --- pickup latency --------------------------------------------------------------------
    t = performance.now();
    watcher.countJobs = false;
    log(`latency: ${cfg.latencySamples} single-job inserts, each when no invocation is running`);
    const latency = await latencyPhase(ctx);
    latency.targets = { p50Ms: cfg.targets.pickupP50Ms, p99Ms: cfg.targets.pickupP99Ms };
    latency.met = latency.pickupMs.p50 <= cfg.targets.pickupP50Ms && latency.pickupMs.p99 <= cfg.targets.pickupP99Ms;
    latency.ok = latency.missing === 0 && latency.duplicates === 0;
    log(`latency: pickup p50 ${latency.pickupMs.p50} ms, p99 ${latency.pickupMs.p99} ms over ${latency.done} samples ` +
      `(${latency.phaseSeconds} s)`);
    phaseSeconds.latency = round((performance.now() - t) / 1000, 1);

    // --- idle ------------------------------------------------------------------------------
    t = performance.now();
    const idle = await idlePhase(ctx);
    const perHour = idle.ticks.find((x) => x.ticks === 360) ?? idle.ticks[0];
    idle.target = cfg.targets.idleInvocationsPerHour;
    idle.met = idle.ticks.every((x) => x.invocations <= cfg.targets.idleInvocationsPerHour &&
      x.doorbellRequests <= cfg.targets.idleInvocationsPerHour);
    idle.ok = idle.sanity.ok;
    log(`idle: ${perHour.ticks} sweeps → ${perHour.doorbellRequests} doorbell request(s), ${perHour.invocations} invocation(s); ` +
      `sanity: a runnable job ${idle.sanity.ok ? 'was rung for and done' : 'was NOT handled'} (${idle.sanity.sweepToDoneMs} ms)`);
    phaseSeconds.idle = round((performance.now() - t) / 1000, 1);

    const failures = [];
    for (const r of [...(cold ? [cold] : []), ...runs, ...(capped ? [capped] : [])].filter((x) => !runCorrect(x))) {
      failures.push(`throughput ${r.label}: missing ${r.missing}, duplicates ${r.duplicates} (extra handler runs ` +
        `${r.extraHandlerRuns}, notifications ${r.notifications} for ${r.notifiedJobs} jobs), total ${r.total}` +
        `${r.stalled ? ', stalled' : ''}`);
    }
    if (!latency.ok) failures.push(`latency: ${latency.missing} sample job(s) not done, ${latency.duplicates} run more than once`);
    if (!idle.ok) failures.push(`idle sanity: ${JSON.stringify(idle.sanity)}`);
    const warnings = watcher.problems.slice(0, 20);
    phaseSeconds.total = round((performance.now() - tStart) / 1000, 1);
    result = {
      settings,
      config: {
        jobs: cfg.jobs, users: cfg.users, repeats: cfg.repeats, coldJobs, pollMs: cfg.pollMs, applySql: cfg.applySql ?? null,
        latencySamples: cfg.latencySamples, idleTicks: cfg.idleTicks, targets: cfg.targets,
      },
      throughput,
      capped,
      latency,
      idle,
      phaseSeconds,
      gatewayWarnings: warnings,
      ok: failures.length === 0,
      failures,
    };
    return result;
  } finally {
    await Promise.allSettled(clients.map((c) => c.end()));
    if (stack) await stack.stop().catch((err) => log(`stopping the stack: ${err.message}`));
    if (killStack) offStack?.(killStack);
    watcher.close();
    if (keepLogOnFailure && !result?.ok) {
      try {
        fs.mkdirSync(path.dirname(keepLogOnFailure), { recursive: true });
        fs.copyFileSync(watcher.file, keepLogOnFailure);
        if (result) result.gatewayLog = keepLogOnFailure;
        else log(`the gateway's log is kept in ${path.relative(process.cwd(), keepLogOnFailure)}`);
      } catch {
        // best effort
      }
    }
    fs.rmSync(stateDir, { recursive: true, force: true });
  }
}

async function readE2eSettings(admin) {
  const { rows } = await admin.query(`
    select name, current_setting(name) as value from pg_settings
    where name = any($1) order by name`, [['server_version', 'fsync', 'synchronous_commit', 'full_page_writes', 'wal_level', 'shared_buffers']]);
  const { rows: [s] } = await admin.query(`
    select max_running_per_user, max_active_jobs_per_user, max_jobs_per_minute_per_user,
           fair_slot::text, doorbell_debounce::text from spool.settings`);
  const { rows: [cron] } = await admin.query(`select extversion from pg_extension where extname = 'pg_cron'`);
  return { server: Object.fromEntries(rows.map((r) => [r.name, r.value])), spool: s, pgCron: cron?.extversion ?? null };
}

/** The section's report, as lines of text. */
export function formatE2eReport(result) {
  const { settings, config, throughput: tp, latency: lt, idle, phaseSeconds } = result;
  const s = settings.server;
  const L = [];
  const mark = (met) => (met ? 'met' : 'NOT met');
  L.push(`Stack: Postgres ${s.server_version} (fsync=${s.fsync}, synchronous_commit=${s.synchronous_commit}, ` +
    `full_page_writes=${s.full_page_writes}, as npm start), pg_cron ${settings.pgCron}; the local gateway with ` +
    `job-worker in Deno, the PostgREST stand-in and the pg_net deliverer.`);
  L.push(`Functions env: ${Object.entries(settings.functionEnv).map(([k, v]) => `${k}=${v}`).join(', ')} ` +
    `(noop is bench/test-only; never enabled by a production deploy).`);
  L.push(`spool.settings: max_running_per_user=${settings.spool.max_running_per_user}, doorbell_debounce=` +
    `${settings.spool.doorbell_debounce}; quotas unchanged (active ${settings.spool.max_active_jobs_per_user}, ` +
    `${settings.spool.max_jobs_per_minute_per_user}/min: they apply to create_job, and jobs here are INSERTed ` +
    `directly as the postgres role).`);
  if (config.applySql) L.push(`EXPERIMENT: ${config.applySql} was applied to the throwaway database after the migrations.`);
  if (!settings.timings.shipped) {
    L.push(`Timings scaled down for the idle samples: worker linger ${settings.timings.lingerMs} ms (shipped 1500), ` +
      `doorbell debounce ${settings.timings.debounceMs} ms (shipped 1 s); neither is on the measured path ` +
      `(--shipped-timings keeps the shipped ones; the idle samples then take ~5 minutes).`);
  }
  L.push('');
  const slots = tp.users * settings.spool.max_running_per_user;
  L.push(`1. Throughput: ${fmt(tp.jobs)} noop jobs in one INSERT over ${fmt(tp.users)} owners ` +
    `(${fmt(slots)} running slots${slots >= tp.jobs ? ': the per-user cap cannot bind' : ''}), ` +
    `drained via trigger → doorbell → pg_net → job-worker; median of ${tp.runs.length}, poll every ${config.pollMs} ms`);
  const all = [...(tp.cold ? [tp.cold] : []), ...tp.runs];
  const us = (r, v) => Math.round((v * 1e6) / r.jobs);
  L.push(...table(
    ['run', 'jobs/s', 'seconds', 'server jobs/s', 'first pickup ms', 'invocations', 'claims', 'dup', 'missing',
      'reattempted', 'CPU µs/job: node', 'deno', 'pg RPC', 'pg other', 'machine busy %'],
    all.map((r) => [r.label, fmt(r.jobsPerSecond), r.seconds, fmt(r.serverJobsPerSecond), r.firstPickupMs,
      `${r.invocations} (${Object.entries(r.invocationReasons).map(([k, v]) => `${k} ${v}`).join(', ')})`,
      r.claims, r.duplicates, r.missing, r.reattempted, us(r, r.cpu.seconds.node), us(r, r.cpu.seconds.denoWorker),
      us(r, r.cpu.seconds.pgRest), us(r, r.cpu.seconds.pgNet + r.cpu.seconds.pgOther),
      r.cpu.machineBusy === null ? '?' : Math.round((100 * r.cpu.machineBusy) / r.cpu.machineCapacity)]),
  ));
  if (tp.cold) {
    L.push(`   cold = the first run on the fresh stack (public.jobs ${tp.cold.jobsTableAnalyzedBefore ? 'analyzed' : 'never analyzed'}, ` +
      `Deno cold), not in the median; runs 1.. start with statistics of finished jobs, as autovacuum leaves a live queue` +
      `${tp.runs.some((r) => r.autoanalyzeDuring || r.autovacuumDuring) ? ' (autovacuum touched jobs during: ' +
        tp.runs.filter((r) => r.autoanalyzeDuring || r.autovacuumDuring).map((r) => r.label).join(', ') + ')' : ''}`);
  }
  L.push(`   → ${fmt(tp.jobsPerSecond)} jobs/s (COMMIT → all done, poll-observed; server clocks ${fmt(tp.serverJobsPerSecond)}); ` +
    `target ≥ ${fmt(tp.target)}: ${mark(tp.met)} (reported, not asserted)`);
  const c = tp.cpu;
  const mr = tp.runs.find((r) => r.cpu === c);
  const total = c.ours;
  L.push(`   CPU of the median run: ${us(mr, total)} µs per job in all (node gateway = Functions proxy + PostgREST ` +
    `stand-in + pg_net + this poller ${us(mr, c.seconds.node)}, job-worker Deno ${us(mr, c.seconds.denoWorker)}, ` +
    `Postgres for the stand-in's RPCs ${us(mr, c.seconds.pgRest)}, other Postgres ${us(mr, c.seconds.pgNet + c.seconds.pgOther)} ` +
    `(insert, WAL writer, checkpointer, polls)); at that cost ${os.cpus().length} cores allow ` +
    `~${fmt((os.cpus().length * 1e6) / Math.max(1, us(mr, total)))} jobs/s; other tenants used ` +
    `${c.others === null ? '?' : Math.round((100 * c.others) / mr.seconds)} % of a core meanwhile`);
  L.push(`   every job done exactly once: ${tp.ok ? 'yes' : 'NO'} (attempts = 1 for all, one notification and one ` +
    `handler run per job)`);
  L.push('');
  const cp = result.capped;
  if (cp) {
    L.push(`1b. One owner at the running cap: ${fmt(cp.jobs)} noop jobs of one owner, max_running_per_user ${cp.cap}, ` +
      `each handler sleeping ${cp.sleepMs} ms`);
    L.push(`   → drained in ${cp.seconds} s; ideal ${cp.idealSeconds} s (${fmt(cp.jobs)} × ${cp.sleepMs} ms / ${cp.cap}): ` +
      `${cp.ratioToIdeal}× the ideal; ${cp.invocations} invocation(s) (${Object.entries(cp.invocationReasons).map(([k, v]) => `${k} ${v}`).join(', ')}), ` +
      `${cp.claims} claims; every job done exactly once: ${runCorrect(cp) ? 'yes' : 'NO'}`);
    L.push('');
  }
  L.push(`2. Pickup latency while idle: ${lt.samples} single-job INSERTs, each its own transaction, ${lt.gapMs} ms ` +
    `after the previous job was done (no invocation running)`);
  L.push('   pickup = started_at (claim_jobs transaction start) − clock_timestamp() just before the insert\'s COMMIT;');
  L.push('   done   = finished_at (complete_jobs transaction start) − the same; the handler starts between the two');
  L.push('   (after claim_jobs returns through the stand-in); "doorbell 202 recorded" = when pg_net stored job-worker\'s');
  L.push('   202 (the worker drains in parallel with that); "COMMIT itself" = the COMMIT round trip, included above');
  L.push(...table(
    ['ms', 'p50', 'p95', 'p99', 'max', 'min'],
    [['pickup', lt.pickupMs.p50, lt.pickupMs.p95, lt.pickupMs.p99, lt.pickupMs.max, lt.pickupMs.min],
      ['done', lt.doneMs.p50, lt.doneMs.p95, lt.doneMs.p99, lt.doneMs.max, lt.doneMs.min],
      ...(lt.answeredMs ? [['doorbell 202 recorded', lt.answeredMs.p50, lt.answeredMs.p95, lt.answeredMs.p99, lt.answeredMs.max, lt.answeredMs.min]] : []),
      ['COMMIT itself', lt.commitMs.p50, lt.commitMs.p95, lt.commitMs.p99, lt.commitMs.max, lt.commitMs.min]],
  ));
  L.push(`   → pickup p50 ${lt.pickupMs.p50} ms (target ≤ ${lt.targets.p50Ms}), p99 ${lt.pickupMs.p99} ms ` +
    `(target ≤ ${lt.targets.p99Ms}): ${mark(lt.met)} (reported, not asserted)`);
  L.push(`   reached via: ${Object.entries(lt.via).map(([k, v]) => `${k} ${v}`).join(', ')} ` +
    `(insert = a fresh invocation the insert's doorbell started); ${lt.doorbellRings} rings, ` +
    `${lt.invocations} invocations; samples done ${lt.done}/${lt.samples}`);
  if (lt.workerLifecycle.length > 0) {
    L.push(`   Edge worker lifecycle meanwhile: ${lt.workerLifecycle.map((e) => `${e.event}${e.reason ? ` (${e.reason})` : ''}` +
      `${e.readyMs ? ` ${e.readyMs} ms` : ''}`).join(', ')}`);
  }
  L.push(`   slowest: ${lt.slowest.map((x) => `#${x.i} ${x.pickupMs} ms (${x.via})`).join(', ')}`);
  L.push('');
  L.push('3. Worker invocations per idle hour (empty queue, spool.sweep() once per pg_cron tick):');
  L.push(...table(
    ['schedule', 'sweeps', 'doorbell requests', 'invocations', 'ms per sweep'],
    idle.ticks.map((x) => [x.schedule, x.ticks, x.doorbellRequests, x.invocations, x.sweepMs]),
  ));
  L.push(`   → target ${idle.target}: ${mark(idle.met)}`);
  const sn = idle.sanity;
  L.push(`   sanity: a job due 300 ms after its insert (the insert did ${sn.insertRang ? '' : 'not '}ring); one sweep ` +
    `${sn.sweepRang ? `rang (request ${sn.requestId}, answered ${sn.responseStatus})` : 'did NOT ring'}; invocations ` +
    `${Object.entries(sn.invocationReasons).map(([k, v]) => `${k} ${v}`).join(', ') || 'none'}; job ${sn.jobStatus} ` +
    `${sn.sweepToDoneMs} ms after the sweep: ${sn.ok ? 'ok' : 'FAILED'}`);
  L.push('');
  L.push(`Phases (s): stack ${phaseSeconds.start}, throughput ${phaseSeconds.throughput}, capped ${phaseSeconds.capped}, latency ${phaseSeconds.latency}, ` +
    `idle ${phaseSeconds.idle}; total ${phaseSeconds.total}`);
  for (const f of result.failures) L.push(`✗ ${f}`);
  return L;
}

// ---------------------------------------------------------------------------------------------

function table(head, rows) {
  const body = rows.map((r) => r.map(String));
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((r) => r[i].length)));
  const row = (r) => `   ${r.map((v, i) => (i === 0 ? v.padEnd(widths[i]) : v.padStart(widths[i]))).join('  ')}`.trimEnd();
  return [row(head), `   ${widths.map((w) => '-'.repeat(w)).join('  ')}`, ...body.map(row)];
}

function stats(xs) {
  const a = xs.filter((x) => Number.isFinite(x)).sort((x, y) => x - y);
  if (a.length === 0) return { n: 0, p50: null, p95: null, p99: null, max: null, min: null, mean: null };
  const q = (p) => a[Math.min(a.length - 1, Math.ceil(p * a.length) - 1)];
  return {
    n: a.length,
    p50: round(q(0.5), 1),
    p95: round(q(0.95), 1),
    p99: round(q(0.99), 1),
    max: round(a[a.length - 1], 1),
    min: round(a[0], 1),
    mean: round(a.reduce((x, y) => x + y, 0) / a.length, 1),
  };
}

function countBy(xs) {
  const out = {};
  for (const x of xs) out[x] = (out[x] ?? 0) + 1;
  return out;
}

function median(xs) {
  const a = [...xs].sort((x, y) => x - y);
  const m = a.length >> 1;
  return a.length % 2 ? a[m] : (a[m - 1] + a[m]) / 2;
}
const sum = (xs) => xs.reduce((a, b) => a + (b ?? 0), 0);
const round = (x, d) => Math.round(x * 10 ** d) / 10 ** d;
const fmt = (n) => Math.round(n).toLocaleString('en-US');

export { PlatformError };
