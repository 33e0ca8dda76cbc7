// The local Edge Runtime: /functions/v1/<name>… served by real Deno, as Supabase serves it.
//
// Every supabase/functions/<name>/index.ts (names starting with `_`, and `tests`, are not
// functions) runs in its own long-lived `deno run` process started from
// local/gateway/edge-runtime/bootstrap.ts, which adds what Supabase's Edge Runtime has and plain
// Deno lacks (EdgeRuntime.waitUntil, the beforeunload event, Deno.serve bound to a private
// loopback port). This module is the gateway half:
//
//   routing   /functions/v1/<name>/a/b?x=1 reaches the function as /<name>/a/b?x=1 (query kept);
//             headers pass through (Host too, so req.url has the public origin) plus
//             x-forwarded-for/-host/-proto; bodies stream both ways.
//   verify_jwt  per function from supabase/config.toml `[functions.<name>] verify_jwt` (default
//             true): the request needs `Authorization: Bearer <JWT>` signed with the stack's
//             secret (anon key, service_role key or a user's access token), except OPTIONS
//             (CORS preflight). Otherwise 401, as Supabase's gateway answers:
//               {"code":401,"message":"Missing authorization header"}   no Authorization
//               {"code":401,"message":"Invalid JWT"}                    anything else
//   workers   one per function, pre-warmed when the stack starts and spawned again on demand.
//             Per Supabase's per_worker policy, a worker's wall clock (SPOOL_EDGE_WALL_CLOCK_MS,
//             default 150000) starts with its first request and covers background work too:
//             at half of it the worker is retired (new requests go to a fresh, pre-warmed one;
//             the old one exits once its requests and waitUntil tasks are done, after
//             beforeunload 'early_drop'); at the limit it gets beforeunload 'wall_clock' and is
//             killed, and requests still in flight on it are answered 546 WORKER_LIMIT.
//   errors    the Supabase Edge Runtime's JSON shapes, { code, message }:
//               404 NOT_FOUND     no such function
//               503 BOOT_ERROR    the function failed to load (see its log)
//               500 WORKER_ERROR  the worker died while handling the request
//               546 WORKER_LIMIT  the worker hit its wall clock
//               504 IDLE_TIMEOUT  no response within the request idle timeout (150 s)
//   env       SUPABASE_URL, SUPABASE_ANON_KEY, SUPABASE_SERVICE_ROLE_KEY, SUPABASE_DB_URL,
//             SUPABASE_PUBLISHABLE_KEY(S), SUPABASE_SECRET_KEY(S), plus ctx.env (the repo's .env
//             or a test's overrides, minus SUPABASE_* names, which Supabase reserves). From the
//             gateway's own environment only PATH, HOME, DENO_DIR, TMPDIR, locale and proxy
//             variables pass. SUPABASE_JWT_SECRET is not injected (hosted does not either).
//   logs      JSON lines through ctx.log: worker_spawned, worker_ready (readyMs), worker_retired,
//             worker_killed (reason), worker_exited, boot failures; each line a function prints
//             arrives as { function, stream: 'stdout'|'stderr', msg }.
//
// Differences from Supabase that a function could notice: no CPU-time (2 s) or memory (256 MB)
// limits, no WebSocket upgrades, npm packages come from Deno's global cache (deno.json has
// "nodeModulesDir": "none"), and the lockfile is not read or written (--no-lock).
//
// Options (ctx.options.functions, or the second argument of createFunctionsRuntime):
//   dir                   functions folder (default <root>/supabase/functions)
//   configFile            config.toml (default <root>/supabase/config.toml)
//   wallClockMs           default ctx.env / process.env SPOOL_EDGE_WALL_CLOCK_MS, else 150000
//   requestIdleTimeoutMs  default 150000
//   bootTimeoutMs         how long a worker may take to call Deno.serve (default 60000: the
//                         first start may download npm packages)
//   prewarm               spawn every function's worker when the runtime starts, and a
//                         replacement as soon as one retires (default false: a gateway started
//                         for a contract test spawns only what it uses; local/stack.mjs, behind
//                         npm start and npm test, turns it on)
//   watch                 retire a function's worker when its files (or _shared/) change
//                         (default false; npm start turns it on)

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parse as parseToml } from 'smol-toml';
import { PlatformError } from '../db.mjs';

export const PREFIX = '/functions/v1';
export const DEFAULT_WALL_CLOCK_MS = 150_000;
export const DEFAULT_REQUEST_IDLE_TIMEOUT_MS = 150_000;
const DEFAULT_BOOT_TIMEOUT_MS = 60_000;
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
  'DENO_AUTH_TOKENS', 'NPM_CONFIG_REGISTRY', 'HTTP_PROXY', 'HTTPS_PROXY', 'NO_PROXY', 'http_proxy',
  'https_proxy', 'no_proxy',
];
const HOP_BY_HOP = new Set([
  'connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade',
]);
/** Request headers not forwarded: hop-by-hop ones, and Expect (the gateway answered it). */
const NOT_FORWARDED = new Set([...HOP_BY_HOP, 'expect']);

/** The gateway's own error bodies, in the Supabase Edge Runtime's shapes. */
export const ERRORS = {
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
let exitHookInstalled = false;

/** Kills every worker process at once (SIGKILL); for exit paths that cannot wait. */
export function killWorkersSync() {
  for (const child of allChildren) {
    try {
      child.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
}

function sendError(res, [status, body], extraHeaders = {}) {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
    'access-control-allow-origin': '*',
    ...extraHeaders,
  });
  res.end(text);
}

function positiveInt(raw, name) {
  if (raw === undefined || raw === null || raw === '') return undefined;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) {
    throw new PlatformError(`${name} must be a positive integer of milliseconds, got ${JSON.stringify(raw)}`);
  }
  return n;
}

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

// ---------------------------------------------------------------------------------------------
// Functions and their configuration
// ---------------------------------------------------------------------------------------------

/** Functions under `dir`: folders with an index.ts, except `_*` (shared code) and `tests`. */
export function discoverFunctions(dir) {
  let entries;
  try {
    entries = fs.readdirSync(dir, { withFileTypes: true });
  } catch (err) {
    if (err.code === 'ENOENT') return [];
    throw err;
  }
  return entries
    .filter((e) => e.isDirectory() && FUNCTION_NAME.test(e.name) && e.name !== 'tests')
    .filter((e) => fs.existsSync(path.join(dir, e.name, 'index.ts')))
    .map((e) => e.name)
    .sort();
}

/** Reads `[functions.<name>]` tables of a Supabase config.toml; re-reads when it changes. */
class FunctionsConfig {
  constructor(file, log) {
    this.file = file;
    this.log = log;
    this.mtimeMs = -1;
    this.functions = {};
  }

  /** { verify_jwt: boolean, enabled: boolean } of one function. */
  get(name) {
    this.refresh();
    const own = this.functions[name] ?? {};
    return {
      verifyJwt: own.verify_jwt !== false,
      enabled: own.enabled !== false,
    };
  }

  refresh() {
    let mtimeMs;
    try {
      mtimeMs = fs.statSync(this.file).mtimeMs;
    } catch {
      mtimeMs = 0;
    }
    if (mtimeMs === this.mtimeMs) return;
    this.mtimeMs = mtimeMs;
    if (mtimeMs === 0) {
      this.functions = {};
      return;
    }
    try {
      const parsed = parseToml(fs.readFileSync(this.file, 'utf8'));
      const functions = parsed.functions ?? {};
      for (const [name, conf] of Object.entries(functions)) {
        if (conf.verify_jwt !== undefined && typeof conf.verify_jwt !== 'boolean') {
          throw new Error(`[functions.${name}] verify_jwt must be true or false`);
        }
      }
      this.functions = functions;
    } catch (err) {
      // Keep the last good configuration; say why the new one is not used.
      this.log({ level: 'error', service: 'edge-runtime', event: 'config_invalid', file: this.file, error: err.message });
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Workers
// ---------------------------------------------------------------------------------------------

let workerSerial = 0;

class Worker {
  constructor(runtime, name) {
    this.runtime = runtime;
    this.name = name;
    this.id = `${name}#${++workerSerial}`;
    this.state = 'starting'; // starting | ready | exited
    this.spawnedAt = Date.now();
    this.activatedAt = null;
    this.retired = false;
    this.killReason = null; // 'wall_clock' | 'termination' | 'boot_timeout'
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
    this.exited = new Promise((resolve) => (this.resolveExited = resolve));
    this.start();
  }

  start() {
    const rt = this.runtime;
    const entry = pathToFileURL(path.join(rt.dir, this.name, 'index.ts')).href;
    const perFunctionConfig = path.join(rt.dir, this.name, 'deno.json');
    const args = [
      'run',
      '--no-prompt',
      '--no-lock',
      '--allow-net',
      '--allow-env',
      '--allow-sys',
      `--allow-read=${[...new Set([rt.root, rt.dir])].join(',')}`,
      '--config',
      fs.existsSync(perFunctionConfig) ? perFunctionConfig : path.join(rt.root, 'deno.json'),
      BOOTSTRAP,
    ];
    const env = { ...rt.workerEnv(), SPOOL_EDGE_RUNTIME: JSON.stringify({ name: this.name, entry }) };
    const child = spawn(rt.deno, args, { cwd: rt.root, env, stdio: ['pipe', 'pipe', 'pipe'] });
    this.child = child;
    allChildren.add(child);
    child.stdin.on('error', () => {}); // EPIPE after the worker exited
    this.pipeLines(child.stdout, 'stdout');
    this.pipeLines(child.stderr, 'stderr');
    child.on('error', (err) => this.onExit(null, null, err));
    child.on('exit', (code, signal) => this.onExit(code, signal));
    // 'close' comes after the last of its output has been read.
    child.on('close', () => this.resolveExited());
    this.bootTimer = setTimeout(() => {
      this.bootFailure(`did not call Deno.serve within ${rt.bootTimeoutMs} ms`);
      this.kill('boot_timeout', 'SIGKILL');
    }, rt.bootTimeoutMs);
    this.bootTimer.unref();
    rt.log({ event: 'worker_spawned', function: this.name, worker: this.id, pid: child.pid });
  }

  pipeLines(stream, name) {
    let buffered = '';
    stream.setEncoding('utf8');
    stream.on('data', (chunk) => {
      buffered += chunk;
      let newline;
      while ((newline = buffered.indexOf('\n')) >= 0) {
        this.onLine(buffered.slice(0, newline), name);
        buffered = buffered.slice(newline + 1);
      }
    });
    stream.on('end', () => {
      if (buffered) this.onLine(buffered, name);
      buffered = '';
    });
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
    // eslint-disable-next-line no-control-regex
    const msg = line.replace(/\u001b\[[0-9;]*m/g, '').trimEnd();
    if (msg) this.runtime.log({ function: this.name, worker: this.id, stream, msg });
  }

  onControl(event) {
    if (event.event === 'listening' && this.state === 'starting') {
      clearTimeout(this.bootTimer);
      this.port = event.port;
      this.state = 'ready';
      this.readyMs = Date.now() - this.spawnedAt;
      this.runtime.log({ event: 'worker_ready', function: this.name, worker: this.id, pid: this.child.pid, readyMs: this.readyMs });
      this.resolveReady();
    } else if (event.event === 'boot_error') {
      this.bootFailure(event.message);
    }
  }

  bootFailure(message) {
    if (this.state !== 'starting' || this.bootError) return;
    clearTimeout(this.bootTimer);
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
    this.timer(() => this.runtime.wallClock(this), wallClockMs);
  }

  timer(fn, ms) {
    const t = setTimeout(fn, ms);
    t.unref();
    this.timers.push(t);
  }

  send(command) {
    if (this.state === 'exited' || !this.child.stdin.writable) return;
    this.child.stdin.write(`${command}\n`);
  }

  kill(reason, signal = 'SIGKILL') {
    this.killReason ??= reason;
    if (this.state !== 'exited') this.child.kill(signal);
  }

  onExit(code, signal, err) {
    if (this.state === 'exited') return;
    if (this.state === 'starting') {
      this.bootFailure(err ? err.message : `exited during boot (${signal ?? `code ${code}`})`);
    }
    this.state = 'exited';
    allChildren.delete(this.child);
    clearTimeout(this.bootTimer);
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
    const answer = this.killReason === 'wall_clock' ? ERRORS.workerLimit : ERRORS.workerError;
    for (const request of this.inflight) request.fail(answer);
    this.inflight.clear();
    if (err) this.resolveExited(); // no 'close' follows a failed spawn
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
    this.wallClockMs = options.wallClockMs ??
      positiveInt(ctx.env?.SPOOL_EDGE_WALL_CLOCK_MS ?? process.env.SPOOL_EDGE_WALL_CLOCK_MS, 'SPOOL_EDGE_WALL_CLOCK_MS') ??
      DEFAULT_WALL_CLOCK_MS;
    this.requestIdleTimeoutMs = options.requestIdleTimeoutMs ?? DEFAULT_REQUEST_IDLE_TIMEOUT_MS;
    this.bootTimeoutMs = options.bootTimeoutMs ?? DEFAULT_BOOT_TIMEOUT_MS;
    this.prewarm = options.prewarm ?? false;
    this.deno = denoBinary(ctx.root);
    this.config = new FunctionsConfig(
      options.configFile ?? path.join(ctx.root, 'supabase', 'config.toml'),
      (obj) => this.log(obj),
    );
    this.current = new Map(); // name -> the Worker new requests go to
    this.workers = new Set(); // every live Worker, retired ones included
    this.closing = false;
    this.warnedEnv = false;
    if (!exitHookInstalled) {
      exitHookInstalled = true;
      process.once('exit', killWorkersSync);
    }
    if (options.watch) this.watch();
    if (this.prewarm) for (const name of this.functionNames()) this.spawn(name);
  }

  log(obj) {
    this.ctx.log?.({ service: 'edge-runtime', ...obj });
  }

  functionNames() {
    return discoverFunctions(this.dir).filter((name) => this.config.get(name).enabled);
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
    if (skipped.length > 0 && !this.warnedEnv) {
      this.warnedEnv = true;
      this.log({ level: 'warn', event: 'env_skipped', names: skipped, why: 'SUPABASE_* names are reserved: Supabase injects them' });
    }
    const { keys, publicUrl, dbPort } = this.ctx;
    Object.assign(env, {
      SUPABASE_URL: publicUrl,
      SUPABASE_ANON_KEY: keys.anonKey,
      SUPABASE_SERVICE_ROLE_KEY: keys.serviceRoleKey,
      SUPABASE_PUBLISHABLE_KEY: keys.anonKey,
      SUPABASE_SECRET_KEY: keys.serviceRoleKey,
      SUPABASE_PUBLISHABLE_KEYS: JSON.stringify({ default: keys.anonKey }),
      SUPABASE_SECRET_KEYS: JSON.stringify({ default: keys.serviceRoleKey }),
    });
    if (dbPort) env.SUPABASE_DB_URL = `postgresql://postgres:postgres@127.0.0.1:${dbPort}/postgres`;
    return env;
  }

  spawn(name) {
    const worker = new Worker(this, name);
    this.workers.add(worker);
    this.current.set(name, worker);
    return worker;
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
    const wasCurrent = this.current.get(worker.name) === worker;
    this.forget(worker);
    this.log({ event: 'worker_retired', function: worker.name, worker: worker.id, reason });
    if (wasCurrent && this.prewarm && !this.closing && this.config.get(worker.name).enabled &&
      fs.existsSync(path.join(this.dir, worker.name, 'index.ts'))) {
      this.spawn(worker.name);
    }
    worker.send('retire');
  }

  /** The wall clock ran out: beforeunload 'wall_clock', then the process is killed. */
  wallClock(worker) {
    if (worker.state === 'exited') return;
    this.retire(worker, 'wall_clock');
    worker.killReason = 'wall_clock';
    this.log({ level: 'warn', event: 'worker_killed', function: worker.name, worker: worker.id, reason: 'wall_clock', wallClockMs: this.wallClockMs, inflight: worker.inflight.size });
    worker.send('wall_clock');
    const t = setTimeout(() => worker.kill('wall_clock'), WALL_CLOCK_KILL_GRACE_MS);
    t.unref();
    worker.timers.push(t);
  }

  watch() {
    const pendingNames = new Set();
    let timer = null;
    const flush = () => {
      timer = null;
      const names = [...pendingNames];
      pendingNames.clear();
      const all = names.includes('*');
      for (const worker of [...this.current.values()]) {
        if (all || names.includes(worker.name)) this.retire(worker, 'files_changed');
      }
      // A new function folder: warm it up.
      for (const name of this.functionNames()) {
        if (!this.current.has(name) && this.prewarm && !this.closing) this.spawn(name);
      }
    };
    try {
      this.watcher = fs.watch(this.dir, { recursive: true }, (_event, filename) => {
        if (!filename) return;
        const first = String(filename).split(path.sep)[0];
        pendingNames.add(first.startsWith('_') ? '*' : first);
        timer ??= setTimeout(flush, 150);
      });
      this.watcher.on('error', (err) => this.log({ level: 'warn', event: 'watch_failed', error: err.message }));
    } catch (err) {
      this.log({ level: 'warn', event: 'watch_failed', error: err.message });
    }
  }

  verifyJwt(req) {
    const header = req.headers.authorization;
    if (!header) return ERRORS.missingAuth;
    const token = /^Bearer\s+(\S+)\s*$/i.exec(header)?.[1];
    if (!token) return ERRORS.invalidJwt;
    try {
      this.ctx.keys.verify(token);
      return null;
    } catch {
      return ERRORS.invalidJwt;
    }
  }

  async handle(req, res) {
    // The raw target keeps the caller's encoding: /functions/v1/<name><rest>?<query>
    const target = req.url.slice(PREFIX.length);
    const match = /^\/([^/?#]+)([/?#].*)?$/.exec(target);
    const name = match?.[1];
    if (!name || !FUNCTION_NAME.test(name) || name === 'tests' ||
      !fs.existsSync(path.join(this.dir, name, 'index.ts'))) {
      return sendError(res, ERRORS.notFound);
    }
    const conf = this.config.get(name);
    if (!conf.enabled) return sendError(res, ERRORS.notFound);
    if (conf.verifyJwt && req.method !== 'OPTIONS') {
      const denied = this.verifyJwt(req);
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

    let done = false;
    const request = {
      fail: (error) => {
        if (done) return;
        done = true;
        clearTimeout(idle);
        upstream.destroy();
        sendError(res, error);
      },
    };
    worker.inflight.add(request);
    const finish = () => {
      done = true;
      clearTimeout(idle);
      worker.inflight.delete(request);
    };

    const upstream = http.request({
      host: '127.0.0.1',
      port: worker.port,
      method: req.method,
      path: target,
      headers,
      agent: worker.agent,
    });
    const idle = setTimeout(() => {
      this.log({ level: 'warn', event: 'request_idle_timeout', function: worker.name, worker: worker.id, path: target, timeoutMs: this.requestIdleTimeoutMs });
      request.fail(ERRORS.idleTimeout);
      worker.inflight.delete(request);
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
      // killReason is set before the runtime stops a worker, so a wall-clock kill is told apart
      // from a crash even when the connection breaks before the exit is seen.
      this.log({ level: 'warn', event: 'proxy_failed', function: worker.name, worker: worker.id, error: err.message });
      request.fail(worker.killReason === 'wall_clock' ? ERRORS.workerLimit : ERRORS.workerError);
    });
    // The caller went away before the response finished: stop the upstream request too.
    res.on('close', () => {
      if (!res.writableFinished && !done) {
        finish();
        upstream.destroy();
      }
      worker.inflight.delete(request);
    });
    req.pipe(upstream);
  }

  /** Stops every worker: beforeunload 'termination', a short grace, then SIGKILL. */
  async close() {
    this.closing = true;
    this.watcher?.close();
    const workers = [...this.workers];
    for (const worker of workers) {
      worker.killReason ??= 'termination';
      worker.send('terminate');
      const t = setTimeout(() => worker.kill('termination'), TERMINATION_GRACE_MS);
      t.unref();
      worker.timers.push(t);
    }
    await Promise.all(workers.map((w) => w.exited));
  }

  /** Live workers, for tests and diagnostics. */
  list() {
    return [...this.workers].map((w) => ({
      id: w.id,
      function: w.name,
      pid: w.child.pid,
      state: w.state,
      current: this.current.get(w.name) === w,
      retired: w.retired,
      activatedAt: w.activatedAt,
    }));
  }
}

/** The runtime as a route of local/gateway/server.mjs, plus list()/killSync() for the stack. */
export function createFunctionsRuntime(ctx, options = {}) {
  const runtime = new FunctionsRuntime(ctx, options);
  return {
    name: 'functions',
    prefix: PREFIX,
    runtime,
    handle: (req, res, url) => runtime.handle(req, res, url),
    close: () => runtime.close(),
    list: () => runtime.list(),
    functionNames: () => runtime.functionNames(),
  };
}

export function create(ctx) {
  return createFunctionsRuntime(ctx, ctx.options?.functions ?? {});
}
