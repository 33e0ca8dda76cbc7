// The web client (web/) on the local platform, through Vite's JS API with web/vite.config.ts:
//   startWebDev({ port, supabaseUrl, anonKey })   the dev server (npm start's `web` service)
//   buildWeb({ outDir, supabaseUrl, anonKey })     a production build with both baked in
//   serveStatic({ dir, port })                     such a build served by `vite preview`
//   ensureChromium()                               Debian's Chromium for the browser tests
// The app reads VITE_SUPABASE_URL and VITE_SUPABASE_PUBLISHABLE_KEY (else _ANON_KEY); Vite takes
// VITE_* from process.env before .env files, so they are set there (and stay: the dev server
// re-reads them when it restarts itself).

import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { ensurePackages, envPort, freePort, PlatformError, ROOT } from './db.mjs';

export const WEB_DIR = path.join(ROOT, 'web');
export const WEB_CONFIG = path.join(WEB_DIR, 'vite.config.ts');
/** Debian's Chromium (package `chromium`), driven by playwright-core in web/tests. */
export const CHROMIUM = process.env.SPOOL_CHROMIUM || '/usr/bin/chromium';

export const envWebPort = () => envPort('SPOOL_WEB_PORT', 5173);

function setClientEnv(supabaseUrl, anonKey) {
  if (!supabaseUrl || !anonKey) throw new PlatformError('the web client needs the stack URL and anon key');
  // Both key names: the publishable one wins in the app, so a hosted key in .env cannot shadow it.
  Object.assign(process.env, {
    VITE_SUPABASE_URL: supabaseUrl,
    VITE_SUPABASE_PUBLISHABLE_KEY: anonKey,
    VITE_SUPABASE_ANON_KEY: anonKey,
  });
}

/** Starts Vite's dev server for web/ on 127.0.0.1:port. Returns { url, server, close }. */
export async function startWebDev({ port = envWebPort(), supabaseUrl, anonKey, logLevel = 'warn' } = {}) {
  const vite = await import('vite');
  setClientEnv(supabaseUrl, anonKey);
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
  setClientEnv(supabaseUrl, anonKey);
  await vite.build({ configFile: WEB_CONFIG, logLevel, build: { outDir, emptyOutDir: true } });
  return bundleSizes(outDir);
}

/** The built JS and CSS files with their bytes and gzipped bytes (what `vite build` reports). */
function bundleSizes(dir) {
  const files = fs.readdirSync(dir, { recursive: true })
    .filter((file) => /\.(js|css)$/.test(file))
    .sort()
    .map((file) => {
      const bytes = fs.readFileSync(path.join(dir, file));
      return { file, bytes: bytes.length, gzip: zlib.gzipSync(bytes, { level: 9 }).length };
    });
  const sum = (key) => files.reduce((a, f) => a + f[key], 0);
  return { files, bytes: sum('bytes'), gzip: sum('gzip') };
}

/** Serves a build on 127.0.0.1:port (0: a free one), as the dev server (no index.html fallback, no CORS). */
export async function serveStatic({ dir, port = 0 }) {
  const vite = await import('vite');
  const server = await vite.preview({
    configFile: WEB_CONFIG,
    logLevel: 'silent',
    build: { outDir: path.resolve(dir) },
    preview: { host: '127.0.0.1', port: port || await freePort(), strictPort: true },
  });
  return { url: `http://127.0.0.1:${server.httpServer.address().port}`, close: () => server.close() };
}

/** Debian's Chromium at CHROMIUM: installed by db.mjs ensurePackages when missing (as root; else the error). */
export function ensureChromium() {
  if (fs.existsSync(CHROMIUM)) return CHROMIUM;
  if (process.env.SPOOL_CHROMIUM) {
    throw new PlatformError(`SPOOL_CHROMIUM is ${CHROMIUM}, which does not exist`);
  }
  ensurePackages(['chromium']);
  if (!fs.existsSync(CHROMIUM)) throw new PlatformError(`apt-get installed chromium, but ${CHROMIUM} is missing`);
  return CHROMIUM;
}
