#!/usr/bin/env node
// `npm run demo`: every job type end to end through Spool's public HTTP API, with a live view.
//
//   1. a Spool project to talk to:
//        - by default, the `npm start` stack if one answers on SPOOL_API_PORT (default 54321)
//          and accepts this checkout's anon key (keys.json in its state folder, local/tools/db.mjs STATE_DIR);
//        - otherwise (or with --fresh) a throwaway stack (local/tools/stack.mjs startStack) on free
//          ports in a temp folder, torn down at the end;
//        - or any project, hosted ones included: --url https://<ref>.supabase.co --anon-key <key>
//   2. sample media generated on the spot (local/tools/demo/media.mjs): a photo-like PNG with a
//      skin-tone subject, a green-screen PNG, a voice-like WAV with hiss, 50 Hz hum and DC offset
//   3. local/tools/demo/jobs.mjs: anonymous sign-up, uploads to inputs/<uid>/, the creators
//      (color-grade noir and teal-orange, audio-clean, roto; image, which a project without
//      OPENAI_API_KEY refuses with 503 provider_not_configured), then GET /functions/v1/jobs
//      every 200 ms until every job has ended, and the outputs downloaded from their signed URLs
//   4. a summary table; outputs, inputs and summary.json in demo-output/<timestamp>/ (--out DIR)
// Exits 1 if any job did not end `done` (an expected refusal of `image` is not a failure).
//
//   npm run demo [-- --fresh] [-- --out DIR] [-- --timeout SECONDS]
//   npm run demo -- --url URL --anon-key KEY

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { freePort, loadDotEnv, PlatformError, STATE_DIR } from './db.mjs';
import { loadKeys } from '../standins/keys.mjs';
import { allGood, demoPlan, runDemoJobs, TERMINAL } from './demo/jobs.mjs';
import { makeSampleMedia } from './demo/media.mjs';
import { envApiPort, fileLog, startStack } from './stack.mjs';

const USAGE = `usage: npm run demo [-- options]

  --fresh            always start a throwaway stack, even if \`npm start\` is running
  --url URL          use this Spool project instead (e.g. https://<ref>.supabase.co)
  --anon-key KEY     its publishable (anon) key (default: SUPABASE_ANON_KEY)
  --out DIR          where to save inputs, outputs and summary.json
                     (default: demo-output/<timestamp>)
  --timeout SECONDS  how long to wait for the jobs (default 45)
  --plain            plain lines instead of the live view, even on a terminal
  -h, --help         this text`;

const t0 = Date.now();
const isTty = process.stdout.isTTY === true;
const color = isTty && !process.env.NO_COLOR;
const paint = (code) => (s) => (color ? `\x1b[${code}m${s}\x1b[0m` : String(s));
const dim = paint('2');
const bold = paint('1');
const green = paint('32');
const red = paint('31');
const yellow = paint('33');
const cyan = paint('36');
const secs = (ms) => (ms === null || ms === undefined || Number.isNaN(ms) ? '' : `${(ms / 1000).toFixed(1)}s`);
// deno-lint-ignore no-control-regex
const visible = (s) => s.replace(/\x1b\[[0-9;]*m/g, '');
const pad = (s, n) => s + ' '.repeat(Math.max(0, n - visible(s).length));
const padStart = (s, n) => ' '.repeat(Math.max(0, n - visible(s).length)) + s;

function fail(message) {
  console.error(`spool demo: ${message}`);
  process.exit(2);
}

function parseOptions(argv) {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      options: {
        fresh: { type: 'boolean', default: false },
        url: { type: 'string' },
        'anon-key': { type: 'string' },
        out: { type: 'string' },
        timeout: { type: 'string', default: '45' },
        plain: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
      strict: true,
    });
  } catch (err) {
    fail(`${err.message}\n${USAGE}`);
  }
  const o = parsed.values;
  if (o.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const timeout = Number(o.timeout);
  if (!(timeout > 0)) fail(`--timeout must be a positive number of seconds, got ${o.timeout}`);
  const stamp = new Date().toISOString().replace(/[:]/g, '-').replace(/\..*$/, '');
  return {
    fresh: o.fresh,
    url: o.url ?? null,
    anonKey: o['anon-key'] ?? process.env.SUPABASE_ANON_KEY ?? null,
    out: path.resolve(o.out ?? path.join('demo-output', stamp)),
    timeoutMs: timeout * 1000,
    live: isTty && !o.plain,
  };
}

// ---------------------------------------------------------------------------------------------
// Which project

/**
 * The `npm start` stack of this checkout, if it runs: something answers on SPOOL_API_PORT and
 * takes the anon key of keys.json in this checkout's state folder (Auth's JWKS answers 200 to a
 * key in force; another stack's gateway refuses the key itself: 401). Not the jobs API: with
 * the new keys a publishable key is no JWT, and its verify_jwt gateway says 401 Invalid JWT.
 */
async function runningStack() {
  if (!fs.existsSync(path.join(STATE_DIR, 'keys.json'))) return null;
  const url = `http://127.0.0.1:${envApiPort()}`;
  const { anonKey } = await loadKeys(STATE_DIR);
  try {
    const res = await fetch(`${url}/auth/v1/.well-known/jwks.json`, {
      headers: { apikey: anonKey },
      signal: AbortSignal.timeout(3000),
    });
    const body = await res.json().catch(() => null);
    if (res.ok && Array.isArray(body?.keys)) return { url, anonKey };
    return { url, mismatch: `it answered ${res.status} ${JSON.stringify(body)?.slice(0, 120)}` };
  } catch {
    return null; // nothing listening (or not answering): start our own
  }
}

let owned = null; // the throwaway stack, if we started one: { dir, log, stack }

/** A throwaway stack in a temp folder on free ports; its gateway log goes to a file there. */
async function throwawayStack() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'spool-demo-'));
  owned = { dir, log: fileLog(path.join(dir, 'gateway.log')), stack: null };
  const ports = { dbPort: await freePort(), apiPort: await freePort() };
  owned.stack = await startStack({ ...ports, stateDir: dir, fsync: false, log: owned.log });
  return owned.stack;
}

/** Kills what is left of the throwaway stack and removes its folder (synchronous: for exit too). */
function teardown() {
  if (!owned) return;
  try {
    owned.stack?.killSync();
    owned.log.close();
  } catch {
    // best effort on the way out
  }
  fs.rmSync(owned.dir, { recursive: true, force: true });
  owned = null;
}

function gatewayTail(lines = 40) {
  if (!owned) return '';
  try {
    const text = fs.readFileSync(owned.log.file, 'utf8').trimEnd().split('\n').slice(-lines);
    return `\nlast ${lines} lines of the throwaway stack's gateway log:\n${text.join('\n')}`;
  } catch {
    return '';
  }
}

// ---------------------------------------------------------------------------------------------
// The live view

/** Width of the progress bar: 10 to 24 cells, so that a line fits the terminal. */
const barWidth = () => Math.max(10, Math.min(24, (process.stdout.columns ?? 100) - 70));
const STATUS_MARK = {
  new: '·',
  pending: '○',
  running: '●',
  waiting: '◐',
  done: '✔',
  failed: '✖',
  cancelled: '✖',
  refused: '⊘',
};

function statusText(e) {
  const s = `${STATUS_MARK[e.status] ?? '?'} ${e.status}`;
  if (e.status === 'done') return green(s);
  if (e.status === 'refused') return e.expected ? yellow(s) : red(s);
  if (TERMINAL.has(e.status)) return red(s);
  if (e.status === 'running' || e.status === 'waiting') return cyan(s);
  return s;
}

function elapsed(e, now) {
  if (e.createdAtMs === null) return '';
  return secs((e.endedAtMs ?? now) - e.createdAtMs);
}

function progressOf(e) {
  if (e.status === 'done') return 100;
  return Math.max(0, Math.min(100, e.job?.progress ?? 0));
}

/** One line of the live view for a job. */
function jobLine(e, now) {
  const head = `  ${pad(e.type, 11)} ${pad(e.label, 15)} ${pad(statusText(e), 11)}`;
  if (e.refused) {
    return `${head} ${dim(`${e.error.status} ${e.error.code}: ${e.error.message}`)}`;
  }
  const pct = progressOf(e);
  const width = barWidth();
  const filled = Math.round((pct / 100) * width);
  const bar = `[${'█'.repeat(filled)}${'░'.repeat(width - filled)}]`;
  const step = e.status === 'done' ? '' : (e.job?.step ?? '');
  return `${head} ${e.status === 'done' ? green(bar) : bar} ${padStart(`${pct}%`, 4)}  ${pad(step, 11)} ${padStart(elapsed(e, now), 6)}`;
}

/** Redraws the job lines in place (TTY), or prints changed jobs as plain lines every second. */
class Display {
  constructor(live) {
    this.live = live;
    this.drawn = 0;
    this.lastPlain = new Map();
    this.lastPlainAt = 0;
    this.entries = [];
    this.timer = null;
  }

  start() {
    if (this.live) {
      process.stdout.write('\x1b[?25l'); // hide the cursor while redrawing
      this.timer = setInterval(() => this.draw(), 100); // elapsed keeps ticking between polls
    }
  }

  update(entries) {
    this.entries = entries;
    if (!this.live) this.plain(false);
  }

  draw() {
    if (!this.live || this.entries.length === 0) return;
    const width = Math.max(40, (process.stdout.columns ?? 120) - 1);
    const now = Date.now();
    const lines = this.entries.map((e) => {
      const line = jobLine(e, now);
      // Never wrap: a wrapped line would break the cursor arithmetic.
      return visible(line).length > width ? visible(line).slice(0, width - 1) + '…' : line;
    });
    let out = this.drawn > 0 ? `\x1b[${this.drawn}A` : '';
    for (const line of lines) out += `\r\x1b[2K${line}\n`;
    process.stdout.write(out);
    this.drawn = lines.length;
  }

  plain(final) {
    const now = Date.now();
    if (!final && now - this.lastPlainAt < 1000 &&
      !this.entries.some((e) => TERMINAL.has(e.status) && this.lastPlain.get(e.key) !== stateKey(e))) {
      return;
    }
    this.lastPlainAt = now;
    for (const e of this.entries) {
      if (e.status === 'new') continue; // not created yet
      const key = stateKey(e);
      if (this.lastPlain.get(e.key) === key) continue;
      this.lastPlain.set(e.key, key);
      console.log(`  ${padStart(`+${secs(now - t0)}`, 7)} ${jobLine(e, now).trimStart()}`);
    }
  }

  stop() {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    if (this.live) {
      this.draw();
      process.stdout.write('\x1b[?25h');
    } else {
      this.plain(true);
    }
  }
}

const stateKey = (e) => `${e.status}|${e.job?.step ?? ''}|${Math.floor(progressOf(e) / 20)}`;

// ---------------------------------------------------------------------------------------------
// The summary

const ms = (a, b) => (a && b ? Date.parse(b) - Date.parse(a) : null);
const kb = (n) => (n >= 1024 * 1024 ? `${(n / 1024 / 1024).toFixed(1)} MB` : `${Math.round(n / 1024)} KB`);

function figuresText(e) {
  if (e.refused) {
    return e.expected
      ? `skipped: ${e.error.status} ${e.error.code} (no OPENAI_API_KEY)`
      : `${e.error.status} ${e.error.code}: ${e.error.message}`;
  }
  if (e.status !== 'done') {
    const err = e.job?.error;
    return err ? `${err.code ?? 'error'}: ${err.message ?? JSON.stringify(err)}` : (e.downloadError ?? '');
  }
  const f = e.figures;
  const parts = [];
  if (f.size) parts.push(f.size);
  if (e.type === 'audio-clean') {
    parts.push(f.loudness, `DC ${f.dc} removed`, f.noise, `peak ${f.peak}`);
  }
  if (f.matte) parts.push(f.matte);
  if (e.downloadError) parts.push(`download: ${e.downloadError}`);
  return parts.filter(Boolean).join(' · ');
}

function summaryTable(entries, outDir) {
  const rows = entries.map((e) => {
    const job = e.job ?? {};
    const file = e.files[0];
    return [
      `${e.type} ${e.label}`,
      e.status,
      secs(ms(job.created_at, job.started_at)),
      secs(ms(job.started_at, job.finished_at)),
      secs(ms(job.created_at, job.finished_at)),
      file ? `${path.relative(outDir, file.local)} (${kb(file.bytes)})` : '',
      figuresText(e),
    ];
  });
  const header = ['job', 'status', 'queued', 'ran', 'total', 'output file', 'key figures'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => visible(r[i]).length)));
  const line = (cells) => cells.map((c, i) => (i === cells.length - 1 ? c : pad(c, widths[i]))).join('  ');
  const rule = widths.map((w, i) => '─'.repeat(i === widths.length - 1 ? header[i].length : w));
  const out = [bold(line(header)), dim(line(rule))];
  for (const [i, r] of rows.entries()) {
    const e = entries[i];
    const status = e.status === 'done' ? green(r[1]) : e.refused && e.expected ? yellow(r[1]) : red(r[1]);
    out.push(line([r[0], pad(status, widths[1]), ...r.slice(2)]));
  }
  return out.map((l) => `  ${l}`).join('\n');
}

// ---------------------------------------------------------------------------------------------

async function main() {
  loadDotEnv();
  const opts = parseOptions(process.argv.slice(2));

  // 1. The project.
  let project;
  if (opts.url) {
    if (!opts.anonKey) fail('--url needs --anon-key (or SUPABASE_ANON_KEY): the project\'s publishable key');
    project = { url: opts.url, anonKey: opts.anonKey, how: 'the project given with --url' };
  } else {
    const running = opts.fresh ? null : await runningStack();
    if (running?.anonKey) {
      project = { ...running, how: '`npm start` stack (reused; --fresh for a throwaway one)' };
    } else {
      if (running?.mismatch) {
        console.log(dim(`spool demo: ${running.url} is not this checkout's npm start stack (${running.mismatch}); starting a throwaway one`));
      }
      console.log(dim('spool demo: starting a throwaway stack (Postgres, migrations, Edge Functions)…'));
      const stack = await throwawayStack();
      project = { url: stack.url, anonKey: stack.anonKey, how: 'throwaway stack (torn down at the end)' };
    }
  }

  // 2. The media.
  const tMedia = Date.now();
  const media = makeSampleMedia();
  const mediaMs = Date.now() - tMedia;

  console.log(`\n${bold('Spool demo')}  ${project.url}  ${dim(project.how)}`);
  console.log(dim(`  generated in ${mediaMs} ms:`));
  for (const m of Object.values(media)) console.log(dim(`    ${pad(m.name, 16)} ${pad(kb(m.bytes.length), 8)} ${m.description}`));
  console.log(dim(`  watching GET /functions/v1/jobs every 200 ms\n`));

  // 3. The jobs.
  const display = new Display(opts.live);
  const plan = demoPlan();
  let result;
  display.start();
  try {
    result = await runDemoJobs({
      url: project.url,
      anonKey: project.anonKey,
      media,
      outDir: opts.out,
      plan,
      timeoutMs: opts.timeoutMs,
      onUpdate: (entries) => display.update(entries),
    });
  } finally {
    display.stop();
  }
  const { entries, timedOut, userId } = result;

  // 4. The summary.
  console.log(`\n${summaryTable(entries, opts.out)}\n`);
  for (const e of entries.filter((x) => x.refused)) {
    const why = e.expected
      ? `${e.type} skipped: this project has no OPENAI_API_KEY, so the creator refused the job when it was asked (nothing was queued):`
      : `${e.type} refused:`;
    console.log(`  ${e.expected ? yellow(why) : red(why)}`);
    console.log(`    POST /functions/v1/${e.type} ${JSON.stringify(e.requestBody)}`);
    console.log(`    → ${e.error.status} ${JSON.stringify({ error: { code: e.error.code, message: e.error.message, details: e.error.details } })}\n`);
  }
  if (timedOut) console.log(red(`  gave up waiting after ${opts.timeoutMs / 1000} s (--timeout)\n`));

  fs.writeFileSync(
    path.join(opts.out, 'summary.json'),
    JSON.stringify({
      project: project.url,
      user_id: userId,
      jobs: entries.map((e) => ({
        type: e.type,
        label: e.label,
        request: e.requestBody,
        status: e.status,
        refusal: e.refused ? e.error : undefined,
        job: e.job,
        files: e.files.map(({ local, ...f }) => ({ ...f, url: undefined, local: path.relative(opts.out, local) })),
      })),
    }, null, 2) + '\n',
  );
  const ok = allGood(entries) && !timedOut;
  const rel = path.relative(process.cwd(), opts.out) || '.';
  console.log(`  files in ${rel}/ (inputs/, outputs, summary.json)`);
  console.log(`  ${ok ? green('all jobs done') : red('some jobs did not end done')} in ${secs(Date.now() - t0)}\n`);
  if (!ok) process.stdout.write(gatewayTail());
  return ok ? 0 : 1;
}

const onSignal = (signal) => {
  if (isTty) process.stdout.write('\x1b[?25h\n');
  console.error(`spool demo: ${signal}, stopping`);
  teardown();
  process.exit(130);
};
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(signal, () => onSignal(signal));
process.on('exit', () => teardown());

let code = 1;
try {
  code = await main();
} catch (err) {
  if (isTty) process.stdout.write('\x1b[?25h');
  console.error(`\nspool demo: ${err instanceof PlatformError ? err.message : err.stack}`);
  process.stderr.write(gatewayTail());
  code = 1;
}
try {
  await owned?.stack?.stop();
  if (owned) owned.stack = null;
} catch {
  // killSync in teardown covers it
}
teardown();
process.exit(code);
