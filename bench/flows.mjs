// The flows section of `npm run bench` (issue 11, "Done when"): how fast Spool drains flows, what
// the fan-in costs next to the same number of plain jobs, and whether every flow finished exactly
// once.
//
// On the throwaway cluster (fsync on, bench/cluster.mjs), each run gets a fresh queue:
//   flows  `flows` flows of `children` noop children each, made by public.create_flow (the parent
//          is of type bench-flow, which has no spool.job_types row), spread round-robin over
//          `users` owners and created from `creators` service_role sessions at once;
//   plain  flows × children noop jobs, made by public.create_jobs in calls of `children` jobs for
//          one owner (the same calls create_flow makes for the children, without the parent).
// Then VACUUM ANALYZE and `claimers` service_role sessions loop claim_jobs (batch 50) →
// complete_jobs until every claimable job is done: bench/db.mjs's drain (drainCell) with its
// Spool claimer, its client-side duplicate counting and its per-job CPU counters. A parent is
// never claimed: the complete_jobs statement that ends its last child finishes it (the
// jobs_flow_settle trigger), in the same transaction.
//
// Reported: children completed per second and flows per second (the drain's wall time), the
// same for the plain drain and the ratio; the fan-in latency per parent, its finished_at minus
// its last child's finished_at. Both are spool.now(), the transaction's start time, so the
// difference is 0 when the transaction that completed the last child finished the parent, and
// the counts say how many did (the parent's row version was written by a transaction that also
// wrote one of its children: xmin). Also: each flow's span, its first child's started_at to the
// parent's finished_at, and the complete_jobs calls that closed a flow against those that did
// not (timed client-side). Correctness, which alone makes the section fail: no child
// claimed or completed twice, every child and every parent done, and each parent finished
// exactly once: one notification, its output lists its children in creation order (the ids
// create_flow returned), each done, with done = children.

import { performance } from 'node:perf_hooks';
import pg from 'pg';
import { cellCorrect, connectClaimers, drainCell, readSettings, setup, spoolSystem } from './db.mjs';

export const DEFAULTS = Object.freeze({
  flows: 1_000,
  children: 10,
  // 400 owners × max_running_per_user (10) = 4,000 running slots, above the 8 × 50 in flight.
  users: 400,
  claimers: 8,
  batch: 50,
  // Sessions calling create_flow / create_jobs while the queue is filled (not the drain).
  creators: 8,
  // Pairs of (flows, plain) drains, order alternating; medians reported.
  repeats: 3,
  // Flows (and their number of plain jobs) drained once before the runs, not reported.
  warmupFlows: 100,
  parentType: 'bench-flow',
  childType: 'noop',
  stallMs: 30_000,
});

/**
 * Empties the queue (jobs, notifications, flows, edges, the owners' slots) and checkpoints, so
 * the fill writes every page the drain touches after the checkpoint (bench/db.mjs does the same).
 */
async function emptyQueue(admin) {
  await admin.query('truncate public.jobs, public.job_attempts, public.notifications, spool.flows, spool.job_dependencies');
  await admin.query('delete from spool.user_slots where user_id in (select id from bench.users)');
  await admin.query('checkpoint');
}

/** Runs `calls` creation calls from the creators at once; `call(client, i)`. Returns seconds. */
async function fill(creators, calls, call) {
  let next = 0;
  const t0 = performance.now();
  await Promise.all(creators.map(async (c) => {
    while (next < calls) await call(c, next++);
  }));
  return (performance.now() - t0) / 1000;
}

/**
 * The flows queue as a drainCell system: Spool's claimer (claim_jobs + complete_jobs as
 * job-worker calls them), a reset that creates the flows, and a verify over the children.
 * `state.flows` receives [{ parent, children }] as create_flow returned them.
 */
function flowsSystem({ creators, users, cfg, state }) {
  const claimer = spoolSystem({ name: 'flows' });
  return {
    ...claimer,
    name: 'flows',
    async reset(admin, jobs) {
      const flows = jobs / cfg.children;
      await emptyQueue(admin);
      state.flows = new Array(flows);
      state.createSeconds = await fill(creators, flows, async (c, i) => {
        const children = Array.from({ length: cfg.children }, (_, k) => ({
          type: cfg.childType, input: { flow: i, child: k },
        }));
        const { rows } = await c.query({
          name: 'flows_create_flow',
          text: 'select id from public.create_flow($1, $2, $3::jsonb, $4::jsonb)',
          values: [users[i % users.length], cfg.parentType, JSON.stringify({ flow: i }), JSON.stringify(children)],
        });
        state.flows[i] = { parent: rows[0].id, children: rows.slice(1).map((r) => r.id) };
      });
      state.flowOf = new Map();
      state.left = state.flows.map((f, i) => {
        for (const c of f.children) state.flowOf.set(c, i);
        return f.children.length;
      });
      state.calls = [];
      await admin.query('vacuum analyze public.jobs');
    },
    // complete_jobs as the claimer calls it, timed per call with the number of flows whose last
    // child it completed (client-side): what a call that runs the fan-in costs over one that
    // does not.
    async complete(client, rows) {
      const t = performance.now();
      const ids = await claimer.complete(client, rows);
      const ms = performance.now() - t;
      let closed = 0;
      for (const id of ids) {
        const i = state.flowOf.get(id);
        if (i !== undefined && --state.left[i] === 0) closed++;
      }
      state.calls.push({ ms, jobs: ids.length, closed });
      return ids;
    },
    async verify(admin) {
      // The children only: drainCell compares these with the jobs it was asked to drain.
      const { rows: [r] } = await admin.query(`
        select count(*)::int as total,
               count(*) filter (where status = 'done')::int as done,
               (select count(*)::int from public.notifications n
                 where n.job_id in (select j.id from public.jobs j where j.parent_id is not null)) as notifications
        from public.jobs where parent_id is not null`);
      return r;
    },
  };
}

/** The plain queue: the same jobs, the same create_jobs calls, no parent. */
function plainSystem({ creators, users, cfg, state }) {
  const claimer = spoolSystem({ name: 'plain' });
  return {
    ...claimer,
    name: 'plain',
    async reset(admin, jobs) {
      await emptyQueue(admin);
      const calls = Math.ceil(jobs / cfg.children);
      state.createSeconds = await fill(creators, calls, async (c, i) => {
        const n = Math.min(cfg.children, jobs - i * cfg.children);
        const specs = Array.from({ length: n }, (_, k) => ({
          user_id: users[i % users.length], type: cfg.childType, input: { flow: i, child: k },
        }));
        await c.query({
          name: 'plain_create_jobs',
          text: 'select id from public.create_jobs($1::jsonb)',
          values: [JSON.stringify(specs)],
        });
      });
      await admin.query('vacuum analyze public.jobs');
    },
  };
}

/**
 * After a flows drain: every parent's end as the server recorded it, checked against what
 * create_flow returned. Returns the fan-in latencies and the correctness counts.
 */
export async function checkFlows(admin, created, children) {
  const { rows } = await admin.query(`
    select p.id, p.status::text as status, p.output, f.children::text[] as children,
           extract(epoch from p.finished_at - c.last_finished)::float8 * 1000 as fanin_ms,
           extract(epoch from p.finished_at - c.first_started)::float8 * 1000 as span_ms,
           p.xmin::text = any(c.xmins) as same_tx,
           (select count(*)::int from public.notifications n where n.job_id = p.id) as notifications,
           (select count(*)::int from public.notifications n where n.job_id = p.id and n.status = 'done') as done_notifications
    from spool.flows f
    join public.jobs p on p.id = f.job_id
    cross join lateral (
      select max(j.finished_at) as last_finished, min(j.started_at) as first_started, array_agg(distinct j.xmin::text) as xmins
      from unnest(f.children) u(id) join public.jobs j on j.id = u.id) c`);
  const byId = new Map(rows.map((r) => [r.id, r]));
  const st = {
    parents: created.length, parentsFound: rows.length, parentsDone: 0, parentsNotDone: 0,
    parentsMissingRow: 0, notExactlyOnce: 0, badOutput: 0, sameTransaction: 0, laterTransaction: 0,
  };
  const fanInMs = [];
  const spanMs = [];
  const examples = [];
  for (const flow of created) {
    const r = byId.get(flow.parent);
    if (!r) {
      st.parentsMissingRow++;
      continue;
    }
    if (r.status !== 'done') {
      st.parentsNotDone++;
      if (examples.length < 5) examples.push({ parent: r.id, problem: `status ${r.status}` });
      continue;
    }
    st.parentsDone++;
    fanInMs.push(r.fanin_ms);
    spanMs.push(r.span_ms);
    if (r.same_tx) st.sameTransaction++;
    else st.laterTransaction++;
    if (r.notifications !== 1 || r.done_notifications !== 1) {
      st.notExactlyOnce++;
      if (examples.length < 5) examples.push({ parent: r.id, problem: `${r.notifications} notifications` });
    }
    // The output lists every child in creation order, as create_flow returned them, each done.
    const out = r.output ?? {};
    const listed = Array.isArray(out.children) ? out.children : [];
    const inOrder = listed.length === children && flow.children.length === children &&
      listed.every((c, k) => c.index === k && c.id === flow.children[k] && c.status === 'done' &&
        r.children[k] === flow.children[k]);
    if (!inOrder || out.done !== children || out.failed !== 0 || out.cancelled !== 0) {
      st.badOutput++;
      if (examples.length < 5) examples.push({ parent: r.id, problem: 'output', output: out });
    }
  }
  return { ...st, fanInMs: distribution(fanInMs), flowSpanMs: distribution(spanMs), examples };
}

/**
 * complete_jobs calls of a flows drain, split by whether they completed the last child of at
 * least one flow (and so ran its fan-in): calls, mean ms, mean jobs per call, flows closed.
 */
function completeCalls(calls) {
  const part = (xs) => ({
    calls: xs.length,
    meanMs: xs.length ? round(sum(xs.map((c) => c.ms)) / xs.length, 3) : null,
    meanJobs: xs.length ? round(sum(xs.map((c) => c.jobs)) / xs.length, 1) : null,
    flowsClosed: sum(xs.map((c) => c.closed)),
  });
  return { closing: part(calls.filter((c) => c.closed > 0)), notClosing: part(calls.filter((c) => c.closed === 0)) };
}

/**
 * Runs the flows section against a migrated Spool database.
 *   adminUrl     a superuser (TRUNCATE, VACUUM, CHECKPOINT, the checks)
 *   claimerUrl   the postgres role, which `set role service_role` (creators and claimers)
 * Returns { settings, config, warmup, runs, median, ratio, ok, failures }.
 */
export async function runFlowsBench({ adminUrl, claimerUrl, log = console.log, ...opts }) {
  const cfg = { ...DEFAULTS, ...Object.fromEntries(Object.entries(opts).filter(([, v]) => v !== undefined)) };
  if (cfg.children > 999) throw new Error('a flow holds at most 999 children (create_flow)');
  const admin = new pg.Client({ connectionString: adminUrl, application_name: 'spool-bench-flows-admin' });
  await admin.connect();
  let clients = [];
  try {
    await setup(admin, cfg);
    // The create quotas (100 active jobs, 60 a minute per owner) would refuse a second fill within
    // the minute; nothing here measures them. Everything else stays at its defaults.
    await admin.query(`update spool.settings set max_active_jobs_per_user = 1000000,
                                                max_jobs_per_minute_per_user = 1000000`);
    const settings = await readSettings(admin);
    const { rows: [quotas] } = await admin.query(
      'select max_active_jobs_per_user, max_jobs_per_minute_per_user from spool.settings');
    settings.spool = { ...settings.spool, ...quotas };
    const { rows: typeRows } = await admin.query(
      'select type from spool.job_types where type = any($1)', [[cfg.parentType, cfg.childType]]);
    settings.jobTypeRows = typeRows.map((r) => r.type);
    const { rows: userRows } = await admin.query('select id from bench.users order by id');
    const users = userRows.map((r) => r.id);

    clients = await connectClaimers(claimerUrl, Math.max(cfg.claimers, cfg.creators));
    const creators = clients.slice(0, cfg.creators);
    const state = {};
    const flowsSys = flowsSystem({ creators, users, cfg, state });
    const plainSys = plainSystem({ creators, users, cfg, state });
    const jobs = cfg.flows * cfg.children;

    const drain = async (sys, n) => {
      const r = await drainCell(sys, { admin, clients, claimers: cfg.claimers, batch: cfg.batch, jobs: n, stallMs: cfg.stallMs });
      const run = { ...r, createSeconds: round(state.createSeconds, 3) };
      if (sys === flowsSys) {
        const flows = n / cfg.children;
        run.flows = flows;
        run.flowsPerSecond = round(flows / r.seconds, 0);
        run.flowsCreatedPerSecond = round(flows / state.createSeconds, 0);
        run.check = await checkFlows(admin, state.flows, cfg.children);
        run.completeCalls = completeCalls(state.calls);
      } else {
        run.jobsCreatedPerSecond = round(n / state.createSeconds, 0);
      }
      run.correct = runCorrect(run);
      return run;
    };

    let warmup = null;
    if (cfg.warmupFlows > 0) {
      const n = Math.min(cfg.warmupFlows, cfg.flows) * cfg.children;
      log(`flows: warming up (${n / cfg.children} flows, then ${n} plain jobs; not reported)`);
      const w = [await drain(flowsSys, n), await drain(plainSys, n)];
      warmup = { jobs: n, correct: w.every((r) => r.correct) };
    }

    const runs = { flows: [], plain: [] };
    for (let i = 0; i < cfg.repeats; i++) {
      // Alternate which goes first, so drift in the machine's load favours neither.
      for (const sys of i % 2 ? [plainSys, flowsSys] : [flowsSys, plainSys]) {
        const r = await drain(sys, jobs);
        runs[sys.name].push(r);
        log(`  run ${i + 1}/${cfg.repeats} ${sys.name.padEnd(5)}: ${fmt(r.jobsPerSecond).padStart(6)} jobs/s` +
          `${r.flowsPerSecond !== undefined ? `, ${fmt(r.flowsPerSecond)} flows/s` : ''} ` +
          `(${r.jobs} jobs in ${r.seconds} s; claim ${r.avgClaimMs} ms, complete ${r.avgCompleteMs} ms; ` +
          `server CPU ${r.serverCpuUsPerJob ?? '?'} µs/job; created in ${r.createSeconds} s)` +
          `${r.check ? `; fan-in p50 ${r.check.fanInMs.p50} ms max ${r.check.fanInMs.max} ms, ` +
            `${r.check.sameTransaction}/${r.check.parents} parents in their last child's transaction` : ''}` +
          `${r.correct ? '' : `  ✗ ${describeFailure(r)}`}`);
      }
    }

    const med = (xs) => median(xs.filter((x) => x !== null && x !== undefined));
    const f = runs.flows;
    const p = runs.plain;
    const median_ = {
      flows: {
        jobsPerSecond: med(f.map((r) => r.jobsPerSecond)),
        flowsPerSecond: med(f.map((r) => r.flowsPerSecond)),
        serverCpuUsPerJob: med(f.map((r) => r.serverCpuUsPerJob)),
        avgCompleteMs: med(f.map((r) => r.avgCompleteMs)),
        avgClaimMs: med(f.map((r) => r.avgClaimMs)),
        flowsCreatedPerSecond: med(f.map((r) => r.flowsCreatedPerSecond)),
        fanInMs: Object.fromEntries(['p50', 'p95', 'p99', 'max', 'min'].map((k) => [k, med(f.map((r) => r.check.fanInMs[k]))])),
        sameTransaction: med(f.map((r) => r.check.sameTransaction)),
        flowSpanMs: Object.fromEntries(['p50', 'p95', 'max', 'min'].map((k) => [k, med(f.map((r) => r.check.flowSpanMs[k]))])),
        seconds: med(f.map((r) => r.seconds)),
        closingCallMs: med(f.map((r) => r.completeCalls.closing.meanMs)),
        notClosingCallMs: med(f.map((r) => r.completeCalls.notClosing.meanMs)),
        flowsClosedPerClosingCall: med(f.map((r) => r.completeCalls.closing.flowsClosed / Math.max(1, r.completeCalls.closing.calls))),
      },
      plain: {
        jobsPerSecond: med(p.map((r) => r.jobsPerSecond)),
        serverCpuUsPerJob: med(p.map((r) => r.serverCpuUsPerJob)),
        avgCompleteMs: med(p.map((r) => r.avgCompleteMs)),
        avgClaimMs: med(p.map((r) => r.avgClaimMs)),
        jobsCreatedPerSecond: med(p.map((r) => r.jobsCreatedPerSecond)),
      },
    };
    const ratio = {
      // Above 1: flows drain their children faster than plain jobs; below 1, the fan-in's cost.
      jobsPerSecond: round(median_.flows.jobsPerSecond / median_.plain.jobsPerSecond, 3),
      perRun: f.map((r, i) => round(r.jobsPerSecond / p[i].jobsPerSecond, 3)),
      serverCpuPerJob: round(median_.flows.serverCpuUsPerJob / median_.plain.serverCpuUsPerJob, 3),
      avgCompleteMs: round(median_.flows.avgCompleteMs / median_.plain.avgCompleteMs, 3),
    };
    const all = [...f, ...p];
    const failures = all.filter((r) => !r.correct).map((r) => ({ system: r.system, problem: describeFailure(r), examples: r.check?.examples }));
    if (warmup && !warmup.correct) failures.push({ system: 'warmup', problem: 'a warm-up drain was not correct' });
    return {
      settings,
      config: {
        flows: cfg.flows, children: cfg.children, jobs, plainJobs: jobs, users: cfg.users, claimers: cfg.claimers,
        batch: cfg.batch, creators: cfg.creators, repeats: cfg.repeats, warmupFlows: cfg.warmupFlows,
        parentType: cfg.parentType, childType: cfg.childType,
      },
      warmup,
      runs,
      median: median_,
      ratio,
      ok: failures.length === 0,
      failures,
    };
  } finally {
    await Promise.allSettled(clients.map((c) => c.end()));
    await admin.query(`
      truncate public.jobs, public.job_attempts, public.notifications, spool.flows, spool.job_dependencies;
      drop schema if exists bench cascade;
      delete from auth.users where email like 'bench-%@spool.invalid';`).catch(() => {});
    await admin.end().catch(() => {});
  }
}

/** drainCell's counts (duplicates, missing children), and for flows every parent's end. */
function runCorrect(r) {
  if (!cellCorrect(r)) return false;
  if (!r.check) return true;
  const c = r.check;
  return c.parentsDone === c.parents && c.parentsFound === c.parents && c.notExactlyOnce === 0 && c.badOutput === 0;
}

function describeFailure(r) {
  const parts = [`duplicates ${r.duplicates}`, `missing children ${r.missing}`];
  if (r.clientCompleted !== r.serverDone) parts.push(`client completed ${r.clientCompleted} vs server done ${r.serverDone}`);
  if (r.notifications !== undefined && r.notifications !== r.jobs) parts.push(`child notifications ${r.notifications}`);
  if (r.check) {
    const c = r.check;
    parts.push(`parents not done ${c.parents - c.parentsDone}`, `not finished exactly once ${c.notExactlyOnce}`,
      `wrong output ${c.badOutput}`);
  }
  if (r.stalled) parts.push('stalled');
  if (r.error) parts.push(`error: ${r.error}`);
  return parts.join(', ');
}

/** The section's report, as lines of text. */
export function formatFlowsReport(result) {
  const { settings, config, runs, median: m, ratio } = result;
  const s = settings.server;
  const lines = [];
  lines.push(`Postgres ${s.server_version}: fsync=${s.fsync}, synchronous_commit=${s.synchronous_commit}, ` +
    `shared_buffers=${s.shared_buffers}; Spool: max_running_per_user=${settings.spool.max_running_per_user}, ` +
    `create quotas raised (${settings.spool.max_active_jobs_per_user} active, ${settings.spool.max_jobs_per_minute_per_user}/min)`);
  lines.push(`${fmt(config.flows)} flows of ${config.children} ${config.childType} children (parent type ${config.parentType}` +
    `${settings.jobTypeRows.includes(config.parentType) ? '' : ', no spool.job_types row'}) over ${config.users} owners, ` +
    `against ${fmt(config.plainJobs)} plain ${config.childType} jobs; ${config.claimers} claimers, batch ${config.batch}; ` +
    `medians of ${config.repeats} run${config.repeats === 1 ? '' : 's'} each`);
  lines.push('');
  lines.push(...table(
    ['drain', 'jobs/s', 'flows/s', 'server µs/job', 'claim ms', 'complete ms', 'duplicates', 'missing'],
    [
      ['flows', fmt(m.flows.jobsPerSecond), fmt(m.flows.flowsPerSecond), m.flows.serverCpuUsPerJob, m.flows.avgClaimMs,
        m.flows.avgCompleteMs, sum(runs.flows.map((r) => r.duplicates)),
        sum(runs.flows.map((r) => r.missing + (r.check.parents - r.check.parentsDone)))],
      ['plain', fmt(m.plain.jobsPerSecond), '', m.plain.serverCpuUsPerJob, m.plain.avgClaimMs, m.plain.avgCompleteMs,
        sum(runs.plain.map((r) => r.duplicates)), sum(runs.plain.map((r) => r.missing))],
    ],
  ));
  lines.push('');
  lines.push(`flows / plain: jobs/s ${ratio.jobsPerSecond.toFixed(2)} (per run: ${ratio.perRun.map((x) => x.toFixed(2)).join(', ')}), ` +
    `server CPU per job ${ratio.serverCpuPerJob.toFixed(2)}x, complete_jobs call ${ratio.avgCompleteMs.toFixed(2)}x`);
  const fi = m.flows.fanInMs;
  lines.push(`fan-in (parent finished_at − last child's finished_at): p50 ${fi.p50} ms, p95 ${fi.p95} ms, ` +
    `p99 ${fi.p99} ms, max ${fi.max} ms (min ${fi.min}); parents finished by the transaction that completed a child of ` +
    `theirs: ${m.flows.sameTransaction} of ${config.flows} (median over runs)`);
  const sp = m.flows.flowSpanMs;
  lines.push(`flow span (first child started → parent done): p50 ${fmt(sp.p50)} ms, p95 ${fmt(sp.p95)} ms, ` +
    `min ${fmt(sp.min)} ms, max ${fmt(sp.max)} ms, in a ${m.flows.seconds} s drain`);
  lines.push(`complete_jobs calls that closed a flow (ran its fan-in): ${m.flows.closingCallMs} ms mean, ` +
    `${round(m.flows.flowsClosedPerClosingCall, 1)} flows closed per call; calls that closed none: ` +
    `${m.flows.notClosingCallMs} ms (plain: ${m.plain.avgCompleteMs} ms)`);
  lines.push(`creation: ${fmt(m.flows.flowsCreatedPerSecond)} flows/s with create_flow, ` +
    `${fmt(m.plain.jobsCreatedPerSecond)} plain jobs/s with create_jobs (${config.creators} sessions; not the drain)`);
  const parentsOk = runs.flows.every((r) => r.check.parentsDone === r.check.parents && r.check.notExactlyOnce === 0 && r.check.badOutput === 0);
  lines.push(`each parent finished exactly once with its ${config.children} children in order: ${parentsOk ? 'yes' : 'NO'} ` +
    `(every run: one notification per parent, output.children = create_flow's ids, all done)`);
  for (const f of result.failures) lines.push(`✗ ${f.system}: ${f.problem}`);
  return lines;
}

function distribution(xs) {
  if (xs.length === 0) return { n: 0, p50: null, p95: null, p99: null, max: null, min: null, mean: null };
  const a = [...xs].sort((x, y) => x - y);
  const q = (p) => a[Math.min(a.length - 1, Math.max(0, Math.ceil(p * a.length) - 1))];
  return {
    n: a.length, p50: round(q(0.5), 3), p95: round(q(0.95), 3), p99: round(q(0.99), 3),
    max: round(a[a.length - 1], 3), min: round(a[0], 3), mean: round(sum(a) / a.length, 3),
  };
}

/** Right-aligned columns, as bench/db.mjs prints them. */
function table(head, rows) {
  const body = rows.map((r) => r.map(String));
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((r) => r[i].length)));
  const row = (r) => r.map((v, i) => v.padStart(widths[i])).join('  ').trimEnd();
  return [row(head), widths.map((w) => '-'.repeat(w)).join('  '), ...body.map(row)];
}

function median(xs) {
  if (xs.length === 0) return null;
  const a = [...xs].sort((x, y) => x - y);
  const k = a.length >> 1;
  return a.length % 2 ? a[k] : (a[k - 1] + a[k]) / 2;
}
const sum = (xs) => xs.reduce((a, b) => a + b, 0);
const round = (x, d) => Math.round(x * 10 ** d) / 10 ** d;
const fmt = (n) => (n === null || n === undefined ? '?' : Math.round(n).toLocaleString('en-US'));
