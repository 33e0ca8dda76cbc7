#!/usr/bin/env node
// `npm start`: the Spool platform on this machine, without Docker, until Ctrl-C.
//
// Services start in order and stop in reverse. Each is { name, start(ctx), stop(ctx) }:
// start may add to ctx (what later services need, e.g. ctx.db) and returns lines to print;
// stop undoes it: `db` (Postgres), then `api` (the gateway on SPOOL_API_PORT with the Edge
// Functions in Deno, the REST/Auth/Storage stand-ins and the pg_net deliverer), then `web` (the
// web client in Vite's dev server on SPOOL_WEB_PORT, local/web.mjs).
//
//   npm start                 start (reusing the cluster in <state>/db)
//   npm start -- --reset      delete <state>/db first: a fresh cluster, bootstrap and migrations
//   npm start -- --include-all
//                             pass --include-all to `supabase db push` (out-of-order migrations)
//
// <state> is this checkout's state folder outside the repository (local/db.mjs STATE_DIR:
// ~/.local/state/spool/<checkout>-<hash>, /var/lib/spool/... as root), so the web server on
// SPOOL_WEB_PORT, rooted in web/, cannot reach the keys, the Storage files or the database.

import fs from 'node:fs';
import path from 'node:path';
import {
  clusterStatus,
  DEFAULT_DIR,
  ensureBootstrapped,
  ensureExtensions,
  ensurePackages,
  ensureStateDir,
  envPort,
  LEGACY_STATE_DIR,
  loadDotEnv,
  PlatformError,
  pushMigrations,
  ROOT,
  startCluster,
  stopCluster,
} from './db.mjs';
import { DEFAULT_STATE_DIR as STATE_DIR, envApiPort, startApi } from './stack.mjs';
import { envWebPort, startWebDev } from './web.mjs';

const argv = process.argv.slice(2);
const unknown = argv.filter((a) => !['--reset', '--include-all'].includes(a));
if (unknown.length > 0) {
  console.error(`spool: unknown argument(s) ${unknown.join(' ')} (known: --reset, --include-all)`);
  process.exit(2);
}
// Paths inside the checkout relative to it, the rest (the state folder) as they are.
const rel = (p) => {
  const r = path.relative(ROOT, p);
  return r.startsWith('..') || path.isAbsolute(r) ? p : r;
};
const options = { reset: argv.includes('--reset'), includeAll: argv.includes('--include-all') };

/** @type {{ name: string, start: (ctx: object) => Promise<string[] | void>, stop: (ctx: object) => Promise<void> | void }[]} */
const services = [
  {
    name: 'db',
    async start(ctx) {
      const port = envPort();
      ensureStateDir(STATE_DIR);
      if (options.reset && fs.existsSync(DEFAULT_DIR)) {
        if (clusterStatus(DEFAULT_DIR).running) stopCluster({ dir: DEFAULT_DIR });
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
      stopCluster({ dir: DEFAULT_DIR }, { mode: 'fast' });
    },
  },
  {
    // The API gateway (local/gateway/server.mjs) on SPOOL_API_PORT: the Edge Functions in Deno
    // (restarted when their files change), the REST/Auth/Storage stand-ins and the pg_net
    // deliverer; plus the Vault secrets that let an insert ring job-worker.
    name: 'api',
    async start(ctx) {
      const api = await startApi({
        dbPort: ctx.db.port,
        apiPort: envApiPort(),
        stateDir: STATE_DIR,
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
let stopping = false;

async function stopAll() {
  for (const service of started.reverse()) {
    try {
      await service.stop(ctx);
    } catch (err) {
      console.error(`spool: stopping ${service.name} failed: ${err.message}`);
    }
  }
  started.length = 0;
}

async function shutdown(signal) {
  if (stopping) {
    console.error('spool: second signal, exiting without waiting for the services to stop');
    process.exit(1);
  }
  stopping = true;
  console.log(`\nspool: ${signal}, stopping`);
  await stopAll();
  process.exit(0);
}

/** An older checkout kept its state in <repo>/.spool, where a web server rooted there reaches it. */
function warnLegacyState() {
  if (!fs.existsSync(LEGACY_STATE_DIR)) return;
  console.warn(
    `spool: ${rel(LEGACY_STATE_DIR)}/ is the state of an older Spool (keys, Storage files, a Postgres cluster) and is ` +
      `no longer used: the state is now in ${STATE_DIR}. Delete it: node local/db.mjs stop --dir ` +
      `${rel(path.join(LEGACY_STATE_DIR, 'db'))}; rm -rf ${rel(LEGACY_STATE_DIR)}`,
  );
}

async function main() {
  loadDotEnv();
  warnLegacyState();
  ensurePackages();
  ensureExtensions();
  const lines = [];
  for (const service of services) {
    if (stopping) return;
    started.push(service);
    const info = (await service.start(ctx)) ?? [];
    info.forEach((line, i) => lines.push(`  ${(i === 0 ? service.name : '').padEnd(10)} ${line}`));
  }
  console.log('\nSpool is running. Ctrl-C to stop.\n');
  console.log(lines.join('\n'));
  console.log(`\n  psql "${ctx.db.postgresUrl}"\n`);
}

for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(signal, () => shutdown(signal));

try {
  await main();
  // Keep the process alive until a signal arrives.
  setInterval(() => {}, 1 << 30);
} catch (err) {
  console.error(`\nspool: ${err instanceof PlatformError ? err.message : err.stack}`);
  await stopAll();
  process.exit(1);
}
