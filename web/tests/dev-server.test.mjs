// What the web client's servers give away: `npm start`'s Vite dev server (local/tools/web.mjs
// startWebDev with web/vite.config.ts, started exactly as local/tools/start.mjs starts it) and `vite
// preview` of a build serve web/ and its dependencies, and nothing else.
//
// The stack's state (keys.json with the JWT secret, the Storage stand-in's files, the Postgres
// cluster) lives outside the repository (local/tools/db.mjs STATE_DIR). The tests plant stand-ins of
// that state, with a marker in every file, in the two places a dev server could reach: the old
// in-repo folder (<repo>/.spool/…, still present in older checkouts) and a folder outside the
// repository (as the state folder is now). Every way of asking for them (/@fs/, /@id/, Vite's
// ?raw / ?import / ?url / ?inline queries, `..` and encoded traversals) must be a 403 or 404
// without the marker; so must /etc/passwd. CORS must not hand any other origin a readable
// answer: checked on the headers and from Chromium, on a page of another localhost origin.

import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { chromium } from 'playwright-core';
import * as db from '../../local/tools/db.mjs';
import { buildWeb, CHROMIUM, ensureChromium, serveStatic, startWebDev, WEB_CONFIG, WEB_DIR } from '../../local/tools/web.mjs';
import { CHROMIUM_ARGS, WAIT_MS } from './helpers.mjs';

const { DEFAULT_DIR, freePort, ROOT, STATE_DIR, stateDirFor } = db;
const MARKER = `spool-canary-${crypto.randomUUID()}`;
const USER = '0b6e5c1c-3d7a-4d6e-9a43-5b1f2f9f6a10';
/** A state folder's layout: keys, a user's Storage object, Postgres data files. */
const STATE_FILES = [
  'keys.json',
  `storage/inputs/${USER}/photo.png`,
  `storage/outputs/${USER}/job/result.png`,
  'db/data/PG_VERSION',
  'db/data/global/pg_control',
  'db/data/postgresql.conf',
  'db/postgres.log',
];

/** Writes STATE_FILES under dir, each holding MARKER. */
function plantState(dir) {
  for (const rel of STATE_FILES) {
    const file = path.join(dir, rel);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, `${MARKER} ${rel}\n`);
  }
}

/** GET (or another method) of a raw request-target, sent as written (no `..` normalising). */
function request(port, target, { method = 'GET', headers = {} } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: target, method, headers, agent: false }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString('latin1') }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** Every request-target that could reach `file` (absolute) on a server rooted in web/. */
function attacksOn(file) {
  const fromWeb = path.relative(WEB_DIR, file).split(path.sep).join('/'); // ../.spool/… or ../../../tmp/…
  const ups = '../'.repeat(WEB_DIR.split('/').length + 1);
  const fromSlash = `${ups}${file.slice(1)}`; // /../../../../work/main/.spool/… from the web root
  const enc = (s) => s.replaceAll('../', '%2e%2e/');
  return [
    `/@fs${file}`,
    `/@fs${file}?raw`,
    `/@fs${file}?raw??`,
    `/@fs${file}?import&raw??`,
    `/@fs${file}?import`,
    `/@fs${file}?url`,
    `/@fs${file}?inline`,
    `/@fs${file}#`,
    `/@fs/${file}`,
    `//@fs${file}`,
    `/%40fs${file}`,
    `/%40fs${encodeURIComponent(file)}`,
    `/@FS${file}`,
    `/@fs${encodeURI(file).replaceAll('/', '%2f')}`,
    `/@id${file}`,
    `/@id/@fs${file}`,
    `/@fs${WEB_DIR}/${fromWeb}`,
    `/@fs${WEB_DIR}/${enc(fromWeb)}`,
    `/@fs${WEB_DIR}/src/../${fromWeb}?raw`,
    `/${fromWeb}`,
    `/${enc(fromWeb)}`,
    `/${fromWeb.replaceAll('/', '%2f')}`,
    `/${fromWeb.replaceAll('/', '\\')}`,
    `/src/${fromWeb.replace(/^\.\.\//, '../../')}`,
    `/${fromSlash}`,
    `/${enc(fromSlash)}`,
    `/${fromSlash}?raw`,
    `/node_modules/${fromWeb.replace(/^\.\.\//, '../../')}`,
  ];
}

const PASSWD = ['/@fs/etc/passwd', '/@fs/etc/passwd?raw', '/@id/etc/passwd', `/${'../'.repeat(12)}etc/passwd`, `/${'%2e%2e/'.repeat(12)}etc/passwd`, '/@fs/../../../../etc/passwd'];

/**
 * Asserts a request-target is refused (403/404, or 400 for one that is not a valid target, such as
 * a raw `#`) and gives away neither the marker nor passwd.
 */
async function assertRefused(port, target, what) {
  const res = await request(port, target);
  assert.ok([400, 403, 404].includes(res.status), `${what}: ${target} answered ${res.status}: ${res.body.slice(0, 200)}`);
  assert.ok(!res.body.includes(MARKER), `${what}: ${target} gave the file away`);
  assert.ok(!/root:[^:\n]*:0:0:/.test(res.body), `${what}: ${target} gave /etc/passwd away`);
}

const FOREIGN_ORIGINS = ['http://localhost:5174', 'http://127.0.0.1:1', 'http://[::1]:8080', 'https://evil.example'];

async function assertNoCors(port, target) {
  for (const origin of FOREIGN_ORIGINS) {
    for (const method of ['GET', 'OPTIONS']) {
      const res = await request(port, target, {
        method,
        headers: { origin, ...(method === 'OPTIONS' ? { 'access-control-request-method': 'GET' } : {}) },
      });
      assert.equal(res.headers['access-control-allow-origin'], undefined, `${method} ${target} from ${origin}: CORS allowed`);
      assert.equal(res.headers['access-control-allow-credentials'], undefined, `${method} ${target} from ${origin}`);
    }
  }
}

/** Module URLs imported by a dev-server module (static `from "…"`, bare `import "…"`, `import("…")`). */
function importsOf(code) {
  const urls = new Set();
  for (const re of [/\bfrom\s*["']([^"']+)["']/g, /\bimport\s*["']([^"']+)["']/g, /\bimport\(\s*["']([^"']+)["']\s*\)/g]) {
    for (const m of code.matchAll(re)) urls.add(m[1]);
  }
  return [...urls].filter((u) => u.startsWith('/'));
}

let legacyDir; // <repo>/.spool/<canary>: where older checkouts keep their state
let createdLegacyRoot = false;
let outsideDir; // a state folder outside the repository, as STATE_DIR is
let browser;

before(async () => {
  ensureChromium();
  const legacyRoot = path.join(ROOT, '.spool');
  createdLegacyRoot = !fs.existsSync(legacyRoot);
  fs.mkdirSync(legacyRoot, { recursive: true });
  legacyDir = fs.mkdtempSync(path.join(legacyRoot, 'web-test-'));
  plantState(legacyDir);
  outsideDir = fs.mkdtempSync(path.join(os.tmpdir(), 'spool-state-canary-'));
  plantState(outsideDir);
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
});

after(async () => {
  await browser?.close();
  if (legacyDir) fs.rmSync(createdLegacyRoot ? path.dirname(legacyDir) : legacyDir, { recursive: true, force: true });
  if (outsideDir) fs.rmSync(outsideDir, { recursive: true, force: true });
});

/** Chromium on a page of another localhost origin tries to read `targets` from `serverUrl`. */
async function crossOriginReads(serverUrl, targets) {
  const emptyDir = fs.mkdtempSync(path.join(os.tmpdir(), 'spool-foreign-origin-'));
  fs.writeFileSync(path.join(emptyDir, 'index.html'), '<!doctype html><title>another origin</title>');
  const foreign = await serveStatic({ dir: emptyDir });
  const page = await browser.newPage();
  page.setDefaultTimeout(WAIT_MS);
  try {
    await page.goto(foreign.url);
    return await page.evaluate(async ({ base, targets }) => {
      const out = {};
      for (const t of targets) {
        try {
          const res = await fetch(base + t);
          out[t] = { status: res.status, body: await res.text() };
        } catch (err) {
          out[t] = { error: String(err) };
        }
      }
      return out;
    }, { base: serverUrl, targets });
  } finally {
    await page.close();
    await foreign.close();
    fs.rmSync(emptyDir, { recursive: true, force: true });
  }
}

test('the platform state folder is outside the repository and its web client', () => {
  assert.equal(path.dirname(DEFAULT_DIR), STATE_DIR);
  for (const dir of [STATE_DIR, DEFAULT_DIR]) {
    const rel = path.relative(ROOT, dir);
    assert.ok(rel.startsWith('..') || path.isAbsolute(rel), `${dir} is inside the repository ${ROOT}`);
  }
  // One folder per checkout, under XDG_STATE_HOME (else ~/.local/state), or /var/lib as root.
  const a = stateDirFor('/src/a/spool', { env: { XDG_STATE_HOME: '/x/state' }, asRoot: false, home: '/home/u' });
  const b = stateDirFor('/src/b/spool', { env: { XDG_STATE_HOME: '/x/state' }, asRoot: false, home: '/home/u' });
  assert.match(a, /^\/x\/state\/spool\/spool-[0-9a-f]{12}$/);
  assert.notEqual(a, b);
  assert.match(stateDirFor('/src/a/spool', { env: {}, asRoot: false, home: '/home/u' }), /^\/home\/u\/\.local\/state\/spool\//);
  assert.match(stateDirFor('/src/a/spool', { env: { XDG_STATE_HOME: 'relative' }, asRoot: false, home: '/home/u' }), /^\/home\/u\/\.local\/state\/spool\//);
  assert.match(stateDirFor('/src/a/spool', { env: { XDG_STATE_HOME: '/x/state' }, asRoot: true, home: '/root' }), /^\/var\/lib\/spool\//);
});

describe("npm start's dev server (Vite, web/vite.config.ts)", () => {
  let web;
  let port;

  before(async () => {
    port = await freePort();
    // As local/tools/start.mjs does (the stack's URL and key only end up in the app's env).
    web = await startWebDev({ port, supabaseUrl: 'http://127.0.0.1:54321', anonKey: 'sb_publishable_dev-server-test', logLevel: 'silent' });
  });
  after(async () => {
    await web?.close();
  });

  test('serves the app', async () => {
    const index = await request(port, '/');
    assert.equal(index.status, 200);
    assert.match(index.body, /<div id="root">|src\/main\.tsx/);
    const main = await request(port, '/src/main.tsx');
    assert.equal(main.status, 200);
  });

  test('refuses the state files in the old in-repo folder (<repo>/.spool), by every route', async () => {
    for (const rel of STATE_FILES) {
      for (const target of attacksOn(path.join(legacyDir, rel))) await assertRefused(port, target, `.spool/${rel}`);
    }
  });

  test('refuses a state folder outside the repository, the real one, and /etc/passwd', async () => {
    for (const rel of STATE_FILES) {
      for (const target of attacksOn(path.join(outsideDir, rel))) await assertRefused(port, target, `outside/${rel}`);
      await assertRefused(port, `/@fs${path.join(STATE_DIR, rel)}`, `STATE_DIR/${rel}`);
    }
    for (const target of PASSWD) await assertRefused(port, target, '/etc/passwd');
  });

  test('refuses the rest of the repository outside web/', async () => {
    for (const rel of ['package.json', 'local/tools/db.mjs', 'supabase/config.toml', '.gitignore']) {
      for (const target of attacksOn(path.join(ROOT, rel))) await assertRefused(port, target, rel);
    }
  });

  test("the app's module URLs stay inside web/ and never name the repository's path", async () => {
    const seen = new Set();
    // From the page: Vite's client, the app's entry and everything they import.
    const queue = ['/@vite/client', '/src/main.tsx'];
    while (queue.length > 0) {
      const url = queue.shift();
      if (seen.has(url)) continue;
      seen.add(url);
      const res = await request(port, url);
      assert.equal(res.status, 200, `${url} (imported by the app) answered ${res.status}`);
      queue.push(...importsOf(res.body));
    }
    assert.ok(seen.size > 10, `the crawl found the app's modules (${seen.size})`);
    for (const url of seen) {
      assert.ok(!url.startsWith('/@fs/'), `${url} is served through /@fs/`);
      assert.ok(!url.includes(ROOT), `${url} names the repository path`);
    }
  });

  test('answers no other origin with CORS', async () => {
    for (const target of ['/', '/src/main.tsx', '/@vite/client', `/@fs${path.join(legacyDir, 'keys.json')}`]) {
      await assertNoCors(port, target);
    }
    const keys = `/@fs${path.join(legacyDir, 'keys.json')}`;
    const reads = await crossOriginReads(web.url, ['/src/main.tsx', keys]);
    for (const [target, r] of Object.entries(reads)) {
      assert.ok(r.error, `a page of another origin read ${target}: ${r.status} ${r.body?.slice(0, 80)}`);
    }
  });
});

describe('vite preview of the production build', () => {
  let server;
  let port;
  let outDir;

  before(async () => {
    outDir = fs.mkdtempSync(path.join(os.tmpdir(), 'spool-web-preview-'));
    await buildWeb({ outDir, supabaseUrl: 'http://127.0.0.1:54321', anonKey: 'sb_publishable_dev-server-test', logLevel: 'silent' });
    port = await freePort();
    const vite = await import('vite');
    server = await vite.preview({ configFile: WEB_CONFIG, logLevel: 'silent', build: { outDir }, preview: { port } });
  });
  after(async () => {
    await server?.close();
    if (outDir) fs.rmSync(outDir, { recursive: true, force: true });
  });

  test('serves the build and nothing else, without CORS', async () => {
    assert.equal((await request(port, '/')).status, 200);
    for (const rel of STATE_FILES) {
      for (const target of attacksOn(path.join(legacyDir, rel))) await assertRefused(port, target, `preview .spool/${rel}`);
      for (const target of attacksOn(path.join(outsideDir, rel))) await assertRefused(port, target, `preview outside/${rel}`);
    }
    for (const target of PASSWD) await assertRefused(port, target, 'preview /etc/passwd');
    await assertNoCors(port, '/');
  });
});
