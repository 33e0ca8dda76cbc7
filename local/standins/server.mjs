// The local Supabase HTTP surface on one port (default 54321), as the Supabase API gateway serves
// it: /functions/v1 (Edge Functions in Deno), /rest/v1 (PostgREST subset), /storage/v1 (Storage
// subset), /auth/v1 (Auth subset) and /realtime/v1 (Realtime's WebSocket). Beside it runs the
// pg_net deliverer.
//
// Each route module exports `create(ctx)` returning { name, prefix, handle(req, res, url), close() }
// and optionally `upgrade(req, socket, head, url)`. `handle` is called for requests whose path
// starts with `prefix`; `upgrade` for HTTP Upgrade requests (WebSockets) under it. ctx is shared:
//   ctx.root        the repository root
//   ctx.stateDir    the stack's state folder, outside the repository (keys.json, storage files, logs)
//   ctx.publicUrl   e.g. http://127.0.0.1:54321 (SUPABASE_URL)
//   ctx.keys        local/standins/keys.mjs loadKeys(): mode (SPOOL_KEYS), the keys in force
//                   (anonKey, serviceRoleKey), verifier, sign, verify, apiKeyRole, forwardedToken
//   ctx.dbPort      the local Postgres port
//   ctx.pool        pg.Pool connected as `authenticator` (PostgREST's role; switch with SET LOCAL ROLE)
//   ctx.adminPool   pg.Pool connected as the superuser (platform chores only, never for API calls)
//   ctx.env         extra env for functions (.env contents)
//   ctx.options     per-module options from startGateway({ options }): options.functions
//   ctx.log(obj)    structured log line
//
// A route may answer before it has read the request body (a 401, a 404, a 413, an Edge Function
// that never reads it): settleUnreadBody keeps the connection sound, as Supabase's gateway does.

import http from 'node:http';
import pg from 'pg';
import { loadKeys } from './keys.mjs';
import { refuseUpgrade, sendJson } from './shared.mjs';

const ROUTE_MODULES = [
  './functions.mjs',
  './rest.mjs',
  './storage.mjs',
  './auth.mjs',
  './realtime.mjs',
  './pgnet.mjs',
];

/** Bytes of an unread request body the gateway reads and throws away after answering. */
export const DRAIN_LIMIT = 64 * 1024 * 1024;
/** How long a connection closed for a body too large to drain stays open to take it. */
const LINGER_MS = 10_000;

/**
 * Makes an early answer safe for the connection. When `res` is answered while `req`'s body is
 * still arriving:
 *   - at most DRAIN_LIMIT bytes to go (by Content-Length; a chunked body is drained until it
 *     ends or passes the limit): the rest is read and discarded after the answer, and the
 *     connection stays open for the next request;
 *   - more than that: the answer says `Connection: close`; after it the server closes its side
 *     but keeps reading (discarding) until the client has sent its body, DRAIN_LIMIT more bytes
 *     or LINGER_MS pass, so the client reads the answer instead of a reset.
 * Whatever a route still had attached to the body (a pipe to a worker, a reader) is detached.
 * A body past the limit with no Content-Length ends with the connection destroyed.
 */
export function settleUnreadBody(req, res) {
  const socket = req.socket;
  const startRead = socket.bytesRead;
  const declared = Number(req.headers['content-length']);
  let closing = false;
  const writeHead = res.writeHead;
  res.writeHead = function (...args) {
    res.writeHead = writeHead;
    if (!req.complete && Number.isFinite(declared)) {
      // What of the body is still on the wire (the headers read count toward it: an estimate
      // that errs towards closing).
      const toGo = declared - Math.max(0, socket.bytesRead - startRead);
      if (toGo > DRAIN_LIMIT) {
        closing = true;
        res.shouldKeepAlive = false;
        // Node ends the connection with destroySoon() after a `Connection: close` answer, which
        // resets it if the client is still sending: close our side only, and keep reading.
        socket.destroySoon = () => socket.end();
      }
    }
    return writeHead.apply(this, args);
  };
  res.once('finish', () => {
    if (req.complete || req.destroyed) return;
    for (const dest of req._readableState?.pipes ?? []) req.unpipe(dest);
    req.removeAllListeners('data');
    let drained = 0;
    const stop = () => {
      clearTimeout(timer);
      socket.destroy();
    };
    const timer = closing ? setTimeout(stop, LINGER_MS) : null;
    timer?.unref();
    req.on('data', (chunk) => {
      drained += chunk.length;
      if (drained > DRAIN_LIMIT) stop();
    });
    req.once('end', () => {
      clearTimeout(timer);
      if (closing) socket.destroy();
    });
    req.resume();
  });
}

// `log` replaces the console as the sink of ctx.log lines (objects); `options` reaches the route
// modules as ctx.options (options.functions for functions.mjs).
// `keyMode` ('new' | 'legacy') overrides SPOOL_KEYS for this gateway (tests of either mode).
export async function startGateway({ root, stateDir, port = 54321, dbPort, env = {}, quiet = false, log, options = {}, keyMode }) {
  const keys = await loadKeys(stateDir, keyMode ? { mode: keyMode } : undefined);
  const publicUrl = `http://127.0.0.1:${port}`;
  const pool = new pg.Pool({
    host: '127.0.0.1', port: dbPort, database: 'postgres', user: 'authenticator', password: 'postgres',
    max: 20, application_name: 'spool-rest',
  });
  const adminPool = new pg.Pool({
    host: '127.0.0.1', port: dbPort, database: 'postgres', user: 'supabase_admin', max: 4,
    application_name: 'spool-platform',
  });
  const ctx = {
    root, stateDir, publicUrl, keys, dbPort, pool, adminPool, env, options,
    log: (obj) => {
      if (quiet) return;
      const line = { at: new Date().toISOString(), ...obj };
      if (log) log(line);
      else console.log(JSON.stringify(line));
    },
  };

  const routes = [];
  for (const spec of ROUTE_MODULES) routes.push(await (await import(spec)).create(ctx));

  const server = http.createServer(async (req, res) => {
    settleUnreadBody(req, res);
    const url = new URL(req.url, publicUrl);
    const route = routes.find((r) => r.prefix && url.pathname.startsWith(r.prefix));
    if (!route) return sendJson(res, 404, { message: `no route for ${url.pathname}` });
    try {
      await route.handle(req, res, url);
    } catch (err) {
      ctx.log({ level: 'error', route: route.name, path: url.pathname, error: err.stack ?? String(err) });
      if (!res.headersSent) {
        sendJson(res, 500, { message: 'internal error in the local gateway', details: String(err.message ?? err) });
      } else {
        res.destroy();
      }
    }
  });
  // Upgrade requests (WebSockets) go to the route's `upgrade`; the sockets it takes over are
  // tracked so that close() can end them (the HTTP server no longer counts them as requests).
  const upgraded = new Set();
  server.on('upgrade', async (req, socket, head) => {
    const url = new URL(req.url, publicUrl);
    const route = routes.find((r) => r.prefix && r.upgrade && url.pathname.startsWith(r.prefix));
    if (!route) return refuseUpgrade(socket, 404, { message: `no route for ${url.pathname}` });
    upgraded.add(socket);
    socket.once('close', () => upgraded.delete(socket));
    try {
      await route.upgrade(req, socket, head, url);
    } catch (err) {
      ctx.log({ level: 'error', route: route.name, path: url.pathname, error: err.stack ?? String(err) });
      socket.destroy();
    }
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', resolve);
  });

  return {
    url: publicUrl,
    keys,
    ctx,
    async close() {
      await new Promise((resolve) => {
        server.close(resolve);
        server.closeAllConnections?.();
        for (const socket of upgraded) socket.destroy();
      });
      for (const r of routes.reverse()) await r.close?.();
      await pool.end();
      await adminPool.end();
    },
  };
}
