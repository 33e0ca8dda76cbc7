// The web client's build: `npm run web:dev` (dev server), `npm run web:build` (web/dist), and
// local/tools/web.mjs (npm start, the browser tests) through Vite's JS API with this file.
//
// VITE_SUPABASE_URL and VITE_SUPABASE_ANON_KEY come from the environment or the repository's .env
// (envDir is the repository root, where .env.example documents them); only VITE_* variables
// reach the browser.
//
// The dev server (and `vite preview`) serves web/ and nothing else. Vite's default would serve
// any file under the repository (its "workspace root") at /@fs/<path>, and reflect every
// localhost origin in CORS. Here:
//   - server.fs.allow is web/ alone (Vite adds its own client, node_modules/vite/dist/client);
//     the dependencies are pre-bundled into web/node_modules/.vite (cacheDir), so the app's
//     module URLs are /node_modules/.vite/deps/... and never name a path outside web/;
//   - server.fs.deny keeps Vite's defaults and adds the platform's state folder, should an
//     older checkout still have one (<repo>/.spool: keys.json, Storage files, Postgres data);
//     the state itself lives outside the repository (local/tools/db.mjs STATE_DIR);
//   - cors is off: the app is served from the server's own origin and needs no CORS;
//   - appType 'mpa': no index.html fallback (the app routes by hash), so a path that is not a
//     file of web/ is a 404, not a 200;
//   - no /@fs/ URLs at all (noFsUrls below).
// web/tests/dev-server.test.mjs replays the requests that used to leak.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { defineConfig, type Plugin } from 'vite';

const WEB = fileURLToPath(new URL('.', import.meta.url));

/**
 * The dev server answers no /@fs/<absolute path> request (a plain 404, before Vite's own
 * handlers, whose 403 page would list the allowed folders). The app needs none: its
 * dependencies are pre-bundled under web/, and the one /@fs URL Vite itself uses, its client's
 * `import "@vite/env"` (node_modules/vite/dist/client/env.mjs), is inlined into the client here.
 * Should a Vite upgrade change that import, the client asks for /@fs/ again, gets the 404, and
 * web/tests/dev-server.test.mjs fails.
 */
function noFsUrls(): Plugin {
  const CLIENT = /\/vite\/dist\/client\/client\.mjs(?:\?.*)?$/;
  const ENV_IMPORT = 'import "@vite/env";';
  return {
    name: 'spool:no-fs-urls',
    apply: 'serve',
    enforce: 'post',
    transform(code, id) {
      if (!CLIENT.test(id) || !code.includes(ENV_IMPORT)) return null;
      const env = readFileSync(new URL('env.mjs', `file://${id.replace(/\?.*$/, '')}`), 'utf8');
      // A block, so the env module's top-level names stay its own.
      return { code: code.replace(ENV_IMPORT, `{\n${env}\n}`), map: null };
    },
    configureServer(server) {
      server.middlewares.use((req, res, next) => {
        let pathname: string;
        try {
          pathname = decodeURIComponent((req.url ?? '/').split('?')[0]).replace(/\\/g, '/').replace(/^\/+/, '/');
        } catch {
          pathname = '/@fs/';
        }
        if (pathname === '/@fs' || pathname.startsWith('/@fs/')) {
          res.statusCode = 404;
          res.setHeader('content-type', 'text/plain; charset=utf-8');
          res.end('not found');
          return;
        }
        next();
      });
    },
  };
}

export default defineConfig({
  plugins: [noFsUrls()],
  root: WEB,
  envDir: fileURLToPath(new URL('..', import.meta.url)),
  cacheDir: 'node_modules/.vite',
  appType: 'mpa',
  // Relative asset URLs: the build works from any folder of a static host.
  base: './',
  oxc: {
    jsx: { runtime: 'automatic', importSource: 'react' },
  },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2022',
    sourcemap: false,
    // One chunk, most of it supabase-js and React (~490 kB minified, ~140 kB gzipped). The budget
    // that matters is 300 kB gzipped JS + CSS, which web/tests/app.test.mjs checks on every run.
    chunkSizeWarningLimit: 600,
  },
  server: {
    host: '127.0.0.1',
    port: 5173,
    strictPort: true,
    cors: false,
    fs: {
      strict: true,
      allow: [WEB],
      deny: ['.env', '.env.*', '*.{crt,pem,key,p12,pfx,cer,der}', '.npmrc', '.yarnrc.yml', '**/.git/**', '**/.spool/**'],
    },
    warmup: { clientFiles: ['./src/main.tsx'] },
  },
  preview: { host: '127.0.0.1', port: 4173, strictPort: true, cors: false },
  optimizeDeps: {
    include: ['react', 'react-dom/client', 'react/jsx-runtime', '@supabase/supabase-js'],
  },
});
