// The local Edge Runtime: /functions/v1/<name>… served by real Deno, as Supabase serves it.
//
// Every supabase/functions/<name>/index.ts (not `_*`, not `tests`) runs in its own long-lived
// `deno run --cached-only --frozen` worker of edge-runtime/bootstrap.ts (EdgeRuntime.waitUntil,
// beforeunload, Deno.serve on a private port). Workers never download: edge-runtime/cache.mjs
// caches every module first; a missing one is a 503 BOOT_ERROR whose log line names the fix.
//
//   routing     /functions/v1/<name>/a?x=1 reaches the function as /<name>/a?x=1, headers (Host
//               too) and bodies streamed both ways.
//   verify_jwt  per function from supabase/config.toml (read at start; default true), else 401.
//   limits      hosted's per_worker policy, a SPOOL_EDGE_* variable each (LIMITS). Wall clock from
//               the first request, background work included: retired at half, beforeunload
//               'wall_clock' and killed at the limit. CPU time of the isolate's thread over the
//               worker's life, boot included: retired at half (hosted's soft limit), beforeunload
//               'cpu' at 90%, killed at the limit. Memory (V8 heap + external; V8's heap capped
//               there too): beforeunload 'memory' at 90%, killed at the limit. Requests in flight
//               on a killed worker get 546 WORKER_LIMIT. What a function could notice: CPU (/proc)
//               and memory are sampled every 25 ms, not interrupted as hosted does.
//   errors      { code, message } as the Edge Runtime words them (ERRORS).
//   env         workerEnv: the stack's SUPABASE_*, ctx.env but SUPABASE_* names, INHERITED_ENV.
//
// Options (ctx.options.functions): dir, configFile, the LIMITS by name, prewarm (a worker per
// function at start and a replacement on retirement; npm start, npm test), watch (a change to a
// function's files or _shared/ retires its workers; npm start).

import { spawn } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { pathToFileURL } from 'node:url';
import { stripVTControlCharacters } from 'node:util';
import { parse as parseToml } from 'smol-toml';
import { PlatformError } from '../tools/db.mjs';
import { BOOTSTRAP, CACHE_COMMAND, denoBinary, UPDATE_LOCK_COMMAND } from './edge-runtime/cache.mjs';

export { denoBinary };

const PREFIX = '/functions/v1';
/** Option name: [its SPOOL_EDGE_* variable, hosted's value] (supabase/edge-runtime .cargo/config.toml). */
const LIMITS = {
  wallClockMs: ['SPOOL_EDGE_WALL_CLOCK_MS', 150_000],
  cpuTimeMs: ['SPOOL_EDGE_CPU_TIME_MS', 2_000],
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
const UNCACHED = new RegExp('--cached-only|not found in cache|Failed caching npm package|not in the cache|' +
  'lockfile is out of date|integrity check failed', 'i');
/** After 'wall_clock', how long a worker may take to exit before SIGKILL (a busy loop ignores us). */
const WALL_CLOCK_KILL_GRACE_MS = 500;
/** On gateway shutdown, how long workers get to finish before SIGKILL. */
const TERMINATION_GRACE_MS = 1_500;
const CONTROL = '\u001e[spool-edge] ';
const FUNCTION_NAME = /^[A-Za-z0-9][A-Za-z0-9_-]*$/;
/** Variables of the gateway's own environment that workers inherit (the rest stays out). */
const INHERITED_ENV = [
  'PATH', 'HOME', 'DENO_DIR', 'TMPDIR', 'TZ', 'LANG', 'LC_ALL', 'DENO_CERT', 'DENO_TLS_CA_STORE',
  'NODE_EXTRA_CA_CERTS', 'DENO_AUTH_TOKENS', 'NPM_CONFIG_REGISTRY',
  'HTTP_PROXY', 'HTTPS_PROXY', 'NO_PROXY', 'http_proxy', 'https_proxy', 'no_proxy',
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
  workerLimit: [546, {
    code: 'WORKER_LIMIT', message: 'Worker failed to respond due to a resource limit (please check logs)',
  }],
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
  if (res.headersSent) return res.destroy();
  const text = JSON.stringify(body);
  const headers = { 'content-type': 'application/json', 'access-control-allow-origin': '*' };
  res.writeHead(status, { ...headers, 'content-length': Buffer.byteLength(text) }).end(text);
}

/**
 * CPU time (ms) of the main thread of process `pid` (it runs the isolate; hosted, too, reads the
 * isolate thread's clock), user + system, or null when /proc cannot tell (gone, or not Linux).
 */
function threadCpuMs(pid) {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/task/${pid}/stat`, 'utf8');
    // "<tid> (<comm>) <state> ..." where comm may hold spaces: fields count from the last ')'.
    // utime and stime are fields 14 and 15 of proc(5), in clock ticks (CLK_TCK, 100 on Linux).
    const [utime, stime] = stat.slice(stat.lastIndexOf(')') + 2).split(' ').slice(11, 13).map(Number);
    const ms = (utime + stime) * 10;
    return Number.isFinite(ms) ? ms : null;
  } catch {
    return null;
  }
}

/** A boot error message with the commands that fix it, when Deno's words say a module is missing. */
function withFix(message, stderr) {
  if (!UNCACHED.test(`${message}\n${stderr}`)) return message;
  return `${message}: workers never download; cache the modules with \`${CACHE_COMMAND}\` (npm start and npm ` +
    `test do), or, for an import deno.lock does not pin, regenerate it with \`${UPDATE_LOCK_COMMAND}\``;
}

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

let workerSerial = 0;

/** One `deno run` of bootstrap.ts serving one function, from spawn to exit. */
class Worker {
  constructor(runtime, name) {
    this.runtime = runtime;
    this.name = name;
    this.id = `${name}#${++workerSerial}`;
    this.state = 'starting'; // starting | ready | exited
    this.spawnedAt = Date.now();
    this.activated = false; // its wall clock runs
    this.retired = false;
    this.killReason = null; // 'wall_clock' | 'cpu_time' | 'memory' | 'termination' | 'boot_timeout'
    this.cpuMs = 0;
    this.bootStderr = []; // stderr while booting, for the boot error
    this.inflight = new Set(); // fail(error) of every request not answered yet
    this.timers = [];
    this.agent = new http.Agent({ keepAlive: true, maxSockets: Infinity });
    this.ready = new Promise((resolve, reject) => {
      this.resolveReady = resolve;
      this.rejectReady = reject;
    });
    this.ready.catch(() => {});

    const { root, dir, memoryMb } = runtime;
    const ownConfig = path.join(dir, name, 'deno.json');
    const args = [
      'run', '--no-prompt',
      // Never download (the cache step filled the cache), and resolve exactly as deno.lock says.
      '--cached-only', '--frozen',
      // V8's heap is capped at the memory limit, as hosted caps the isolate's (heap_limits).
      `--v8-flags=--max-old-space-size=${memoryMb}`,
      '--allow-net', '--allow-env', '--allow-sys', `--allow-read=${[...new Set([root, dir])].join(',')}`,
      // A function's own deno.json (as Supabase allows) wins over the project's.
      '--config', fs.existsSync(ownConfig) ? ownConfig : path.join(root, 'deno.json'),
      BOOTSTRAP,
    ];
    const entry = pathToFileURL(path.join(dir, name, 'index.ts')).href;
    const config = { name, entry, memoryLimitBytes: memoryMb * 2 ** 20, sampleMs: LIMIT_SAMPLE_MS };
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
    this.log({ event: 'worker_spawned', pid: child.pid });
    this.timer(() => this.sampleCpu(), LIMIT_SAMPLE_MS, setInterval);
  }

  log(obj) {
    this.runtime.log({ function: this.name, worker: this.id, ...obj });
  }

  /** An unref'd timer (or, with setInterval, interval) that dies with the worker. */
  timer(fn, ms, set = setTimeout) {
    const t = set(fn, ms);
    t.unref();
    this.timers.push(t);
    return t;
  }

  /** The isolate thread's CPU time so far, boot included, for the runtime to judge. */
  sampleCpu() {
    const ms = threadCpuMs(this.child.pid);
    if (ms === null || this.state === 'exited') return;
    this.cpuMs = ms;
    this.runtime.onCpu(this);
  }

  /** The answer for requests in flight when the worker goes down. */
  get failure() {
    return LIMIT_REASONS.has(this.killReason) ? ERRORS.workerLimit : ERRORS.workerError;
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
      if (V8_OOM.test(msg)) this.runtime.limitReached(this, 'memory', { limitMb: this.runtime.memoryMb, v8: msg });
    }
    this.log({ stream, msg });
  }

  onControl(event) {
    if (event.event === 'listening' && this.state === 'starting') {
      clearTimeout(this.bootTimer);
      this.port = event.port;
      this.state = 'ready';
      this.log({ event: 'worker_ready', pid: this.child.pid, readyMs: Date.now() - this.spawnedAt });
      this.resolveReady();
    } else if (event.event === 'boot_error') {
      this.bootFailure(event.message);
    } else if (event.event === 'memory') {
      // The worker reports reaching the limit (it dispatched beforeunload 'memory' at 90% itself).
      this.runtime.limitReached(this, 'memory', { memoryBytes: event.bytes, limitMb: this.runtime.memoryMb });
    }
  }

  bootFailure(message) {
    if (this.state !== 'starting' || this.bootError) return;
    clearTimeout(this.bootTimer);
    this.bootError = withFix(message, this.bootStderr.join('\n'));
    this.log({ level: 'error', event: 'worker_boot_failed', error: this.bootError });
    this.runtime.forget(this);
    this.rejectReady(Object.assign(new Error(this.bootError), { bootError: true }));
  }

  /** The worker's wall clock starts with its first request (on Supabase it starts then too). */
  activate() {
    if (this.activated) return;
    this.activated = true;
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
      this.bootFailure(err?.message ?? `exited during boot (${signal ?? `code ${code}`})${said ? `: ${said}` : ''}`);
    }
    this.state = 'exited';
    allChildren.delete(this.child);
    this.timers.forEach(clearTimeout);
    this.agent.destroy();
    this.runtime.forget(this);
    const reason = this.killReason ?? (this.retired ? 'early_drop' : code === 0 ? 'exited' : 'crashed');
    const level = reason === 'crashed' ? 'error' : 'info';
    const lifetimeMs = Date.now() - this.spawnedAt;
    this.log({ level, event: 'worker_exited', pid: this.child.pid, reason, code, signal, lifetimeMs });
    for (const fail of this.inflight) fail(this.failure);
  }
}

/** The runtime: a gateway route. */
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
    this.cpuSoftMs = Math.floor(this.cpuTimeMs / 2); // hosted's soft limit: 1000 of 2000 ms
    this.prewarm = options.prewarm ?? false;
    this.deno = denoBinary(ctx.root);
    this.withoutJwt = functionsWithoutJwt(options.configFile ?? path.join(ctx.root, 'supabase', 'config.toml'));
    this.env = this.workerEnv();
    this.current = new Map(); // name -> the Worker new requests go to
    this.workers = new Set(); // every live Worker, retired ones included
    this.closing = false;
    const { cpuTimeMs, cpuSoftMs, memoryMb, wallClockMs } = this;
    this.log({ event: 'edge_limits', cpuTimeMs, cpuSoftMs, memoryMb, wallClockMs });
    if (options.watch) this.watch();
    this.warm();
  }

  log(obj) {
    this.ctx.log?.({ service: 'edge-runtime', ...obj });
  }

  /** Env of every worker: Supabase's injected variables, ctx.env, and a few basics. */
  workerEnv() {
    const env = { DENO_NO_UPDATE_CHECK: '1' };
    for (const name of INHERITED_ENV) if (process.env[name] !== undefined) env[name] = process.env[name];
    const skipped = [];
    for (const [name, value] of Object.entries(this.ctx.env ?? {})) {
      if (name.startsWith('SUPABASE_')) skipped.push(name);
      else if (value !== undefined) env[name] = String(value);
    }
    if (skipped.length > 0) this.log({ level: 'warn', event: 'env_skipped', names: skipped, why: 'reserved' });
    const { keys, publicUrl, dbPort } = this.ctx;
    const legacy = keys.mode !== 'new';
    const [publishable, secret] = legacy ? [keys.anonKey, keys.serviceRoleKey] : [keys.publishableKey, keys.secretKey];
    env.SUPABASE_URL = publicUrl;
    env.SUPABASE_PUBLISHABLE_KEYS = JSON.stringify({ default: publishable });
    env.SUPABASE_SECRET_KEYS = JSON.stringify({ default: secret });
    // Legacy: the two keys under every name. New (a project with its legacy keys off): the JWKS and
    // nothing legacy, not even the singular SUPABASE_PUBLISHABLE_KEY / _SECRET_KEY of self-hosting.
    if (legacy) {
      Object.assign(env, { SUPABASE_ANON_KEY: publishable, SUPABASE_SERVICE_ROLE_KEY: secret });
      Object.assign(env, { SUPABASE_PUBLISHABLE_KEY: publishable, SUPABASE_SECRET_KEY: secret });
    } else {
      env.SUPABASE_JWKS = JSON.stringify(keys.jwks);
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
  retire(worker, reason, detail) {
    if (worker.retired || worker.state === 'exited') return;
    worker.retired = true;
    this.forget(worker);
    worker.log({ event: 'worker_retired', reason, ...detail });
    this.warm(worker.name);
    worker.send('retire');
  }

  /** A CPU sample: retired at the soft limit, beforeunload 'cpu' at 90%, killed at the limit. */
  onCpu(worker) {
    const { cpuMs } = worker;
    const detail = { cpuTimeMs: Math.round(cpuMs), limitMs: this.cpuTimeMs };
    if (cpuMs >= this.cpuTimeMs) return this.limitReached(worker, 'cpu_time', detail);
    if (cpuMs >= this.cpuSoftMs && worker.state === 'ready') this.retire(worker, 'cpu_time_soft_limit', detail);
    if (cpuMs >= this.cpuTimeMs * BEFOREUNLOAD_RATIO && !worker.cpuWarned) {
      worker.cpuWarned = true;
      worker.send('beforeunload cpu');
    }
  }

  /** A limit is reached: killed at once (CPU, memory), or after beforeunload 'wall_clock' and a grace. */
  limitReached(worker, reason, detail) {
    if (worker.state === 'exited' || LIMIT_REASONS.has(worker.killReason)) return;
    // A worker still booting is not replaced (that could loop): it fails its boot, named.
    if (worker.state === 'starting') worker.bootFailure(`hit the ${reason} limit while booting`);
    else this.retire(worker, reason);
    worker.killReason = reason;
    worker.log({ level: 'warn', event: 'worker_killed', reason, ...detail, inflight: worker.inflight.size });
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
    const failed = (err) => this.log({ level: 'warn', event: 'watch_failed', error: err.message });
    try {
      this.watcher = fs.watch(this.dir, { recursive: true }, (_event, filename) => {
        if (!filename) return;
        const first = String(filename).split(path.sep)[0];
        changed.add(first.startsWith('_') ? '*' : first);
        timer ??= setTimeout(flush, 150);
      });
      this.watcher.on('error', failed);
    } catch (err) {
      failed(err);
    }
  }

  /**
   * verify_jwt, strictly: `Authorization: Bearer <JWT>` that keys.mjs verifies. sb_ keys are no JWTs
   * and are refused, as the CLI's edge runtime does (hosted lets them through "for migration
   * compatibility"); callers with an API key go to verify_jwt = false functions (job-worker).
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
    const headers = Object.fromEntries(Object.entries(req.headers).filter(([key]) => !NOT_FORWARDED.has(key)));
    const { port, agent } = worker;
    const upstream = http.request({ host: '127.0.0.1', port, method: req.method, path: target, headers, agent });
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
    // In flight until it is answered; fail() answers with the gateway's own error (or, once the
    // status is out, cuts the body short; with null, the caller is gone and gets nothing).
    const fail = (error) => {
      if (done) return;
      finish();
      upstream.destroy();
      if (error) sendError(res, error);
    };
    worker.inflight.add(fail);
    const idle = setTimeout(() => fail(ERRORS.idleTimeout), this.requestIdleTimeoutMs);

    upstream.on('response', (upRes) => {
      if (done) return upRes.resume();
      clearTimeout(idle);
      const raw = [];
      for (let i = 0; i < upRes.rawHeaders.length; i += 2) {
        if (!HOP_BY_HOP.has(upRes.rawHeaders[i].toLowerCase())) raw.push(upRes.rawHeaders[i], upRes.rawHeaders[i + 1]);
      }
      res.writeHead(upRes.statusCode, upRes.statusMessage, raw);
      upRes.pipe(res);
      upRes.on('end', finish);
      upRes.on('error', () => fail(ERRORS.workerError)); // the worker died mid-response
    });
    upstream.on('error', () => {
      if (done) return;
      // killReason is set before the runtime stops a worker, so a limit kill (wall clock, CPU,
      // memory) is told apart from a crash even when the connection breaks before the exit is seen.
      if (worker.state === 'exited' || worker.killReason) return fail(worker.failure);
      // The worker is going down on its own (V8's heap cap aborts it, and says so on stderr):
      // its exit answers in-flight requests with the reason; if it does not exit, answer anyway.
      setTimeout(() => fail(worker.failure), 1_000).unref();
    });
    res.on('close', () => fail(null)); // the caller went away: stop the upstream request too
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
