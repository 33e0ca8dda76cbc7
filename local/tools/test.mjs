#!/usr/bin/env node
// `npm test`: a throwaway local stack, every suite, then teardown (at the end, on failure, on Ctrl-C).
//
//   1. a throwaway cluster (db.mjs), supabase/migrations pushed, then pushed again: must be a no-op
//   2. pgTAP (pg_prove as postgres): local/standins/tests/*.sql, then supabase/tests/*.sql
//   3. the fake OpenAI and the API gateway (stack.mjs startApi) on free ports, then furtherSuites
//      with api.clientEnv() in their environment. The gateway logs to a file; its last lines are
//      printed when a suite fails.
// A green run means every test ran: a test that node --test, deno test or pg_prove skipped, ignored
// or left todo, or a runner with no test to run, fails the run, named (local/tools/test-report.mjs).

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { denoBinary } from '../standins/edge-runtime/cache.mjs';
import { startFakeOpenAI } from './fake-openai.mjs';
import { fileLog, startApi } from './stack.mjs';
import { describeSkips, PG_PROVE_ARGS, pgProveSkips, testReport } from './test-report.mjs';
import { checkTypes } from './types.mjs';
import { ensureChromium } from './web.mjs';
import { freePort, PlatformError, pushMigrations, ROOT, startThrowawayCluster } from './db.mjs';

const say = (msg) => console.log(`\n== ${msg}`);
const DENO_ENV = { DENO_NO_UPDATE_CHECK: '1' };

/** Suites run after pgTAP against the same stack: { name, run({ port, root, env }) => exit code }. */
const furtherSuites = [
  {
    // database.types.ts must be what `npm run gen:types` makes of the migrations just applied.
    name: 'generated types (database.types.ts matches the migrations)',
    run: ({ port }) => checkTypes({ port }),
  },
  {
    name: 'local platform contract tests (node --test local/standins/tests/)',
    run: ({ env }) => runTests('node', process.execPath, ['--test', 'local/standins/tests/'], env),
  },
  {
    name: 'Edge Functions tests (deno test -A supabase/functions/tests/)',
    run: ({ env, root }) =>
      runTests('deno', denoBinary(root), ['test', '-A', 'supabase/functions/tests/'], { ...env, ...DENO_ENV }),
  },
  {
    // npm run demo's core, the README's configuration tables, npm start, import boundaries.
    name: 'local tooling (node --test local/tools/tests/)',
    run: ({ env }) => runTests('node', process.execPath, ['--test', 'local/tools/tests/'], env),
  },
  {
    // Debian's Chromium for the browser tests: installed as root when missing (web.mjs ensureChromium).
    name: 'web client (tsc, deno test web/tests/*.test.ts, browser tests: node --test web/tests/)',
    run: async ({ env, root }) => {
      ensureChromium();
      const tsc = path.join(root, 'node_modules', '.bin', 'tsc');
      const contracts = fs.readdirSync(path.join(root, 'web', 'tests'))
        .filter((f) => f.endsWith('.test.ts'))
        .map((f) => path.join('web', 'tests', f));
      const code = await runGroup(tsc, ['--noEmit', '-p', 'web'], env);
      if (code !== 0) return code;
      return (await runTests('deno', denoBinary(root), ['test', '-A', ...contracts], { ...env, ...DENO_ENV })) ||
        await runTests('node', process.execPath, ['--test', 'web/tests/'], env);
    },
  },
];

/**
 * The functions' environment in the test stack: hermetic (not the developer's .env), the test-only
 * `noop` kind on, OpenAI configured against fake-openai.mjs (main() adds OPENAI_BASE_URL).
 */
const TEST_FUNCTION_ENV = { SPOOL_ENABLE_NOOP: 'true', OPENAI_API_KEY: 'sk-spool-fake' };

/** Process groups of the suites running now (a test runner's own children die with it). */
const groups = new Set();

/**
 * Runs a suite's command in a process group of its own (killed whole, so a runner's per-file
 * processes and their gateways' Deno workers cannot outlive npm test), output to the terminal and
 * to `tee(text)` if given; resolves to its exit code.
 */
function runGroup(cmd, args, env, { tee = null } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      cwd: ROOT,
      env: { ...process.env, ...env },
      stdio: ['ignore', tee ? 'pipe' : 'inherit', 'inherit'],
      detached: true,
    });
    child.stdout?.setEncoding('utf8').on('data', (text) => {
      process.stdout.write(text);
      tee(text);
    });
    groups.add(child.pid);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      groups.delete(child.pid);
      try {
        process.kill(-child.pid, 'SIGKILL'); // anything the suite left running
      } catch {
        // nothing left: the usual case
      }
      resolve(code ?? (signal ? 128 : 1));
    });
  });
}

/** What the runners did not run, per run: [{ label, skips }] (see local/tools/test-report.mjs). */
const notRun = [];
let reportSeq = 0;

/**
 * Runs a test runner (`kind` 'node' or 'deno') like runGroup with a report beside its output;
 * resolves to its exit code, or 1 if it exited 0 but did not run every test (each is printed).
 */
async function runTests(kind, cmd, [subcommand, ...rest], env) {
  const file = path.join(cluster.dir, 'reports', `${++reportSeq}-${kind}.xml`);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const report = testReport(kind, file);
  const code = await runGroup(cmd, [subcommand, ...report.args, ...rest], env);
  if (code !== 0 && !fs.existsSync(file)) return code; // failed before it could report
  const allRan = checkAllRan(`${kind} ${[subcommand, ...rest].join(' ')}`, report.skips());
  return code !== 0 ? code : allRan ? 0 : 1;
}

/** Records and prints the tests a run did not run; true if there are none. */
function checkAllRan(label, skips) {
  if (skips.length === 0) return true;
  notRun.push({ label, skips });
  console.log(`\nnot ok: ${label} did not run ${skips.length} test(s):\n${describeSkips(skips).join('\n')}`);
  return false;
}

const sqlFiles = (dir) =>
  fs.readdirSync(path.join(ROOT, dir)).filter((f) => f.endsWith('.sql')).sort().map((f) => path.join(dir, f));

let cluster = null; // its temp folder also holds the reports and the gateway's state
let api = null;
let gatewayLog = null;
let cleanedUp = false;

/** Synchronous, so it can run from signal handlers and the exit hook too. */
function cleanup() {
  if (cleanedUp) return;
  cleanedUp = true;
  for (const pgid of groups) {
    try {
      process.kill(-pgid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  api?.killSync();
  try {
    cluster?.stop();
  } catch (err) {
    console.error(`spool test: could not stop the cluster: ${err.message}`);
  }
}

for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(signal, () => {
    console.error(`\nspool test: ${signal}, tearing down`);
    cleanup();
    process.exit(128 + os.constants.signals[signal]);
  });
}
process.on('exit', cleanup);

async function main() {
  const failures = [];

  say('platform');
  cluster = await startThrowawayCluster('spool-test-');
  const port = cluster.port;

  say('migrations: supabase db push');
  const first = await pushMigrations({ port });
  console.log(`applied ${first.migrations.length} migration(s) ${first.migrations.join(', ')}`);

  say('migrations: a second db push applies nothing');
  const second = await pushMigrations({ port });
  if (second.upToDate === true && second.migrations.length === 0) {
    console.log('ok: the database is up to date');
  } else {
    console.log(`not ok: the second push applied ${JSON.stringify(second.migrations)}`);
    failures.push('second db push was not a no-op');
  }

  say('pgTAP (pg_prove as postgres)');
  const suites = [...sqlFiles('local/standins/tests'), ...sqlFiles('supabase/tests')];
  let proveOutput = '';
  const proveArgs = [...PG_PROVE_ARGS, ...(process.stdout.isTTY ? ['--color'] : []), '--host', '127.0.0.1',
    '--port', String(port), '--username', 'postgres', '--dbname', 'postgres', '--failures', '--comments'];
  const proveEnv = { PGPASSWORD: 'postgres', PGSSLMODE: 'disable', PGOPTIONS: '-c client_min_messages=warning' };
  const proveCode = await runGroup('pg_prove', [...proveArgs, ...suites], proveEnv, { tee: (t) => (proveOutput += t) });
  const proveAllRan = checkAllRan('pg_prove', pgProveSkips(proveOutput));
  if (proveCode !== 0) failures.push(`pg_prove (exit ${proveCode})`);
  else if (!proveAllRan) failures.push('pg_prove (tests not run)');

  say('fake OpenAI API (local/tools/fake-openai.mjs)');
  const fakeOpenAI = await startFakeOpenAI();

  say('API gateway (Edge Functions, stand-ins, pg_net deliverer)');
  const apiDir = path.join(cluster.dir, 'api');
  gatewayLog = fileLog(path.join(apiDir, 'gateway.log'));
  api = await startApi({
    dbPort: port,
    apiPort: await freePort(),
    stateDir: apiDir,
    env: { ...TEST_FUNCTION_ENV, OPENAI_BASE_URL: `${fakeOpenAI.url}/v1` },
    log: gatewayLog,
  });
  console.log(`${api.url}, API keys ${api.keyMode} (SPOOL_KEYS), log ${gatewayLog.file}`);

  const suiteCtx = { port, root: ROOT, env: api.clientEnv() };
  for (const suite of furtherSuites) {
    say(suite.name);
    const code = await suite.run(suiteCtx);
    if (code !== 0) failures.push(`${suite.name} (exit ${code})`);
  }
  if (failures.length > 0) printLogs();

  say('API gateway: stop');
  await api.close();
  api = null;
  await fakeOpenAI.close();

  say('summary');
  if (failures.length > 0) {
    console.log(`FAILED: ${failures.join('; ')}`);
    for (const { label, skips } of notRun) {
      console.log(`not run by ${label}:\n${describeSkips(skips).join('\n')}`);
    }
    return 1;
  }
  console.log('all suites passed');
  return 0;
}

/**
 * A failed run's logs: the gateway's last 60 lines (worker lifecycle, function output, stand-in
 * errors) and, after a crash, the cluster's last 20.
 */
function printLogs(crash = false) {
  const tail = (file, n) => fs.readFileSync(file, 'utf8').trimEnd().split('\n').slice(-n).join('\n');
  if (gatewayLog && fs.existsSync(gatewayLog.file)) {
    // The temp folder goes at teardown: keep the whole log of a failed run where it can be read.
    const kept = path.join(os.tmpdir(), 'spool-test-gateway.log');
    fs.copyFileSync(gatewayLog.file, kept);
    console.log(`\nlast 60 lines of the gateway log (all of it: ${kept}):\n${tail(kept, 60)}`);
  }
  if (crash && cluster && fs.existsSync(cluster.logFile)) {
    console.error(`\nlast lines of ${cluster.logFile}:\n${tail(cluster.logFile, 20)}`);
  }
}

let code = 1;
try {
  code = await main();
} catch (err) {
  console.error(`\nspool test: ${err instanceof PlatformError ? err.message : err.stack}`);
  printLogs(!(err instanceof PlatformError));
} finally {
  cleanup();
}
process.exit(code);
