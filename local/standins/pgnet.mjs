// The local pg_net worker: delivers what net.http_post queues.
//
// Supabase's pg_net runs a background worker inside Postgres; the stand-in extension
// (local/standins/extensions/pg_net) only queues rows in net.http_request_queue and NOTIFYs channel
// 'spool_pg_net', which Postgres delivers at COMMIT and drops on ROLLBACK — pg_net's
// wake-at-commit. This module is the worker, a route of local/standins/server.mjs with no HTTP
// prefix: it connects as the superuser with application_name 'spool-pg-net' (what
// net.check_worker_is_up() looks for), LISTENs, and on every notification (and every second,
// as a safety net) works as pg_net's worker does: it claims up to 200 requests oldest first —
//   DELETE FROM net.http_request_queue WHERE id IN (SELECT id … ORDER BY id LIMIT 200
//   FOR UPDATE SKIP LOCKED) RETURNING *
// — sends them concurrently with fetch, records each outcome in net._http_response once the
// whole batch is done, and takes the next batch. A row per request (id = request id):
//   answered      status_code, content_type, headers (jsonb), content (text), timed_out false
//   network error status_code NULL, timed_out false, error_msg = curl's message for it
//                 ("Couldn't connect to server", "Couldn't resolve host name"; else fetch's)
//   timeout       status_code NULL, timed_out true, error_msg "Timeout of N ms reached. …"
//                 (timeout_milliseconds bounds the whole exchange, body included, like
//                 CURLOPT_TIMEOUT_MS)
// Like pg_net it follows redirects, sends User-Agent: pg_net/0.20.0 unless one is given,
// refuses headers fetch cannot send (CR/LF included), and deletes responses older than the TTL
// (6 hours) while awake. Requests claimed but not yet answered when the process dies are lost,
// as they are when Postgres restarts under pg_net (its tables are unlogged).
//
// It survives database restarts: on a lost connection it reconnects with backoff (250 ms
// doubling to 5 s) and drains whatever was queued meanwhile.
//
// startPgNet's `database` option is pg_net.database_name ('postgres').

import { EventEmitter } from 'node:events';
import pg from 'pg';

const APPLICATION_NAME = 'spool-pg-net';
const CHANNEL = 'spool_pg_net';
export const USER_AGENT = 'pg_net/0.20.0';
/** Requests claimed (and in flight) at most at once, as pg_net's batch_size. */
const BATCH_SIZE = 200;
/** The safety-net poll, and how often expired responses are purged. */
const POLL_MS = 1_000;
const PURGE_EVERY_MS = 10_000;
const BACKOFF_MIN_MS = 250;
const BACKOFF_MAX_MS = 5_000;

const CLAIM = `
  delete from net.http_request_queue
  where id in (
    select id from net.http_request_queue order by id limit $1 for update skip locked
  )
  returning id, method, url, headers, body, timeout_milliseconds`;

const INSERT_RESPONSES = `
  insert into net._http_response (id, status_code, content_type, headers, content, timed_out, error_msg)
  select id, status_code, content_type, headers, content, timed_out, error_msg
  from jsonb_populate_recordset(null::net._http_response, $1::jsonb)`;

/** pg_net's ttl. */
const PURGE = `delete from net._http_response where created < now() - interval '6 hours'`;

/** curl_easy_strerror() texts for the failures fetch reports most, so error_msg reads like pg_net's. */
function curlMessage(err) {
  const cause = err?.cause ?? err;
  switch (cause?.code) {
    case 'ECONNREFUSED':
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
    case 'UND_ERR_CONNECT_TIMEOUT':
      return "Couldn't connect to server";
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return "Couldn't resolve host name";
    default:
      return cause?.message ?? String(err);
  }
}

function timeoutMessage(timeoutMs, elapsedMs) {
  // pg_net splits the time into DNS / handshake / HTTP phases from curl's timings; fetch does not
  // expose them, so all of it is reported as the HTTP phase.
  const f = (n) => n.toFixed(6);
  return `Timeout of ${timeoutMs} ms reached. Total time: ${f(elapsedMs)} ms (DNS time: ${f(0)} ms, TCP/SSL handshake time: ${f(0)} ms, HTTP Request/Response time: ${f(elapsedMs)} ms)`;
}

/** c.query, one at a time (pg 9 drops queueing concurrent queries on one client). */
function serialized(c) {
  let tail = Promise.resolve();
  return (text, params) => {
    const result = tail.then(() => c.query(text, params));
    tail = result.catch(() => {});
    return result;
  };
}

/** Postgres text cannot hold NUL; pg_net's C string stops at the first one. */
function asText(buffer) {
  const text = buffer.toString('utf8');
  const nul = text.indexOf('\u0000');
  return nul >= 0 ? text.slice(0, nul) : text;
}

/**
 * Performs one queued request; resolves to the net._http_response values. Never rejects.
 * `row` is a net.http_request_queue row: { id, method, url, headers, body, timeout_milliseconds }.
 */
async function deliver(row) {
  const result = { id: row.id, status_code: null, content_type: null, headers: null, content: null, timed_out: false, error_msg: null };
  const timeoutMs = row.timeout_milliseconds;
  if (!(timeoutMs > 0)) {
    result.error_msg = `timeout_milliseconds must be positive, got ${timeoutMs}`;
    return result;
  }
  const headers = new Headers();
  for (const [name, value] of Object.entries(row.headers ?? {})) {
    try {
      // Headers refuses a name or value with CR, LF or NUL in it.
      headers.append(name, typeof value === 'string' ? value : JSON.stringify(value));
    } catch (err) {
      result.error_msg = `header "${name.split(/[\r\n]/)[0]}" is not valid: ${err.message}`;
      return result;
    }
  }
  if (!headers.has('user-agent')) headers.set('user-agent', USER_AGENT);

  const started = performance.now();
  const signal = AbortSignal.timeout(timeoutMs);
  try {
    // Only net.http_post queues requests (the stand-in has no http_get or http_delete).
    const response = await fetch(row.url, {
      method: String(row.method).toUpperCase(),
      headers,
      body: row.body ?? undefined,
      redirect: 'follow',
      signal,
    });
    const body = Buffer.from(await response.arrayBuffer());
    result.status_code = response.status;
    result.content_type = response.headers.get('content-type');
    result.headers = Object.fromEntries(response.headers);
    result.content = body.length > 0 ? asText(body) : null;
  } catch (err) {
    if (signal.aborted) {
      result.timed_out = true;
      result.error_msg = timeoutMessage(timeoutMs, performance.now() - started);
    } else {
      result.error_msg = curlMessage(err);
    }
  }
  return result;
}

/**
 * Starts the deliverer. Returns an EventEmitter with stop() and purgeExpired(); it emits
 * 'connected' and 'disconnected' (error). It never emits 'error': failures are logged and retried.
 */
export function startPgNet({ connectionString, database, log = () => {} } = {}) {
  const events = new EventEmitter();
  // pg lets the URL win over separate fields, so the database goes into the URL.
  const url = new URL(connectionString);
  if (database) url.pathname = `/${encodeURIComponent(database)}`;
  const target = url.href;
  database = decodeURIComponent(url.pathname.slice(1)) || 'postgres';
  const say = (obj) => log({ service: 'pg_net', ...obj });
  let client = null;
  let stopped = false;
  let again = false; // woken while a batch was running
  let draining = null; // the running drain() loop
  let lastPurge = 0;
  let wakeBackoff = null; // resolves the reconnect wait early on stop()

  /** Claims, sends and records batches until the queue is empty. */
  async function drain() {
    while (again && client && !stopped) {
      again = false;
      const c = client;
      try {
        const { rows } = await c.run(CLAIM, [BATCH_SIZE]);
        if (rows.length === 0) continue;
        if (rows.length === BATCH_SIZE) again = true;
        const results = await Promise.all(rows.map(deliver));
        await c.run(INSERT_RESPONSES, [JSON.stringify(results)]).catch((err) => {
          say({ level: 'warn', event: 'responses_lost', ids: rows.map((r) => String(r.id)), error: err.message });
        });
      } catch (err) {
        if (client === c) say({ level: 'warn', event: 'claim_failed', error: err.message });
      }
    }
  }

  function wake() {
    again = true;
    draining ??= drain().finally(() => (draining = null));
  }

  async function purgeExpired() {
    if (!client) return 0;
    lastPurge = Date.now();
    const { rowCount } = await client.run(PURGE);
    return rowCount;
  }

  const poll = setInterval(() => {
    if (!client || stopped) return;
    wake();
    if (Date.now() - lastPurge >= PURGE_EVERY_MS) {
      purgeExpired().catch((err) => say({ level: 'warn', event: 'purge_failed', error: err.message }));
    }
  }, POLL_MS);
  poll.unref();

  async function connectLoop() {
    let backoff = BACKOFF_MIN_MS;
    while (!stopped) {
      const c = new pg.Client({ connectionString: target, application_name: APPLICATION_NAME });
      c.run = serialized(c);
      const lost = new Promise((resolve) => {
        c.on('error', resolve);
        c.on('end', () => resolve(new Error('connection ended')));
      });
      try {
        await c.connect();
        await c.run(`listen ${CHANNEL}`);
        c.on('notification', wake);
        client = c;
        backoff = BACKOFF_MIN_MS;
        say({ event: 'connected', database });
        events.emit('connected');
        wake(); // whatever was queued while we were away
        const err = await lost;
        if (client === c) client = null;
        if (!stopped) {
          say({ level: 'warn', event: 'disconnected', error: err?.message });
          events.emit('disconnected', err);
        }
      } catch (err) {
        if (client === c) client = null;
        if (!stopped) say({ level: 'warn', event: 'connect_failed', error: err.message, retryInMs: backoff });
      }
      c.end().catch(() => {});
      if (stopped) break;
      await new Promise((resolve) => {
        const t = setTimeout(resolve, backoff);
        wakeBackoff = () => {
          clearTimeout(t);
          resolve();
        };
      });
      wakeBackoff = null;
      backoff = Math.min(backoff * 2, BACKOFF_MAX_MS);
    }
  }

  const loop = connectLoop();

  events.purgeExpired = purgeExpired;
  events.stop = async () => {
    stopped = true;
    clearInterval(poll);
    wakeBackoff?.();
    // Let the batch in flight record its responses, then disconnect.
    await draining;
    const c = client;
    client = null;
    await c?.end().catch(() => {});
    await loop;
  };
  return events;
}

/** The deliverer as a route of local/standins/server.mjs (no HTTP prefix). */
export function create(ctx) {
  const deliverer = startPgNet({
    connectionString: `postgresql://supabase_admin@127.0.0.1:${ctx.dbPort}/postgres`,
    log: ctx.log,
  });
  return {
    name: 'pg_net',
    prefix: null,
    handle() {},
    close: () => deliverer.stop(),
  };
}
