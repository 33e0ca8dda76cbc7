// Harness for the browser tests of web/: a stack (the one `npm test` runs, from SUPABASE_URL and
// friends in the environment, or a throwaway one of our own when none of them is set), the app
// built with that stack's URL and anon key and served statically, and Debian's Chromium driven by
// playwright-core, one fresh profile (user-data-dir) per browser user. Nothing is downloaded:
// Chromium comes from `apt-get install chromium` (.ci/run; npm test as root installs it too).
//
// The tests wait for states (of the page, or of a job in the database), never for time. WAIT_MS
// only bounds how long a state may take to come on a loaded machine before the test fails.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import pg from 'pg';
import { chromium } from 'playwright-core';
import { freePort } from '../../local/tools/db.mjs';
import { startFakeOpenAI } from '../../local/tools/fake-openai.mjs';
import { startStack } from '../../local/tools/stack.mjs';
import { buildWeb, CHROMIUM, ensureChromium, serveStatic } from '../../local/tools/web.mjs';

export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/**
 * The bound on any one wait for a state (a page element, a job's status): generous, since on a
 * loaded 2-core machine the stack, Chromium and the tests share the cores. It never stands in for
 * synchronisation.
 */
export const WAIT_MS = 120_000;

/** The stack's variables, as npm test sets them (api.clientEnv()). */
const STACK_ENV = ['SUPABASE_URL', 'SUPABASE_ANON_KEY', 'SUPABASE_SERVICE_ROLE_KEY', 'SPOOL_TEST_SUPERUSER_URL'];

/**
 * Everything the tests need: { api, anonKey, serviceKey, appUrl, admin (pg.Pool as superuser),
 * tmp, bundle, close() }. The stack is npm test's when its variables are set, a throwaway one of
 * our own when none is; some but not all of them is an error (a stack half described).
 */
export async function setup() {
  ensureChromium();
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'spool-web-test-'));
  // Postgres runs as its own OS user and must reach a cluster under tmp/stack (startStack).
  if (process.getuid?.() === 0) fs.chmodSync(tmp, 0o711);
  let stack = null;
  let fakeOpenAI = null;
  let api = process.env.SUPABASE_URL;
  let anonKey = process.env.SUPABASE_ANON_KEY;
  let serviceKey = process.env.SUPABASE_SERVICE_ROLE_KEY;
  let superuserUrl = process.env.SPOOL_TEST_SUPERUSER_URL;
  const missing = STACK_ENV.filter((name) => !process.env[name]);
  if (missing.length > 0 && missing.length < STACK_ENV.length) {
    throw new Error(
      `${missing.join(', ')} not set while ${STACK_ENV.filter((n) => !missing.includes(n)).join(', ')} are: ` +
        'set all of them (npm test does) or none (the tests then start a stack of their own)',
    );
  }
  if (missing.length > 0) {
    // As npm test's stack: OpenAI configured against the local fake (local/tools/fake-openai.mjs).
    fakeOpenAI = await startFakeOpenAI();
    const log = console.log;
    console.log = () => {};
    try {
      stack = await startStack({
        dbPort: await freePort(),
        apiPort: await freePort(),
        stateDir: path.join(tmp, 'stack'),
        fsync: false,
        quiet: true,
        log: () => {},
        env: {
          SPOOL_ENABLE_NOOP: 'true',
          OPENAI_API_KEY: 'sk-spool-fake',
          OPENAI_BASE_URL: `${fakeOpenAI.url}/v1`,
        },
      });
    } finally {
      console.log = log;
    }
    ({ url: api, anonKey, serviceRoleKey: serviceKey, superuserUrl } = stack);
  }
  const dist = path.join(tmp, 'dist');
  const bundle = await buildWeb({ outDir: dist, supabaseUrl: api, anonKey, logLevel: 'error' });
  const web = await serveStatic({ dir: dist });
  const admin = new pg.Pool({ connectionString: superuserUrl, max: 2 });
  return {
    api,
    anonKey,
    serviceKey,
    appUrl: web.url,
    admin,
    tmp,
    bundle,
    async close() {
      await admin.end();
      await web.close();
      await stack?.stop();
      await fakeOpenAI?.close();
      fs.rmSync(tmp, { recursive: true, force: true });
    },
  };
}

/**
 * A browser user: Chromium with a fresh profile. Collects console errors and page errors;
 * `allow(re)` tolerates matching console errors for the rest of the test.
 */
export async function openProfile(env, { width = 1280, height = 900 } = {}) {
  const userDataDir = fs.mkdtempSync(path.join(env.tmp, 'profile-'));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width, height },
    acceptDownloads: true,
    reducedMotion: 'reduce',
  });
  // Every wait for an element or event: bounded by WAIT_MS, never a stand-in for synchronisation.
  context.setDefaultTimeout(WAIT_MS);
  const page = context.pages()[0] ?? (await context.newPage());
  const errors = [];
  const allowed = [];
  page.on('console', (msg) => {
    if (msg.type() !== 'error') return;
    const text = msg.text();
    if (!allowed.some((re) => re.test(text))) errors.push(`console.error: ${text}`);
  });
  page.on('pageerror', (err) => errors.push(`page error: ${err.message}`));
  return {
    context,
    page,
    errors,
    allow: (re) => allowed.push(re),
    async signIn() {
      await page.goto(env.appUrl);
      await page.getByTestId('session').filter({ hasText: 'Guest' }).waitFor();
      return await this.session();
    },
    /** The session supabase-js keeps in localStorage: { access_token, user, ... }. */
    async session() {
      return await page.evaluate(() => {
        for (let i = 0; i < localStorage.length; i++) {
          const key = localStorage.key(i);
          if (/^sb-.+-auth-token$/.test(key)) return JSON.parse(localStorage.getItem(key));
        }
        return null;
      });
    },
    async close() {
      await context.close();
    },
  };
}

// PNG ------------------------------------------------------------------------------------------

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

function crc32(buf) {
  let c = 0xffffffff;
  for (const b of buf) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type, data) {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type, 'latin1'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([len, body, crc]);
}

export const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/** An 8-bit RGB PNG whose pixel (x, y) is pixel(x, y) -> [r, g, b]. */
export function makePng(width, height, pixel) {
  const raw = Buffer.alloc((width * 3 + 1) * height);
  for (let y = 0; y < height; y++) {
    const row = y * (width * 3 + 1);
    raw[row] = 0; // filter: none
    for (let x = 0; x < width; x++) {
      const [r, g, b] = pixel(x, y);
      raw[row + 1 + x * 3] = r;
      raw[row + 2 + x * 3] = g;
      raw[row + 3 + x * 3] = b;
    }
  }
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // colour type RGB
  return Buffer.concat([
    PNG_SIGNATURE,
    chunk('IHDR', ihdr),
    chunk('IDAT', zlib.deflateSync(raw)),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

/** A colourful test picture: hue across, brightness down. */
export function colourfulPng(width = 160, height = 120) {
  return makePng(width, height, (x, y) => {
    const h = (x / width) * 6;
    const v = 255 * (1 - (0.6 * y) / height);
    const f = h - Math.floor(h);
    const rgb = [[1, f, 0], [1 - f, 1, 0], [0, 1, f], [0, 1 - f, 1], [f, 0, 1], [1, 0, 1 - f]][Math.floor(h) % 6];
    return rgb.map((c) => Math.round(c * v));
  });
}

/** A PNG with a valid header (so the creator accepts it) whose image data is not zlib at all. */
export function corruptPng(width = 64, height = 48) {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8;
  ihdr[9] = 2;
  const garbage = Buffer.alloc(512, 0x5a);
  return Buffer.concat([PNG_SIGNATURE, chunk('IHDR', ihdr), chunk('IDAT', garbage), chunk('IEND', Buffer.alloc(0))]);
}

/**
 * Decodes 8-bit non-interlaced PNGs (greyscale, grey+alpha, RGB, RGBA) into
 * { width, height, channels, colourType, pixels }.
 */
export function decodePng(buf) {
  if (!buf.subarray(0, 8).equals(PNG_SIGNATURE)) throw new Error('not a PNG');
  let at = 8;
  let width, height, depth, colourType, interlace;
  const idat = [];
  while (at < buf.length) {
    const len = buf.readUInt32BE(at);
    const type = buf.toString('latin1', at + 4, at + 8);
    const data = buf.subarray(at + 8, at + 8 + len);
    if (type === 'IHDR') {
      width = data.readUInt32BE(0);
      height = data.readUInt32BE(4);
      depth = data[8];
      colourType = data[9];
      interlace = data[12];
    } else if (type === 'IDAT') idat.push(data);
    else if (type === 'IEND') break;
    at += 12 + len;
  }
  const channels = { 0: 1, 2: 3, 4: 2, 6: 4 }[colourType];
  if (depth !== 8 || !channels || interlace !== 0) {
    throw new Error(`unsupported PNG: depth ${depth}, colour type ${colourType}, interlace ${interlace}`);
  }
  const raw = zlib.inflateSync(Buffer.concat(idat));
  const stride = width * channels;
  const out = Buffer.alloc(stride * height);
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)];
    const line = raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1));
    for (let i = 0; i < stride; i++) {
      const a = i >= channels ? out[y * stride + i - channels] : 0;
      const b = y > 0 ? out[(y - 1) * stride + i] : 0;
      const c = i >= channels && y > 0 ? out[(y - 1) * stride + i - channels] : 0;
      let v = line[i];
      if (filter === 1) v += a;
      else if (filter === 2) v += b;
      else if (filter === 3) v += (a + b) >> 1;
      else if (filter === 4) {
        const p = a + b - c;
        const pa = Math.abs(p - a);
        const pb = Math.abs(p - b);
        const pc = Math.abs(p - c);
        v += pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
      }
      out[y * stride + i] = v & 0xff;
    }
  }
  return { width, height, channels, colourType, pixels: out };
}

/** The largest difference between the colour channels of any pixel (0 for pure greyscale). */
export function maxChroma({ channels, pixels }) {
  if (channels < 3) return 0;
  let worst = 0;
  for (let i = 0; i < pixels.length; i += channels) {
    const r = pixels[i];
    const g = pixels[i + 1];
    const b = pixels[i + 2];
    worst = Math.max(worst, Math.abs(r - g), Math.abs(g - b), Math.abs(r - b));
  }
  return worst;
}

/**
 * Waits for a state: polls `check` (async, truthy = done) every 100 ms until it holds, and fails
 * if it has not after `ms`. Returns check's value.
 */
export async function until(check, { ms = WAIT_MS, what = 'condition' } = {}) {
  const end = Date.now() + ms;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** A small landscape "photo" for screenshots: sky, sun, sea and hills (smooth, so it packs small). */
export function landscapePng(width = 640, height = 400) {
  const mix = (a, b, t) => a.map((v, i) => v + (b[i] - v) * t);
  return makePng(width, height, (x, y) => {
    const u = x / width;
    const v = y / height;
    let c;
    const hill = 0.62 + 0.07 * Math.sin(u * 7 + 1) + 0.04 * Math.sin(u * 19);
    const sea = 0.72;
    const sun = Math.hypot(u - 0.7, (v - 0.35) * (height / width)) * width;
    if (v > hill && v < sea + 0.1 * (1 - u)) c = mix([58, 110, 64], [24, 60, 34], (v - hill) / 0.2);
    else if (v >= sea) c = mix([40, 96, 140], [12, 40, 70], (v - sea) / (1 - sea));
    else c = mix([90, 150, 220], [250, 190, 140], v / sea);
    if (sun < 42 && v < hill) c = mix([255, 236, 180], c, Math.max(0, (sun - 30) / 12));
    return c.map((ch) => Math.max(0, Math.min(255, Math.round(ch))));
  });
}

/**
 * Plays a worker that claimed job `id`, if it is still pending: running, under a lease of this
 * test's own (the fields claim_jobs sets). Returns the lease token, or null when a real worker
 * claimed it first. As the superuser, so it works whatever the per-user cap says.
 */
export async function leaseAsTest(admin, id, worker = 'web-test') {
  const { rows } = await admin.query(
    `update public.jobs
        set status = 'running', attempts = attempts + 1, worker_id = $2,
            lease_token = gen_random_uuid(), lease_expires_at = now() + interval '1 hour',
            started_at = now(), progress = 0, step = null, updated_at = now()
      where id = $1 and status = 'pending'
      returning lease_token`,
    [id, worker],
  );
  return rows[0]?.lease_token ?? null;
}

/**
 * Claims job `id` through claim_jobs, as a worker named `worker` does, so the claim is recorded
 * (job_attempts), even while holdQueue keeps its owner at their running cap: in one transaction
 * the cap is lifted, claim_jobs takes one job of the job's type, and the cap is put back before
 * the commit, so no worker ever sees it lifted. The job must be the only runnable pending job of
 * its type. Returns the lease token, or null (and nothing changed) if claim_jobs took another.
 */
export async function claimAsTest(admin, id, worker = 'web-test') {
  const client = await admin.connect();
  try {
    await client.query('begin');
    const { rows: [job] } = await client.query(`select type from public.jobs where id = $1 and status = 'pending'`, [id]);
    const { rows: [settings] } = await client.query('select max_running_per_user from spool.settings for update');
    await client.query('update spool.settings set max_running_per_user = 1000');
    const { rows } = job
      ? await client.query('select id, lease_token from public.claim_jobs($1, 1, 3600, array[$2])', [worker, job.type])
      : { rows: [] };
    await client.query('update spool.settings set max_running_per_user = $1', [settings.max_running_per_user]);
    if (rows.length !== 1 || rows[0].id !== id) {
      await client.query('rollback');
      return null;
    }
    await client.query('commit');
    return rows[0].lease_token;
  } catch (err) {
    await client.query('rollback').catch(() => {});
    throw err;
  } finally {
    client.release();
  }
}

/**
 * Keeps `userId`'s jobs queued: sets the per-user running cap (spool.settings
 * max_running_per_user, which claim_jobs honours) to 1 and gives the user a running job, a
 * test-only `noop` created and leased by this test in one transaction, so no worker ever sees it
 * pending (the doorbell rings at commit): it runs until release() cancels it, however long the
 * test takes. release() also restores the cap.
 */
export async function holdQueue(admin, userId) {
  const { rows: [settings] } = await admin.query('select max_running_per_user from spool.settings');
  await admin.query('update spool.settings set max_running_per_user = 1');
  const client = await admin.connect();
  let blocker;
  try {
    await client.query('begin');
    const { rows: [created] } = await client.query(
      `select (public.create_job($1, 'noop', '{}'::jsonb)).id`,
      [userId],
    );
    const token = await leaseAsTest(client, created.id, 'web-test-blocker');
    if (!token) throw new Error(`the blocker ${created.id} could not be leased in its own transaction`);
    await client.query('commit');
    blocker = created;
  } catch (err) {
    await client.query('rollback').catch(() => {});
    await admin.query('update spool.settings set max_running_per_user = $1', [settings.max_running_per_user]);
    throw err;
  } finally {
    client.release();
  }
  return {
    id: blocker.id,
    async release() {
      await admin.query('select public.cancel_job($1)', [blocker.id]);
      await admin.query('update spool.settings set max_running_per_user = $1', [settings.max_running_per_user]);
    },
  };
}

/** A subject (a warm disc with a darker ring) in front of a green screen, for roto. */
export function greenScreenPng(width = 320, height = 240) {
  return makePng(width, height, (x, y) => {
    const d = Math.hypot(x - width * 0.5, y - height * 0.55);
    const r = height * 0.32;
    if (d < r * 0.8) return [240 - Math.round(d / 2), 150 - Math.round(d / 3), 60];
    if (d < r) return [120, 70, 40];
    const shade = Math.round(20 * (y / height));
    return [0, 177 - shade, 64];
  });
}

/** A 16-bit mono WAV: a voice-like tone with hiss, 50 Hz hum and a DC offset, to clean up. */
export function noisyWav(seconds = 2, rate = 48000) {
  const n = Math.round(seconds * rate);
  const data = Buffer.alloc(n * 2);
  let seed = 1;
  for (let i = 0; i < n; i++) {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    const t = i / rate;
    const voice = 0.25 * Math.sin(2 * Math.PI * 220 * t) * (0.6 + 0.4 * Math.sin(2 * Math.PI * 3 * t));
    const v = voice + 0.03 * (seed / 0x7fffffff - 0.5) + 0.08 * Math.sin(2 * Math.PI * 50 * t) + 0.05;
    data.writeInt16LE(Math.max(-32768, Math.min(32767, Math.round(v * 32767))), i * 2);
  }
  const header = Buffer.alloc(44);
  header.write('RIFF', 0, 'latin1');
  header.writeUInt32LE(36 + data.length, 4);
  header.write('WAVEfmt ', 8, 'latin1');
  header.writeUInt32LE(16, 16);
  header.writeUInt16LE(1, 20); // PCM
  header.writeUInt16LE(1, 22); // mono
  header.writeUInt32LE(rate, 24);
  header.writeUInt32LE(rate * 2, 28);
  header.writeUInt16LE(2, 32);
  header.writeUInt16LE(16, 34);
  header.write('data', 36, 'latin1');
  header.writeUInt32LE(data.length, 40);
  return Buffer.concat([header, data]);
}

// Accessibility ---------------------------------------------------------------------------------

const AXE_SOURCE = path.join(import.meta.dirname, '..', '..', 'node_modules', 'axe-core', 'axe.min.js');

/**
 * The serious and critical axe-core violations of the page as it is now (axe.min.js from the
 * pinned npm package, injected with page.addScriptTag; WCAG 2.x A and AA rules and axe's best
 * practices), as `[{ id, impact, help, targets }]`: [] when there are none. `exclude` lists CSS
 * selectors left out of the scan.
 */
export async function axeSerious(page, { exclude = [] } = {}) {
  if (!(await page.evaluate(() => typeof window.axe === 'object'))) {
    await page.addScriptTag({ path: AXE_SOURCE });
  }
  const violations = await page.evaluate(async (exclude) => {
    const result = await window.axe.run(
      { include: [document], exclude: exclude.map((s) => [s]) },
      { resultTypes: ['violations'] },
    );
    return result.violations.map((v) => ({
      id: v.id,
      impact: v.impact,
      help: v.help,
      targets: v.nodes.map((n) => n.target.join(' ')),
    }));
  }, exclude);
  return violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
}
