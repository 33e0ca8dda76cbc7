#!/usr/bin/env node
// The local Edge Runtime's deploy step: every module the Edge Functions can load, fetched into
// Deno's cache (DENO_DIR) exactly as deno.lock pins it, before the gateway serves anything, as
// `supabase functions deploy` bundles a function's whole graph up front. Run once per stack start
// (local/tools/stack.mjs, behind npm start, npm test, npm run demo and the benchmarks):
//
//   deno cache --frozen --config deno.json <every .ts file under supabase/functions>, bootstrap.ts
//
// Every file, not only each index.ts, so modules loaded by dynamic import long after boot
// (job-worker/handlers, _jobs media code) and their npm packages are cached too; the Deno tests
// (supabase/functions/tests, web/tests/*.test.ts) are in the list, so `deno test` starts warm and
// deno.lock covers them. Workers run --cached-only --frozen (functions.mjs): a module missing
// from the cache is a boot error naming the command below.
//
// deno.lock is frozen (deno.json), so neither this step nor `deno test` rewrites it. After
// changing an import or package.json (whose dependency list Deno records in the lock):
//
//   node local/standins/edge-runtime/cache.mjs --update-lock
//
// deletes deno.lock and caches the same list with --frozen=false: a lock of exactly these files'
// imports. Deno reaches the registry with the caller's environment (CA settings, proxies).
//
//   node local/standins/edge-runtime/cache.mjs               cache (what the stack does)

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { PlatformError, ROOT } from '../../tools/db.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const BOOTSTRAP = path.join(HERE, 'bootstrap.ts');
/** The command that fills the cache, for error messages. */
export const CACHE_COMMAND = 'node local/standins/edge-runtime/cache.mjs';
export const UPDATE_LOCK_COMMAND = `${CACHE_COMMAND} --update-lock`;
const CODE = /\.(ts|tsx|mts|js|mjs)$/;

/** node_modules' deno binary (the `deno` npm package), without the bin.cjs Node shim if we can. */
export function denoBinary(root) {
  const native = path.join(root, 'node_modules', 'deno', 'deno');
  try {
    if (fs.statSync(native).size > 1_000_000) return native;
  } catch {
    // fall through
  }
  const bin = path.join(root, 'node_modules', '.bin', 'deno');
  if (!fs.existsSync(bin)) throw new PlatformError(`${bin} is missing: run npm install`);
  return bin;
}

/** Every Deno source file under `dir` (recursive, sorted), skipping node_modules and dot-folders. */
function codeFiles(dir) {
  const out = [];
  const walk = (d) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) {
        if (e.name !== 'node_modules' && !e.name.startsWith('.')) walk(p);
      } else if (e.isFile() && CODE.test(e.name) && !e.name.endsWith('.d.ts')) {
        out.push(p);
      }
    }
  };
  if (fs.existsSync(dir)) walk(dir);
  return out.sort();
}

/**
 * The files whose module graphs are cached (and which deno.lock covers): bootstrap.ts, every
 * source file under supabase/functions (shared code, dynamically imported modules and the
 * functions' Deno tests included), and the web client's Deno tests.
 */
export function cacheEntries(root = ROOT) {
  const webTests = codeFiles(path.join(root, 'web', 'tests')).filter((f) => f.endsWith('.test.ts'));
  return [BOOTSTRAP, ...codeFiles(path.join(root, 'supabase', 'functions')), ...webTests];
}

/**
 * `deno cache` of every entry, with deno.lock frozen or (`frozen` false) rewritten; resolves
 * { files, code, out } (stdout + stderr, colours off).
 */
function denoCache(root, deno, frozen) {
  const files = cacheEntries(root);
  const args = ['cache', `--frozen=${frozen}`, '--config', path.join(root, 'deno.json')];
  return new Promise((resolve, reject) => {
    const child = spawn(deno, [...args, ...files.map((f) => path.relative(root, f))], {
      cwd: root,
      env: { ...process.env, NO_COLOR: '1', DENO_NO_UPDATE_CHECK: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (c) => (out += c));
    child.stderr.setEncoding('utf8').on('data', (c) => (out += c));
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ files: files.length, code: code ?? (signal ? 128 : 1), out }));
  });
}

/** Deno's output minus download chatter and its internal backtrace, for an error message. */
function essence(out) {
  const lines = out.split('\n');
  const cut = lines.findIndex((l) => l.startsWith('Stack backtrace:'));
  return lines.slice(0, cut < 0 ? undefined : cut)
    .filter((l) => !/^(Download|Initialize)\s/.test(l.trim()))
    .join('\n').trim();
}

/** A PlatformError for a failed `deno cache`, naming the fix. */
function cacheFailure(out) {
  const detail = essence(out);
  if (/lockfile is out of date/i.test(out)) {
    return new PlatformError(
      `deno.lock does not match the imports of supabase/functions (or package.json's dependency list).\n` +
        `Regenerate it with \`${UPDATE_LOCK_COMMAND}\` and commit it ` +
        `(not \`deno install --frozen=false\`, which tries to install every package.json dependency into the lock).\n\n${detail}`,
    );
  }
  if (/integrity check failed/i.test(out)) {
    return new PlatformError(
      `a package Deno downloaded does not match deno.lock's integrity hash (a corrupt cache or a ` +
        `changed registry). Clear the Deno cache (DENO_DIR) and run \`${CACHE_COMMAND}\`.\n\n${detail}`,
    );
  }
  if (/certificate|UnknownIssuer/i.test(out)) {
    return new PlatformError(
      `Deno could not verify the registry's TLS certificate. If this machine needs extra CA ` +
        `certificates, point NODE_EXTRA_CA_CERTS or DENO_CERT at them (or set ` +
        `DENO_TLS_CA_STORE=system) and run \`${CACHE_COMMAND}\`.\n\n${detail}`,
    );
  }
  return new PlatformError(`caching the Edge Functions' modules failed (\`${CACHE_COMMAND}\`):\n\n${detail}`);
}

const done = new Map(); // root -> Promise of the one cache step of this process

/**
 * Caches every module the functions (and the Deno tests) can load, as deno.lock pins it, with
 * the lock frozen. Once per process and root; later calls return the first one's result
 * (`force` runs it again: npm start's watcher does, after a file changed).
 * `say` gets the progress lines (default console.log). Rejects with a PlatformError naming the
 * fix (lock drift, certificates, integrity).
 */
export function cacheFunctionModules({ root = ROOT, deno, say = (m) => console.log(m), force = false } = {}) {
  let step = done.get(root);
  if (!step || force) {
    step = runCache({ root, deno: deno ?? denoBinary(root), say });
    done.set(root, step);
    step.catch(() => done.delete(root)); // a later call may try again (after a fix)
  }
  return step;
}

async function runCache({ root, deno, say }) {
  const where = process.env.DENO_DIR ?? "Deno's default cache";
  say(
    `spool edge runtime: caching the module graphs of the Edge Functions and their Deno tests ` +
      `(dynamic imports included), as deno.lock pins them, into ${where} ...`,
  );
  const started = Date.now();
  const { files, code, out } = await denoCache(root, deno, true);
  const ms = Date.now() - started;
  if (code !== 0) throw cacheFailure(out);
  const downloads = out.split('\n').filter((l) => /^Download\s/.test(l.trim())).length;
  say(
    `spool edge runtime: ${files} files cached in ${ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(1)} s`}` +
      (downloads ? ` (${downloads} downloads)` : ' (all were cached already)'),
  );
}

/** Deletes deno.lock and caches the same files with --frozen=false: a lock of exactly those. */
async function updateLock({ root = ROOT, say = (m) => console.log(m) } = {}) {
  const lock = path.join(root, 'deno.lock');
  const before = fs.existsSync(lock) ? fs.readFileSync(lock, 'utf8') : null;
  fs.rmSync(lock, { force: true });
  say(`spool edge runtime: regenerating deno.lock ...`);
  const { code, out } = await denoCache(root, denoBinary(root), false);
  if (code !== 0) {
    if (before !== null) fs.writeFileSync(lock, before);
    throw new PlatformError(`regenerating deno.lock failed (the old one is back):\n\n${essence(out)}`);
  }
  const after = fs.readFileSync(lock, 'utf8');
  say(`spool edge runtime: deno.lock ${before === after ? 'unchanged' : 'rewritten'}`);
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  try {
    if (args.includes('--update-lock')) await updateLock();
    else if (args.length === 0) await cacheFunctionModules();
    else throw new PlatformError(`usage: ${CACHE_COMMAND} [--update-lock]`);
  } catch (err) {
    console.error(err instanceof PlatformError ? `spool edge runtime: ${err.message}` : err);
    process.exit(1);
  }
}
