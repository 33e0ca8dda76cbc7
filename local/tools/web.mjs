// The web client (web/) on the local platform, through Vite's JS API with web/vite.config.ts:
//
//   startWebDev({ port, supabaseUrl, anonKey })   the Vite dev server (npm start's `web` service):
//                                                  hot reload, the stack's URL and anon key
//   buildWeb({ outDir, supabaseUrl, anonKey })     a production build with both baked in
//                                                  (the browser tests build into a temp folder)
//   serveStatic({ dir, port })                     a tiny static server for such a build
//   bundleSizes(dir)                               bytes and gzipped bytes of the built JS and CSS
//   ensureChromium()                               Debian's Chromium for the browser tests (as
//                                                  root: installs it with apt-get, like ensurePackages)
//
// The app reads VITE_SUPABASE_URL and VITE_SUPABASE_PUBLISHABLE_KEY (else VITE_SUPABASE_ANON_KEY)
// from import.meta.env; Vite takes VITE_* variables from process.env before .env files, so they
// are set there for the call.

import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import zlib from 'node:zlib';
import { aptInstall, envPort, PlatformError, ROOT } from './db.mjs';

export const WEB_DIR = path.join(ROOT, 'web');
export const WEB_CONFIG = path.join(WEB_DIR, 'vite.config.ts');
/** Debian's Chromium (package `chromium`), driven by playwright-core in web/tests. */
export const CHROMIUM = process.env.SPOOL_CHROMIUM || '/usr/bin/chromium';

/** Port from SPOOL_WEB_PORT (default 5173). */
export const envWebPort = () => envPort('SPOOL_WEB_PORT', 5173);

function clientEnv(supabaseUrl, anonKey) {
  if (!supabaseUrl || !anonKey) throw new PlatformError('the web client needs the stack URL and anon key');
  // Both key names: the publishable one wins in the app, so a hosted key in .env cannot shadow it.
  return { VITE_SUPABASE_URL: supabaseUrl, VITE_SUPABASE_PUBLISHABLE_KEY: anonKey, VITE_SUPABASE_ANON_KEY: anonKey };
}

/** Runs fn with `vars` in process.env, restoring what was there afterwards. */
async function withEnv(vars, fn) {
  const before = Object.fromEntries(Object.keys(vars).map((k) => [k, process.env[k]]));
  Object.assign(process.env, vars);
  try {
    return await fn();
  } finally {
    for (const [k, v] of Object.entries(before)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}

/**
 * Starts Vite's dev server for web/ on 127.0.0.1:port and warms the entry (so the first page load
 * does not wait for dependency pre-bundling). Returns { url, close }.
 */
export async function startWebDev({ port = envWebPort(), supabaseUrl, anonKey, logLevel = 'warn' } = {}) {
  const vite = await import('vite');
  const env = clientEnv(supabaseUrl, anonKey);
  // Kept in process.env for the server's life: Vite re-reads the env when it restarts itself.
  Object.assign(process.env, env);
  let server;
  try {
    server = await vite.createServer({
      configFile: WEB_CONFIG,
      logLevel,
      clearScreen: false,
      server: { host: '127.0.0.1', port, strictPort: true },
    });
    await server.listen();
  } catch (err) {
    await server?.close().catch(() => {});
    if (err.code === 'EADDRINUSE') {
      throw new PlatformError(`port ${port} on 127.0.0.1 is in use; set SPOOL_WEB_PORT to another port`);
    }
    throw err;
  }
  const url = `http://127.0.0.1:${port}`;
  // Pre-bundle the dependencies and transform the app now, not on the first request.
  await server.warmupRequest('/src/main.tsx').catch(() => {});
  return { url, server, close: () => server.close() };
}

/** Builds web/ into outDir with the stack's URL and anon key. Returns bundleSizes(outDir). */
export async function buildWeb({ outDir, supabaseUrl, anonKey, logLevel = 'warn' }) {
  const vite = await import('vite');
  await withEnv(clientEnv(supabaseUrl, anonKey), () =>
    vite.build({
      configFile: WEB_CONFIG,
      logLevel,
      build: { outDir, emptyOutDir: true },
    }));
  return bundleSizes(outDir);
}

/** The built JS and CSS files with their bytes and gzipped bytes (what `vite build` reports). */
export function bundleSizes(dir) {
  const files = [];
  const walk = (d) => {
    for (const entry of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, entry.name);
      if (entry.isDirectory()) walk(p);
      else if (/\.(js|css)$/.test(entry.name)) {
        const bytes = fs.readFileSync(p);
        files.push({ file: path.relative(dir, p), bytes: bytes.length, gzip: zlib.gzipSync(bytes, { level: 9 }).length });
      }
    }
  };
  walk(dir);
  return {
    files,
    bytes: files.reduce((a, f) => a + f.bytes, 0),
    gzip: files.reduce((a, f) => a + f.gzip, 0),
  };
}

const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.json': 'application/json',
  '.map': 'application/json',
  '.txt': 'text/plain; charset=utf-8',
};

/**
 * Serves a built app from `dir` on 127.0.0.1:port (0 = any free port): GET and HEAD only,
 * index.html for `/` and for paths that are not files, hashed assets cached for good.
 */
export async function serveStatic({ dir, port = 0 }) {
  const root = path.resolve(dir);
  const server = http.createServer((req, res) => {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    let pathname;
    try {
      pathname = decodeURIComponent(new URL(req.url, 'http://x').pathname);
    } catch {
      res.writeHead(400).end();
      return;
    }
    let file = path.resolve(root, `.${pathname}`);
    if (file !== root && !file.startsWith(root + path.sep)) {
      res.writeHead(403).end();
      return;
    }
    if (!fs.existsSync(file) || fs.statSync(file).isDirectory()) file = path.join(root, 'index.html');
    let body;
    try {
      body = fs.readFileSync(file);
    } catch {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
      return;
    }
    res.writeHead(200, {
      'content-type': TYPES[path.extname(file)] ?? 'application/octet-stream',
      'content-length': body.length,
      'cache-control': file.includes(`${path.sep}assets${path.sep}`) ? 'public, max-age=31536000, immutable' : 'no-cache',
      'x-content-type-options': 'nosniff',
    });
    res.end(req.method === 'HEAD' ? undefined : body);
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', resolve);
  });
  const url = `http://127.0.0.1:${server.address().port}`;
  return {
    url,
    close: () => new Promise((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections?.();
    }),
  };
}

/**
 * Makes sure Debian's Chromium (for the browser tests) is at CHROMIUM: installed with
 * local/tools/db.mjs aptInstall when missing, as root; else the command to run is the error.
 */
export function ensureChromium() {
  if (fs.existsSync(CHROMIUM)) return CHROMIUM;
  if (process.env.SPOOL_CHROMIUM) {
    throw new PlatformError(`SPOOL_CHROMIUM is ${CHROMIUM}, which does not exist`);
  }
  aptInstall(['chromium']);
  if (!fs.existsSync(CHROMIUM)) throw new PlatformError(`apt-get installed chromium, but ${CHROMIUM} is missing`);
  return CHROMIUM;
}
