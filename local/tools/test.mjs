#!/usr/bin/env node
// `npm test`: a throwaway local stack, every suite, then teardown.
//
//   1. a cluster in a temp folder on a free port (fsync off), bootstrapped; supabase/migrations
//      applied with `supabase db push`, then pushed again: must be a no-op
//   2. pgTAP (Debian's pg_prove, as postgres over TCP): local/standins/tests/*.sql, then
//      supabase/tests/*.sql, each sorted
//   3. the fake OpenAI and the API gateway (local/tools/stack.mjs startApi) on free ports against
//      that cluster, then furtherSuites below with the stack's URL and keys in their environment
//      (api.clientEnv()): the generated types, local/standins/tests, supabase/functions/tests,
//      local/tools/tests, web/ (tsc, Deno tests, browser tests in Debian's Chromium). The
//      gateway's log goes to a file; its last lines are printed when a suite fails.
// A green run means every test ran: a test that a runner skipped, ignored or left todo (node
// --test, deno test, pg_prove), or a runner with no test to run, fails the run, named in the
// output (local/tools/test-report.mjs reads each runner's report beside its usual terminal output).
// Everything (Deno workers, gateway, cluster, temp folder) is torn down at the end, on failure
// and on Ctrl-C.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { cacheFunctionModules } from '../standins/edge-runtime/cache.mjs';
import { denoBinary } from '../standins/functions.mjs';
import { startFakeOpenAI } from './fake-openai.mjs';
import { fileLog, startApi } from './stack.mjs';
import { describeSkips, PG_PROVE_ARGS, pgProveSkips, testReport } from './test-report.mjs';
import { checkTypes } from './types.mjs';
import { ensureChromium } from './web.mjs';
import { freePort, PlatformError, pushMigrations, ROOT, startThrowawayCluster } from './db.mjs';

const say = (msg) => console.log(`\n== ${msg}`);

/**
 * Suites that run after pgTAP against the same stack. Each: { name, run(ctx) => exit code },
 * where ctx = { port, root, env } and env is the stack's client environment (api.clientEnv()).
 */
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
      runTests('deno', denoBinary(root), ['test', '-A', 'supabase/functions/tests/'], {
        ...env,
        DENO_NO_UPDATE_CHECK: '1',
      }),
  },
  {
    // npm run demo's core, the README's configuration tables, npm start, import boundaries.
    name: 'local tooling (node --test local/tools/tests/)',
    run: ({ env }) => runTests('node', process.execPath, ['--test', 'local/tools/tests/'], env),
  },
  {
    // web/: its type check, its Deno tests (web/tests/*.test.ts), then the browser tests in
    // Debian's Chromium (installed as root when missing: local/tools/web.mjs ensureChromium).
    name: 'web client (tsc, deno test web/tests/*.test.ts, browser tests: node --test web/tests/)',
    run: async ({ env, root }) => {
      ensureChromium();
      const tsc = path.join(root, 'node_modules', '.bin', 'tsc');
      const contracts = fs.readdirSync(path.join(root, 'web', 'tests'))
        .filter((f) => f.endsWith('.test.ts'))
        .map((f) => path.join('web', 'tests', f));
      const code = await runGroup(tsc, ['--noEmit', '-p', 'web'], env);
      if (code !== 0) return code;
      const denoEnv = { ...env, DENO_NO_UPDATE_CHECK: '1' };
      return (await runTests('deno', denoBinary(root), ['test', '-A', ...contracts], denoEnv)) ||
        await runTests('node', process.execPath, ['--test', 'web/tests/'], env);
    },
  },
];

/**
 * The Edge Functions' environment in the test stack: hermetic (not the developer's .env), with
 * the test-only `noop` job kind enabled, and OpenAI configured against a local fake
 * (local/tools/fake-openai.mjs, started before the gateway: main() adds OPENAI_BASE_URL), so image,
 * text and the complete pack run end to end. A test that needs OpenAI unconfigured makes that
 * itself (its own handler with functionEnv({}), a page.route in the browser).
 */
const TEST_FUNCTION_ENV = { SPOOL_ENABLE_NOOP: 'true', OPENAI_API_KEY: 'sk-spool-fake' };

/** Process groups of the suites running now (a test runner's own children die with it). */
const groups = new Set();

/**
 * Runs a suite's command in a process group of its own, output to the terminal; resolves to its
 * exit code. cleanup() kills the whole group, so a runner's per-file processes (and the Deno
 * workers of gateways they started) cannot outlive npm test. `tee(text)`, if given, also gets
 * everything the command writes to stdout.
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
    child.on('error', (err) => {
      groups.delete(child.pid);
      reject(err);
    });
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
 * Runs a test runner like runGroup, `kind` 'node' (node --test ...) or 'deno' (deno test ...),
 * with a report file beside its terminal output; resolves to its exit code, or 1 if it exited 0
 * but skipped, ignored or left todo any test (each is printed).
 */
async function runTests(kind, cmd, [subcommand, ...rest], env) {
  const file = path.join(tmpDir, 'reports', `${++reportSeq}-${kind}.xml`);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const report = testReport(kind, file);
  const code = await runGroup(cmd, [subcommand, ...report.args, ...rest], env);
  if (code !== 0 && !fs.existsSync(file)) return code; // failed before it could report
  const label = `${kind === 'node' ? 'node' : 'deno'} ${[subcommand, ...rest].join(' ')}`;
  const allRan = checkAllRan(label, report.skips());
  return code !== 0 ? code : allRan ? 0 : 1;
}

/** Records and prints the tests a run did not run; true if there are none. */
function checkAllRan(label, skips) {
  if (skips.length === 0) return true;
  notRun.push({ label, skips });
  console.log(`\nnot ok: ${label} did not run ${skips.length} test(s):\n${describeSkips(skips).join('\n')}`);
  return false;
}

function sqlFiles(dir) {
  const abs = path.join(ROOT, dir);
  if (!fs.existsSync(abs)) return [];
  return fs.readdirSync(abs)
    .filter((f) => f.endsWith('.sql'))
    .sort()
    .map((f) => path.join(dir, f));
}

let cluster = null;
let tmpDir = null; // the cluster's folder, which also holds the reports and the gateway's state
let api = null;
let fakeOpenAI = null;
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

  say('Edge Functions: every module cached as deno.lock pins it (no download at run time)');
  await cacheFunctionModules();

  say('platform');
  cluster = await startThrowawayCluster('spool-test-');
  tmpDir = cluster.dir;
  const port = cluster.port;

  say('migrations: supabase db push');
  const first = await pushMigrations({ port });
  const applied = first.migrations;
  console.log(
    `applied ${applied.length} migration(s)${applied.length ? ': ' : ''}${applied.join(', ')}`,
  );

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
  const proveCode = await runGroup('pg_prove', [
    ...PG_PROVE_ARGS,
    ...(process.stdout.isTTY ? ['--color'] : []),
    '--host',
    '127.0.0.1',
    '--port',
    String(port),
    '--username',
    'postgres',
    '--dbname',
    'postgres',
    '--failures',
    '--comments',
    ...suites,
  ], {
    PGPASSWORD: 'postgres',
    PGSSLMODE: 'disable',
    PGOPTIONS: '-c client_min_messages=warning',
  }, { tee: (text) => (proveOutput += text) });
  const proveAllRan = checkAllRan('pg_prove', pgProveSkips(proveOutput));
  if (proveCode !== 0) failures.push(`pg_prove (exit ${proveCode})`);
  else if (!proveAllRan) failures.push('pg_prove (tests not run)');

  say('fake OpenAI API (local/tools/fake-openai.mjs)');
  fakeOpenAI = await startFakeOpenAI();
  console.log(`${fakeOpenAI.url}/v1: the functions' OPENAI_BASE_URL`);

  say('API gateway (Edge Functions, stand-ins, pg_net deliverer)');
  const apiDir = path.join(tmpDir, 'api');
  gatewayLog = fileLog(path.join(apiDir, 'gateway.log'));
  api = await startApi({
    dbPort: port,
    apiPort: await freePort(),
    stateDir: apiDir,
    env: { ...TEST_FUNCTION_ENV, OPENAI_BASE_URL: `${fakeOpenAI.url}/v1` },
    log: gatewayLog,
  });
  const names = api.functions();
  console.log(`${api.url}: functions ${names.length ? names.join(', ') : '(none)'}; log ${gatewayLog.file}`);
  console.log(`API keys: ${api.keyMode} (SPOOL_KEYS=new|legacy; .ci/run runs npm test in both)`);

  const suiteCtx = { port, root: ROOT, env: api.clientEnv() };
  for (const suite of furtherSuites) {
    say(suite.name);
    const code = await suite.run(suiteCtx);
    if (code !== 0) failures.push(`${suite.name} (exit ${code})`);
  }
  if (failures.length > 0) printGatewayLog();

  say('API gateway: stop');
  await api.close();
  api = null;
  await fakeOpenAI.close();
  fakeOpenAI = null;

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

/** The last lines of the gateway's log (worker lifecycle, function output, stand-in errors). */
function printGatewayLog(lines = 60) {
  if (!gatewayLog) return;
  try {
    const text = fs.readFileSync(gatewayLog.file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
    // The temp folder goes at teardown: keep the whole log of a failed run where it can be read.
    const kept = path.join(os.tmpdir(), 'spool-test-gateway.log');
    fs.copyFileSync(gatewayLog.file, kept);
    console.log(`\nlast ${lines} lines of the gateway log (all of it: ${kept}):\n${text}`);
  } catch {
    // no log yet
  }
}

let code = 1;
try {
  code = await main();
} catch (err) {
  console.error(`\nspool test: ${err instanceof PlatformError ? err.message : err.stack}`);
  printGatewayLog();
  if (!(err instanceof PlatformError) && cluster?.logFile && fs.existsSync(cluster.logFile)) {
    const lines = fs.readFileSync(cluster.logFile, 'utf8').trimEnd().split('\n').slice(-20);
    console.error(`\nlast lines of ${cluster.logFile}:\n${lines.join('\n')}`);
  }
  code = 1;
} finally {
  cleanup();
}
process.exit(code);
