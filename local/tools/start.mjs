#!/usr/bin/env node
// `npm start`: the Spool platform on this machine, without Docker, until Ctrl-C.
//
// Services start in order and stop in reverse. Each is { name, start(ctx), stop(ctx), kill() }:
// start may add to ctx (what later services need, e.g. ctx.db) and returns lines to print;
// stop undoes it, kill() is the hurried form for a stop that ran out of time: `db` (Postgres),
// then `api` (the gateway on SPOOL_API_PORT with the Edge Functions in Deno, the
// REST/Auth/Storage stand-ins and the pg_net deliverer), then `web` (the web client in Vite's dev
// server on SPOOL_WEB_PORT, local/tools/web.mjs).
//
//   npm start                 start (reusing the cluster in <state>/db)
//   npm start -- --reset      delete <state>/db first: a fresh cluster, bootstrap and migrations
//   npm start -- --include-all
//                             pass --include-all to `supabase db push` (out-of-order migrations)
//   npm start -- --verbose    stream the gateway's and the functions' log lines here too
//                             (or SPOOL_VERBOSE=1)
//
// <state> is this checkout's state folder outside the repository (local/tools/db.mjs STATE_DIR:
// ~/.local/state/spool/<checkout>-<hash>, /var/lib/spool/... as root, or SPOOL_STATE_DIR), so the
// web server on SPOOL_WEB_PORT, rooted in web/, cannot reach the keys, the Storage files or the
// database.
//
// The terminal (local/tools/terminal.mjs): the banner (URLs, keys, psql) stays on screen. The gateway's
// and the functions' log lines go to <state>/logs/gateway.log (the previous run's to
// gateway.log.1); under the banner one status line (jobs pending/running/waiting, done and failed
// in the last minute, the last error) is rewritten in place, or printed as plain lines when
// stdout is not a terminal.
//
// Stopping: SIGINT (Ctrl-C, or npm passing one on), SIGTERM, SIGHUP, or the parent process
// exiting (npm killed) stop the web server and the gateway together (its Deno workers get
// `terminate`, then SIGKILL) within STOP_BUDGET_MS, then Postgres with a fast shutdown, and exit.
// Ctrl-C reaches this process twice (from the terminal and from npm): a second signal within
// DUPLICATE_SIGNAL_MS is the same one; a later one stops everything at once.

import fs from 'node:fs';
import path from 'node:path';
import {
  DEFAULT_DIR,
  ensureBootstrapped,
  ensureExtensions,
  ensurePackages,
  ensureStateDir,
  envPort,
  killChildren,
  loadDotEnv,
  PlatformError,
  pushMigrations,
  ROOT,
  startCluster,
  STATE_DIR,
  stopCluster,
} from './db.mjs';
import { envApiPort, startApi } from './stack.mjs';
import { gatewayLog, statusLine } from './terminal.mjs';
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

const KNOWN = ['--reset', '--include-all', '--verbose'];
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
const options = {
  reset: argv.includes('--reset'),
  includeAll: argv.includes('--include-all'),
  verbose: argv.includes('--verbose') || truthy(process.env.SPOOL_VERBOSE),
};
const LOG_FILE = path.join(STATE_DIR, 'logs', 'gateway.log');

/** @type {{ name: string, start: (ctx: object) => Promise<string[] | void>, stop: (ctx: object) => Promise<void> | void, kill?: (ctx: object) => void }[]} */
const services = [
  {
    name: 'db',
    async start(ctx) {
      const port = envPort();
      ensureStateDir(STATE_DIR);
      if (options.reset && fs.existsSync(DEFAULT_DIR)) {
        stopCluster({ dir: DEFAULT_DIR });
        fs.rmSync(DEFAULT_DIR, { recursive: true, force: true });
        console.log(`spool: removed ${rel(DEFAULT_DIR)}`);
      }
      const cluster = await startCluster({ dir: DEFAULT_DIR, port, fsync: true });
      ctx.db = cluster;
      await ensureBootstrapped(cluster);
      await pushMigrations({ port, includeAll: options.includeAll });
      return [
        `${cluster.postgresUrl}   (role postgres: not a superuser, as on Supabase)`,
        `${cluster.superuserUrl}      (superuser: for the platform itself)`,
        `port ${cluster.port}, data ${rel(cluster.dataDir)}, log ${rel(cluster.logFile)}`,
      ];
    },
    stop() {
      // By folder, so a cluster that started but never answered is stopped too.
      stopCluster({ dir: DEFAULT_DIR });
    },
  },
  {
    // The API gateway (local/standins/server.mjs) on SPOOL_API_PORT: the Edge Functions in Deno
    // (restarted when their files change), the REST/Auth/Storage stand-ins and the pg_net
    // deliverer; plus the Vault secrets that let an insert ring job-worker. Its log lines go to
    // LOG_FILE (and here too with --verbose).
    name: 'api',
    async start(ctx) {
      ctx.log = gatewayLog({ file: LOG_FILE, verbose: options.verbose });
      const api = await startApi({
        dbPort: ctx.db.port,
        apiPort: envApiPort(),
        stateDir: STATE_DIR,
        log: ctx.log,
        options: { functions: { watch: true } },
      });
      ctx.api = api;
      const names = api.functions();
      return [
        `${api.url}   (SUPABASE_URL)`,
        ...(api.keyMode === 'new'
          ? [`publishable key   ${api.anonKey}`, `secret key        ${api.serviceRoleKey}`]
          : [`anon key          ${api.anonKey}`, `service_role key  ${api.serviceRoleKey}`]),
        ...(names.length > 0
          ? names.map((name) => `${api.functionsUrl}/${name}`)
          : [`${api.functionsUrl}/<name>   (no functions in supabase/functions yet)`]),
        `Vault: spool_project_url = ${api.url}, spool_worker_secret = the ${api.keyMode === 'new' ? 'secret' : 'service_role'} key`,
        `keys in ${rel(path.join(STATE_DIR, 'keys.json'))} (this stack's own; SPOOL_KEYS=${api.keyMode})`,
      ];
    },
    async stop(ctx) {
      await ctx.api?.close();
    },
    kill(ctx) {
      ctx.api?.killSync();
    },
  },
  {
    // The web client (web/) in Vite's dev server on SPOOL_WEB_PORT (default 5173), with this
    // stack's URL and anon key as VITE_SUPABASE_URL / VITE_SUPABASE_ANON_KEY, hot reload on edits.
    // The entry is transformed before the URL is printed, so the first page load is quick.
    name: 'web',
    async start(ctx) {
      ctx.web = await startWebDev({
        port: envWebPort(),
        supabaseUrl: ctx.api.url,
        anonKey: ctx.api.anonKey,
      });
      return [`${ctx.web.url}   (the web client; SPOOL_WEB_PORT)`];
    },
    async stop(ctx) {
      await ctx.web?.close();
    },
  },
];

const ctx = {};
const started = [];
let stopping = null; // when the first stop request came (Date.now())
let status = null;

/**
 * Stops what started: every service but the first (the database) at once, given STOP_BUDGET_MS
 * before the ones still stopping are killed; then the database (the others need it to stop).
 * Returns how long each took, in ms.
 */
async function stopAll() {
  killChildren(); // a `supabase db push` still running, if the stop came during the start
  const [first, ...rest] = started;
  const took = {};
  const t0 = Date.now();
  const pending = new Set(rest);
  let timer;
  await Promise.race([
    Promise.all(rest.map(async (service) => {
      try {
        await service.stop(ctx);
      } catch (err) {
        console.error(`spool: stopping ${service.name} failed: ${err.message}`);
      }
      pending.delete(service);
      took[service.name] = Date.now() - t0;
    })),
    new Promise((resolve) => (timer = setTimeout(resolve, STOP_BUDGET_MS))),
  ]);
  clearTimeout(timer);
  for (const service of pending) {
    console.error(`spool: ${service.name} did not stop within ${STOP_BUDGET_MS} ms; killing it`);
    service.kill?.(ctx);
    took[service.name] = Date.now() - t0;
  }
  if (first) {
    const t1 = Date.now();
    try {
      await first.stop(ctx);
    } catch (err) {
      console.error(`spool: stopping ${first.name} failed: ${err.message}`);
    }
    took[first.name] = Date.now() - t1;
  }
  started.length = 0;
  try {
    ctx.log?.close();
  } catch {
    // already closed
  }
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
  const stopStatus = status?.stop();
  console.log(`\nspool: ${why}, stopping`);
  const took = await stopAll();
  await stopStatus;
  const secs = (ms) => `${(ms / 1000).toFixed(1)} s`;
  const parts = Object.entries(took).map(([name, ms]) => `${name} ${secs(ms)}`);
  console.log(`spool: stopped in ${secs(Date.now() - stopping)} (${parts.join(', ')})`);
  process.exit(0);
}

async function main() {
  loadDotEnv();
  ensurePackages();
  ensureExtensions();
  const lines = [];
  for (const service of services) {
    if (stopping !== null) return;
    started.push(service);
    const info = (await service.start(ctx)) ?? [];
    info.forEach((line, i) => lines.push(`  ${(i === 0 ? service.name : '').padEnd(10)} ${line}`));
  }
  if (stopping !== null) return;
  lines.push(
    `  ${'logs'.padEnd(10)} ${rel(LOG_FILE)}`,
    `             (the gateway's and the Edge Functions' log lines; ${
      options.verbose ? 'streamed here too: --verbose' : '`npm start -- --verbose` streams them here too'
    })`,
  );
  console.log('\nSpool is running. Ctrl-C to stop.\n');
  console.log(lines.join('\n'));
  console.log(`\n  psql "${ctx.db.postgresUrl}"\n`);
  if (!options.verbose) {
    status = statusLine({ dbUrl: ctx.db.superuserUrl, log: ctx.log });
    status.start();
  }
}

for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(signal, () => shutdown(signal));
// A closed terminal: writes fail with EIO/EPIPE; stopping must not crash on them.
for (const stream of [process.stdout, process.stderr]) stream.on('error', () => {});
// npm runs this script as its child; if npm dies without passing a signal on (SIGKILL), this
// process is re-parented: stop the stack instead of running on, orphaned, holding the ports.
const parent = process.ppid;
setInterval(() => {
  if (process.ppid !== parent) shutdown(`parent process ${parent} exited`);
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
