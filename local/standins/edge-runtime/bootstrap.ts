// The Deno side of one local Edge Runtime worker: local/standins/functions.mjs starts one `deno run`
// of this module per Edge Function (with the permissions Supabase's Edge Runtime grants: net, env,
// read, sys) and proxies /functions/v1/<name>… to it. It gives plain Deno what edge-runtime adds:
//
//   * EdgeRuntime.waitUntil(promise): background work a worker stays alive for (within the wall clock).
//   * addEventListener('beforeunload', (ev) => ev.detail.reason), once per reason, with
//     supabase/edge-runtime's WillTerminateReason names: 'wall_clock' (killed right after),
//     'cpu' / 'memory' (90% of the limit used; killed at the limit), 'early_drop' (a retired
//     worker finished all its work), 'termination' (the gateway stops, or went away).
//   * Deno.serve(...) in all its overloads, once per worker as on Supabase, bound to a private
//     loopback port the gateway learns from us, whatever the function asked for.
//
// Protocol with the gateway (private to these two files):
//   config   env SPOOL_EDGE_RUNTIME = {"name", "entry" (file: URL of index.ts),
//            "memoryLimitBytes", "sampleMs"}, deleted before the function's module loads.
//   stdout   CONTROL + JSON lines are events: {"event":"listening","port":N} |
//            {"event":"boot_error","message":"..."} | {"event":"memory","bytes":N} (at the limit);
//            every other line is the function's own output.
//   stdin    one command per line: "retire" (finish what is in flight and pending, then exit),
//            "wall_clock" (beforeunload, exit now), "beforeunload cpu", "terminate" (beforeunload,
//            finish until the gateway's grace runs out; SIGINT / SIGTERM too). End of input: exit.

const CONTROL = '\u001e[spool-edge] ';
const encoder = new TextEncoder();

function control(event: Record<string, unknown>): void {
  Deno.stdout.writeSync(encoder.encode(`${CONTROL}${JSON.stringify(event)}\n`));
}

const rawConfig = Deno.env.get('SPOOL_EDGE_RUNTIME');
if (!rawConfig) throw new Error('bootstrap.ts is started by local/standins/functions.mjs');
const config: { name: string; entry: string; memoryLimitBytes: number; sampleMs: number } = JSON.parse(rawConfig);
Deno.env.delete('SPOOL_EDGE_RUNTIME');
Deno.env.delete('DENO_NO_UPDATE_CHECK');

// EdgeRuntime.waitUntil

const pending = new Set<Promise<void>>();

function waitUntil<T>(promise: T | Promise<T>): Promise<T> {
  const task = working(Promise.resolve(promise));
  const tracked: Promise<void> = task.then(() => {}, (err) => {
    console.error('EdgeRuntime.waitUntil: a background task failed:', err);
  }).finally(() => pending.delete(tracked));
  pending.add(tracked);
  return task;
}

Object.defineProperty(globalThis, 'EdgeRuntime', { value: Object.freeze({ waitUntil }) });

// Deno.serve

type Handler = (request: Request, info: Deno.ServeHandlerInfo) => Response | Promise<Response>;

const realServe = Deno.serve.bind(Deno) as (options: object, handler: Handler) => Deno.HttpServer;
let server: Deno.HttpServer | null = null;

function serve(first?: unknown, second?: unknown): Deno.HttpServer {
  const options = (typeof first === 'function' ? {} : first ?? {}) as Record<string, unknown>;
  const handler = (typeof first === 'function' ? first : second ?? options.handler) as Handler;
  if (typeof handler !== 'function') throw new TypeError('Deno.serve: a handler function is required');
  if (server) throw new Error('Deno.serve was called more than once: an Edge Function serves one handler');
  // Where and how to listen is the runtime's business, as on Supabase: the function's own
  // port, hostname, onListen, unix socket and TLS give way.
  const { path: _path, transport: _transport, cert: _cert, key: _key, ...rest } = options;
  server = realServe({
    ...rest,
    hostname: '127.0.0.1',
    port: 0,
    onListen: (addr: Deno.NetAddr) => control({ event: 'listening', port: addr.port }),
  }, (req, info) => working(Promise.resolve().then(() => handler(req, info))));
  return server;
}

Object.defineProperty(Deno, 'serve', { value: serve });

// Shutdown

type Reason = 'wall_clock' | 'cpu' | 'memory' | 'early_drop' | 'termination';
const dispatched = new Set<Reason>();

function dispatchBeforeunload(reason: Reason): void {
  if (dispatched.has(reason)) return;
  dispatched.add(reason);
  // (A listener that throws ends the worker: Deno reports it as an uncaught error.)
  globalThis.dispatchEvent(new CustomEvent('beforeunload', { cancelable: true, detail: { reason } }));
}

/**
 * No new requests: exit once in-flight requests and background tasks (added while waiting too) are
 * done. beforeunload 'termination' comes first (the gateway kills us after its grace), 'early_drop'
 * last (a retired worker that finished its work).
 */
async function drain(reason: 'early_drop' | 'termination'): Promise<void> {
  if (reason === 'termination') dispatchBeforeunload(reason);
  await server?.shutdown();
  while (pending.size > 0) await Promise.allSettled([...pending]);
  dispatchBeforeunload(reason);
  Deno.exit(0);
}

function onCommand(command: string): void {
  if (command === 'retire') drain('early_drop');
  else if (command === 'terminate') drain('termination');
  else if (command === 'beforeunload cpu') dispatchBeforeunload('cpu');
  else if (command === 'wall_clock') {
    dispatchBeforeunload('wall_clock');
    Deno.exit(0);
  }
}

// Ctrl-C in a terminal reaches the whole process group, workers included: shut down as on a
// 'terminate' command rather than dying without beforeunload.
for (const signal of ['SIGINT', 'SIGTERM'] as const) Deno.addSignalListener(signal, () => drain('termination'));

(async () => {
  let buffered = '';
  try {
    for await (const chunk of Deno.stdin.readable.pipeThrough(new TextDecoderStream())) {
      const lines = (buffered + chunk).split('\n');
      buffered = lines.pop()!;
      for (const line of lines) onCommand(line.trim());
    }
  } catch {
    // stdin broke: same as end of input.
  }
  // The gateway is gone (it closed our stdin or died): do not outlive it.
  dispatchBeforeunload('termination');
  Deno.exit(0);
})();

// Memory as hosted's supervisor adds it up (used heap + external), sampled while the worker has
// work (module evaluation, a request, a waitUntil task): memory only grows while code runs, and an
// idle worker then spends no CPU on its meter.

let busy = 0;
let memoryTimer: ReturnType<typeof setInterval> | undefined;

function sampleMemory(): void {
  const { heapUsed, external } = Deno.memoryUsage();
  const bytes = heapUsed + external;
  // At 90% listeners hear it first, even when this sample is past the limit already (hosted
  // checks after every turn of the event loop, so it sees 90% on the way up).
  if (bytes >= config.memoryLimitBytes * 0.9) dispatchBeforeunload('memory');
  if (bytes >= config.memoryLimitBytes) control({ event: 'memory', bytes });
}

function working<T>(task: Promise<T>): Promise<T> {
  if (busy++ === 0) {
    memoryTimer = setInterval(sampleMemory, config.sampleMs);
    Deno.unrefTimer(memoryTimer);
  }
  const done = () => {
    if (--busy > 0) return;
    sampleMemory();
    clearInterval(memoryTimer);
  };
  task.then(done, done);
  return task;
}

// Boot

try {
  await working(import(config.entry));
  if (!server) throw new Error(`${config.name}/index.ts loaded but did not call Deno.serve()`);
} catch (err) {
  console.error(err);
  control({ event: 'boot_error', message: err instanceof Error ? err.message : String(err) });
  Deno.exit(1);
}
