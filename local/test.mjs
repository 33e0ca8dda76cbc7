#!/usr/bin/env node
// `npm test`: a throwaway local stack, every suite, then teardown.
//
//   1. a new cluster in a temp folder on a free port (fsync off), bootstrapped
//   2. supabase/migrations applied with `supabase db push`, then pushed again: must be a no-op
//   3. pgTAP with Debian's pg_prove, as the postgres role over TCP: local/tests/*.sql (the
//      platform) then supabase/tests/*.sql (the project), each sorted
//   4. further suites (Deno, browser: to come)
// The cluster is stopped and its folder removed at the end, on failure and on Ctrl-C.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  bootstrap,
  ensureExtensions,
  ensurePackages,
  freePort,
  killChildren,
  PlatformError,
  pushMigrations,
  ROOT,
  runAsync,
  startCluster,
  stopCluster,
} from './db.mjs';

const say = (msg) => console.log(`\n== ${msg}`);

/**
 * Suites that run after pgTAP against the same stack. Each: { name, run(ctx) => exit code },
 * where ctx = { cluster, port, root }. Empty for now; the Deno suites for supabase/functions
 * and the local stand-ins, and the browser tests, are added here as they are written.
 */
const furtherSuites = [];

function sqlFiles(dir) {
  const abs = path.join(ROOT, dir);
  if (!fs.existsSync(abs)) return [];
  return fs.readdirSync(abs)
    .filter((f) => f.endsWith('.sql'))
    .sort()
    .map((f) => path.join(dir, f));
}

let cluster = null;
let tmpDir = null;
let cleanedUp = false;

/** Synchronous, so it can run from signal handlers and the exit hook too. */
function cleanup() {
  if (cleanedUp) return;
  cleanedUp = true;
  killChildren();
  try {
    if (cluster) stopCluster(cluster, { mode: 'immediate', quiet: true });
  } catch (err) {
    console.error(`spool test: could not stop the cluster: ${err.message}`);
  }
  if (tmpDir) fs.rmSync(tmpDir, { recursive: true, force: true });
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
  ensurePackages();
  ensureExtensions();
  tmpDir = fs.mkdtempSync(path.join(os.tmpdir(), 'spool-test-'));
  const port = await freePort();
  cluster = await startCluster({ dir: tmpDir, port, fsync: false });
  await bootstrap(cluster);

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
  const suites = [...sqlFiles('local/tests'), ...sqlFiles('supabase/tests')];
  const prove = await runAsync('pg_prove', [
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
    env: {
      PGPASSWORD: 'postgres',
      PGSSLMODE: 'disable',
      PGOPTIONS: '-c client_min_messages=warning',
    },
    captureStdout: false,
  });
  if (prove.code !== 0) failures.push(`pg_prove (exit ${prove.code})`);

  for (const suite of furtherSuites) {
    say(suite.name);
    const code = await suite.run({ cluster, port, root: ROOT });
    if (code !== 0) failures.push(`${suite.name} (exit ${code})`);
  }

  say('summary');
  if (failures.length > 0) {
    console.log(`FAILED: ${failures.join('; ')}`);
    return 1;
  }
  console.log('all suites passed');
  return 0;
}

let code = 1;
try {
  code = await main();
} catch (err) {
  console.error(`\nspool test: ${err instanceof PlatformError ? err.message : err.stack}`);
  if (!(err instanceof PlatformError) && cluster?.logFile && fs.existsSync(cluster.logFile)) {
    const lines = fs.readFileSync(cluster.logFile, 'utf8').trimEnd().split('\n').slice(-20);
    console.error(`\nlast lines of ${cluster.logFile}:\n${lines.join('\n')}`);
  }
  code = 1;
} finally {
  cleanup();
}
process.exit(code);
