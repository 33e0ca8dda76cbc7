// The local Edge Runtime: /functions/v1/<name>… served by real Deno, as Supabase serves it.
//
// Every supabase/functions/<name>/index.ts (not `_*`, not `tests`) runs in its own long-lived
// `deno run --cached-only --frozen` process started from edge-runtime/bootstrap.ts, which adds what
// Supabase's Edge Runtime has and plain Deno lacks (EdgeRuntime.waitUntil, beforeunload,
// Deno.serve on a private loopback port). Workers never download: edge-runtime/cache.mjs caches
// every module as deno.lock pins it before the gateway serves (what `supabase functions deploy`
// does up front); a missing module is a 503 BOOT_ERROR whose log line names the fix.
//
//   routing     /functions/v1/<name>/a?x=1 reaches the function as /<name>/a?x=1; headers pass
//               (Host too) plus x-forwarded-for/-host/-proto; bodies stream both ways.
//   verify_jwt  per function from supabase/config.toml (read at start; default true): `Authorization:
//               Bearer <JWT>` that keys.mjs verifies (OPTIONS excepted; sb_ keys are no JWTs), else 401
//               {"code":401,"message":"Missing authorization header" | "Invalid JWT"}.
//   limits      hosted's per_worker policy (supabase/edge-runtime), each a SPOOL_EDGE_* variable:
//               wall clock (WALL_CLOCK_MS, 150000) from the first request, background work
//               included: retired at half, beforeunload 'wall_clock' and killed at the limit.
//               CPU time (CPU_TIME_MS 2000, CPU_SOFT_MS 1000) of the isolate's thread over the
//               worker's life, boot included, sampled from /proc every 25 ms: retired at the soft
//               limit, beforeunload 'cpu' at 90%, killed at the limit. Memory (MEMORY_MB 256) as
//               V8 heap + external, reported by the worker, V8's heap capped there too: retired at
//               half, beforeunload 'memory' at 90%, killed at the limit. Requests in flight on a
//               killed worker get 546 WORKER_LIMIT.
//   errors      { code, message } as the Edge Runtime words them: 404 NOT_FOUND, 503 BOOT_ERROR,
//               500 WORKER_ERROR, 546 WORKER_LIMIT, 504 IDLE_TIMEOUT (no answer within 150 s).
//   env         SUPABASE_URL, SUPABASE_DB_URL and the keys of the stack's mode (workerEnv), ctx.env
//               minus SUPABASE_* names (reserved), and a few of the gateway's own (INHERITED_ENV).
//   logs        JSON lines through ctx.log (edge_limits, worker_spawned/ready/retired/killed/
//               exited, boot failures); a function's own output as { function, stream, msg }.
//
// Options (ctx.options.functions or createFunctionsRuntime's second argument): dir, configFile,
// the LIMITS below by name (over their variables), prewarm (spawn every worker at start and a
// replacement on retirement; npm start and npm test), watch (retire a function's workers when its
// files or _shared/ change; npm start).

import { spawn } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { stripVTControlCharacters } from 'node:util';
import { parse as parseToml } from 'smol-toml';
import { PlatformError } from '../tools/db.mjs';
import { CACHE_COMMAND, denoBinary, UPDATE_LOCK_COMMAND } from './edge-runtime/cache.mjs';

export { denoBinary };

const PREFIX = '/functions/v1';
/**
 * Limits by option name: the SPOOL_EDGE_* variable that sets it and hosted's value
 * (supabase/edge-runtime .cargo/config.toml: CPU soft 1000, hard 2000, 256 MB; 150 s wall clock).
 * The soft CPU limit defaults to half of the hard one.
 */
const LIMITS = {
  wallClockMs: ['SPOOL_EDGE_WALL_CLOCK_MS', 150_000],
  cpuTimeMs: ['SPOOL_EDGE_CPU_TIME_MS', 2_000],
  cpuSoftMs: ['SPOOL_EDGE_CPU_SOFT_MS', undefined],
  memoryMb: ['SPOOL_EDGE_MEMORY_MB', 256],
  requestIdleTimeoutMs: [undefined, 150_000],
};
/** A worker that has not called Deno.serve after this long fails its boot. */
const BOOT_TIMEOUT_MS = 60_000;
/** beforeunload 'cpu' / 'memory' at this share of the limit (edge-runtime's CLI default, 90%). */
const BEFOREUNLOAD_RATIO = 0.9;
/** How often the gateway reads a worker's CPU time (and the worker its memory). */
const LIMIT_SAMPLE_MS = 25;
/** Kill reasons that are resource limits: in-flight requests get 546 WORKER_LIMIT. */
const LIMIT_REASONS = new Set(['wall_clock', 'cpu_time', 'memory']);
/** V8's own out-of-memory abort (the heap cap): a 'memory' kill, not a crash. */
const V8_OOM = /Fatal JavaScript out of memory|JavaScript heap out of memory|Reached heap limit/i;
/** Deno's words for a module that is not in the cache (--cached-only) or not as deno.lock pins it. */
const UNCACHED = /--cached-only|not found in cache|Failed caching npm package|not in the cache|lockfile is out of date|integrity check failed/i;
/** After 'wall_clock', how long a worker may take to exit before SIGKILL (a busy loop ignores us). */
const WALL_CLOCK_KILL_GRACE_MS = 500;
/** On gateway shutdown, how long workers get to finish before SIGKILL. */
const TERMINATION_GRACE_MS = 1_500;
const CONTROL = '\u001e[spool-edge] ';
const BOOTSTRAP = path.join(path.dirname(fileURLToPath(import.meta.url)), 'edge-runtime', 'bootstrap.ts');
const FUNCTION_NAME = /^[A-Za-z0-9][A-Za-z0-9_-]*$/;
/** Variables of the gateway's own environment that workers inherit (the rest stays out). */
const INHERITED_ENV = [
  'PATH', 'HOME', 'DENO_DIR', 'TMPDIR', 'TZ', 'LANG', 'LC_ALL', 'DENO_CERT', 'DENO_TLS_CA_STORE',
  'NODE_EXTRA_CA_CERTS',
  'DENO_AUTH_TOKENS', 'NPM_CONFIG_REGISTRY', 'HTTP_PROXY', 'HTTPS_PROXY', 'NO_PROXY', 'http_proxy',
  'https_proxy', 'no_proxy',
];
const HOP_BY_HOP = new Set([
  'connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade',
]);
/** Request headers not forwarded: hop-by-hop ones, and Expect (the gateway answered it). */
const NOT_FORWARDED = new Set([...HOP_BY_HOP, 'expect']);

/** The gateway's own error bodies, in the Supabase Edge Runtime's shapes. */
const ERRORS = {
  notFound: [404, { code: 'NOT_FOUND', message: 'Requested function was not found' }],
  missingAuth: [401, { code: 401, message: 'Missing authorization header' }],
  invalidJwt: [401, { code: 401, message: 'Invalid JWT' }],
  bootError: [503, { code: 'BOOT_ERROR', message: 'Worker failed to boot (please check logs)' }],
  workerError: [500, { code: 'WORKER_ERROR', message: 'Function exited due to an error (please check logs)' }],
  workerLimit: [546, { code: 'WORKER_LIMIT', message: 'Worker failed to respond due to a resource limit (please check logs)' }],
  idleTimeout: [504, { code: 'IDLE_TIMEOUT', message: 'Function did not respond within the request idle timeout' }],
};

/** Every Deno child of every runtime in this process, so they never outlive it. */
const allChildren = new Set();

/** Kills every worker process at once (SIGKILL); for exit paths that cannot wait. */
export function killWorkersSync() {
  for (const child of allChildren) child.kill('SIGKILL');
}
process.once('exit', killWorkersSync);

function sendError(res, [status, body]) {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
    'access-control-allow-origin': '*',
  });
  res.end(text);
}

/** Clock ticks per second of /proc's utime/stime (getconf CLK_TCK; 100 on Linux). */
const CLOCK_TICKS = 100;

/**
 * CPU time (ms) of the main thread of process `pid` (it runs the isolate; hosted, too, reads the
 * isolate thread's clock), user + system, or null when /proc cannot tell (gone, or not Linux).
 */
function threadCpuMs(pid) {
  let stat;
  try {
    stat = fs.readFileSync(`/proc/${pid}/task/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  // "<tid> (<comm>) <state> ..." where comm may hold spaces: fields count from the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const utime = Number(fields[11]); // field 14 of proc(5)
  const stime = Number(fields[12]); // field 15
  if (!Number.isFinite(utime) || !Number.isFinite(stime)) return null;
  return ((utime + stime) * 1000) / CLOCK_TICKS;
}

/** A boot error message with the commands that fix it, when Deno's words say a module is missing. */
function withFix(message, stderr) {
  if (!UNCACHED.test(`${message}\n${stderr}`)) return message;
  return `${message}: workers never download; cache the modules with \`${CACHE_COMMAND}\` (npm start and npm ` +
    `test do), or, for an import deno.lock does not pin, regenerate it with \`${UPDATE_LOCK_COMMAND}\``;
}

// ---------------------------------------------------------------------------------------------
// Functions and their configuration
// ---------------------------------------------------------------------------------------------

/** Whether `name` is a function of `dir`: a folder with an index.ts, not `_*` (shared code) nor `tests`. */
function isFunction(dir, name) {
  return FUNCTION_NAME.test(name) && name !== 'tests' && fs.existsSync(path.join(dir, name, 'index.ts'));
}

/** The functions under `dir`, sorted. */
export function discoverFunctions(dir) {
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir).filter((name) => isFunction(dir, name)).sort();
}

/** The functions a Supabase config.toml sets `verify_jwt = false` for ([functions.<name>]). */
function functionsWithoutJwt(file) {
  if (!fs.existsSync(file)) return new Set();
  const functions = parseToml(fs.readFileSync(file, 'utf8')).functions ?? {};
  for (const [name, conf] of Object.entries(functions)) {
    if (conf.verify_jwt !== undefined && typeof conf.verify_jwt !== 'boolean') {
      throw new PlatformError(`${file}: [functions.${name}] verify_jwt must be true or false`);
    }
  }
  return new Set(Object.keys(functions).filter((name) => functions[name].verify_jwt === false));
}

// ---------------------------------------------------------------------------------------------
// Workers
// ---------------------------------------------------------------------------------------------

let workerSerial = 0;

/** One `deno run` of bootstrap.ts serving one function, from spawn to exit. */
class Worker {
  constructor(runtime, name) {
    this.runtime = runtime;
    this.name = name;
    this.id = `${name}#${++workerSerial}`;
    this.state = 'starting'; // starting | ready | exited
    this.spawnedAt = Date.now();
    this.activatedAt = null;
    this.retired = false;
    this.killReason = null; // 'wall_clock' | 'cpu_time' | 'memory' | 'termination' | 'boot_timeout'
    this.cpuMs = 0; // CPU time of the isolate's thread (the main thread) so far, boot included
    this.alerts = new Set(); // limit thresholds already acted on
    this.bootStderr = []; // stderr while booting, for the boot error
    this.requests = 0;
    this.inflight = new Set();
    this.timers = [];
    this.port = null;
    this.agent = new http.Agent({ keepAlive: true, maxSockets: Infinity });
    this.ready = new Promise((resolve, reject) => {
      this.resolveReady = resolve;
      this.rejectReady = reject;
    });
    this.ready.catch(() => {});

    const { root, dir, memoryMb } = runtime;
    const ownConfig = path.join(dir, name, 'deno.json');
    const args = [
      'run',
      '--no-prompt',
      // Never download (the cache step filled the cache), and resolve exactly as deno.lock says.
      '--cached-only',
      '--frozen',
      // V8's heap is capped at the memory limit, as hosted caps the isolate's (heap_limits).
      `--v8-flags=--max-old-space-size=${memoryMb}`,
      '--allow-net',
      '--allow-env',
      '--allow-sys',
      `--allow-read=${[...new Set([root, dir])].join(',')}`,
      '--config',
      // A function's own deno.json (as Supabase allows) wins over the project's.
      fs.existsSync(ownConfig) ? ownConfig : path.join(root, 'deno.json'),
      BOOTSTRAP,
    ];
    const config = {
      name,
      entry: pathToFileURL(path.join(dir, name, 'index.ts')).href,
      memoryLimitBytes: memoryMb * 1024 * 1024,
      sampleMs: LIMIT_SAMPLE_MS,
    };
    const env = { ...runtime.env, SPOOL_EDGE_RUNTIME: JSON.stringify(config) };
    const child = spawn(runtime.deno, args, { cwd: root, env, stdio: 'pipe' });
    this.child = child;
    allChildren.add(child);
    child.stdin.on('error', () => {}); // EPIPE after the worker exited
    for (const stream of ['stdout', 'stderr']) {
      createInterface({ input: child[stream], crlfDelay: Infinity }).on('line', (line) => this.onLine(line, stream));
    }
    child.on('error', (err) => this.onExit(null, null, err));
    // 'close' comes after the exit and the last of its output (a V8 out-of-memory abort, Deno's
    // reason for refusing to boot) has been read, so the exit is judged with all of it.
    child.on('close', (code, signal) => this.onExit(code, signal));
    this.exited = once(child, 'close').catch(() => {}); // (an 'error' instead: the spawn failed)
    this.bootTimer = this.timer(() => {
      this.bootFailure(`did not call Deno.serve within ${BOOT_TIMEOUT_MS} ms`);
      this.kill('boot_timeout');
    }, BOOT_TIMEOUT_MS);
    runtime.log({ event: 'worker_spawned', function: name, worker: this.id, pid: child.pid });
    // The isolate thread's CPU time from Linux's /proc, boot included, for the worker's life.
    this.sampleCpu = () => {
      const now = threadCpuMs(child.pid);
      if (now === null || this.state === 'exited') return;
      this.cpuMs = now;
      runtime.onCpu(this);
    };
    this.timer(this.sampleCpu, LIMIT_SAMPLE_MS, setInterval);
  }

  /** An unref'd timer (or, with setInterval, interval) that dies with the worker. */
  timer(fn, ms, set = setTimeout) {
    const t = set(fn, ms);
    t.unref();
    this.timers.push(t);
    return t;
  }

  onLine(line, stream) {
    const at = stream === 'stdout' ? line.indexOf(CONTROL) : -1;
    if (at >= 0) {
      if (at > 0) this.onLine(line.slice(0, at), stream);
      let event;
      try {
        event = JSON.parse(line.slice(at + CONTROL.length));
      } catch {
        return;
      }
      this.onControl(event);
      return;
    }
    const msg = stripVTControlCharacters(line).trimEnd();
    if (!msg) return;
    if (stream === 'stderr') {
      if (this.state === 'starting' && this.bootStderr.length < 40) this.bootStderr.push(msg);
      if (V8_OOM.test(msg)) this.runtime.limitReached(this, 'memory', { heapLimitMb: this.runtime.memoryMb, v8: msg });
    }
    this.runtime.log({ function: this.name, worker: this.id, stream, msg });
  }

  onControl(event) {
    if (event.event === 'listening' && this.state === 'starting') {
      clearTimeout(this.bootTimer);
      this.port = event.port;
      this.state = 'ready';
      this.sampleCpu();
      this.runtime.log({ event: 'worker_ready', function: this.name, worker: this.id, pid: this.child.pid, readyMs: Date.now() - this.spawnedAt, bootCpuMs: Math.round(this.cpuMs) });
      this.resolveReady();
    } else if (event.event === 'boot_error') {
      this.bootFailure(event.message);
    } else if (event.event === 'memory') {
      this.runtime.onMemory(this, event.bytes);
    }
  }

  bootFailure(message) {
    if (this.state !== 'starting' || this.bootError) return;
    clearTimeout(this.bootTimer);
    message = withFix(message, this.bootStderr.join('\n'));
    this.bootError = message;
    this.runtime.log({ level: 'error', event: 'worker_boot_failed', function: this.name, worker: this.id, error: message });
    this.runtime.forget(this);
    this.rejectReady(Object.assign(new Error(message), { bootError: true }));
  }

  /** The worker's wall clock starts with its first request (on Supabase it starts then too). */
  activate() {
    this.requests++;
    if (this.activatedAt) return;
    this.activatedAt = Date.now();
    const { wallClockMs } = this.runtime;
    this.timer(() => this.runtime.retire(this, 'wall_clock_half'), Math.floor(wallClockMs / 2));
    this.timer(() => this.runtime.limitReached(this, 'wall_clock', { wallClockMs }), wallClockMs);
  }

  send(command) {
    if (this.state === 'exited' || !this.child.stdin.writable) return;
    this.child.stdin.write(`${command}\n`);
  }

  kill(reason) {
    this.killReason ??= reason;
    if (this.state !== 'exited') this.child.kill('SIGKILL');
  }

  /** Sends `command` (the worker dispatches beforeunload and leaves), then kills it after `graceMs`. */
  stop(reason, command, graceMs) {
    this.killReason ??= reason;
    this.send(command);
    this.timer(() => this.kill(reason), graceMs);
  }

  onExit(code, signal, err) {
    if (this.state === 'exited') return;
    if (this.state === 'starting') {
      // Deno itself may refuse to start (a lock that does not match): its first error line says why.
      const said = this.bootStderr.find((l) => /^error:/i.test(l));
      this.bootFailure(err ? err.message : `exited during boot (${signal ?? `code ${code}`})${said ? `: ${said}` : ''}`);
    }
    this.state = 'exited';
    allChildren.delete(this.child);
    this.timers.forEach(clearTimeout);
    this.agent.destroy();
    this.runtime.forget(this);
    const reason = this.killReason ?? (this.retired ? 'early_drop' : code === 0 ? 'exited' : 'crashed');
    this.runtime.log({
      level: reason === 'crashed' ? 'error' : 'info',
      event: 'worker_exited',
      function: this.name,
      worker: this.id,
      pid: this.child.pid,
      reason,
      code,
      signal,
      requests: this.requests,
      lifetimeMs: Date.now() - this.spawnedAt,
      ...(err ? { error: err.message } : {}),
    });
    const answer = LIMIT_REASONS.has(this.killReason) ? ERRORS.workerLimit : ERRORS.workerError;
    for (const fail of this.inflight) fail(answer);
  }
}

// ---------------------------------------------------------------------------------------------
// The runtime (a gateway route)
// ---------------------------------------------------------------------------------------------

class FunctionsRuntime {
  constructor(ctx, options = {}) {
    this.ctx = ctx;
    this.root = ctx.root;
    this.dir = path.resolve(options.dir ?? path.join(ctx.root, 'supabase', 'functions'));
    for (const [name, [variable, fallback]] of Object.entries(LIMITS)) {
      const raw = options[name] ?? (variable && (ctx.env?.[variable] ?? process.env[variable]));
      const n = Number(raw);
      if (raw !== undefined && raw !== '' && (!Number.isInteger(n) || n < 1)) {
        throw new PlatformError(`${variable ?? name} must be a positive integer, got ${JSON.stringify(raw)}`);
      }
      this[name] = raw === undefined || raw === '' ? fallback : n;
    }
    this.cpuSoftMs ??= Math.floor(this.cpuTimeMs / 2);
    if (this.cpuSoftMs > this.cpuTimeMs) {
      throw new PlatformError(`SPOOL_EDGE_CPU_SOFT_MS (${this.cpuSoftMs}) must not exceed SPOOL_EDGE_CPU_TIME_MS (${this.cpuTimeMs})`);
    }
    this.prewarm = options.prewarm ?? false;
    this.deno = denoBinary(ctx.root);
    this.withoutJwt = functionsWithoutJwt(options.configFile ?? path.join(ctx.root, 'supabase', 'config.toml'));
    this.env = this.workerEnv();
    this.current = new Map(); // name -> the Worker new requests go to
    this.workers = new Set(); // every live Worker, retired ones included
    this.closing = false;
    this.log({ event: 'edge_limits', cpuTimeMs: this.cpuTimeMs, cpuSoftMs: this.cpuSoftMs, memoryMb: this.memoryMb, wallClockMs: this.wallClockMs });
    if (options.watch) this.watch();
    this.warm();
  }

  log(obj) {
    this.ctx.log?.({ service: 'edge-runtime', ...obj });
  }

  /** Env of every worker: Supabase's injected variables, ctx.env, and a few basics. */
  workerEnv() {
    const env = {};
    for (const name of INHERITED_ENV) {
      if (process.env[name] !== undefined) env[name] = process.env[name];
    }
    env.DENO_NO_UPDATE_CHECK = '1';
    const skipped = [];
    for (const [name, value] of Object.entries(this.ctx.env ?? {})) {
      if (name.startsWith('SUPABASE_')) skipped.push(name);
      else if (value !== undefined) env[name] = String(value);
    }
    if (skipped.length > 0) {
      this.log({ level: 'warn', event: 'env_skipped', names: skipped, why: 'SUPABASE_* names are reserved: Supabase injects them' });
    }
    const { keys, publicUrl, dbPort } = this.ctx;
    if (keys.mode === 'new') {
      // A project with its legacy API keys off: the named new keys and the JWKS, as JSON, and
      // nothing of the legacy ones (no SUPABASE_ANON_KEY / SUPABASE_SERVICE_ROLE_KEY, and not
      // the singular SUPABASE_PUBLISHABLE_KEY / SUPABASE_SECRET_KEY of self-hosted setups).
      Object.assign(env, {
        SUPABASE_URL: publicUrl,
        SUPABASE_PUBLISHABLE_KEYS: JSON.stringify({ default: keys.publishableKey }),
        SUPABASE_SECRET_KEYS: JSON.stringify({ default: keys.secretKey }),
        SUPABASE_JWKS: JSON.stringify(keys.jwks),
      });
    } else {
      Object.assign(env, {
        SUPABASE_URL: publicUrl,
        SUPABASE_ANON_KEY: keys.anonKey,
        SUPABASE_SERVICE_ROLE_KEY: keys.serviceRoleKey,
        SUPABASE_PUBLISHABLE_KEY: keys.anonKey,
        SUPABASE_SECRET_KEY: keys.serviceRoleKey,
        SUPABASE_PUBLISHABLE_KEYS: JSON.stringify({ default: keys.anonKey }),
        SUPABASE_SECRET_KEYS: JSON.stringify({ default: keys.serviceRoleKey }),
      });
    }
    if (dbPort) env.SUPABASE_DB_URL = `postgresql://postgres:postgres@127.0.0.1:${dbPort}/postgres`;
    return env;
  }

  spawn(name) {
    const worker = new Worker(this, name);
    this.workers.add(worker);
    this.current.set(name, worker);
    return worker;
  }

  /** With prewarm: a worker for every function (or just `only`) that has none to take requests. */
  warm(only) {
    if (!this.prewarm || this.closing) return;
    for (const name of discoverFunctions(this.dir)) {
      if ((only ?? name) === name && !this.current.has(name)) this.spawn(name);
    }
  }

  /** Drops a worker from routing (it exited, failed to boot, or was replaced). */
  forget(worker) {
    if (this.current.get(worker.name) === worker) this.current.delete(worker.name);
    if (worker.state === 'exited') this.workers.delete(worker);
  }

  /** The worker for `name`, started if needed; rejects with { bootError } if it cannot boot. */
  async acquire(name) {
    let worker = this.current.get(name);
    if (!worker || worker.state === 'exited' || worker.bootError) worker = this.spawn(name);
    await worker.ready;
    return worker;
  }

  /** Replaces `worker` for new requests; it exits by itself once idle ('early_drop'). */
  retire(worker, reason) {
    if (worker.retired || worker.state === 'exited') return;
    worker.retired = true;
    this.forget(worker);
    this.log({ event: 'worker_retired', function: worker.name, worker: worker.id, reason });
    this.warm(worker.name);
    worker.send('retire');
  }

  /** A CPU sample came in: retire at the soft limit, beforeunload 'cpu' at 90%, kill at the limit. */
  onCpu(worker) {
    const { cpuMs } = worker;
    const detail = { cpuTimeMs: Math.round(cpuMs), limitMs: this.cpuTimeMs };
    if (cpuMs >= this.cpuTimeMs) {
      this.limitReached(worker, 'cpu_time', detail);
      return;
    }
    if (cpuMs >= this.cpuSoftMs && worker.state === 'ready' && !worker.alerts.has('cpu_soft')) {
      worker.alerts.add('cpu_soft');
      this.log({ level: 'warn', event: 'cpu_time_soft_limit', function: worker.name, worker: worker.id, ...detail, softLimitMs: this.cpuSoftMs });
      this.retire(worker, 'cpu_time_soft_limit');
    }
    if (cpuMs >= this.cpuTimeMs * BEFOREUNLOAD_RATIO && !worker.alerts.has('cpu_beforeunload')) {
      worker.alerts.add('cpu_beforeunload');
      worker.send('beforeunload cpu');
    }
  }

  /** The worker's memory crossed half / 90% / all of the limit. */
  onMemory(worker, bytes) {
    const limit = this.memoryMb * 1024 * 1024;
    if (bytes >= limit) {
      this.limitReached(worker, 'memory', { memoryBytes: bytes, limitMb: this.memoryMb });
      return;
    }
    // (beforeunload 'memory' at 90%: the worker dispatches it itself, before it reports.)
    if (bytes >= limit / 2 && worker.state === 'ready' && !worker.alerts.has('memory_half')) {
      worker.alerts.add('memory_half');
      this.retire(worker, 'memory_half');
    }
  }

  /**
   * A limit is reached: the supervisor terminates the isolate at once (CPU time, memory), or
   * after beforeunload 'wall_clock' and a short grace (the wall clock).
   */
  limitReached(worker, reason, detail) {
    if (worker.state === 'exited' || LIMIT_REASONS.has(worker.killReason)) return;
    // A worker still booting is not replaced (that could loop): it fails its boot, named.
    if (worker.state === 'starting') worker.bootFailure(`hit the ${reason === 'memory' ? 'memory' : 'CPU-time'} limit while booting`);
    else this.retire(worker, reason);
    worker.killReason = reason;
    this.log({ level: 'warn', event: 'worker_killed', function: worker.name, worker: worker.id, reason, ...detail, inflight: worker.inflight.size });
    if (reason === 'wall_clock') worker.stop(reason, 'wall_clock', WALL_CLOCK_KILL_GRACE_MS);
    else worker.kill(reason);
  }

  /**
   * npm start: a change retires the workers of its function (all of them for shared `_` folders).
   * A new import needs deno.lock regenerated (its workers' boot error says how), which caches it.
   */
  watch() {
    const changed = new Set();
    let timer = null;
    const flush = () => {
      timer = null;
      for (const worker of [...this.current.values()]) {
        if (changed.has('*') || changed.has(worker.name)) this.retire(worker, 'files_changed');
      }
      changed.clear();
      this.warm(); // a new function folder, too
    };
    try {
      this.watcher = fs.watch(this.dir, { recursive: true }, (_event, filename) => {
        if (!filename) return;
        const first = String(filename).split(path.sep)[0];
        changed.add(first.startsWith('_') ? '*' : first);
        timer ??= setTimeout(flush, 150);
      });
      this.watcher.on('error', (err) => this.log({ level: 'warn', event: 'watch_failed', error: err.message }));
    } catch (err) {
      this.log({ level: 'warn', event: 'watch_failed', error: err.message });
    }
  }

  /**
   * verify_jwt, strictly: `Authorization: Bearer <JWT>` that verifies with the stack's keys (keys.mjs)
   * and has a role. sb_publishable_/sb_secret_ keys are no JWTs and are refused, as the CLI's edge
   * runtime does (hosted lets them through "for migration compatibility"); callers with an API key
   * go to functions with verify_jwt = false that check it themselves (job-worker).
   */
  async verifyJwt(req) {
    const header = req.headers.authorization;
    if (!header) return ERRORS.missingAuth;
    const token = /^Bearer\s+(\S+)\s*$/i.exec(header)?.[1];
    if (!token) return ERRORS.invalidJwt;
    try {
      await this.ctx.keys.verify(token);
      return null;
    } catch {
      return ERRORS.invalidJwt;
    }
  }

  async handle(req, res) {
    // The raw target keeps the caller's encoding: /functions/v1/<name><rest>?<query>
    const target = req.url.slice(PREFIX.length);
    const name = /^\/([^/?#]+)([/?#].*)?$/.exec(target)?.[1];
    if (!name || !isFunction(this.dir, name)) return sendError(res, ERRORS.notFound);
    if (!this.withoutJwt.has(name) && req.method !== 'OPTIONS') {
      const denied = await this.verifyJwt(req);
      if (denied) return sendError(res, denied);
    }
    if (this.closing) return sendError(res, ERRORS.workerError);
    let worker;
    try {
      worker = await this.acquire(name);
    } catch (err) {
      if (err.bootError) return sendError(res, ERRORS.bootError);
      throw err;
    }
    this.proxy(req, res, worker, target);
  }

  proxy(req, res, worker, target) {
    worker.activate();
    const headers = {};
    for (const [key, value] of Object.entries(req.headers)) {
      if (!NOT_FORWARDED.has(key)) headers[key] = value;
    }
    const client = req.socket.remoteAddress ?? '127.0.0.1';
    headers['x-forwarded-for'] = req.headers['x-forwarded-for'] ? `${req.headers['x-forwarded-for']}, ${client}` : client;
    headers['x-forwarded-host'] ??= req.headers.host ?? '';
    headers['x-forwarded-proto'] ??= 'http';

    const upstream = http.request({
      host: '127.0.0.1',
      port: worker.port,
      method: req.method,
      path: target,
      headers,
      agent: worker.agent,
    });
    let done = false;
    const finish = () => {
      done = true;
      clearTimeout(idle);
      worker.inflight.delete(fail);
      // The function answered without reading all of the body: stop sending it the rest (the
      // gateway drains it from the client, server.mjs settleUnreadBody) and drop that connection.
      if (!upstream.writableFinished) {
        req.unpipe(upstream);
        upstream.destroy();
      }
    };
    // In flight until it is answered; fail() answers with the gateway's own error.
    const fail = (error) => {
      if (done) return;
      finish();
      upstream.destroy();
      sendError(res, error);
    };
    worker.inflight.add(fail);
    const idle = setTimeout(() => {
      this.log({ level: 'warn', event: 'request_idle_timeout', function: worker.name, worker: worker.id, path: target, timeoutMs: this.requestIdleTimeoutMs });
      fail(ERRORS.idleTimeout);
    }, this.requestIdleTimeoutMs);

    upstream.on('response', (upRes) => {
      if (done) {
        upRes.resume();
        return;
      }
      clearTimeout(idle);
      const raw = [];
      for (let i = 0; i < upRes.rawHeaders.length; i += 2) {
        if (!HOP_BY_HOP.has(upRes.rawHeaders[i].toLowerCase())) {
          raw.push(upRes.rawHeaders[i], upRes.rawHeaders[i + 1]);
        }
      }
      res.writeHead(upRes.statusCode, upRes.statusMessage, raw);
      upRes.pipe(res);
      upRes.on('end', finish);
      upRes.on('error', () => {
        if (!done) {
          // The worker died mid-response: the status is out already, so cut the body short.
          finish();
          res.destroy();
        }
      });
    });
    upstream.on('error', (err) => {
      if (done) return;
      // killReason is set before the runtime stops a worker, so a limit kill (wall clock, CPU,
      // memory) is told apart from a crash even when the connection breaks before the exit is seen.
      this.log({ level: 'warn', event: 'proxy_failed', function: worker.name, worker: worker.id, error: err.message });
      const answer = () => fail(LIMIT_REASONS.has(worker.killReason) ? ERRORS.workerLimit : ERRORS.workerError);
      if (worker.state === 'exited' || worker.killReason) {
        answer();
        return;
      }
      // The worker is going down on its own (V8's heap cap aborts it, and says so on stderr):
      // its exit answers in-flight requests with the reason; if it does not exit, answer anyway.
      setTimeout(answer, 1_000).unref();
    });
    // The caller went away before the response finished: stop the upstream request too.
    res.on('close', () => {
      if (!done) {
        finish();
        upstream.destroy();
      }
    });
    req.pipe(upstream);
  }

  /** Stops every worker: beforeunload 'termination', a short grace, then SIGKILL. */
  async close() {
    this.closing = true;
    this.watcher?.close();
    const workers = [...this.workers];
    for (const worker of workers) worker.stop('termination', 'terminate', TERMINATION_GRACE_MS);
    await Promise.all(workers.map((w) => w.exited));
  }
}

/** The runtime as a route of local/standins/server.mjs; list() gives the live workers' ids and pids. */
export function createFunctionsRuntime(ctx, options = {}) {
  const runtime = new FunctionsRuntime(ctx, options);
  return {
    name: 'functions',
    prefix: PREFIX,
    runtime,
    handle: (req, res) => runtime.handle(req, res),
    close: () => runtime.close(),
    list: () => [...runtime.workers].map((w) => ({ id: w.id, function: w.name, pid: w.child.pid })),
  };
}

export function create(ctx) {
  return createFunctionsRuntime(ctx, ctx.options?.functions ?? {});
}
