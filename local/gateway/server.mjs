// The local Supabase HTTP surface on one port (default 54321), as the Supabase API gateway serves
// it: /functions/v1 (Edge Functions in Deno), /rest/v1 (PostgREST subset), /storage/v1 (Storage
// subset), /auth/v1 (Auth subset) and /realtime/v1 (Realtime's WebSocket). Beside it runs the
// pg_net deliverer.
//
// Each route module exports `create(ctx)` returning { name, prefix, handle(req, res, url), close() }
// and optionally `upgrade(req, socket, head, url)`. `handle` is called for requests whose path
// starts with `prefix`; `upgrade` for HTTP Upgrade requests (WebSockets) under it. ctx is shared:
//   ctx.root        the repository root
//   ctx.stateDir    the stack's git-ignored state folder (keys.json, storage files, logs)
//   ctx.publicUrl   e.g. http://127.0.0.1:54321 (SUPABASE_URL)
//   ctx.keys        local/gateway/keys.mjs loadKeys(): mode (SPOOL_KEYS), the keys in force
//                   (anonKey, serviceRoleKey), verifier, sign, verify, apiKeyRole, forwardedToken
//   ctx.dbPort      the local Postgres port
//   ctx.pool        pg.Pool connected as `authenticator` (PostgREST's role; switch with SET LOCAL ROLE)
//   ctx.adminPool   pg.Pool connected as the superuser (platform chores only, never for API calls)
//   ctx.env         extra env for functions (.env contents)
//   ctx.options     per-module options from startGateway({ options }): options.functions,
//                   options.pgnet, options.realtime
//   ctx.log(obj)    structured log line

import http from 'node:http';
import pg from 'pg';
import { loadKeys } from './keys.mjs';

const ROUTE_MODULES = [
  './functions.mjs',
  './rest.mjs',
  './storage.mjs',
  './auth.mjs',
  './realtime.mjs',
  './pgnet.mjs',
];

/** Sends the gateway's own error shape for requests no route takes. */
function notFound(res, url) {
  res.writeHead(404, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ message: `no route for ${url.pathname}` }));
}

// `log` replaces the console as the sink of ctx.log lines (objects); `options` reaches the route
// modules as ctx.options (e.g. options.functions for functions.mjs, options.pgnet for pgnet.mjs).
// `keyMode` ('new' | 'legacy') overrides SPOOL_KEYS for this gateway (tests of either mode).
export async function startGateway({ root, stateDir, port = 54321, dbPort, env = {}, quiet = false, log, options = {}, keyMode }) {
  const keys = loadKeys(stateDir, keyMode ? { mode: keyMode } : undefined);
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
  for (const spec of ROUTE_MODULES) {
    let mod;
    try {
      mod = await import(spec);
    } catch (err) {
      if (err.code === 'ERR_MODULE_NOT_FOUND' && err.message.includes(spec.slice(2))) continue;
      throw err;
    }
    routes.push(await mod.create(ctx));
  }

  const server = http.createServer(async (req, res) => {
    const url = new URL(req.url, publicUrl);
    const route = routes.find((r) => r.prefix && url.pathname.startsWith(r.prefix));
    if (!route) return notFound(res, url);
    try {
      await route.handle(req, res, url);
    } catch (err) {
      ctx.log({ level: 'error', route: route.name, path: url.pathname, error: err.stack ?? String(err) });
      if (!res.headersSent) {
        res.writeHead(500, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ message: 'internal error in the local gateway', details: String(err.message ?? err) }));
      } else {
        res.destroy();
      }
    }
  });
  // Upgrade requests (WebSockets) go to the route's `upgrade`; the sockets it takes over are
  // tracked so that close() can end them (the HTTP server no longer counts them as requests).
  const upgraded = new Set();
  server.on('upgrade', (req, socket, head) => {
    const url = new URL(req.url, publicUrl);
    const route = routes.find((r) => r.prefix && r.upgrade && url.pathname.startsWith(r.prefix));
    if (!route) {
      const body = JSON.stringify({ message: `no route for ${url.pathname}` });
      socket.end(
        'HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\n' +
          `content-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
      );
      return;
    }
    upgraded.add(socket);
    socket.once('close', () => upgraded.delete(socket));
    try {
      route.upgrade(req, socket, head, url);
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
