// Keep-alive after an early answer (local/standins/server.mjs settleUnreadBody): every route may
// answer before it has read a large request body (a 401, 404 or 413; an Edge Function that never
// reads it). The connection must then still serve the next request, as Supabase's gateway does,
// instead of stalling and being reset. A body too large to drain gets `Connection: close` and a
// clean close: the client finishes sending it, reads the answer, and opens a new connection.
// Run: node --test local/standins/tests/keepalive.test.mjs

import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { DRAIN_LIMIT } from '../server.mjs';
import { startStack } from './helpers.mjs';

let stack;
let user;
let port;

before(async () => {
  stack = await startStack();
  user = await stack.makeUser();
  port = Number(new URL(stack.url).port);
}, { timeout: 180_000 });

after(async () => {
  await stack?.close();
});

const MiB = 1024 * 1024;

/** Requests every route answers before (or without) reading all of a large body. */
function earlyAnswers() {
  const anon = { apikey: stack.keys.anonKey };
  const auth = { ...anon, authorization: `Bearer ${user.token}` };
  return [
    ['no route', 'POST', '/nope', {}],
    ['functions: verify_jwt refuses', 'POST', '/functions/v1/jobs', {}],
    ['functions: no such function', 'POST', '/functions/v1/no-such-function', anon],
    ['functions: the function never reads the body', 'POST', '/functions/v1/jobs', auth],
    ['functions: the function stops reading at its limit', 'POST', '/functions/v1/color-grade', { ...auth, 'content-type': 'application/json' }],
    ['storage: no key', 'POST', `/storage/v1/object/inputs/${user.id}/big.png`, { 'content-type': 'image/png' }],
    ['storage: JSON body over its limit', 'POST', '/storage/v1/object/list/inputs', { ...auth, 'content-type': 'application/json' }],
    ['rest: no key', 'POST', '/rest/v1/jobs', { 'content-type': 'application/json' }],
    ['auth: refused grant', 'POST', '/auth/v1/token?grant_type=password', { ...anon, 'content-type': 'application/json' }],
  ];
}

/** The request that follows on the connection: the user's jobs through the Data API (200). */
function nextRequest() {
  return {
    path: '/rest/v1/jobs?select=id&limit=1',
    headers: { apikey: stack.keys.anonKey, authorization: `Bearer ${user.token}` },
  };
}

/** One request through `agent`; resolves { status, headers, body, socket } or { error }. */
function send(agent, { method = 'GET', path, headers = {}, body }) {
  return new Promise((resolve) => {
    const req = http.request({ host: '127.0.0.1', port, method, path, agent, headers: body ? { ...headers, 'content-length': body.length } : headers }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString(), socket: req.socket }));
      res.on('error', (err) => resolve({ error: `response: ${err.code ?? err.message}` }));
    });
    req.on('error', (err) => resolve({ error: `${err.code ?? ''} ${err.message}` }));
    req.end(body);
  });
}

/**
 * Writes a request with `body` and then a second request on the same TCP connection, and reads
 * until the server closes it. Resolves the status lines and Connection headers it answered, and
 * the socket's error if the connection was reset.
 */
function twoOnOneSocket({ method, path, headers, body }) {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    let text = '';
    let error = null;
    socket.on('data', (d) => {
      text += d.toString('latin1');
    });
    socket.on('error', (err) => {
      error = err.code ?? err.message;
    });
    socket.on('close', () => resolve({
      // A status line follows the previous answer's body directly (no JSON body holds one).
      statuses: [...text.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((m) => Number(m[1])),
      connection: [...text.matchAll(/\r\nconnection: (\S+)/gi)].map((m) => m[1].toLowerCase()),
      error,
    }));
    const head = Object.entries({ host: `127.0.0.1:${port}`, 'content-length': body.length, ...headers })
      .map(([k, v]) => `${k}: ${v}\r\n`).join('');
    socket.write(`${method} ${path} HTTP/1.1\r\n${head}\r\n`);
    socket.write(body);
    const next = Object.entries({ host: `127.0.0.1:${port}`, ...nextRequest().headers, connection: 'close' })
      .map(([k, v]) => `${k}: ${v}\r\n`).join('');
    socket.write(`GET ${nextRequest().path} HTTP/1.1\r\n${next}\r\n`);
  });
}

describe('an early answer to a large body', () => {
  const body = Buffer.alloc(8 * MiB, 0x61);

  test('leaves the keep-alive connection serving the next request', async () => {
    for (const [what, method, path, headers] of earlyAnswers()) {
      const r = await twoOnOneSocket({ method, path, headers, body });
      assert.equal(r.error, null, `${what}: the connection was reset (${r.error})`);
      assert.equal(r.statuses.length, 2, `${what}: ${r.statuses.length} answers on the connection: ${r.statuses}`);
      assert.ok(r.statuses[0] >= 400, `${what}: refused (${r.statuses[0]})`);
      assert.equal(r.statuses[1], 200, `${what}: the second request on the connection`);
      assert.equal(r.connection[0], 'keep-alive', `${what}: the first answer keeps the connection`);
    }
  });

  test('a keep-alive agent gets both answers without an error', async () => {
    for (const [what, method, path, headers] of earlyAnswers()) {
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
      try {
        const first = await send(agent, { method, path, headers, body });
        assert.equal(first.error, undefined, `${what}: ${first.error}`);
        assert.ok(first.status >= 400, `${what}: refused (${first.status})`);
        const second = await send(agent, nextRequest());
        assert.equal(second.error, undefined, `${what}, the next request: ${second.error}`);
        assert.equal(second.status, 200, `${what}, the next request`);
      } finally {
        agent.destroy();
      }
    }
  });
});

describe('an early answer to a body too large to drain', () => {
  test('says Connection: close, takes the rest of the body, and closes cleanly', async () => {
    const body = Buffer.alloc(DRAIN_LIMIT + 8 * MiB, 0x62);
    const r = await twoOnOneSocket({ method: 'POST', path: '/nope', headers: {}, body });
    assert.equal(r.error, null, `the connection was reset (${r.error})`);
    assert.deepEqual(r.statuses, [404], 'one answer, then the connection is closed');
    assert.deepEqual(r.connection, ['close']);
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const first = await send(agent, { method: 'POST', path: '/functions/v1/jobs', headers: {}, body });
      assert.equal(first.error, undefined, first.error);
      assert.equal(first.status, 401);
      assert.equal(first.headers.connection, 'close');
      const second = await send(agent, nextRequest());
      assert.equal(second.error, undefined, second.error);
      assert.equal(second.status, 200);
      assert.notEqual(second.socket, first.socket, 'the next request went on a new connection');
    } finally {
      agent.destroy();
    }
  });

  test('a REST body past what the route drains is answered 413, not reset', async () => {
    const auth = { apikey: stack.keys.anonKey, authorization: `Bearer ${user.token}`, 'content-type': 'application/json' };
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const first = await send(agent, { method: 'POST', path: '/rest/v1/rpc/get_queue_stats', headers: auth, body: Buffer.alloc(48 * MiB, 0x20) });
      assert.equal(first.error, undefined, first.error);
      assert.equal(first.status, 413);
      const second = await send(agent, nextRequest());
      assert.equal(second.error, undefined, second.error);
      assert.equal(second.status, 200);
    } finally {
      agent.destroy();
    }
  });
});
