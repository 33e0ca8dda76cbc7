// The local Supabase HTTP surface on one port (default 54321), as Supabase's API gateway serves it:
// /functions/v1, /rest/v1, /storage/v1, /auth/v1 and /realtime/v1 (WebSocket); beside it pg_net.
//
// Each route module exports `create(ctx)` -> { name, prefix, handle(req, res, url), close(),
// upgrade?(req, socket, head, url) }. ctx: root, stateDir (keys.json, storage files, logs),
// publicUrl (SUPABASE_URL), keys (keys.mjs loadKeys), dbPort, pool (as `authenticator`, PostgREST's
// role), adminPool (superuser: platform chores only, never API calls), env (functions' .env),
// options (startGateway's, per module), log(obj).

import http from 'node:http';
import pg from 'pg';
import { loadKeys } from './keys.mjs';
import { corsHeaders, refuseUpgrade, sendJson } from './shared.mjs';

const ROUTE_MODULES = ['./functions.mjs', './rest.mjs', './storage.mjs', './auth.mjs', './realtime.mjs', './pgnet.mjs'];

/** Bytes of an unread request body read and thrown away after an early answer. */
export const DRAIN_LIMIT = 64 * 1024 * 1024;
/** How long a connection closed for a body too large to drain stays open to take it. */
const LINGER_MS = 10_000;

/**
 * A route may answer before it has read the body (a 401, a 413, a function that never reads it);
 * Supabase's gateway keeps the connection sound, and so does this. Up to DRAIN_LIMIT bytes to go:
 * the rest is read and discarded after the answer and the connection serves the next request.
 * More (by Content-Length): the answer says `Connection: close` and the server keeps reading until
 * the client has sent its body (or LINGER_MS), so the client reads the answer instead of a reset.
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
      // The headers read count toward it: an estimate that errs towards closing.
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

// `log` replaces the console as the sink of ctx.log lines; `keyMode` overrides SPOOL_KEYS.
export async function startGateway(
  { root, stateDir, port = 54321, dbPort, env = {}, quiet = false, log, options = {}, keyMode },
) {
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
      const line = { at: new Date().toISOString(), ...obj };
      if (!quiet) (log ?? ((l) => console.log(JSON.stringify(l))))(line);
    },
  };

  const routes = [];
  const findRoute = (url, upgrade) =>
    routes.find((r) => r.prefix && (!upgrade || r.upgrade) && url.pathname.startsWith(r.prefix));
  const logError = (route, url, err) =>
    ctx.log({ level: 'error', route: route.name, path: url.pathname, error: err.stack ?? String(err) });
  const server = http.createServer(async (req, res) => {
    settleUnreadBody(req, res);
    const url = new URL(req.url, publicUrl);
    const route = findRoute(url, false);
    if (!route) return sendJson(res, 404, { message: `no route for ${url.pathname}` });
    try {
      await route.handle(req, res, url);
    } catch (err) {
      logError(route, url, err);
      if (res.headersSent) res.destroy();
      else {
        const body = { message: 'internal error in the local gateway', details: String(err.message ?? err) };
        sendJson(res, 500, body, corsHeaders(req, ''));
      }
    }
  });
  // The sockets a route's `upgrade` takes over are tracked so that close() can end them (the HTTP
  // server no longer counts them as requests).
  const upgraded = new Set();
  server.on('upgrade', async (req, socket, head) => {
    const url = new URL(req.url, publicUrl);
    const route = findRoute(url, true);
    if (!route) return refuseUpgrade(socket, 404, { message: `no route for ${url.pathname}` });
    upgraded.add(socket);
    socket.once('close', () => upgraded.delete(socket));
    try {
      await route.upgrade(req, socket, head, url);
    } catch (err) {
      logError(route, url, err);
      socket.destroy();
    }
  });
  const closeRoutes = async () => {
    for (const r of routes.reverse()) await r.close?.();
    await pool.end();
    await adminPool.end();
  };
  try {
    for (const spec of ROUTE_MODULES) routes.push(await (await import(spec)).create(ctx));
    await new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', resolve);
    });
  } catch (err) {
    await closeRoutes().catch(() => {}); // a later route or the port failed: end what started
    throw err;
  }

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
      await closeRoutes();
    },
  };
}
