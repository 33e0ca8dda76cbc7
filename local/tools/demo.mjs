#!/usr/bin/env node
// `npm run demo`: every job type end to end through Spool's public HTTP API, with live progress.
//
//   1. a Spool project to talk to:
//        - by default, the `npm start` stack if one answers on SPOOL_API_PORT (default 54321)
//          and accepts this checkout's anon key (keys.json in its state folder, local/tools/db.mjs STATE_DIR);
//        - otherwise (or with --fresh) a throwaway stack (local/tools/stack.mjs startStack) on free
//          ports in a temp folder, torn down at the end;
//        - or any project, hosted ones included: --url https://<ref>.supabase.co --anon-key <key>
//   2. local/tools/demo/jobs.mjs: anonymous sign-up, the sample files of docs/samples/
//      uploaded to inputs/<uid>/, the creators (color-grade noir and teal-orange, audio-clean, roto;
//      image, which a project without OPENAI_API_KEY refuses with 503 provider_not_configured),
//      then GET /functions/v1/jobs every 200 ms until every job has ended, each change printed as a
//      line, and the outputs downloaded from their signed URLs
//   3. a summary table; outputs, inputs and summary.json in demo-output/<timestamp>/ (--out DIR)
// Exits 1 if any job did not end `done` (an expected refusal of `image` is not a failure);
// options: USAGE below.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { freePort, loadDotEnv, PlatformError, STATE_DIR } from './db.mjs';
import { loadKeys } from '../standins/keys.mjs';
import { allGood, keyFigures, loadSamples, runDemoJobs } from './demo/jobs.mjs';
import { envApiPort, fileLog, startStack } from './stack.mjs';

const USAGE = `usage: npm run demo [-- options]

  --fresh            always start a throwaway stack, even if \`npm start\` is running
  --url URL          use this Spool project instead (e.g. https://<ref>.supabase.co)
  --anon-key KEY     its publishable (anon) key (default: SUPABASE_ANON_KEY)
  --out DIR          where to save inputs, outputs and summary.json
                     (default: demo-output/<timestamp>)
  --timeout SECONDS  how long to wait for the jobs (default 45)
  -h, --help         this text`;

const t0 = Date.now();
const secs = (ms) => (Number.isFinite(ms) ? `${(ms / 1000).toFixed(1)}s` : '');
const kb = (n) => `${Math.round(n / 1024)} KB`;

function fail(message) {
  console.error(`spool demo: ${message}`);
  process.exit(2);
}

function parseOptions(argv) {
  const options = {
    fresh: { type: 'boolean', default: false },
    url: { type: 'string' },
    'anon-key': { type: 'string' },
    out: { type: 'string' },
    timeout: { type: 'string', default: '45' },
    help: { type: 'boolean', short: 'h', default: false },
  };
  let o;
  try {
    o = parseArgs({ args: argv, options, strict: true }).values;
  } catch (err) {
    fail(`${err.message}\n${USAGE}`);
  }
  if (o.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const timeout = Number(o.timeout);
  if (!(timeout > 0)) fail(`--timeout must be a positive number of seconds, got ${o.timeout}`);
  const stamp = new Date().toISOString().replace(/[:]/g, '-').replace(/\..*$/, '');
  return {
    fresh: o.fresh,
    url: o.url ?? null,
    anonKey: o['anon-key'] ?? process.env.SUPABASE_ANON_KEY ?? null,
    out: path.resolve(o.out ?? path.join('demo-output', stamp)),
    timeoutMs: timeout * 1000,
  };
}

/**
 * The `npm start` stack of this checkout, if it runs: something answers on SPOOL_API_PORT and
 * takes the anon key of keys.json in this checkout's state folder (Auth's JWKS answers 200 to a
 * key in force; another stack's gateway refuses the key itself: 401). Not the jobs API: with
 * the new keys a publishable key is no JWT, and its verify_jwt gateway says 401 Invalid JWT.
 */
async function runningStack() {
  if (!fs.existsSync(path.join(STATE_DIR, 'keys.json'))) return null;
  const url = `http://127.0.0.1:${envApiPort()}`;
  const { anonKey } = await loadKeys(STATE_DIR);
  try {
    const res = await fetch(`${url}/auth/v1/.well-known/jwks.json`, {
      headers: { apikey: anonKey },
      signal: AbortSignal.timeout(3000),
    });
    const body = await res.json().catch(() => null);
    if (res.ok && Array.isArray(body?.keys)) return { url, anonKey };
    return { url, mismatch: `it answered ${res.status} ${JSON.stringify(body)?.slice(0, 120)}` };
  } catch {
    return null; // nothing listening (or not answering): start our own
  }
}

let owned = null; // the throwaway stack, if we started one: { dir, log, stack }

/** A throwaway stack in a temp folder on free ports; its gateway log goes to a file there. */
async function throwawayStack() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'spool-demo-'));
  owned = { dir, log: fileLog(path.join(dir, 'gateway.log')), stack: null };
  const ports = { dbPort: await freePort(), apiPort: await freePort() };
  owned.stack = await startStack({ ...ports, stateDir: dir, fsync: false, log: owned.log });
  return owned.stack;
}

/** Kills the throwaway stack, if any, and removes its folder (synchronous: for exit and signals too). */
function teardown() {
  if (!owned) return;
  try {
    owned.stack?.killSync();
    owned.log.close();
  } catch {
    // best effort on the way out
  }
  fs.rmSync(owned.dir, { recursive: true, force: true });
  owned = null;
}

/** The end of the throwaway stack's gateway log, to show why something failed. */
function gatewayTail(lines = 40) {
  try {
    const text = fs.readFileSync(owned.log.file, 'utf8').trimEnd().split('\n').slice(-lines);
    return `\nlast ${lines} lines of the throwaway stack's gateway log:\n${text.join('\n')}\n`;
  } catch {
    return '';
  }
}

/** Prints a line for each job whose state, step or progress (in steps of 20%) changed. */
function progressPrinter() {
  const last = new Map();
  return (entries) => {
    for (const e of entries) {
      const pct = e.status === 'done' ? 100 : (e.job?.progress ?? 0);
      const key = `${e.status}|${e.job?.step}|${Math.floor(pct / 20)}`;
      if (e.status === 'new' || last.get(e.key) === key) continue;
      last.set(e.key, key);
      const step = e.status === 'done' ? '' : (e.job?.step ?? '');
      const state = e.status === 'refused'
        ? `refused  ${e.error.status} ${e.error.code}`
        : `${e.status.padEnd(8)} ${String(pct).padStart(3)}%  ${step}`;
      const at = `+${secs(Date.now() - t0)}`.padStart(7);
      console.log(`  ${at}  ${`${e.type} ${e.label}`.padEnd(30)} ${state}`.trimEnd());
    }
  };
}

/** The summary's last column: the output's key figures, or why there is none. */
function figuresText(e) {
  if (e.status === 'refused') {
    const { status, code, message } = e.error;
    return e.expected ? `skipped: ${status} ${code} (no OPENAI_API_KEY)` : `${status} ${code}: ${message}`;
  }
  if (e.status === 'done') return [keyFigures(e.type, e.job.output), e.downloadError].filter(Boolean).join(' · ');
  const err = e.job?.error;
  return err ? `${err.code ?? 'error'}: ${err.message ?? JSON.stringify(err)}` : (e.downloadError ?? '');
}

/** The summary: one row per job, columns padded to their widest cell. */
function summaryTable(entries, outDir) {
  const ms = (a, b) => (a && b ? Date.parse(b) - Date.parse(a) : NaN);
  const rows = entries.map((e) => {
    const job = e.job ?? {};
    const file = e.files[0];
    return [
      `${e.type} ${e.label}`,
      e.status,
      secs(ms(job.created_at, job.started_at)),
      secs(ms(job.started_at, job.finished_at)),
      secs(ms(job.created_at, job.finished_at)),
      file ? `${path.relative(outDir, file.local)} (${kb(file.bytes)})` : '',
      figuresText(e),
    ];
  });
  const header = ['job', 'status', 'queued', 'ran', 'total', 'output file', 'key figures'];
  const widths = header.map((_, i) => Math.max(...[header, ...rows].map((r) => r[i].length)));
  const rule = widths.map((w, i) => '─'.repeat(i < widths.length - 1 ? w : header[i].length));
  const line = (r) => r.map((c, i) => (i < r.length - 1 ? c.padEnd(widths[i]) : c)).join('  ');
  return [header, rule, ...rows].map((r) => `  ${line(r)}`).join('\n');
}

async function main() {
  loadDotEnv();
  const opts = parseOptions(process.argv.slice(2));

  // 1. The project.
  let project;
  if (opts.url) {
    if (!opts.anonKey) fail('--url needs --anon-key (or SUPABASE_ANON_KEY): the project\'s publishable key');
    project = { url: opts.url, anonKey: opts.anonKey, how: 'the project given with --url' };
  } else {
    const running = opts.fresh ? null : await runningStack();
    if (running?.anonKey) {
      project = { ...running, how: '`npm start` stack (reused; --fresh for a throwaway one)' };
    } else {
      if (running?.mismatch) {
        console.log(`spool demo: ${running.url} is not this checkout's npm start stack (${running.mismatch})`);
      }
      console.log('spool demo: starting a throwaway stack (Postgres, migrations, Edge Functions)…');
      const stack = await throwawayStack();
      project = { url: stack.url, anonKey: stack.anonKey, how: 'a throwaway stack, torn down at the end' };
    }
  }
  const media = loadSamples();
  console.log(`\nSpool demo  ${project.url}  (${project.how})\n  inputs (docs/samples/):`);
  const sizes = (m) => `${m.name.padEnd(16)} ${kb(m.bytes.length).padEnd(7)}`;
  for (const m of Object.values(media)) console.log(`    ${sizes(m)} ${m.about}`);
  console.log('  watching GET /functions/v1/jobs every 200 ms\n');

  // 2. The jobs.
  const { entries, timedOut, userId } = await runDemoJobs({
    url: project.url,
    anonKey: project.anonKey,
    media,
    outDir: opts.out,
    timeoutMs: opts.timeoutMs,
    onUpdate: progressPrinter(),
  });

  // 3. The summary.
  console.log(`\n${summaryTable(entries, opts.out)}\n`);
  for (const e of entries.filter((x) => x.status === 'refused')) {
    console.log(e.expected
      ? `  ${e.type} skipped: this project has no OPENAI_API_KEY, so the creator refused the job (nothing was queued):`
      : `  ${e.type} refused:`);
    console.log(`    POST /functions/v1/${e.type} ${JSON.stringify(e.request)}`);
    const { status, ...error } = e.error;
    console.log(`    → ${status} ${JSON.stringify({ error })}\n`);
  }
  if (timedOut) console.log(`  gave up waiting after ${opts.timeoutMs / 1000} s (--timeout)\n`);
  const jobs = entries.map((e) => ({
    type: e.type,
    label: e.label,
    request: e.request,
    status: e.status,
    refusal: e.status === 'refused' ? e.error : undefined,
    job: e.job,
    files: e.files.map(({ local, ...f }) => ({ ...f, url: undefined, local: path.relative(opts.out, local) })),
  }));
  const summary = { project: project.url, user_id: userId, jobs };
  fs.writeFileSync(path.join(opts.out, 'summary.json'), JSON.stringify(summary, null, 2) + '\n');
  const ok = allGood(entries) && !timedOut;
  console.log(`  files in ${path.relative(process.cwd(), opts.out) || '.'}/ (inputs/, outputs, summary.json)`);
  console.log(`  ${ok ? 'all jobs done' : 'some jobs did not end done'} in ${secs(Date.now() - t0)}\n`);
  if (!ok) process.stdout.write(gatewayTail());
  return ok ? 0 : 1;
}

for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(signal, () => {
    console.error(`spool demo: ${signal}, stopping`);
    teardown();
    process.exit(130);
  });
}
process.on('exit', () => teardown());

let code = 1;
try {
  code = await main();
} catch (err) {
  console.error(`\nspool demo: ${err instanceof PlatformError ? err.message : err.stack}`);
  process.stderr.write(gatewayTail());
}
teardown(); // the throwaway stack is deleted: killing it is enough
process.exit(code);
