#!/usr/bin/env node
// The local Edge Runtime's deploy step, as `supabase functions deploy` bundles a function's whole
// graph up front: once per stack start (local/tools/stack.mjs), before the gateway serves,
//
//   deno cache --frozen --config deno.json <every .ts file under supabase/functions>, bootstrap.ts
//
// fills Deno's cache (DENO_DIR) as deno.lock pins it, so workers can run --cached-only --frozen.
// Every file, not only each index.ts, so dynamically imported modules and their npm packages are
// cached too, and the Deno tests (supabase/functions/tests, web/tests/*.test.ts), so `deno test`
// starts warm and deno.lock covers them. After changing an import or package.json (whose dependency
// list Deno records in the lock), `--update-lock` regenerates deno.lock: a lock of exactly these
// files' imports.
//
//   node local/standins/edge-runtime/cache.mjs [--update-lock]

import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { PlatformError, ROOT } from '../../tools/db.mjs';

export const BOOTSTRAP = path.join(path.dirname(fileURLToPath(import.meta.url)), 'bootstrap.ts');
/** The command that fills the cache, for error messages. */
export const CACHE_COMMAND = 'node local/standins/edge-runtime/cache.mjs';
export const UPDATE_LOCK_COMMAND = `${CACHE_COMMAND} --update-lock`;
/** A `deno cache` that prints nothing for this long is stuck (it prints a line per download). */
const STALL_MS = 90_000;

/** node_modules' deno binary (the `deno` npm package), without the bin.cjs Node shim if we can. */
export function denoBinary(root) {
  const native = path.join(root, 'node_modules', 'deno', 'deno');
  if (fs.statSync(native, { throwIfNoEntry: false })?.size > 1_000_000) return native;
  const bin = path.join(root, 'node_modules', '.bin', 'deno');
  if (!fs.existsSync(bin)) throw new PlatformError(`${bin} is missing: run npm install`);
  return bin;
}

/** Every Deno source file under `dir` (recursive, sorted), skipping node_modules and dot-folders. */
function codeFiles(dir) {
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir, { recursive: true })
    .filter((rel) => /\.(ts|tsx|mts|js|mjs)$/.test(rel) && !rel.endsWith('.d.ts'))
    .filter((rel) => !rel.split(path.sep).some((part) => part === 'node_modules' || part.startsWith('.')))
    .map((rel) => path.join(dir, rel))
    .filter((p) => fs.statSync(p).isFile())
    .sort();
}

/** The files whose module graphs are cached (and which deno.lock covers). */
export function cacheEntries(root = ROOT) {
  const webTests = codeFiles(path.join(root, 'web', 'tests')).filter((f) => f.endsWith('.test.ts'));
  return [BOOTSTRAP, ...codeFiles(path.join(root, 'supabase', 'functions')), ...webTests];
}

/**
 * `deno cache` of every entry, with deno.lock frozen or (`frozen` false) rewritten; resolves
 * { files, ok, stalled, downloads, out } (stderr + stdout, colours off, download chatter and
 * backtrace dropped). A run silent for STALL_MS is killed and resolves `stalled`.
 */
async function denoCache(root, deno, frozen) {
  const files = cacheEntries(root).map((f) => path.relative(root, f));
  const args = ['cache', `--frozen=${frozen}`, '--config', path.join(root, 'deno.json'), ...files];
  const env = { ...process.env, NO_COLOR: '1', DENO_NO_UPDATE_CHECK: '1' };
  const run = promisify(execFile)(deno, args, { cwd: root, env, maxBuffer: 64 << 20 });
  let heard = Date.now();
  let stalled = false;
  for (const stream of [run.child.stdout, run.child.stderr]) stream.on('data', () => (heard = Date.now()));
  const watchdog = setInterval(() => {
    if (Date.now() - heard < STALL_MS) return;
    stalled = true;
    run.child.kill('SIGKILL');
  }, 1_000);
  const result = await run.then((r) => ({ ok: true, ...r }), (err) => {
    if (typeof err.code === 'string') throw err; // deno did not start, or its output overflowed
    return { ok: false, stdout: err.stdout, stderr: err.stderr };
  }).finally(() => clearInterval(watchdog));
  const lines = `${result.stderr}\n${result.stdout}`.split('\n');
  const downloads = lines.filter((l) => /^Download\s/.test(l.trim())).length;
  const cut = lines.findIndex((l) => l.startsWith('Stack backtrace:'));
  const out = lines.slice(0, cut < 0 ? undefined : cut)
    .filter((l) => !/^(Download|Initialize)\s/.test(l.trim()))
    .join('\n').trim();
  return { files: files.length, ok: result.ok, stalled, downloads, out };
}

/** A PlatformError for a failed `deno cache`, naming the fix; Deno's own words follow. */
function cacheFailure(out) {
  const why = /lockfile is out of date/i.test(out)
    ? "deno.lock does not match the imports of supabase/functions (or package.json's dependency list).\n" +
      `Regenerate it with \`${UPDATE_LOCK_COMMAND}\` and commit it (not \`deno install --frozen=false\`, ` +
      'which tries to install every package.json dependency into the lock).'
    // Anything else (a TLS certificate, an integrity hash, the network): Deno's words say which.
    : `caching the Edge Functions' modules failed (\`${CACHE_COMMAND}\`; Deno reaches the registry with ` +
      "this environment's CA settings (NODE_EXTRA_CA_CERTS, DENO_CERT) and proxies):";
  return new PlatformError(`${why}\n\n${out}`);
}

const done = new Map(); // root -> Promise of the one cache step of this process

/**
 * Caches every module the functions (and the Deno tests) can load, as deno.lock pins it, with the
 * lock frozen; once per process and root (later calls get the first one's result; after a failure,
 * a later call tries again). `say` gets the progress lines. Rejects with a PlatformError naming the fix.
 */
export function cacheFunctionModules({ root = ROOT, deno, say = (m) => console.log(m) } = {}) {
  if (!done.has(root)) {
    done.set(root, runCache(root, deno ?? denoBinary(root), say));
    done.get(root).catch(() => done.delete(root));
  }
  return done.get(root);
}

async function runCache(root, deno, say) {
  const where = process.env.DENO_DIR ?? "Deno's default cache";
  say(`spool edge runtime: caching the module graphs of the Edge Functions and their Deno tests ` +
    `(dynamic imports included), as deno.lock pins them, into ${where} ...`);
  const started = Date.now();
  let run = await denoCache(root, deno, true);
  const silence = `printed nothing for ${STALL_MS / 1000} s`;
  if (run.stalled) {
    // Seen once in CI: a warm-cache run that never returned. A second run has always finished.
    say(`spool edge runtime: deno cache ${silence}; killed it, running it again ...`);
    run = await denoCache(root, deno, true);
  }
  const { files, ok, stalled, downloads, out } = run;
  if (stalled) throw new PlatformError(`\`deno cache\` ${silence}, twice (\`${CACHE_COMMAND}\`):\n\n${out}`);
  if (!ok) throw cacheFailure(out);
  const took = `${((Date.now() - started) / 1000).toFixed(1)} s`;
  say(`spool edge runtime: ${files} files cached in ${took} (${downloads || 'no'} downloads)`);
}

/** Deletes deno.lock and caches the same files with --frozen=false: a lock of exactly those. */
async function updateLock(root = ROOT, say = (m) => console.log(m)) {
  const lock = path.join(root, 'deno.lock');
  const before = fs.existsSync(lock) ? fs.readFileSync(lock, 'utf8') : null;
  fs.rmSync(lock, { force: true });
  say(`spool edge runtime: regenerating deno.lock ...`);
  const { ok, out } = await denoCache(root, denoBinary(root), false);
  if (!ok) {
    if (before !== null) fs.writeFileSync(lock, before);
    throw new PlatformError(`regenerating deno.lock failed (the old one is back):\n\n${out}`);
  }
  say(`spool edge runtime: deno.lock ${before === fs.readFileSync(lock, 'utf8') ? 'unchanged' : 'rewritten'}`);
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
