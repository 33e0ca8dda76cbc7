// The local pg_net worker (local/standins/pgnet.mjs) against the pg_net stand-in extension.
//
// It runs in a database of its own (created here in the cluster npm test passes in
// SPOOL_TEST_SUPERUSER_URL, or in a throwaway cluster when run alone), so the stack's own
// deliverer, which serves database `postgres`, never sees these requests: NOTIFY does not cross
// databases. A trigger on net._http_response tells the test when a response row lands.
// The last suite checks the running stack itself: it needs the stack npm test starts, and fails
// (naming the missing variables) without it.

import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { EventEmitter, once } from 'node:events';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import {
  bootstrap,
  ensureExtensions,
  ensurePackages,
  freePort,
  startCluster,
  stopCluster,
  superuserUrl,
} from '../../tools/db.mjs';
import { startPgNet, USER_AGENT } from '../pgnet.mjs';

/** A superuser URL: npm test's cluster, or a throwaway one of ours. */
async function clusterUrl() {
  if (process.env.SPOOL_TEST_SUPERUSER_URL) return { url: process.env.SPOOL_TEST_SUPERUSER_URL, stop() {} };
  ensurePackages();
  ensureExtensions();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'spool-pgnet-db-'));
  const port = await freePort();
  const cluster = await startCluster({ dir, port, fsync: false });
  await bootstrap(cluster);
  return {
    url: superuserUrl(port),
    stop() {
      stopCluster(cluster, { mode: 'immediate', quiet: true });
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

const withDatabase = (url, database) => {
  const u = new URL(url);
  u.pathname = `/${database}`;
  return u.href;
};

/** An HTTP server that records what reaches it. /hang never answers; /redirect goes to /ok. */
async function startTarget() {
  const events = new EventEmitter();
  const requests = [];
  const hanging = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      const record = { method: req.method, url: req.url, headers: req.headers, body };
      requests.push(record);
      const { pathname } = new URL(req.url, 'http://x');
      events.emit(pathname, record);
      if (pathname === '/hang') {
        hanging.push(res);
      } else if (pathname === '/redirect') {
        res.writeHead(302, { location: '/ok' });
        res.end();
      } else {
        res.writeHead(200, { 'content-type': 'application/json', 'x-test': 'yes' });
        res.end(JSON.stringify({ ok: true, path: pathname }));
      }
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    requests,
    /** Resolves with the next request to `pathname`. */
    next: (pathname) => once(events, pathname).then(([r]) => r),
    async close() {
      for (const res of hanging) res.destroy();
      await new Promise((resolve) => {
        server.close(resolve);
        server.closeAllConnections();
      });
    },
  };
}

describe('the pg_net deliverer', () => {
  const database = `spool_pgnet_${process.pid}_${crypto.randomBytes(3).toString('hex')}`;
  let cluster;
  let admin; // superuser on `postgres`, to create and drop the test database
  let db; // superuser on the test database
  let listener; // LISTENs for response rows
  let deliverer;
  let target;
  const landed = new Map(); // request id -> resolve(row) / row
  const logs = [];

  /** Resolves with the net._http_response row of request `id` once it is written. */
  function response(id) {
    id = String(id);
    const have = landed.get(id);
    if (have && !(have instanceof Function)) return Promise.resolve(have);
    return new Promise((resolve) => landed.set(id, resolve));
  }

  async function sql(text, params) {
    return (await db.query(text, params)).rows;
  }

  before(async () => {
    cluster = await clusterUrl();
    admin = new pg.Client({ connectionString: cluster.url });
    await admin.connect();
    await admin.query(`create database ${database}`);
    db = new pg.Client({ connectionString: withDatabase(cluster.url, database) });
    await db.connect();
    await db.query(`
      create schema extensions;
      create extension pg_net with schema extensions;
      create function public.response_landed() returns trigger language plpgsql as $$
      begin
        perform pg_notify('test_http_response', new.id::text);
        return new;
      end $$;
      create trigger response_landed after insert on net._http_response
        for each row execute function public.response_landed();
    `);
    listener = new pg.Client({ connectionString: withDatabase(cluster.url, database) });
    await listener.connect();
    let lookups = Promise.resolve(); // one query at a time on the listener's connection
    listener.on('notification', ({ payload }) => {
      lookups = lookups.then(async () => {
        const { rows } = await listener.query('select * from net._http_response where id = $1', [payload]);
        const waiting = landed.get(payload);
        landed.set(payload, rows[0]);
        if (waiting instanceof Function) waiting(rows[0]);
      });
    });
    await listener.query('listen test_http_response');
    target = await startTarget();
    deliverer = startPgNet({ connectionString: withDatabase(cluster.url, database), log: (l) => logs.push(l) });
    await once(deliverer, 'connected');
  });

  after(async () => {
    await deliverer?.stop();
    await target?.close();
    await listener?.end();
    await db?.end();
    await admin?.query(`drop database if exists ${database} with (force)`);
    await admin?.end();
    cluster?.stop();
  });

  test('delivers a committed net.http_post and records the response as pg_net does', async () => {
    const reached = target.next('/ok');
    const [{ id }] = await sql(
      `select net.http_post(url := $1, body := '{"a": 1}', headers := '{"X-Custom": "v"}',
                            timeout_milliseconds := 5000) as id`,
      [`${target.url}/ok`],
    );
    const req = await reached;
    assert.equal(req.method, 'POST');
    assert.equal(req.body, '{"a": 1}');
    assert.equal(req.headers['content-type'], 'application/json');
    assert.equal(req.headers['x-custom'], 'v');
    assert.equal(req.headers['user-agent'], USER_AGENT);

    const row = await response(id);
    assert.equal(row.status_code, 200);
    assert.equal(row.content_type, 'application/json');
    assert.deepEqual(JSON.parse(row.content), { ok: true, path: '/ok' });
    assert.equal(row.headers['x-test'], 'yes');
    assert.equal(row.timed_out, false);
    assert.equal(row.error_msg, null);
    assert.ok(row.created instanceof Date);
    assert.deepEqual(await sql('select * from net.http_request_queue'), [], 'the queue is drained');
  });

  test('sends http_post to its url, query string included, and follows redirects', async () => {
    const got = target.next('/ok');
    const [{ id }] = await sql(
      `select net.http_post(url := $1, timeout_milliseconds := 5000) as id`,
      [`${target.url}/ok?q=a%20b`],
    );
    assert.equal((await got).url, '/ok?q=a%20b');
    assert.equal((await response(id)).status_code, 200);

    const [{ id: redirId }] = await sql(
      `select net.http_post(url := $1, timeout_milliseconds := 5000) as id`,
      [`${target.url}/redirect`],
    );
    const redirected = await response(redirId);
    assert.equal(redirected.status_code, 200);
    assert.equal(JSON.parse(redirected.content).path, '/ok');
  });

  test('never sends a request whose transaction rolled back', async () => {
    await db.query('begin');
    const [{ id: rolledBack }] = await sql(
      `select net.http_post(url := $1, timeout_milliseconds := 5000) as id`,
      [`${target.url}/rolled-back`],
    );
    await db.query('rollback');
    // A later committed request is delivered; the rolled-back one was never in the queue.
    const [{ id }] = await sql(
      `select net.http_post(url := $1, timeout_milliseconds := 5000) as id`,
      [`${target.url}/after-rollback`],
    );
    assert.equal((await response(id)).status_code, 200);
    assert.ok(!target.requests.some((r) => r.url === '/rolled-back'));
    assert.deepEqual(await sql('select id from net._http_response where id = $1', [rolledBack]), []);
  });

  test('records error_msg and a NULL status for a closed port', async () => {
    const closedPort = await freePort();
    const [{ id }] = await sql(
      `select net.http_post(url := $1, timeout_milliseconds := 5000) as id`,
      [`http://127.0.0.1:${closedPort}/`],
    );
    const row = await response(id);
    assert.equal(row.status_code, null);
    assert.equal(row.timed_out, false);
    assert.equal(row.error_msg, "Couldn't connect to server");
  });

  test('records timed_out when the server does not answer within timeout_milliseconds', async () => {
    const [{ id }] = await sql(
      `select net.http_post(url := $1, timeout_milliseconds := 200) as id`,
      [`${target.url}/hang`],
    );
    const row = await response(id);
    assert.equal(row.status_code, null);
    assert.equal(row.timed_out, true);
    assert.match(row.error_msg, /^Timeout of 200 ms reached\. Total time: [\d.]+ ms \(DNS time: /);
  });

  test('is what net.check_worker_is_up() looks for', async () => {
    await sql('select net.check_worker_is_up()');
    const [{ n }] = await sql(
      `select count(*)::int as n from pg_stat_activity where application_name = 'spool-pg-net' and datname = $1`,
      [database],
    );
    assert.equal(n, 1);
  });

  test('reconnects after losing its connection and delivers what was queued meanwhile', async () => {
    const lost = once(deliverer, 'disconnected');
    const back = once(deliverer, 'connected');
    await sql(
      `select pg_terminate_backend(pid) from pg_stat_activity where application_name = 'spool-pg-net' and datname = $1`,
      [database],
    );
    await lost;
    const [{ id }] = await sql(
      `select net.http_post(url := $1, timeout_milliseconds := 5000) as id`,
      [`${target.url}/while-away`],
    );
    await back;
    assert.equal((await response(id)).status_code, 200);
    assert.ok(logs.some((l) => l.event === 'disconnected'));
  });

  test('deletes responses older than its TTL (6 hours)', async () => {
    await sql(`insert into net._http_response (id, status_code, created) values
                 (-1, 200, now() - interval '7 hours'), (-2, 200, now() - interval '5 hours')`);
    // The deliverer purges after every drain, at least once a second: wait until -1 is gone.
    for (let tries = 0; ; tries++) {
      const ids = (await sql('select id from net._http_response where id < 0 order by id')).map((r) => r.id);
      if (!ids.includes('-1')) {
        assert.deepEqual(ids, ['-2']);
        break;
      }
      assert.ok(tries < 400, 'the expired response is deleted');
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  });
});

describe('pg_net in the running stack (npm test)', () => {
  let db;
  before(async () => {
    const missing = ['SUPABASE_URL', 'SUPABASE_SERVICE_ROLE_KEY', 'SPOOL_TEST_SUPERUSER_URL']
      .filter((name) => !process.env[name]);
    if (missing.length > 0) {
      throw new Error(
        `these tests need the stack npm test starts, but ${missing.join(', ')} ${missing.length === 1 ? 'is' : 'are'} not set: run them through \`npm test\``,
      );
    }
    db = new pg.Client({ connectionString: process.env.SPOOL_TEST_SUPERUSER_URL });
    await db.connect();
    await db.query(`set statement_timeout = '20s'`);
  });
  after(() => db?.end());

  test("the stack's deliverer serves the postgres database", async () => {
    await db.query('select net.check_worker_is_up()');
    const target = await startTarget();
    try {
      const reached = target.next('/from-the-stack');
      const { rows: [{ id }] } = await db.query(
        `select net.http_post(url := $1, timeout_milliseconds := 5000) as id`,
        [`${target.url}/from-the-stack`],
      );
      await reached;
      for (let tries = 0; ; tries++) {
        const { rows: [row] } = await db.query('select status_code from net._http_response where id = $1', [id]);
        if (row) {
          assert.equal(row.status_code, 200);
          break;
        }
        assert.ok(tries < 200, 'the response is recorded');
        await new Promise((resolve) => setTimeout(resolve, 25));
      }
    } finally {
      await target.close();
    }
  });

  test('Vault points the doorbell at the gateway with the service_role key', async () => {
    const { rows } = await db.query(
      `select name, decrypted_secret from vault.decrypted_secrets
       where name in ('spool_project_url', 'spool_worker_secret') order by name`,
    );
    assert.deepEqual(rows, [
      { name: 'spool_project_url', decrypted_secret: process.env.SUPABASE_URL },
      { name: 'spool_worker_secret', decrypted_secret: process.env.SUPABASE_SERVICE_ROLE_KEY },
    ]);
  });
});
