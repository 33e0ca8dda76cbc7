// The local Edge Runtime (local/standins/functions.mjs + edge-runtime/bootstrap.ts), driven over
// HTTP the way Supabase's gateway is: fixture functions written to a temp folder run in real
// Deno behind a gateway route on a free port. No database needed.

import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { EventEmitter } from 'node:events';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createClient } from '@supabase/supabase-js';
import { ROOT } from '../../tools/db.mjs';
import { cacheEntries, cacheFunctionModules } from '../edge-runtime/cache.mjs';
import { createFunctionsRuntime, denoBinary } from '../functions.mjs';
import { loadKeys, signJwt } from '../keys.mjs';

// ---------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------

const FIXTURES = {
  '_shared/echo.ts': `
    export async function echo(req: Request): Promise<Response> {
      const url = new URL(req.url);
      return Response.json({
        url: req.url,
        path: url.pathname + url.search,
        method: req.method,
        headers: Object.fromEntries(req.headers),
        body: req.body ? await req.text() : null,
        env: Deno.env.toObject(),
        args: Deno.args,
      });
    }
  `,
  // verify_jwt: default (true)
  'echo/index.ts': `
    import { echo } from '../_shared/echo.ts';
    Deno.serve((req) => echo(req));
  `,
  // verify_jwt = false; Deno.serve(options, handler) with a port of its own choosing
  'public-echo/index.ts': `
    import { echo } from '../_shared/echo.ts';
    Deno.serve({ port: 9999, hostname: '0.0.0.0' }, (req) => echo(req));
  `,
  // Deno.serve({ handler }): the request body streamed back as it arrives
  'stream/index.ts': `
    Deno.serve({
      handler: (req) => new Response(req.body, { headers: { 'content-type': 'application/octet-stream' } }),
    });
  `,
  // Answers 202 at once; the rest happens in EdgeRuntime.waitUntil
  'background/index.ts': `
    Deno.serve(async (req) => {
      const { hold, done } = await req.json();
      EdgeRuntime.waitUntil((async () => {
        const released = await fetch(hold).then((r) => r.text());
        await fetch(done, { method: 'POST', body: 'finished after ' + released });
      })());
      return new Response('accepted', { status: 202 });
    });
  `,
  // Logs beforeunload; /hang never answers; /background holds a waitUntil task open
  'overrun/index.ts': `
    addEventListener('beforeunload', (ev) => {
      console.log('beforeunload ' + ev.detail?.reason + ' pid=' + Deno.pid);
    });
    Deno.serve(async (req) => {
      const url = new URL(req.url);
      if (url.pathname.endsWith('/hang')) await new Promise(() => {});
      if (url.pathname.endsWith('/background')) {
        const { hold } = await req.json();
        EdgeRuntime.waitUntil(fetch(hold).then((r) => r.text()));
        return new Response('accepted', { status: 202 });
      }
      return Response.json({ pid: Deno.pid });
    });
  `,
  // Spends CPU: /spin never yields; /chunks burns in slices and yields between them; /burn?ms=N
  // burns N ms of this process's CPU time (node:process cpuUsage) and answers.
  'burn/index.ts': `
    import process from 'node:process';
    addEventListener('beforeunload', (ev) => {
      console.log('beforeunload ' + ev.detail?.reason + ' pid=' + Deno.pid);
    });
    const cpuMs = () => { const { user, system } = process.cpuUsage(); return (user + system) / 1000; };
    function burn(ms: number) { const end = cpuMs() + ms; let x = 0; while (cpuMs() < end) x++; return x; }
    Deno.serve(async (req) => {
      const url = new URL(req.url);
      if (url.pathname.endsWith('/spin')) for (;;) burn(1000);
      if (url.pathname.endsWith('/chunks')) for (;;) { burn(5); await new Promise((r) => setTimeout(r, 0)); }
      if (url.pathname.endsWith('/burn')) burn(Number(url.searchParams.get('ms')));
      return Response.json({ pid: Deno.pid });
    });
  `,
  // Holds memory: /external keeps 4 MiB ArrayBuffers, yielding between them; /heap grows V8's
  // heap without yielding, in large arrays, so it reaches the cap in far less CPU time than the
  // CPU limit allows (small objects would make GC marking the bottleneck and trip the CPU limit first).
  'hog/index.ts': `
    addEventListener('beforeunload', (ev) => {
      console.log('beforeunload ' + ev.detail?.reason + ' pid=' + Deno.pid);
    });
    const kept: unknown[] = [];
    Deno.serve(async (req) => {
      const url = new URL(req.url);
      if (url.pathname.endsWith('/external')) {
        for (;;) { kept.push(new Uint8Array(4 * 1024 * 1024).fill(1)); await new Promise((r) => setTimeout(r, 1)); }
      }
      if (url.pathname.endsWith('/heap')) for (;;) kept.push(new Array(1 << 20).fill(kept.length));
      return Response.json({ pid: Deno.pid });
    });
  `,
  'broken/index.ts': `
    throw new Error('this function cannot start');
  `,
  // An npm package the cache step never cached (nor deno.lock pins): workers must not fetch it
  'uncached/index.ts': `
    import leftPad from 'npm:left-pad@1.3.0';
    Deno.serve(() => new Response(leftPad('x', 3)));
  `,
  // A function with its own deno.json whose frozen deno.lock does not pin what it imports
  'drifted/deno.json': `{ "nodeModulesDir": "none", "lock": { "path": "./deno.lock", "frozen": true } }`,
  'drifted/deno.lock': `{ "version": "5" }`,
  'drifted/index.ts': `
    import { z } from 'npm:zod@4.6.7';
    Deno.serve(() => new Response(typeof z));
  `,
  'no-serve/index.ts': `
    console.log('loaded, but serving nothing');
  `,
  'tests/index.ts': `Deno.serve(() => new Response('tests is not a function'));`,
  'config.toml': `
    project_id = "fixtures"
    [functions.public-echo]
    verify_jwt = false
    [functions.stream]
    verify_jwt = false
    [functions.background]
    verify_jwt = false
    [functions.overrun]
    verify_jwt = false
    [functions.broken]
    verify_jwt = false
    [functions.burn]
    verify_jwt = false
    [functions.hog]
    verify_jwt = false
    [functions.no-serve]
    verify_jwt = false
    [functions.uncached]
    verify_jwt = false
    [functions.drifted]
    verify_jwt = false
  `,
};

function writeFixtures(dir) {
  for (const [file, text] of Object.entries(FIXTURES)) {
    const abs = path.join(dir, file);
    fs.mkdirSync(path.dirname(abs), { recursive: true });
    fs.writeFileSync(abs, text.replace(/^ {4}/gm, '').trimStart());
  }
}

/** Log lines of a runtime, with a way to await one. */
class LogTap extends EventEmitter {
  lines = [];
  sink = (line) => {
    this.lines.push(line);
    this.emit('line', line);
  };

  /** Resolves with the first line (past or future) that matches. */
  waitFor(match, what = 'a matching log line', timeoutMs = 20_000) {
    const found = this.lines.find(match);
    if (found) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.off('line', onLine);
        reject(new Error(`timed out waiting for ${what}; log:\n${this.lines.map((l) => JSON.stringify(l)).join('\n')}`));
      }, timeoutMs);
      const onLine = (line) => {
        if (!match(line)) return;
        clearTimeout(timer);
        this.off('line', onLine);
        resolve(line);
      };
      this.on('line', onLine);
    });
  }
}

/** A gateway of one functions runtime on a free port, as local/standins/server.mjs routes it. */
async function startRuntime({ dir, stateDir, env = {}, options = {} }) {
  // The legacy keys (JWTs, so any of them passes verify_jwt): these tests are about the runtime.
  // With the new keys (SPOOL_KEYS=new), verify_jwt and the injected keys: keys.test.mjs.
  const keys = await loadKeys(stateDir, { mode: 'legacy' });
  const tap = new LogTap();
  const server = http.createServer();
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${server.address().port}`;
  const ctx = { root: ROOT, stateDir, publicUrl: url, keys, dbPort: 54399, env, log: tap.sink };
  const route = createFunctionsRuntime(ctx, { dir, configFile: path.join(dir, 'config.toml'), ...options });
  server.on('request', (req, res) => {
    route.handle(req, res, new URL(req.url, url)).catch((err) => {
      res.writeHead(500);
      res.end(String(err.stack));
    });
  });
  return {
    url,
    keys,
    tap,
    route,
    async close() {
      await new Promise((resolve) => {
        server.close(resolve);
        server.closeAllConnections();
      });
      await route.close();
    },
  };
}

/** A local HTTP server the functions call back: /hold/<id> answers when released. */
async function startCallbackServer() {
  const events = new EventEmitter();
  const held = new Map();
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      const { pathname } = new URL(req.url, 'http://x');
      if (pathname.startsWith('/hold/')) {
        held.set(pathname, res);
        events.emit(`held ${pathname}`);
        return;
      }
      res.end('ok');
      events.emit(`called ${pathname}`, body);
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${server.address().port}`;
  return {
    url,
    /** Resolves with the body of the next call to `pathname`. */
    called: (pathname) => new Promise((resolve) => events.once(`called ${pathname}`, resolve)),
    held: (pathname) => new Promise((resolve) => (held.has(pathname) ? resolve() : events.once(`held ${pathname}`, resolve))),
    release(pathname, text = 'released') {
      held.get(pathname)?.end(text);
      held.delete(pathname);
    },
    async close() {
      for (const res of held.values()) res.end();
      await new Promise((resolve) => {
        server.close(resolve);
        server.closeAllConnections();
      });
    },
  };
}

const alive = (pid) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

// ---------------------------------------------------------------------------------------------

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'spool-functions-test-'));
const dir = path.join(tmp, 'functions');
writeFixtures(dir);
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('the local Edge Runtime', () => {
  let rt;
  let callbacks;
  const bearer = (token) => ({ authorization: `Bearer ${token}` });

  before(async () => {
    process.env.SPOOL_GATEWAY_ONLY_SECRET = 'must not reach functions';
    rt = await startRuntime({
      dir,
      stateDir: path.join(tmp, 'state'),
      env: { SPOOL_FIXTURE: 'from ctx.env', SUPABASE_JWT_SECRET: 'reserved name' },
      options: { prewarm: true },
    });
    callbacks = await startCallbackServer();
  });
  after(async () => {
    await rt?.close();
    await callbacks?.close();
    delete process.env.SPOOL_GATEWAY_ONLY_SECRET;
  });

  test('serves /functions/v1/<name>/… to the function as /<name>/…, query string kept', async () => {
    const res = await fetch(`${rt.url}/functions/v1/echo/a/b%20c?x=1&y=two`, {
      headers: { ...bearer(rt.keys.anonKey), 'x-custom': 'passed through' },
    });
    assert.equal(res.status, 200);
    const body = await res.json();
    assert.equal(body.path, '/echo/a/b%20c?x=1&y=two');
    assert.equal(body.url, `${rt.url}/echo/a/b%20c?x=1&y=two`, 'req.url has the public origin');
    assert.equal(body.method, 'GET');
    assert.equal(body.headers['x-custom'], 'passed through');
    assert.equal(body.headers.host, new URL(rt.url).host, 'Host passes');
    assert.deepEqual(body.args, []);

    const bare = await fetch(`${rt.url}/functions/v1/echo?only=query`, { headers: bearer(rt.keys.anonKey) });
    assert.equal((await bare.json()).path, '/echo?only=query');
  });

  test('binds Deno.serve to the runtime whatever port the function asks for', async () => {
    const res = await fetch(`${rt.url}/functions/v1/public-echo/x`);
    assert.equal(res.status, 200);
    assert.equal((await res.json()).path, '/public-echo/x');
  });

  test('verify_jwt (the default) refuses a request without a valid JWT, as Supabase does', async () => {
    const call = (headers) => fetch(`${rt.url}/functions/v1/echo`, { headers });

    let res = await call({});
    assert.equal(res.status, 401);
    assert.deepEqual(await res.json(), { code: 401, message: 'Missing authorization header' });
    assert.match(res.headers.get('content-type'), /application\/json/);

    const otherSecret = await signJwt({ role: 'anon', exp: Math.floor(Date.now() / 1000) + 60 }, 'not-the-secret');
    const expired = await rt.keys.sign({ role: 'authenticated', sub: crypto.randomUUID(), exp: Math.floor(Date.now() / 1000) - 10 });
    for (const headers of [
      bearer('not-a-jwt'),
      bearer(otherSecret),
      bearer(expired),
      { authorization: rt.keys.anonKey }, // no Bearer scheme
      { apikey: rt.keys.anonKey }, // the apikey header alone is not enough
    ]) {
      res = await call(headers);
      assert.equal(res.status, 401, JSON.stringify(headers));
      const message = headers.authorization ? 'Invalid JWT' : 'Missing authorization header';
      assert.deepEqual(await res.json(), { code: 401, message });
    }
  });

  test('verify_jwt accepts the anon key, the service_role key and user access tokens', async () => {
    const user = await rt.keys.sign({ role: 'authenticated', sub: crypto.randomUUID(), aud: 'authenticated', exp: Math.floor(Date.now() / 1000) + 60 });
    for (const token of [rt.keys.anonKey, rt.keys.serviceRoleKey, user]) {
      const res = await fetch(`${rt.url}/functions/v1/echo`, { headers: bearer(token) });
      assert.equal(res.status, 200);
      assert.equal((await res.json()).headers.authorization, `Bearer ${token}`);
    }
  });

  test('verify_jwt lets CORS preflights (OPTIONS) through without a JWT', async () => {
    const res = await fetch(`${rt.url}/functions/v1/echo`, { method: 'OPTIONS' });
    assert.equal(res.status, 200);
    assert.equal((await res.json()).method, 'OPTIONS');
  });

  test('verify_jwt = false in config.toml lets requests without a JWT reach the function', async () => {
    const res = await fetch(`${rt.url}/functions/v1/public-echo`);
    assert.equal(res.status, 200);
  });

  test('injects the Supabase variables and ctx.env, and nothing else of the gateway environment', async () => {
    const res = await fetch(`${rt.url}/functions/v1/public-echo`);
    const { env } = await res.json();
    assert.equal(env.SUPABASE_URL, rt.url);
    assert.equal(env.SUPABASE_ANON_KEY, rt.keys.anonKey);
    assert.equal(env.SUPABASE_SERVICE_ROLE_KEY, rt.keys.serviceRoleKey);
    assert.equal(env.SUPABASE_PUBLISHABLE_KEY, rt.keys.anonKey);
    assert.equal(env.SUPABASE_SECRET_KEY, rt.keys.serviceRoleKey);
    assert.deepEqual(JSON.parse(env.SUPABASE_SECRET_KEYS), { default: rt.keys.serviceRoleKey });
    assert.equal(env.SUPABASE_DB_URL, 'postgresql://postgres:postgres@127.0.0.1:54399/postgres');
    assert.equal(env.SPOOL_FIXTURE, 'from ctx.env');
    assert.equal(env.SUPABASE_JWT_SECRET, undefined, 'SUPABASE_* names in ctx.env are reserved');
    assert.equal(env.SPOOL_GATEWAY_ONLY_SECRET, undefined, "the gateway's own env stays out");
    assert.equal(env.SPOOL_EDGE_RUNTIME, undefined, "the runtime's own config is removed");
    assert.ok(env.PATH, 'PATH is passed');
  });

  test('streams a POST body to the function and its response back', async () => {
    const chunks = Array.from({ length: 64 }, () => crypto.randomBytes(64 * 1024));
    const sent = crypto.createHash('sha256');
    const received = crypto.createHash('sha256');
    let receivedBytes = 0;
    const status = await new Promise((resolve, reject) => {
      const req = http.request(`${rt.url}/functions/v1/stream/upload`, { method: 'POST' }, (res) => {
        res.on('data', (c) => {
          received.update(c);
          receivedBytes += c.length;
        });
        res.on('end', () => resolve(res.statusCode));
        res.on('error', reject);
      });
      req.on('error', reject);
      (async () => {
        for (const chunk of chunks) {
          sent.update(chunk);
          if (!req.write(chunk)) await new Promise((r) => req.once('drain', r));
        }
        req.end();
      })();
    });
    assert.equal(status, 200);
    assert.equal(receivedBytes, 64 * 64 * 1024);
    assert.equal(received.digest('hex'), sent.digest('hex'));
  });

  test('answers 404 NOT_FOUND for what is not a function', async () => {
    for (const name of ['nope', '_shared', 'tests', '', '..']) {
      const res = await fetch(`${rt.url}/functions/v1/${name}`, { headers: bearer(rt.keys.anonKey) });
      assert.equal(res.status, 404, name);
      assert.deepEqual(await res.json(), { code: 'NOT_FOUND', message: 'Requested function was not found' });
    }
  });

  test('answers 503 BOOT_ERROR when the function cannot load, and logs why', async () => {
    for (const name of ['broken', 'no-serve']) {
      const res = await fetch(`${rt.url}/functions/v1/${name}`);
      assert.equal(res.status, 503, name);
      assert.deepEqual(await res.json(), { code: 'BOOT_ERROR', message: 'Worker failed to boot (please check logs)' });
    }
    await rt.tap.waitFor((l) => l.event === 'worker_boot_failed' && l.function === 'broken' && /cannot start/.test(l.error));
    await rt.tap.waitFor((l) => l.event === 'worker_boot_failed' && l.function === 'no-serve' && /did not call Deno.serve/.test(l.error));
  });

  test('never downloads: a module missing from the cache is a 503 BOOT_ERROR naming the command that caches it', async () => {
    const res = await fetch(`${rt.url}/functions/v1/uncached`);
    assert.equal(res.status, 503);
    assert.deepEqual(await res.json(), { code: 'BOOT_ERROR', message: 'Worker failed to boot (please check logs)' });
    const failed = await rt.tap.waitFor((l) => l.event === 'worker_boot_failed' && l.function === 'uncached');
    assert.match(failed.error, /left-pad/);
    assert.match(failed.error, /--cached-only/);
    assert.ok(failed.error.includes('node local/standins/edge-runtime/cache.mjs'), failed.error);
  });

  test("a deno.lock that does not pin the function's imports is a 503 BOOT_ERROR naming the command that regenerates it", async () => {
    await cacheFunctionModules({ say: () => {} }); // zod in the cache, as the stack has it: the lock is what fails
    const res = await fetch(`${rt.url}/functions/v1/drifted`);
    assert.equal(res.status, 503);
    assert.equal((await res.json()).code, 'BOOT_ERROR');
    // (The prewarmed worker may have failed earlier on an empty cache: wait for the lock's words.)
    const failed = await rt.tap.waitFor((l) =>
      l.event === 'worker_boot_failed' && l.function === 'drifted' && /lockfile is out of date/.test(l.error)
    );
    assert.ok(failed.error.includes('node local/standins/edge-runtime/cache.mjs --update-lock'), failed.error);
  });

  test('EdgeRuntime.waitUntil work goes on after the response was sent', async () => {
    const hold = `/hold/${crypto.randomUUID()}`;
    const done = `/done/${crypto.randomUUID()}`;
    const finished = callbacks.called(done);
    const res = await fetch(`${rt.url}/functions/v1/background`, {
      method: 'POST',
      body: JSON.stringify({ hold: callbacks.url + hold, done: callbacks.url + done }),
    });
    assert.equal(res.status, 202);
    assert.equal(await res.text(), 'accepted');
    // The background task is now waiting on us; only after the response do we let it go on.
    await callbacks.held(hold);
    callbacks.release(hold, 'the response was sent');
    assert.equal(await finished, 'finished after the response was sent');
  });

  test('logs worker lifecycle and function output as JSON lines', async () => {
    const ready = await rt.tap.waitFor((l) => l.event === 'worker_ready' && l.function === 'echo');
    assert.equal(typeof ready.readyMs, 'number');
    assert.equal(typeof ready.pid, 'number');
    const output = await rt.tap.waitFor((l) => l.function === 'no-serve' && l.stream === 'stdout');
    assert.equal(output.msg, 'loaded, but serving nothing');
  });

  test('supabase.functions.invoke works against it', async () => {
    const options = {
      auth: { persistSession: false, autoRefreshToken: false },
      // realtime-js wants a WebSocket, which Node 20 lacks; this test never opens one.
      realtime: globalThis.WebSocket ? {} : { transport: class NoWebSocket {} },
    };
    const supabase = createClient(rt.url, rt.keys.anonKey, options);
    const { data, error } = await supabase.functions.invoke('echo/sub', { body: { hello: 'world' } });
    assert.equal(error, null);
    assert.equal(data.method, 'POST');
    assert.equal(data.path, '/echo/sub');
    assert.deepEqual(JSON.parse(data.body), { hello: 'world' });
    assert.equal(data.headers.authorization, `Bearer ${rt.keys.anonKey}`);
    assert.equal(data.headers.apikey, rt.keys.anonKey);
    assert.match(data.headers['content-type'], /application\/json/);

    const bad = createClient(rt.url, await signJwt({ role: 'anon' }, 'wrong-secret'), options);
    const denied = await bad.functions.invoke('echo', { body: {} });
    assert.equal(denied.data, null);
    assert.equal(denied.error.name, 'FunctionsHttpError');
    assert.equal(denied.error.context.status, 401);
    assert.deepEqual(await denied.error.context.json(), { code: 401, message: 'Invalid JWT' });
  });

  test('a retired worker finishes its background work, then leaves with beforeunload early_drop', async () => {
    const first = await (await fetch(`${rt.url}/functions/v1/overrun`)).json();
    const hold = `/hold/${crypto.randomUUID()}`;
    const res = await fetch(`${rt.url}/functions/v1/overrun/background`, {
      method: 'POST',
      body: JSON.stringify({ hold: callbacks.url + hold }),
    });
    assert.equal(res.status, 202);
    await callbacks.held(hold);
    const worker = rt.route.runtime.current.get('overrun');
    assert.equal(worker.child.pid, first.pid);
    rt.route.runtime.retire(worker, 'test');

    // New requests go to a fresh worker while the retired one still works in the background.
    const next = await (await fetch(`${rt.url}/functions/v1/overrun`)).json();
    assert.notEqual(next.pid, first.pid);
    assert.ok(alive(first.pid), 'the retired worker waits for its waitUntil task');

    callbacks.release(hold);
    await rt.tap.waitFor((l) => l.function === 'overrun' && l.msg === `beforeunload early_drop pid=${first.pid}`);
    const exit = await rt.tap.waitFor((l) => l.event === 'worker_exited' && l.pid === first.pid);
    assert.equal(exit.reason, 'early_drop');
  });
});

describe('the wall clock of a worker', () => {
  let rt;
  before(async () => {
    rt = await startRuntime({
      dir,
      stateDir: path.join(tmp, 'state'),
      options: { wallClockMs: 1500 },
    });
  });
  after(() => rt?.close());

  test('kills a worker that overruns it: 546 for its request, beforeunload wall_clock, next request on a fresh worker', async () => {
    const worker = await rt.route.runtime.acquire('overrun');
    const first = { pid: worker.child.pid };
    const hanging = await fetch(`${rt.url}/functions/v1/overrun/hang`); // its clock starts now
    assert.equal(hanging.status, 546);
    assert.deepEqual(await hanging.json(), {
      code: 'WORKER_LIMIT',
      message: 'Worker failed to respond due to a resource limit (please check logs)',
    });
    await rt.tap.waitFor((l) => l.function === 'overrun' && l.msg === `beforeunload wall_clock pid=${first.pid}`);
    await rt.tap.waitFor((l) => l.event === 'worker_retired' && l.reason === 'wall_clock_half');
    const killed = await rt.tap.waitFor((l) => l.event === 'worker_killed' && l.reason === 'wall_clock');
    assert.equal(killed.wallClockMs, 1500);
    const exit = await rt.tap.waitFor((l) => l.event === 'worker_exited' && l.pid === first.pid);
    assert.equal(exit.reason, 'wall_clock');
    assert.ok(exit.lifetimeMs >= 1500);
    assert.ok(!alive(first.pid));

    const next = await fetch(`${rt.url}/functions/v1/overrun`);
    assert.equal(next.status, 200);
    assert.notEqual((await next.json()).pid, first.pid);
  });

  test('stopping the runtime dispatches beforeunload termination and leaves no worker behind', async () => {
    const { pid } = await (await fetch(`${rt.url}/functions/v1/overrun`)).json();
    const pids = rt.route.list().map((w) => w.pid);
    assert.ok(pids.includes(pid));
    const { tap } = rt;
    await rt.close();
    rt = null;
    for (const p of pids) assert.ok(!alive(p), `worker ${p} is gone`);
    assert.ok(tap.lines.some((l) => l.msg === `beforeunload termination pid=${pid}`));
    const exit = tap.lines.find((l) => l.event === 'worker_exited' && l.pid === pid);
    assert.equal(exit.reason, 'termination');
  });
});

describe('the CPU-time and memory limits of a worker (the supervisor, per_worker)', () => {
  let rt;
  const WORKER_LIMIT = {
    code: 'WORKER_LIMIT',
    message: 'Worker failed to respond due to a resource limit (please check logs)',
  };
  before(async () => {
    rt = await startRuntime({
      dir,
      stateDir: path.join(tmp, 'state'),
      // Small limits, so a fixture trips them quickly: CPU 600 ms (soft: half), 64 MB.
      env: { SPOOL_EDGE_CPU_TIME_MS: '600', SPOOL_EDGE_MEMORY_MB: '64' },
    });
  });
  after(() => rt?.close());

  /** The worker the next request to `name` goes to: { pid, id }. */
  const workerOf = async (name) => {
    const w = await rt.route.runtime.acquire(name);
    return { pid: w.child.pid, id: w.id };
  };

  test('defaults to hosted limits: 2000 ms of CPU (soft 1000) and 256 MB', () => {
    const route = createFunctionsRuntime({ root: ROOT, env: {}, keys: rt.keys, log: () => {} }, { dir });
    assert.equal(route.runtime.cpuTimeMs, 2000);
    assert.equal(route.runtime.cpuSoftMs, 1000);
    assert.equal(route.runtime.memoryMb, 256);
  });

  test('kills a worker whose isolate spends its CPU time without yielding: 546, worker_killed cpu_time', async () => {
    const { pid, id } = await workerOf('burn');
    const res = await fetch(`${rt.url}/functions/v1/burn/spin`);
    assert.equal(res.status, 546);
    assert.deepEqual(await res.json(), WORKER_LIMIT);
    const killed = await rt.tap.waitFor((l) => l.event === 'worker_killed' && l.worker === id);
    assert.equal(killed.reason, 'cpu_time');
    assert.equal(killed.limitMs, 600);
    assert.ok(killed.cpuTimeMs >= 600, `charged ${killed.cpuTimeMs} ms`);
    const exit = await rt.tap.waitFor((l) => l.event === 'worker_exited' && l.pid === pid);
    assert.equal(exit.reason, 'cpu_time');
    assert.ok(!alive(pid));
    const next = await fetch(`${rt.url}/functions/v1/burn`);
    assert.equal(next.status, 200);
    assert.notEqual((await next.json()).pid, pid, 'the next request runs on a fresh worker');
  });

  test('gives a worker that yields beforeunload cpu before the kill, and retires it at the soft limit', async () => {
    const { pid, id } = await workerOf('burn');
    const res = await fetch(`${rt.url}/functions/v1/burn/chunks`);
    assert.equal(res.status, 546);
    assert.deepEqual(await res.json(), WORKER_LIMIT);
    await rt.tap.waitFor((l) => l.event === 'worker_retired' && l.reason === 'cpu_time_soft_limit' && l.worker === id);
    await rt.tap.waitFor((l) => l.worker === id && l.msg === `beforeunload cpu pid=${pid}`);
    const exit = await rt.tap.waitFor((l) => l.event === 'worker_exited' && l.worker === id);
    assert.equal(exit.reason, 'cpu_time');
  });

  test('charges CPU per isolate: two requests under the soft limit each, on one worker, retire it', async () => {
    const { pid, id } = await workerOf('burn');
    for (let i = 0; i < 2; i++) {
      const res = await fetch(`${rt.url}/functions/v1/burn/burn?ms=150`);
      assert.equal(res.status, 200);
      assert.equal((await res.json()).pid, pid, 'both requests ran on the same worker');
    }
    const soft = await rt.tap.waitFor((l) =>
      l.event === 'worker_retired' && l.reason === 'cpu_time_soft_limit' && l.worker === id
    );
    assert.ok(soft.cpuTimeMs >= 300);
    const exit = await rt.tap.waitFor((l) => l.event === 'worker_exited' && l.worker === id);
    assert.equal(exit.reason, 'early_drop', 'a retired worker leaves once idle, as hosted drops it');
    const next = await fetch(`${rt.url}/functions/v1/burn`);
    assert.notEqual((await next.json()).pid, pid);
  });

  test('kills a worker whose heap + external memory reaches the limit: beforeunload memory, 546, worker_killed memory', async () => {
    const { pid, id } = await workerOf('hog');
    const res = await fetch(`${rt.url}/functions/v1/hog/external`);
    assert.equal(res.status, 546);
    assert.deepEqual(await res.json(), WORKER_LIMIT);
    await rt.tap.waitFor((l) => l.worker === id && l.msg === `beforeunload memory pid=${pid}`);
    const killed = await rt.tap.waitFor((l) => l.event === 'worker_killed' && l.worker === id);
    assert.equal(killed.reason, 'memory');
    assert.equal(killed.limitMb, 64);
    assert.ok(killed.memoryBytes >= 64 * 1024 * 1024);
    const exit = await rt.tap.waitFor((l) => l.event === 'worker_exited' && l.worker === id);
    assert.equal(exit.reason, 'memory');
  });

  test("kills a worker whose V8 heap outgrows the limit without yielding (V8's heap cap): 546, worker_killed memory", async () => {
    const { id } = await workerOf('hog');
    const res = await fetch(`${rt.url}/functions/v1/hog/heap`);
    assert.equal(res.status, 546);
    assert.deepEqual(await res.json(), WORKER_LIMIT);
    const exit = await rt.tap.waitFor((l) => l.event === 'worker_exited' && l.worker === id);
    assert.equal(exit.reason, 'memory');
    const killed = rt.tap.lines.find((l) => l.event === 'worker_killed' && l.worker === id);
    assert.equal(killed.reason, 'memory');
    assert.match(killed.v8, /out of memory/i);
  });
});

describe("the cache step (what `supabase functions deploy` does before serving)", () => {
  test('covers every file of the functions, so dynamically imported modules and their npm packages are cached', () => {
    const rel = cacheEntries(ROOT).map((f) => path.relative(ROOT, f));
    for (const file of [
      'local/standins/edge-runtime/bootstrap.ts',
      'supabase/functions/job-worker/index.ts',
      'supabase/functions/job-worker/handlers/image.ts', // import('./image.ts') in job-worker/handlers/index.ts
      'supabase/functions/_jobs/media/image.ts', // npm:fast-png, npm:jpeg-js, dynamically imported
      'supabase/functions/_jobs/kinds/index.ts',
    ]) assert.ok(rel.includes(file), `${file} is cached`);
  });

  test('fails on a deno.lock that does not match the imports, naming the command that regenerates it', async () => {
    const root = path.join(tmp, 'drifted');
    fs.mkdirSync(path.join(root, 'supabase', 'functions', 'f'), { recursive: true });
    fs.writeFileSync(path.join(root, 'deno.json'), JSON.stringify({ nodeModulesDir: 'none', lock: { path: './deno.lock', frozen: true } }));
    fs.writeFileSync(path.join(root, 'deno.lock'), JSON.stringify({ version: '5' }));
    fs.writeFileSync(path.join(root, 'supabase', 'functions', 'f', 'index.ts'), "import { z } from 'npm:zod@4.6.7';\nDeno.serve(() => new Response(typeof z));\n");
    await assert.rejects(
      cacheFunctionModules({ root, deno: denoBinary(ROOT), say: () => {} }),
      (err) => {
        assert.match(err.message, /deno\.lock does not match/);
        assert.match(err.message, /lockfile is out of date/, "Deno's own words are kept");
        assert.ok(err.message.includes('node local/standins/edge-runtime/cache.mjs --update-lock'), err.message);
        return true;
      },
    );
    assert.equal(fs.readFileSync(path.join(root, 'deno.lock'), 'utf8'), JSON.stringify({ version: '5' }), 'a frozen lock is not rewritten');
  });
});

describe('with watch on (npm start)', () => {
  test('a changed function is served by a fresh worker running the new code', async () => {
    const watched = path.join(tmp, 'watched');
    fs.mkdirSync(path.join(watched, 'hello'), { recursive: true });
    const write = (text) =>
      fs.writeFileSync(path.join(watched, 'hello', 'index.ts'), `Deno.serve(() => new Response('${text}'));\n`);
    write('before');
    fs.writeFileSync(path.join(watched, 'config.toml'), '[functions.hello]\nverify_jwt = false\n');
    const rt = await startRuntime({
      dir: watched,
      stateDir: path.join(tmp, 'state'),
      options: { prewarm: true, watch: true },
    });
    try {
      assert.equal(await (await fetch(`${rt.url}/functions/v1/hello`)).text(), 'before');
      const retired = rt.tap.waitFor((l) => l.event === 'worker_retired' && l.reason === 'files_changed');
      write('after');
      await retired;
      assert.equal(await (await fetch(`${rt.url}/functions/v1/hello`)).text(), 'after');
    } finally {
      await rt.close();
    }
  });
});

describe('the request idle timeout', () => {
  test('answers 504 when the function sends no response in time', async () => {
    const rt = await startRuntime({
      dir,
      stateDir: path.join(tmp, 'state'),
      options: { requestIdleTimeoutMs: 300 },
    });
    try {
      const res = await fetch(`${rt.url}/functions/v1/overrun/hang`);
      assert.equal(res.status, 504);
      assert.equal((await res.json()).code, 'IDLE_TIMEOUT');
    } finally {
      await rt.close();
    }
  });
});
