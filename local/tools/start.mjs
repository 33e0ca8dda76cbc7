#!/usr/bin/env node
// `npm start`: the Spool platform on this machine, without Docker, until Ctrl-C. It starts
// local/tools/stack.mjs startStack (Postgres in <state>/db, bootstrapped and migrated; the API
// gateway on SPOOL_API_PORT: Edge Functions in Deno, the stand-ins, the pg_net deliverer), then
// the web client in Vite's dev server on SPOOL_WEB_PORT (local/tools/web.mjs).
//
//   npm start                 start (reusing the cluster in <state>/db)
//   npm start -- --reset      delete <state>/db first: a fresh cluster, bootstrap and migrations
//   npm start -- --verbose    stream every gateway and function log line here too (SPOOL_VERBOSE=1)
//
// <state> is this checkout's state folder outside the repository (local/tools/db.mjs STATE_DIR),
// so the web server, rooted in web/, cannot reach the keys, the Storage files or the database.
// The banner stays on screen; the log lines go to <state>/logs/gateway.log, and only their errors,
// one line each, to the terminal (local/tools/terminal.mjs).
//
// Stopping: SIGINT (Ctrl-C, or npm passing one on), SIGTERM, SIGHUP, or the parent process
// exiting (npm killed) stop the web server and the gateway together (its Deno workers get
// `terminate`, then SIGKILL) within STOP_BUDGET_MS, then Postgres with a fast shutdown, and exit.
// Ctrl-C reaches this process twice (from the terminal and from npm): a second signal within
// DUPLICATE_SIGNAL_MS is the same one; a later one stops everything at once.

import fs from 'node:fs';
import path from 'node:path';
import { DEFAULT_DIR, envPort, killChildren, loadDotEnv, PlatformError, ROOT, STATE_DIR, stopCluster } from './db.mjs';
import { envApiPort, startStack } from './stack.mjs';
import { gatewayLog } from './terminal.mjs';
import { envWebPort, startWebDev } from './web.mjs';

/**
 * How long the web server and the gateway get to stop before the Deno workers are killed. A
 * worker told to terminate hands its jobs back (job-worker's beforeunload); one killed first
 * leaves them running until their lease expires and the sweep rescues them. With Postgres's
 * fast shutdown after it, Ctrl-C stays under 2 s on a loaded 2-core machine.
 */
const STOP_BUDGET_MS = 700;
/** A second signal this soon after the first is the same Ctrl-C (the terminal's and npm's copy). */
const DUPLICATE_SIGNAL_MS = 1_000;
/** How often the parent process is checked for (npm killed without passing a signal on). */
const PARENT_POLL_MS = 250;

const KNOWN = ['--reset', '--verbose'];
const argv = process.argv.slice(2);
const unknown = argv.filter((a) => !KNOWN.includes(a));
if (unknown.length > 0) {
  console.error(`spool: unknown argument(s) ${unknown.join(' ')} (known: ${KNOWN.join(', ')})`);
  process.exit(2);
}
// Paths inside the checkout relative to it, the rest (the state folder) as they are.
const rel = (p) => {
  const r = path.relative(ROOT, p);
  return r.startsWith('..') || path.isAbsolute(r) ? p : r;
};
const truthy = (v) => v !== undefined && !['', '0', 'false', 'no', 'off'].includes(v.toLowerCase());
const verbose = argv.includes('--verbose') || truthy(process.env.SPOOL_VERBOSE);
const LOG_FILE = path.join(STATE_DIR, 'logs', 'gateway.log');

/** What has started: the cluster (db: true once it may be running), the stack, web server, log. */
const ctx = { db: false, api: null, web: null, log: null };
let stopping = null; // when the first stop request came (Date.now())

/** Starts the three services and prints the banner. */
async function main() {
  loadDotEnv();
  if (argv.includes('--reset') && fs.existsSync(DEFAULT_DIR)) {
    stopCluster({ dir: DEFAULT_DIR });
    fs.rmSync(DEFAULT_DIR, { recursive: true, force: true });
    console.log(`spool: removed ${rel(DEFAULT_DIR)}`);
  }
  // The gateway, and the Vault secrets that let an insert ring job-worker; functions restart on edits.
  ctx.log = gatewayLog({ file: LOG_FILE, verbose });
  ctx.db = true;
  const api = (ctx.api = await startStack({
    dbPort: envPort(),
    apiPort: envApiPort(),
    stateDir: STATE_DIR,
    log: ctx.log,
    watch: true,
  }));
  const db = api.db;
  if (stopping !== null) return;

  // The web client with this stack's URL and anon key, hot reload on edits; its entry is
  // transformed before the URL is printed, so the first page load is quick.
  ctx.web = await startWebDev({ port: envWebPort(), supabaseUrl: api.url, anonKey: api.anonKey });
  if (stopping !== null) return;

  const names = api.functions();
  const newKeys = api.keyMode === 'new';
  const sections = {
    db: [
      `${db.postgresUrl}   (role postgres: not a superuser, as on Supabase)`,
      `${db.superuserUrl}      (superuser: for the platform itself)`,
      `port ${db.port}, data ${rel(db.dataDir)}, log ${rel(db.logFile)}`,
    ],
    api: [
      `${api.url}   (SUPABASE_URL)`,
      ...(newKeys
        ? [`publishable key   ${api.anonKey}`, `secret key        ${api.serviceRoleKey}`]
        : [`anon key          ${api.anonKey}`, `service_role key  ${api.serviceRoleKey}`]),
      ...(names.length > 0
        ? names.map((name) => `${api.functionsUrl}/${name}`)
        : [`${api.functionsUrl}/<name>   (no functions in supabase/functions yet)`]),
      `Vault: spool_project_url = ${api.url}, spool_worker_secret = the ${newKeys ? 'secret' : 'service_role'} key`,
      `keys in ${rel(path.join(STATE_DIR, 'keys.json'))} (this stack's own; SPOOL_KEYS=${api.keyMode})`,
    ],
    web: [`${ctx.web.url}   (the web client; SPOOL_WEB_PORT)`],
    logs: [
      rel(LOG_FILE),
      `(the gateway's and the Edge Functions' log lines; ${
        verbose ? 'streamed here too: --verbose' : 'errors shown here; `npm start -- --verbose` streams all'
      })`,
    ],
  };
  const lines = Object.entries(sections)
    .flatMap(([name, info]) => info.map((line, i) => `  ${(i === 0 ? name : '').padEnd(10)} ${line}`));
  console.log('\nSpool is running. Ctrl-C to stop.\n');
  console.log(lines.join('\n'));
  console.log(`\n  psql "${db.postgresUrl}"\n`);
}

/**
 * Stops the web server and the gateway at once (STOP_BUDGET_MS before the Deno workers are
 * killed), then the database (the others need it to stop). Returns how long each took, in ms.
 */
async function stopAll() {
  killChildren(); // a `supabase db push` still running, if the stop came during the start
  const took = {};
  const t0 = Date.now();
  const stop = async (name, service) => {
    if (!service) return;
    try {
      await service.close();
    } catch (err) {
      console.error(`spool: stopping ${name} failed: ${err.message}`);
    }
    took[name] = Date.now() - t0;
  };
  let timer;
  const stopped = await Promise.race([
    Promise.all([stop('web', ctx.web), stop('api', ctx.api)]).then(() => true),
    new Promise((resolve) => (timer = setTimeout(resolve, STOP_BUDGET_MS, false))),
  ]);
  clearTimeout(timer);
  if (!stopped && ctx.api && took.api === undefined) {
    console.error(`spool: api did not stop within ${STOP_BUDGET_MS} ms; killing it`);
    ctx.api.killSync(); // the Deno workers, and Postgres at once
    took.api = Date.now() - t0;
  }
  if (ctx.db) {
    const t1 = Date.now();
    try {
      // By folder, so a cluster that started but never answered is stopped too.
      stopCluster({ dir: DEFAULT_DIR });
    } catch (err) {
      console.error(`spool: stopping db failed: ${err.message}`);
    }
    took.db = Date.now() - t1;
  }
  ctx.log?.close(); // stopAll runs once: `stopping` is set before either call
  return took;
}

/** The hurried stop (a second signal): kill the workers, an immediate Postgres shutdown. */
function killAll() {
  ctx.api?.killSync();
  try {
    stopCluster({ dir: DEFAULT_DIR }, { mode: 'immediate', quiet: true });
  } catch {
    // best effort on the way out
  }
}

async function shutdown(why) {
  if (stopping !== null) {
    if (Date.now() - stopping < DUPLICATE_SIGNAL_MS) return;
    console.error(`spool: ${why} again, stopping at once`);
    killAll();
    process.exit(1);
  }
  stopping = Date.now();
  console.log(`\nspool: ${why}, stopping`);
  const took = await stopAll();
  const secs = (ms) => `${(ms / 1000).toFixed(1)} s`;
  const parts = Object.entries(took).map(([name, ms]) => `${name} ${secs(ms)}`);
  console.log(`spool: stopped in ${secs(Date.now() - stopping)} (${parts.join(', ')})`);
  process.exit(0);
}

for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(signal, () => shutdown(signal));
// A closed terminal: writes fail with EIO/EPIPE; stopping must not crash on them.
for (const stream of [process.stdout, process.stderr]) stream.on('error', () => {});
// npm runs this script as its child; if npm dies without passing a signal on (SIGKILL), this
// process is re-parented: stop the stack instead of running on, orphaned, holding the ports.
// Once: a stop already under way is not a second Ctrl-C.
const parent = process.ppid;
const parentWatch = setInterval(() => {
  if (process.ppid === parent) return;
  clearInterval(parentWatch);
  shutdown(`parent process ${parent} exited`);
}, PARENT_POLL_MS);

try {
  await main();
} catch (err) {
  if (stopping === null) {
    stopping = Date.now();
    console.error(`\nspool: ${err instanceof PlatformError ? err.message : err.stack}`);
    await stopAll();
    process.exit(1);
  }
}
