// The local Spool stack as one call: Postgres (db.mjs) + the API gateway on one port
// (standins/server.mjs: Edge Functions, the stand-ins, the pg_net deliverer) + the Vault secrets
// the doorbell reads, so that inserting a job rings job-worker. startApi() is the second half
// alone, for callers that run the database themselves (npm test).
//
//   const stack = await startStack({ dbPort, apiPort, stateDir, env, fsync: false });
//   stack.url, .anonKey, .serviceRoleKey, .dbUrl, .superuserUrl, .keyMode ('new' | 'legacy')
//   stack.clientEnv()     SUPABASE_URL, SUPABASE_ANON_KEY, ... for a test process
//   await stack.stop()    gateway (Deno workers included), then the cluster; killSync() cannot wait

import fs from 'node:fs';
import path from 'node:path';
import { parseEnv } from 'node:util';
import {
  ensureBootstrapped, ensureExtensions, ensurePackages, ensureStateDir, envPort, PlatformError, postgresUrl,
  pushMigrations, ROOT, startCluster, STATE_DIR, stopCluster, superuserUrl, withClient,
} from './db.mjs';
import { cacheFunctionModules } from '../standins/edge-runtime/cache.mjs';
import { discoverFunctions, killWorkersSync } from '../standins/functions.mjs';
import { startGateway } from '../standins/server.mjs';

export const envApiPort = () => envPort('SPOOL_API_PORT', 54321);

/**
 * The Edge Functions' environment besides what Supabase injects: every variable named in .env or
 * .env.example, valued from process.env (db.mjs loadDotEnv() fills it from .env) or else .env.
 */
export function functionEnv(root = ROOT) {
  const read = (file) => {
    try {
      return parseEnv(fs.readFileSync(path.join(root, file), 'utf8'));
    } catch (err) {
      if (err.code === 'ENOENT') return {};
      throw new PlatformError(`${file}: ${err.message}`);
    }
  };
  const dotEnv = read('.env');
  const names = new Set([...Object.keys(read('.env.example')), ...Object.keys(dotEnv)]);
  const env = {};
  for (const name of names) {
    const value = process.env[name] ?? dotEnv[name];
    if (value !== undefined) env[name] = value;
  }
  return env;
}

/** Sets (idempotent) the Vault secrets spool.ring_doorbell() reads: where job-worker is, its key. */
async function setDoorbellSecrets(dbUrl, { projectUrl, workerSecret }) {
  const secrets = [
    ['spool_project_url', projectUrl, 'Spool local platform: the API gateway job-worker is served on'],
    ['spool_worker_secret', workerSecret, 'Spool local platform: the secret (service_role) key job-worker accepts'],
  ];
  await withClient(dbUrl, async (client) => {
    for (const [name, value, description] of secrets) {
      const sql = 'select id, decrypted_secret from vault.decrypted_secrets where name = $1';
      const { rows } = await client.query(sql, [name]);
      if (rows.length === 0) {
        await client.query('select vault.create_secret($1, $2, $3)', [value, name, description]);
      } else if (rows[0].decrypted_secret !== value) {
        await client.query('select vault.update_secret($1, $2)', [rows[0].id, value]);
      }
    }
  });
}

/** Prints gateway log lines: a function's output as `name | line`, everything else as JSON. */
export function consoleLog(line) {
  if (line.stream && line.function) {
    const out = line.stream === 'stderr' ? process.stderr : process.stdout;
    out.write(`${line.function} | ${line.msg}\n`);
  } else {
    console.log(JSON.stringify(line));
  }
}

/** A log sink appending JSON lines to `file` (created, 0600, with its folder). */
export function fileLog(file) {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const fd = fs.openSync(file, 'a', 0o600);
  const sink = (line) => fs.writeSync(fd, `${JSON.stringify(line)}\n`);
  sink.file = file;
  sink.close = () => fs.closeSync(fd);
  return sink;
}

/**
 * Starts the gateway against a running, migrated database and sets the doorbell's secrets. `env`:
 * the functions' extra environment; `log`: a sink for log lines; `watch`: restart a function on edits.
 */
export async function startApi({
  dbPort, apiPort = envApiPort(), stateDir = STATE_DIR, env = functionEnv(), log = consoleLog,
  quiet = false, watch = false,
} = {}) {
  if (!dbPort) throw new PlatformError('startApi needs the database port (dbPort)');
  fs.mkdirSync(stateDir, { recursive: true });
  // As `supabase functions deploy`: every module the functions can load into Deno's cache, as
  // deno.lock pins it; the workers run --cached-only. Once per process.
  const say = (msg) => {
    if (log !== consoleLog) log({ service: 'edge-runtime', event: 'modules_cache', msg });
    if (!quiet) console.log(msg);
  };
  await cacheFunctionModules({ root: ROOT, say });
  let gateway;
  try {
    // Pickup latency matters: every function's worker is started now, not on its first call.
    const options = { functions: { prewarm: true, watch } };
    gateway = await startGateway({ root: ROOT, stateDir, port: apiPort, dbPort, env, quiet, log, options });
  } catch (err) {
    if (err.code === 'EADDRINUSE') {
      throw new PlatformError(`port ${apiPort} on 127.0.0.1 is in use; set SPOOL_API_PORT to another port`);
    }
    throw err;
  }
  const { keys } = gateway;
  try {
    await setDoorbellSecrets(superuserUrl(dbPort), { projectUrl: gateway.url, workerSecret: keys.serviceRoleKey });
  } catch (err) {
    await gateway.close();
    throw err;
  }
  return {
    url: gateway.url,
    functionsUrl: `${gateway.url}/functions/v1`,
    keyMode: keys.mode,
    anonKey: keys.anonKey,
    serviceRoleKey: keys.serviceRoleKey,
    dbUrl: postgresUrl(dbPort),
    superuserUrl: superuserUrl(dbPort),
    functions: () => discoverFunctions(path.join(ROOT, 'supabase', 'functions')),
    // Both key names of a role hold the key in force (SPOOL_KEYS says which system), so a client
    // works in either mode. SPOOL_TEST_SIGNING_KEY (new mode) and SPOOL_TEST_JWT_SECRET (legacy
    // tokens; Storage's signed URLs in both) let tests sign users' access tokens as Auth would.
    clientEnv() {
      const env = {
        SPOOL_KEYS: keys.mode,
        SUPABASE_URL: gateway.url,
        SUPABASE_ANON_KEY: keys.anonKey,
        SUPABASE_SERVICE_ROLE_KEY: keys.serviceRoleKey,
        SUPABASE_PUBLISHABLE_KEY: keys.publishableKey,
        SUPABASE_SECRET_KEY: keys.secretKey,
        SUPABASE_DB_URL: postgresUrl(dbPort),
        SPOOL_TEST_SUPERUSER_URL: superuserUrl(dbPort),
        SPOOL_TEST_DB_PORT: String(dbPort),
        SPOOL_TEST_JWT_SECRET: keys.jwtSecret,
        SPOOL_TEST_STATE_DIR: stateDir,
        // The gateway's log, when it goes to a file (npm test): tests read worker lifecycle from it.
        ...(log.file ? { SPOOL_TEST_GATEWAY_LOG: log.file } : {}),
      };
      if (keys.mode === 'new') {
        env.SUPABASE_JWKS = JSON.stringify(keys.jwks);
        env.SPOOL_TEST_SIGNING_KEY = JSON.stringify(keys.signingKey);
      }
      return env;
    },
    close: () => gateway.close(),
    killSync: killWorkersSync,
  };
}

/** The whole stack: a cluster in <stateDir>/db on dbPort (made as needed), then startApi. */
export async function startStack({ dbPort = envPort(), stateDir = STATE_DIR, fsync = true, ...apiOptions } = {}) {
  ensurePackages();
  ensureExtensions();
  ensureStateDir(stateDir); // as root searchable, so the postgres OS user reaches <stateDir>/db
  const db = await startCluster({ dir: path.join(stateDir, 'db'), port: dbPort, fsync });
  let api;
  try {
    await ensureBootstrapped(db);
    await pushMigrations({ port: dbPort });
    api = await startApi({ ...apiOptions, dbPort, stateDir });
  } catch (err) {
    stopCluster(db, { mode: 'immediate', quiet: true });
    throw err;
  }
  return {
    ...api,
    db,
    async stop() {
      try {
        await api.close();
      } finally {
        stopCluster(db, { quiet: true });
      }
    },
    killSync() {
      killWorkersSync();
      try {
        stopCluster(db, { mode: 'immediate', quiet: true });
      } catch {
        // best effort on the way out
      }
    },
  };
}
