#!/usr/bin/env node
// `npm run bench`: Spool's benchmarks on a throwaway local database.
//
// Sections (each a module exporting its runner and its report):
//   db   bench/db.mjs   the SQL API's claim/complete throughput against a bare SKIP LOCKED queue
//
// Each section's results go to bench/results/<section>-<timestamp>.json. The exit status is
// non-zero only if a section found a correctness problem (a duplicate or a missing job) or could
// not run; speed is reported, never asserted.
//
//   npm run bench [-- options]
//     --jobs N          jobs per cell (default 20000)
//     --batch1-jobs N   jobs in the batch-size-1 cells (default: --jobs)
//     --users N         job owners (default 400)
//     --claimers 1,8,32 claimer counts
//     --batches 1,10,50 batch sizes
//     --repeats N       runs of the target cell (8 claimers, batch 50), median reported (default 3)
//     --quick           a smoke run: 2000 jobs, 1 repeat, no warm-up
//     --keep            leave the database running afterwards (prints how to stop it)

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { PlatformError, startBenchDatabase } from './cluster.mjs';
import { formatDbReport, runDbBench } from './db.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const RESULTS = path.join(HERE, 'results');

const USAGE = fs.readFileSync(fileURLToPath(import.meta.url), 'utf8')
  .split('\n').filter((l) => l.startsWith('//   npm run bench') || l.startsWith('//     '))
  .map((l) => l.slice(3)).join('\n');

function parseArgs(argv) {
  const opts = {};
  const list = (v) => v.split(',').map((x) => positiveInt(x));
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = () => {
      if (i + 1 >= argv.length) throw new PlatformError(`${a} needs a value\n${USAGE}`);
      return argv[++i];
    };
    if (a === '--jobs') opts.jobs = positiveInt(next());
    else if (a === '--batch1-jobs') opts.batch1Jobs = positiveInt(next());
    else if (a === '--users') opts.users = positiveInt(next());
    else if (a === '--claimers') opts.claimers = list(next());
    else if (a === '--batches') opts.batches = list(next());
    else if (a === '--repeats') opts.repeats = positiveInt(next());
    else if (a === '--quick') Object.assign(opts, { jobs: 2000, repeats: 1, warmupJobs: 0 });
    else if (a === '--keep') opts.keep = true;
    else if (a === '--help' || a === '-h') opts.help = true;
    else throw new PlatformError(`unknown argument ${a}\n${USAGE}`);
  }
  return opts;
}

function positiveInt(v) {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new PlatformError(`expected a positive integer, got ${JSON.stringify(v)}`);
  return n;
}

function machine() {
  return {
    node: process.version,
    platform: `${os.type()} ${os.release()} ${os.arch()}`,
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model,
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    loadavg: os.loadavg().map((x) => Math.round(x * 100) / 100),
  };
}

function writeResults(section, result, startedAt) {
  fs.mkdirSync(RESULTS, { recursive: true });
  const stamp = startedAt.toISOString().replace(/[:.]/g, '-');
  const file = path.join(RESULTS, `${section}-${stamp}.json`);
  fs.writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`);
  return path.relative(process.cwd(), file);
}

async function main() {
  const { keep, help, ...opts } = parseArgs(process.argv.slice(2));
  if (help) {
    console.log(USAGE);
    return 0;
  }
  const log = (m) => console.log(`bench: ${m}`);
  const startedAt = new Date();
  const machineBefore = machine();
  log(`${machineBefore.cpus} CPUs (${machineBefore.cpuModel}), load ${machineBefore.loadavg.join(' ')}, node ${machineBefore.node}`);

  const database = await startBenchDatabase({ log });
  const onSignal = (sig) => {
    console.error(`bench: ${sig}, stopping the throwaway database`);
    database.stop();
    process.exit(130);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  let ok = true;
  try {
    // --- db section ------------------------------------------------------------------------
    log('db: Spool claim_jobs + complete_jobs vs a bare SKIP LOCKED queue');
    const t0 = Date.now();
    const result = await runDbBench({ adminUrl: database.adminUrl, claimerUrl: database.claimerUrl, log, ...opts });
    const file = writeResults('db', {
      section: 'db',
      startedAt: startedAt.toISOString(),
      seconds: Math.round((Date.now() - t0) / 1000),
      machine: { ...machineBefore, loadavgAfter: machine().loadavg },
      ...result,
    }, startedAt);
    console.log('');
    for (const line of formatDbReport(result)) console.log(line);
    console.log('');
    log(`db: ${result.ok ? 'every job completed exactly once' : 'CORRECTNESS FAILURE (see ✗ above)'}; ` +
      `${Math.round((Date.now() - t0) / 1000)} s; results in ${file}`);
    ok &&= result.ok;
    // --- later sections (end-to-end through job-worker, ...) go here ---------------------------
  } finally {
    if (keep) {
      log(`database left running: ${database.claimerUrl} (superuser ${database.adminUrl});\n` +
        `       stop it with: node local/db.mjs stop --dir ${database.dir} && rm -rf ${database.dir}`);
    } else {
      database.stop();
    }
  }
  return ok ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (err) => {
    console.error(`bench: ${err instanceof PlatformError ? err.message : err.stack}`);
    process.exit(2);
  },
);
