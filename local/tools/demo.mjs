#!/usr/bin/env node
// `npm run demo`: every job type end to end through Spool's public HTTP API, with live progress.
// The project: --url with --anon-key (a hosted one too); else this checkout's `npm start` stack;
// else, or with --fresh, a throwaway stack (stack.mjs startStack), torn down at the end. The jobs
// run in demo/jobs.mjs; then one line per job, and inputs, outputs and summary.json in --out.
// Exits 1 if any job did not end `done` in --timeout (an expected refusal of `image` is no failure).

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { freePort, loadDotEnv, PlatformError, STATE_DIR } from './db.mjs';
import { keyModeFromEnv, loadKeys } from '../standins/keys.mjs';
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
const secs = (ms) => `${(ms / 1000).toFixed(1)}s`;
const kb = (n) => `${Math.round(n / 1024)} KB`;

function fail(message) {
  console.error(`spool demo: ${message}`);
  process.exit(2);
}

function parseOptions(argv) {
  const options = { fresh: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } };
  for (const name of ['url', 'anon-key', 'out', 'timeout']) options[name] = { type: 'string' };
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
  const timeout = Number(o.timeout ?? 45);
  if (!(timeout > 0)) fail(`--timeout must be a positive number of seconds, got ${o.timeout}`);
  const stamp = new Date().toISOString().replace(/[:]/g, '-').replace(/\..*$/, '');
  const out = path.resolve(o.out ?? path.join('demo-output', stamp));
  return { ...o, anonKey: o['anon-key'] ?? process.env.SUPABASE_ANON_KEY, out, timeoutMs: timeout * 1000 };
}

/**
 * The `npm start` stack of this checkout, if it runs: something on SPOOL_API_PORT takes the anon
 * key of keys.json in STATE_DIR (Auth's JWKS answers 200 to a key in force; another stack's gateway
 * says 401). Not the jobs API: a publishable key is no JWT, and its verify_jwt gateway says 401.
 */
async function runningStack() {
  const file = path.join(STATE_DIR, 'keys.json');
  if (!fs.existsSync(file)) return null;
  // The mode the file implies, so loadKeys writes nothing: without new-mode keys the stack is a
  // legacy one (this shell's SPOOL_KEYS would add them to its file); with them, either may be.
  const mode = JSON.parse(fs.readFileSync(file, 'utf8')).publishableKey ? keyModeFromEnv() : 'legacy';
  const { anonKey } = await loadKeys(STATE_DIR, { mode });
  const url = `http://127.0.0.1:${envApiPort()}`;
  try {
    const options = { headers: { apikey: anonKey }, signal: AbortSignal.timeout(3000) };
    const res = await fetch(`${url}/auth/v1/.well-known/jwks.json`, options);
    const body = await res.json().catch(() => null);
    if (res.ok && Array.isArray(body?.keys)) return { url, anonKey };
    return { url, mismatch: `it answered ${res.status} ${JSON.stringify(body)?.slice(0, 120)}` };
  } catch {
    return null; // nothing listening (or not answering): start our own
  }
}

let owned = null; // the throwaway stack, if we started one: { dir, log, stack }

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

const jobName = (e) => `${e.type} ${e.label}`.padEnd(30);

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
      console.log(`  ${`+${secs(Date.now() - t0)}`.padStart(7)}  ${jobName(e)} ${state}`.trimEnd());
    }
  };
}

const EXPECTED_REFUSAL = 'expected: this project has no OPENAI_API_KEY (nothing was queued)';

/**
 * A job's closing line: its state, how long it queued and ran (from the job's own timestamps),
 * its output files and key figures, or why there are none.
 */
function resultLine(e, outDir) {
  const { error: err, created_at: created, started_at: started, finished_at: finished } = e.job ?? {};
  const took = (a, b) => (a && b ? secs(Date.parse(b) - Date.parse(a)) : null);
  const timing = started && `queued ${took(created, started)}, ran ${took(started, finished) ?? '…'}`;
  const what = e.status === 'refused'
    ? [`${e.error.status} ${e.error.code}`, e.expected ? EXPECTED_REFUSAL : e.error.message]
    : [timing, ...e.files.map((f) => `${path.relative(outDir, f.local)} (${kb(f.bytes)})`), e.downloadError];
  if (e.status === 'done') what.push(keyFigures(e.type, e.job.output));
  if (err) what.push(`${err.code ?? 'error'}: ${err.message ?? JSON.stringify(err)}`);
  return `  ${jobName(e)} ${e.status.padEnd(8)} ${what.filter(Boolean).join(' · ')}`.trimEnd();
}

async function main() {
  loadDotEnv();
  const opts = parseOptions(process.argv.slice(2));

  let project;
  if (opts.url) {
    if (!opts.anonKey) fail('--url needs --anon-key (or SUPABASE_ANON_KEY): the project\'s publishable key');
    project = { url: opts.url, anonKey: opts.anonKey, how: 'the project given with --url' };
  } else {
    const running = opts.fresh ? null : await runningStack();
    if (running?.anonKey) {
      project = { ...running, how: '`npm start` stack (reused; --fresh for a throwaway one)' };
    } else {
      if (running?.mismatch) console.log(`spool demo: ${running.url} refused keys.json's key (${running.mismatch})`);
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

  const run = { ...project, media, outDir: opts.out, timeoutMs: opts.timeoutMs, onUpdate: progressPrinter() };
  const { entries, timedOut, userId } = await runDemoJobs(run);

  console.log(`\n${entries.map((e) => resultLine(e, opts.out)).join('\n')}\n`);
  if (timedOut) console.log(`  gave up waiting after ${opts.timeoutMs / 1000} s (--timeout)\n`);
  const jobs = entries.map(({ type, label, request, status, error, job, files }) => {
    const refusal = status === 'refused' ? error : undefined;
    const saved = files.map(({ local, ...f }) => ({ ...f, url: undefined, local: path.relative(opts.out, local) }));
    return { type, label, request, status, refusal, job, files: saved };
  });
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
