// What `npm start` shows in a terminal (local/tools/terminal.mjs), without a stack: which log lines
// count as errors, the status text, the log file, and the TTY status line staying on a line of
// its own while other output goes above it.
//
//   node --test local/tools/tests/terminal.test.mjs

import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { freePort } from '../db.mjs';
import { errorOf, gatewayLog, statusLine, statusText } from '../terminal.mjs';

const at = '2026-12-03T15:41:55.000Z';

test('errorOf takes error lines of the gateway and of the functions, and nothing else', () => {
  assert.deepEqual(
    errorOf({
      at,
      level: 'error',
      route: 'storage',
      path: '/x',
      error: 'Error: boom\n    at f (x.mjs:1:1)',
    }),
    { at: new Date(at), source: 'storage', text: 'Error: boom' },
  );
  assert.deepEqual(
    errorOf({
      at,
      level: 'error',
      service: 'edge-runtime',
      event: 'worker_boot_failed',
      function: 'jobs',
      error: 'did not boot',
    }),
    { at: new Date(at), source: 'jobs', text: 'worker_boot_failed: did not boot' },
  );
  assert.equal(
    errorOf({ at, level: 'info', route: 'storage', msg: 'upload cancelled by client' }),
    null,
  );
  assert.equal(
    errorOf({ at, service: 'edge-runtime', event: 'worker_ready', function: 'jobs' }),
    null,
  );

  const fn = (stream, msg) => ({
    at,
    service: 'edge-runtime',
    function: 'jobs',
    worker: 'jobs#1',
    stream,
    msg,
  });
  assert.deepEqual(
    errorOf(
      fn(
        'stderr',
        JSON.stringify({
          level: 'error',
          msg: 'unexpected database API error',
          message: 'relation x does not exist',
        }),
      ),
    ),
    {
      at: new Date(at),
      source: 'jobs',
      text: 'unexpected database API error: relation x does not exist',
    },
  );
  assert.deepEqual(
    errorOf(fn('stdout', JSON.stringify({ level: 'error', msg: 'job', error: 'lease lost' }))),
    { at: new Date(at), source: 'jobs', text: 'job: lease lost' },
  );
  assert.equal(
    errorOf(fn('stderr', JSON.stringify({ level: 'warn', msg: 'could not sign an output' }))),
    null,
  );
  assert.equal(errorOf(fn('stdout', JSON.stringify({ level: 'info', msg: 'drain' }))), null);
  assert.deepEqual(
    errorOf(fn('stderr', 'error: Uncaught (in promise) TypeError: x is not a function')),
    {
      at: new Date(at),
      source: 'jobs',
      text: 'error: Uncaught (in promise) TypeError: x is not a function',
    },
  );
  assert.equal(errorOf(fn('stderr', 'Download https://example.invalid/x')), null);
  assert.equal(errorOf(fn('stdout', 'error: this is only printed')), null);
});

test('statusText: the queue now, the last minute, the newest error', () => {
  const counts = { pending: 2, running: 1, waiting: 0, done: 14, failed: 1, cancelled: 0 };
  assert.equal(statusText({ counts }), '2 pending · 1 running │ last min 14 done · 1 failed');
  assert.equal(
    statusText({ counts: { ...counts, waiting: 3, cancelled: 2 } }),
    '2 pending · 1 running · 3 waiting │ last min 14 done · 1 failed · 2 cancelled',
  );
  assert.equal(
    statusText({
      counts,
      lastError: { at: new Date(at), source: 'image job', text: 'openai_timeout: took too long' },
    }),
    '2 pending · 1 running │ last min 14 done · 1 failed │ error 15:41:55 image job: openai_timeout: took too long',
  );
  assert.equal(
    statusText({ dbError: 'connect ECONNREFUSED 127.0.0.1:1' }),
    'database unreachable: connect ECONNREFUSED 127.0.0.1:1',
  );
});

test('gatewayLog appends JSON lines to its file, keeps the previous run as .1, and remembers the last error', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'spool-terminal-test-'));
  try {
    const file = path.join(dir, 'logs', 'gateway.log');
    fs.mkdirSync(path.dirname(file));
    fs.writeFileSync(file, '{"old":true}\n');
    const log = gatewayLog({ file });
    log({ at, service: 'pg_net', event: 'connected' });
    log({ at, level: 'error', route: 'rest', error: 'Error: no' });
    log({ at, level: 'info', route: 'storage', msg: 'upload cancelled by client' });
    log.close();
    assert.equal(fs.readFileSync(`${file}.1`, 'utf8'), '{"old":true}\n');
    const lines = fs.readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    assert.deepEqual(lines.map((l) => l.event ?? l.msg ?? l.error), [
      'connected',
      'Error: no',
      'upload cancelled by client',
    ]);
    assert.equal(log.lines, 3);
    assert.deepEqual(log.lastError, { at: new Date(at), source: 'rest', text: 'Error: no' });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('on a TTY the status line is rewritten in place and other output goes above it, never on its line', async () => {
  const writes = [];
  const fake = (name) => ({
    isTTY: true,
    columns: 80,
    write: (chunk) => writes.push([name, String(chunk)]),
  });
  const out = fake('out');
  const err = fake('err');
  // Nothing listens on that port: the status says the database is unreachable.
  const status = statusLine({
    dbUrl: `postgresql://nobody@127.0.0.1:${await freePort()}/postgres`,
    log: null,
    out,
    err,
  });
  status.start();
  const drawn = (from = 0) =>
    writes.slice(from).findIndex(([, s]) => s.includes('database unreachable'));
  for (let i = 0; drawn() < 0; i++) {
    assert.ok(i < 600, 'the status line is drawn');
    await new Promise((r) => setTimeout(r, 50));
  }
  const line = writes[drawn()][1];
  // deno-lint-ignore no-control-regex
  assert.match(line, /^\r\x1b\[2K\x1b\[2m\d\d:\d\d:\d\d {2}database unreachable: /);
  assert.ok(!line.includes('\n'), 'one line, rewritten with \\r');
  assert.ok(
    // deno-lint-ignore no-control-regex
    line.replace(/\x1b\[[0-9;]*m/g, '').replace('\r', '').length <= 80,
    'fits the terminal',
  );

  const before = writes.length;
  out.write('a line of Vite\n');
  err.write('a warning\n');
  // Each write is preceded by clearing the status line; it is drawn again after them.
  assert.deepEqual(writes.slice(before, before + 3), [
    ['out', '\r\x1b[2K'],
    ['out', 'a line of Vite\n'],
    ['err', 'a warning\n'],
  ]);
  for (let i = 0; drawn(before + 3) < 0; i++) {
    assert.ok(i < 600, 'the status line is drawn again under the output');
    await new Promise((r) => setTimeout(r, 10));
  }

  await status.stop();
  assert.deepEqual(writes.at(-1), ['out', '\r\x1b[2K'], 'stop() clears the line');
  const after = writes.length;
  out.write('after\n');
  assert.deepEqual(writes.slice(after), [['out', 'after\n']], 'stop() gives the streams back');
});

test('not on a TTY the status comes as plain lines', async () => {
  const writes = [];
  const out = { isTTY: false, write: (chunk) => writes.push(String(chunk)) };
  const err = { isTTY: false, write: (chunk) => writes.push(String(chunk)) };
  const status = statusLine({
    dbUrl: `postgresql://nobody@127.0.0.1:${await freePort()}/postgres`,
    log: null,
    out,
    err,
  });
  status.start();
  for (let i = 0; writes.length === 0; i++) {
    assert.ok(i < 600, 'a status line is printed');
    await new Promise((r) => setTimeout(r, 50));
  }
  await status.stop();
  assert.equal(writes.length, 1);
  assert.match(writes[0], /^spool status \d\d:\d\d:\d\d: database unreachable: .*\n$/);
  assert.ok(!writes[0].includes('\r') && !writes[0].includes('\x1b'), 'no control characters');
});
