// `npm start` as a person runs it, minus the terminal: its own stack (a temp state folder in
// SPOOL_STATE_DIR, free ports in SPOOL_DB_PORT / SPOOL_API_PORT / SPOOL_WEB_PORT), so it never
// meets a developer's running `npm start` or the stack npm test runs the suites against.
//
//   - the banner is printed whole, no gateway JSON line inside it or after it; the gateway's and
//     the functions' lines go to <state>/logs/gateway.log, which the banner names;
//   - an upload the client gives up half way logs one info line "upload cancelled by client"
//     in that file, and no error;
//   - a SIGINT to the npm process alone (not its group, so npm has to pass it on) stops every
//     process the stack started: npm, node, the Deno workers and the Postgres cluster.
//
// Linux only: the process tree is read from /proc.
//
//   node --test local/tools/tests/start.test.mjs

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { loadKeys } from '../../standins/keys.mjs';
import { freePort, ROOT, stopCluster } from '../db.mjs';

const WAIT_MS = 300_000; // a first start: initdb, bootstrap, every migration, the Deno cache
const STOP_WAIT_MS = 60_000; // for a failure to say so in time; the stop itself takes ~1 s

let stateDir;
let child;
let out = '';
let err = '';
let exit = null; // { code, signal } once npm has exited
let ports;
/** Every process npm start started, as seen once its banner is out. */
let started = [];

/** The pids of `pid`'s descendants (from /proc/<pid>/stat's ppid field). */
function descendants(pid) {
  const parentOf = new Map();
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      // pid (comm) state ppid …; comm may hold spaces and parentheses: split after the last ')'.
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      parentOf.set(Number(entry), ppid);
    } catch {
      // gone meanwhile
    }
  }
  const found = [];
  const walk = (p) => {
    for (const [c, pp] of parentOf) {
      if (pp === p) {
        found.push(c);
        walk(c);
      }
    }
  };
  walk(pid);
  return found;
}

/** Whether a process runs (a zombie, exited and waiting to be reaped, does not). */
function alive(pid) {
  try {
    const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    return !/^State:\s+Z/m.test(status);
  } catch {
    return false;
  }
}

const command = (pid) => {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').trim();
  } catch {
    return '?';
  }
};

/**
 * Resolves once `check()` is truthy (polled), or rejects with `what` after `ms`, or at once if
 * npm start exited meanwhile (unless `exitOk`: waiting for that exit). The message leads with
 * npm start's stderr (where its errors go), then the tail of its stdout.
 */
async function waitFor(what, check, ms = WAIT_MS, { exitOk = false } = {}) {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await check();
    if (value) return value;
    const exited = exit && !exitOk;
    if (exited || Date.now() > deadline) {
      const why = exited ? `npm start exited (${JSON.stringify(exit)})` : `timed out`;
      // What npm start is still running (a stuck step shows as its command line).
      const running = exited ? '' : descendants(child.pid).map((pid) => `${pid} ${command(pid)}`).join('\n');
      throw new Error(
        `${why} waiting for ${what}\nstderr:\n${err}\nrunning:\n${running}\nstdout (tail):\n${out.slice(-4000)}`,
      );
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The Postgres cluster's pids: the postmaster (postmaster.pid) and its children. */
function clusterPids() {
  const pidFile = path.join(stateDir, 'db', 'data', 'postmaster.pid');
  const postmaster = Number(fs.readFileSync(pidFile, 'utf8').split('\n')[0]);
  return [postmaster, ...descendants(postmaster)];
}

before(async () => {
  stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'spool-start-test-'));
  ports = { db: await freePort(), api: await freePort(), web: await freePort() };
  const env = {
    ...process.env,
    SPOOL_STATE_DIR: stateDir,
    SPOOL_DB_PORT: String(ports.db),
    SPOOL_API_PORT: String(ports.api),
    SPOOL_WEB_PORT: String(ports.web),
  };
  delete env.SPOOL_VERBOSE;
  child = spawn('npm', ['start'], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout.setEncoding('utf8').on('data', (d) => (out += d));
  child.stderr.setEncoding('utf8').on('data', (d) => (err += d));
  child.on('exit', (code, signal) => (exit = { code, signal }));
  await waitFor(
    'the banner',
    () => out.includes('Spool is running') && /\n {2}psql "[^"]+"\n/.test(out),
  );
  started = [...descendants(child.pid), ...clusterPids()];
}, { timeout: WAIT_MS + 10_000 });

after(() => {
  // Whatever is left (a failed test) goes: the processes, then the cluster, then the folder.
  if (child && !exit) child.kill('SIGKILL');
  for (const pid of started) if (alive(pid)) process.kill(pid, 'SIGKILL');
  try {
    stopCluster({ dir: path.join(stateDir, 'db') }, { mode: 'immediate', quiet: true });
  } catch {
    // not running
  }
  fs.rmSync(stateDir, { recursive: true, force: true });
});

test('npm start prints its banner whole and logs to a file under the state folder', () => {
  const banner = out.slice(out.indexOf('Spool is running'));
  const lines = banner.split('\n');
  const logFile = path.join(stateDir, 'logs', 'gateway.log');
  assert.ok(lines.some((l) => /^ {2}db {9}postgresql:\/\//.test(l)), 'the db line');
  assert.ok(
    lines.some((l) => l.includes(`http://127.0.0.1:${ports.api}   (SUPABASE_URL)`)),
    'the API line',
  );
  assert.ok(lines.some((l) => /^ {13}(publishable|anon) key {3}/.test(l)), 'the key lines');
  assert.ok(lines.some((l) => l.includes(`http://127.0.0.1:${ports.web}`)), 'the web line');
  assert.ok(lines.some((l) => l === `  logs       ${logFile}`), `the logs line names ${logFile}`);
  // No gateway line anywhere on the terminal: they start `{"at":` (JSON) or `<function> | `.
  const stray = out.split('\n').filter((l) => l.startsWith('{') || /^[a-z-]+ \| /.test(l));
  assert.deepEqual(stray, [], 'no log lines on stdout');
  assert.doesNotMatch(err, /^\{/m, 'no JSON log lines on stderr');

  // The lines went to the file instead: the workers' lifecycle, one JSON object a line.
  const logged = fs.readFileSync(logFile, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  assert.ok(logged.some((l) => l.event === 'worker_spawned'), 'worker_spawned in the log file');

  const commands = started.map(command);
  assert.ok(
    commands.some((c) => c.includes('local/tools/start.mjs')),
    `node local/tools/start.mjs among ${commands.join('\n')}`,
  );
  assert.ok(commands.some((c) => /deno/.test(c)), 'Deno workers among them');
  assert.ok(commands.some((c) => /postgres/.test(c)), 'Postgres among them');
});

test('an upload the client cancels half way logs one info line, not an error', async () => {
  const logFile = path.join(stateDir, 'logs', 'gateway.log');
  const sizeBefore = fs.statSync(logFile).size;
  // The anon key in force, in the key system npm start ran with (SPOOL_KEYS, inherited).
  const { anonKey } = await loadKeys(stateDir);
  const apiUrl = `http://127.0.0.1:${ports.api}`;
  const res = await fetch(`${apiUrl}/auth/v1/signup`, {
    method: 'POST',
    headers: { apikey: anonKey, 'content-type': 'application/json' },
    body: '{}',
  });
  const session = await res.json();
  assert.equal(res.status, 200, JSON.stringify(session));
  const objectPath = `/storage/v1/object/inputs/${session.user.id}/cancelled.wav`;

  // 256 kB of a declared 8 MB, then the connection is dropped.
  await new Promise((resolve) => {
    const req = http.request({
      host: '127.0.0.1',
      port: ports.api,
      path: objectPath,
      method: 'POST',
      headers: {
        apikey: anonKey,
        authorization: `Bearer ${session.access_token}`,
        'content-type': 'audio/wav',
        'content-length': 8 * 1024 * 1024,
      },
    });
    req.on('error', () => {}); // the reset we cause
    req.write(Buffer.alloc(256 * 1024), () => {
      req.destroy();
      resolve();
    });
  });

  const lines = await waitFor('the cancelled upload in the log file', () => {
    const all = fs.readFileSync(logFile, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    const about = all.filter((l) => l.path === objectPath);
    return about.length > 0 && about;
  });
  assert.ok(fs.statSync(logFile).size > sizeBefore, 'the log file grew');
  assert.deepEqual(lines.map(({ level, route, msg }) => ({ level, route, msg })), [
    { level: 'info', route: 'storage', msg: 'upload cancelled by client' },
  ]);
  assert.ok(
    !fs.existsSync(path.join(stateDir, 'storage', 'inputs', session.user.id, 'cancelled.wav')),
    'nothing stored',
  );
});

test('a SIGINT to the npm process alone stops every process npm start started', async () => {
  assert.ok(started.length > 0, 'the first test saw the processes');
  // Only npm: it must pass the signal on to node local/tools/start.mjs, which stops the rest.
  process.kill(child.pid, 'SIGINT');
  const left = () => started.filter(alive).map((pid) => `${pid} ${command(pid)}`).join('\n');
  await waitFor('npm to exit', () => exit, STOP_WAIT_MS, { exitOk: true }).catch((e) => {
    throw new Error(`${e.message}\nstill running:\n${left()}`);
  });
  await waitFor('every process to be gone', () => started.every((pid) => !alive(pid)), STOP_WAIT_MS, { exitOk: true })
    .catch((e) => {
      throw new Error(`${e.message}\nstill running:\n${left()}`);
    });
  assert.deepEqual(exit, { code: 0, signal: null }, `npm's exit\n${out}\n${err}`);
  assert.match(out, /spool: SIGINT, stopping/);
  assert.match(out, /spool: stopped in \d+\.\d s/);
  assert.ok(
    !fs.existsSync(path.join(stateDir, 'db', 'data', 'postmaster.pid')),
    'Postgres shut down cleanly',
  );
});
