// Spool's local Edge Runtime: the Deno side of one function worker.
//
// local/standins/functions.mjs starts one `deno run` of this module per Edge Function (with the
// permissions Supabase's Edge Runtime grants: net, env, read, sys; no run, no write) and proxies
// /functions/v1/<name>… to it. This module gives plain Deno what supabase/edge-runtime adds:
//
//   * globalThis.EdgeRuntime.waitUntil(promise): background work tracked until it settles; a
//     retired worker stays alive for it (within the wall clock).
//   * addEventListener('beforeunload', (ev) => ev.detail.reason): a CustomEvent dispatched before
//     shutdown, reason 'wall_clock' (the worker's wall clock ran out; the gateway kills it right
//     after), 'cpu' / 'memory' (90% of the CPU-time / memory limit is used; the gateway kills the
//     worker at the limit), 'early_drop' (a retired worker finished all its work) or
//     'termination' (the gateway stops, or went away): supabase/edge-runtime's
//     WillTerminateReason names. Each reason is dispatched at most once.
//   * the memory the supervisor measures: V8's used heap + external memory (ArrayBuffers), from
//     Deno.memoryUsage(), sampled while the worker has work and reported to the gateway when it
//     crosses half of the limit, 90% of it and the limit (the gateway retires the worker at
//     half and kills it at the limit); at 90% beforeunload 'memory' is dispatched here, first.
//   * Deno.serve(...), in all its overloads (handler; options, handler; { handler, ...options }),
//     bound to a private loopback port the gateway learns from us, whatever port the function
//     asked for. One Deno.serve per worker, as on Supabase.
//
// Protocol with the gateway (private to these two files):
//   config   env SPOOL_EDGE_RUNTIME = {"name": "...", "entry": "file:///.../index.ts",
//            "memoryLimitBytes": N, "sampleMs": N}, deleted from the environment before the
//            function's module loads.
//   stdout   lines starting with CONTROL + JSON are events for the gateway:
//            {"event":"listening","port":N} | {"event":"boot_error","message":"..."} |
//            {"event":"memory","bytes":N}; every other line is the function's own output.
//   stdin    one command per line: "retire" (finish what is in flight and pending, then exit),
//            "wall_clock" (dispatch beforeunload, exit now), "beforeunload cpu" / "beforeunload
//            memory" (dispatch beforeunload, keep running), "terminate" (dispatch beforeunload,
//            drain briefly, exit). End of input means the gateway is gone: exit.
//   signals  SIGINT / SIGTERM (a terminal's Ctrl-C reaches the workers too) act as "terminate".

const CONTROL = '\u001e[spool-edge] ';
const encoder = new TextEncoder();

function control(event: Record<string, unknown>): void {
  Deno.stdout.writeSync(encoder.encode(`${CONTROL}${JSON.stringify(event)}\n`));
}

interface RuntimeConfig {
  name: string;
  entry: string;
  memoryLimitBytes: number;
  sampleMs: number;
}

const rawConfig = Deno.env.get('SPOOL_EDGE_RUNTIME');
if (!rawConfig) {
  console.error(
    'bootstrap.ts is started by local/standins/functions.mjs (SPOOL_EDGE_RUNTIME unset)',
  );
  Deno.exit(2);
}
const config: RuntimeConfig = JSON.parse(rawConfig);
Deno.env.delete('SPOOL_EDGE_RUNTIME');
Deno.env.delete('DENO_NO_UPDATE_CHECK');

// ---------------------------------------------------------------------------------------------
// EdgeRuntime.waitUntil
// ---------------------------------------------------------------------------------------------

const pending = new Set<Promise<void>>();

function waitUntil<T>(promise: T | Promise<T>): Promise<T> {
  const task = working(Promise.resolve(promise));
  const tracked: Promise<void> = task.then(
    () => {},
    (err) => {
      console.error('EdgeRuntime.waitUntil: a background task failed:', err);
    },
  ).finally(() => pending.delete(tracked));
  pending.add(tracked);
  return task;
}

/** Resolves once no background task is pending (including ones added while waiting). */
async function settleBackground(): Promise<void> {
  while (pending.size > 0) await Promise.allSettled([...pending]);
}

Object.defineProperty(globalThis, 'EdgeRuntime', {
  value: Object.freeze({ waitUntil }),
  writable: false,
  enumerable: false,
  configurable: false,
});

// ---------------------------------------------------------------------------------------------
// Deno.serve
// ---------------------------------------------------------------------------------------------

type Handler = (request: Request, info: Deno.ServeHandlerInfo) => Response | Promise<Response>;
type ServeOptions = Record<string, unknown> & { handler?: Handler; onListen?: unknown };

const realServe = Deno.serve.bind(Deno) as (
  options: ServeOptions,
  handler: Handler,
) => Deno.HttpServer;
let server: Deno.HttpServer | null = null;

function serve(first?: unknown, second?: unknown): Deno.HttpServer {
  let options: ServeOptions;
  let handler: Handler | undefined;
  if (typeof first === 'function') {
    options = {};
    handler = first as Handler;
  } else if (typeof second === 'function') {
    options = (first ?? {}) as ServeOptions;
    handler = second as Handler;
  } else {
    options = (first ?? {}) as ServeOptions;
    handler = options.handler;
  }
  if (typeof handler !== 'function') {
    throw new TypeError('Deno.serve: a handler function is required');
  }
  if (server) {
    throw new Error(
      'Deno.serve was called more than once: an Edge Function serves one handler (Spool local Edge Runtime)',
    );
  }
  // Where to listen is the runtime's business, as on Supabase: drop the function's own choice.
  const {
    port: _port,
    hostname: _hostname,
    path: _path,
    transport: _transport,
    cert: _cert,
    key: _key,
    handler: _handler,
    onListen: _onListen,
    ...rest
  } = options;
  const serveRequest = handler;
  server = realServe({
    ...rest,
    hostname: '127.0.0.1',
    port: 0,
    onListen: (addr: Deno.NetAddr) => control({ event: 'listening', port: addr.port }),
  }, (req, info) => working(Promise.resolve().then(() => serveRequest(req, info))));
  return server;
}

Object.defineProperty(Deno, 'serve', {
  value: serve,
  writable: false,
  enumerable: true,
  configurable: true,
});

// ---------------------------------------------------------------------------------------------
// Shutdown
// ---------------------------------------------------------------------------------------------

type Reason = 'wall_clock' | 'cpu' | 'memory' | 'early_drop' | 'termination';
const dispatched = new Set<Reason>();

function dispatchBeforeunload(reason: Reason): void {
  if (dispatched.has(reason)) return;
  dispatched.add(reason);
  try {
    globalThis.dispatchEvent(
      new CustomEvent('beforeunload', { cancelable: true, detail: { reason } }),
    );
  } catch (err) {
    console.error('a beforeunload listener threw:', err);
  }
}

let retiring = false;

/** Retired: no new requests come; exit once in-flight requests and background tasks are done. */
async function retire(): Promise<void> {
  if (retiring) return;
  retiring = true;
  await settleBackground();
  await server?.shutdown();
  await settleBackground();
  dispatchBeforeunload('early_drop');
  Deno.exit(0);
}

let terminating = false;

async function terminate(): Promise<void> {
  if (terminating) return;
  terminating = true;
  dispatchBeforeunload('termination');
  // The gateway kills us after a short grace; use it to let work in flight finish.
  await Promise.race([
    (async () => {
      await server?.shutdown();
      await settleBackground();
    })(),
    new Promise((resolve) => setTimeout(resolve, 1000)),
  ]);
  Deno.exit(0);
}

function onCommand(command: string): void {
  switch (command) {
    case 'retire':
      retire();
      break;
    case 'wall_clock':
      dispatchBeforeunload('wall_clock');
      Deno.exit(0);
      break;
    case 'beforeunload cpu':
      dispatchBeforeunload('cpu');
      break;
    case 'beforeunload memory':
      dispatchBeforeunload('memory');
      break;
    case 'terminate':
      terminate();
      break;
    case '':
      break;
    default:
      console.error(`spool edge runtime: unknown command ${JSON.stringify(command)}`);
  }
}

// Ctrl-C in a terminal reaches the whole process group, workers included: shut down as on a
// 'terminate' command rather than dying without beforeunload.
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  Deno.addSignalListener(signal, () => terminate());
}

(async () => {
  const decoder = new TextDecoder();
  let buffered = '';
  try {
    for await (const chunk of Deno.stdin.readable) {
      buffered += decoder.decode(chunk, { stream: true });
      let newline;
      while ((newline = buffered.indexOf('\n')) >= 0) {
        const command = buffered.slice(0, newline).trim();
        buffered = buffered.slice(newline + 1);
        onCommand(command);
      }
    }
  } catch {
    // stdin broke: same as end of input.
  }
  // The gateway is gone (it closed our stdin or died): do not outlive it.
  dispatchBeforeunload('termination');
  Deno.exit(0);
})();

// ---------------------------------------------------------------------------------------------
// Memory (what hosted's mem check adds up: used heap + external)
// ---------------------------------------------------------------------------------------------

// Sampled while the worker has work (module evaluation, a request being handled, a waitUntil
// task): memory only grows while code runs, and an idle worker then spends no CPU on its meter.
const memoryLimit = config.memoryLimitBytes;
const memoryMarks = [memoryLimit / 2, memoryLimit * 0.9, memoryLimit];
let nextMark = 0;
let busy = 0;
let memoryTimer: ReturnType<typeof setInterval> | null = null;

function sampleMemory(): void {
  const { heapUsed, external } = Deno.memoryUsage();
  const bytes = heapUsed + external;
  if (nextMark < memoryMarks.length && bytes >= memoryMarks[nextMark]) {
    while (nextMark < memoryMarks.length && bytes >= memoryMarks[nextMark]) nextMark++;
    // At 90% listeners hear it first, even when this sample is past the limit already (hosted
    // checks after every turn of the event loop, so it sees 90% on the way up).
    if (bytes >= memoryLimit * 0.9) dispatchBeforeunload('memory');
    control({ event: 'memory', bytes });
  }
}

function working<T>(task: Promise<T>): Promise<T> {
  if (busy++ === 0 && memoryTimer === null) {
    const timer = setInterval(sampleMemory, config.sampleMs);
    Deno.unrefTimer(timer);
    memoryTimer = timer;
  }
  const done = () => {
    if (--busy > 0) return;
    sampleMemory();
    if (memoryTimer !== null) clearInterval(memoryTimer);
    memoryTimer = null;
  };
  task.then(done, done);
  return task;
}

// ---------------------------------------------------------------------------------------------
// Boot
// ---------------------------------------------------------------------------------------------

try {
  await working(import(config.entry));
} catch (err) {
  console.error(err);
  control({ event: 'boot_error', message: err instanceof Error ? err.message : String(err) });
  Deno.exit(1);
}
if (!server) {
  const message = `${config.name}/index.ts loaded but did not call Deno.serve()`;
  console.error(message);
  control({ event: 'boot_error', message });
  Deno.exit(1);
}
