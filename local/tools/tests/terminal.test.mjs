// What `npm start` shows in a terminal (local/tools/terminal.mjs), without a stack: which log lines
// count as errors, the log file and its rotation, and each error printed once as one line.
//
//   node --test local/tools/tests/terminal.test.mjs

import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { errorOf, gatewayLog } from '../terminal.mjs';

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

test('gatewayLog appends JSON lines to its file, keeps the previous run as .1, and prints each error once', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'spool-terminal-test-'));
  try {
    const file = path.join(dir, 'logs', 'gateway.log');
    fs.mkdirSync(path.dirname(file));
    fs.writeFileSync(file, '{"old":true}\n');
    const printed = [];
    const log = gatewayLog({ file, err: { write: (chunk) => printed.push(String(chunk)) } });
    log({ at, service: 'pg_net', event: 'connected' });
    log({ at, level: 'error', route: 'rest', error: 'Error: no' });
    log({ at, level: 'info', route: 'storage', msg: 'upload cancelled by client' });
    log({ at, service: 'edge-runtime', function: 'jobs', stream: 'stderr', msg: 'error: Uncaught boom' });
    log.close();
    assert.equal(fs.readFileSync(`${file}.1`, 'utf8'), '{"old":true}\n');
    const lines = fs.readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    assert.deepEqual(lines.map((l) => l.event ?? l.msg ?? l.error), [
      'connected',
      'Error: no',
      'upload cancelled by client',
      'error: Uncaught boom',
    ]);
    assert.deepEqual(printed, [
      'spool: error 15:41:55 rest: Error: no\n',
      'spool: error 15:41:55 jobs: error: Uncaught boom\n',
    ]);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('with verbose, gatewayLog streams every line and adds no error line of its own', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'spool-terminal-test-'));
  const streamed = [];
  const stdoutWrite = process.stdout.write;
  try {
    const file = path.join(dir, 'gateway.log');
    const printed = [];
    const log = gatewayLog({ file, verbose: true, err: { write: (chunk) => printed.push(String(chunk)) } });
    process.stdout.write = (chunk) => streamed.push(String(chunk));
    log({ at, service: 'pg_net', event: 'connected' });
    log({ at, level: 'error', route: 'rest', error: 'Error: no' });
    process.stdout.write = stdoutWrite;
    log.close();
    assert.deepEqual(printed, []);
    assert.deepEqual(streamed.map((l) => JSON.parse(l).event ?? JSON.parse(l).error), ['connected', 'Error: no']);
    assert.equal(fs.readFileSync(file, 'utf8').trim().split('\n').length, 2);
  } finally {
    process.stdout.write = stdoutWrite;
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
