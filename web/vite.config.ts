// The web client's build: `npm run web:dev` (dev server), `npm run web:build` (web/dist), and
// local/web.mjs (npm start, the browser tests) through Vite's JS API with this file.
//
// VITE_SUPABASE_URL and VITE_SUPABASE_ANON_KEY come from the environment or the repository's .env
// (envDir is the repository root, where .env.example documents them); only VITE_* variables
// reach the browser.
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

export default defineConfig({
  root: fileURLToPath(new URL('.', import.meta.url)),
  envDir: fileURLToPath(new URL('..', import.meta.url)),
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
    warmup: { clientFiles: ['./src/main.tsx'] },
  },
  preview: { host: '127.0.0.1', port: 4173, strictPort: true },
  optimizeDeps: {
    include: ['react', 'react-dom/client', 'react/jsx-runtime', '@supabase/supabase-js'],
  },
});
