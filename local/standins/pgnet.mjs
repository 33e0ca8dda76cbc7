// The local pg_net worker: delivers what net.http_post queues.
//
// Supabase's pg_net runs a background worker inside Postgres; the stand-in extension
// (local/standins/extensions/pg_net) only queues rows in net.http_request_queue and NOTIFYs channel
// 'spool_pg_net', which Postgres delivers at COMMIT and drops on ROLLBACK — pg_net's
// wake-at-commit. This module is the worker, a route of local/standins/server.mjs with no HTTP
// prefix: it connects as the superuser with application_name 'spool-pg-net' (what
// net.check_worker_is_up() looks for), LISTENs, and on every notification (and every second,
// as a safety net) claims up to 200 requests oldest first —
//   DELETE FROM net.http_request_queue WHERE id IN (SELECT id … ORDER BY id LIMIT 200
//   FOR UPDATE SKIP LOCKED) RETURNING *
// — sends them concurrently with fetch, and records each outcome in net._http_response as
// pg_net does (id = request id):
//   answered      status_code, content_type, headers (jsonb), content (text), timed_out false
//   network error status_code NULL, timed_out false, error_msg = curl's message for it
//                 ("Couldn't connect to server", "Couldn't resolve host name", …)
//   timeout       status_code NULL, timed_out true, error_msg "Timeout of N ms reached. …"
//                 (timeout_milliseconds bounds the whole exchange, body included, like
//                 CURLOPT_TIMEOUT_MS)
// Like pg_net it follows redirects, sends User-Agent: pg_net/0.20.0 unless one is given,
// refuses headers with CR/LF, and deletes responses older than the TTL (6 hours) while awake.
// Unlike pg_net, a slow request does not hold back the next batch (pg_net waits for a whole
// batch before taking the next): the queue is drained as fast as it fills, at most BATCH_SIZE
// requests in flight. Requests claimed but not yet answered when the process dies are lost, as
// they are when Postgres restarts under pg_net (its tables are unlogged).
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
/** Requests claimed (and in flight) at most at once; responses purged per batch. */
const BATCH_SIZE = 200;
/** pg_net's ttl: responses older than this are deleted. */
const TTL_MS = 6 * 3600_000;
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

const INSERT_RESPONSE = `
  insert into net._http_response (id, status_code, content_type, headers, content, timed_out, error_msg)
  values ($1, $2, $3, $4, $5, $6, $7)`;

// pg_net deletes by ctid in created order, batch by batch; so do we.
const PURGE = `
  with expired as (
    select ctid from net._http_response
    where created < now() - make_interval(secs => $1::double precision / 1000)
    order by created
    limit $2
  )
  delete from net._http_response r using expired where r.ctid = expired.ctid`;

/** curl_easy_strerror() texts for the failures fetch reports, so error_msg reads like pg_net's. */
function curlMessage(err) {
  const cause = err?.cause ?? err;
  const code = cause?.code ?? '';
  switch (code) {
    case 'ECONNREFUSED':
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
    case 'EADDRNOTAVAIL':
    case 'UND_ERR_CONNECT_TIMEOUT':
      return "Couldn't connect to server";
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
    case 'EAI_NONAME':
      return "Couldn't resolve host name";
    case 'ECONNRESET':
    case 'EPIPE':
    case 'UND_ERR_SOCKET':
      return cause?.message === 'other side closed'
        ? 'Server returned nothing (no headers, no data)'
        : 'Failure when receiving data from the peer';
    case 'CERT_HAS_EXPIRED':
    case 'DEPTH_ZERO_SELF_SIGNED_CERT':
    case 'SELF_SIGNED_CERT_IN_CHAIN':
    case 'UNABLE_TO_VERIFY_LEAF_SIGNATURE':
    case 'ERR_TLS_CERT_ALTNAME_INVALID':
      return 'SSL peer certificate or SSH remote key was not OK';
    case 'UND_ERR_HEADERS_OVERFLOW':
    case 'HPE_INVALID_CONSTANT':
    case 'HPE_INVALID_HEADER_TOKEN':
      return 'Weird server reply';
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
    const text = typeof value === 'string' ? value : JSON.stringify(value);
    if (/[\r\n]/.test(name) || /[\r\n]/.test(text)) {
      result.error_msg = `header "${name.split(/[\r\n]/)[0]}" contains a carriage return or line feed`;
      return result;
    }
    try {
      headers.append(name, text);
    } catch (err) {
      result.error_msg = `header "${name}" is not valid: ${err.message}`;
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
    } else if (err instanceof TypeError && /invalid url|failed to parse url/i.test(`${err.message} ${err.cause?.message ?? ''}`)) {
      result.error_msg = 'URL using bad/illegal format or missing URL';
    } else if (/unknown scheme/i.test(err?.cause?.message ?? '')) {
      result.error_msg = 'Unsupported protocol';
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
  let draining = false;
  let again = false;
  let backlog = false; // the last claim was full: more may be queued
  let lastPurge = 0;
  const inflight = new Set();
  let wakeBackoff = null; // resolves the reconnect wait early on stop()

  async function drain() {
    if (!client || stopped) return;
    if (draining) {
      again = true;
      return;
    }
    draining = true;
    const c = client;
    try {
      do {
        again = false;
        const room = BATCH_SIZE - inflight.size;
        if (room <= 0) {
          backlog = true; // a finishing delivery wakes us again
          break;
        }
        const { rows } = await c.run(CLAIM, [room]);
        backlog = rows.length === room;
        for (const row of rows) {
          const p = deliver(row).then(record).finally(() => {
            inflight.delete(p);
            if (backlog) drain();
          });
          inflight.add(p);
        }
        if (backlog) again = true;
      } while (again && !stopped && client === c);
    } catch (err) {
      if (client === c) say({ level: 'warn', event: 'claim_failed', error: err.message });
    } finally {
      draining = false;
    }
  }

  async function record(result) {
    const c = client;
    if (!c) {
      say({ level: 'warn', event: 'response_lost', id: String(result.id), why: 'no database connection' });
      return;
    }
    try {
      await c.run(INSERT_RESPONSE, [
        result.id,
        result.status_code,
        result.content_type,
        result.headers === null ? null : JSON.stringify(result.headers),
        result.content,
        result.timed_out,
        result.error_msg,
      ]);
    } catch (err) {
      say({ level: 'warn', event: 'response_lost', id: String(result.id), error: err.message });
    }
  }

  async function purgeExpired() {
    if (!client) return 0;
    lastPurge = Date.now();
    const { rowCount } = await client.run(PURGE, [TTL_MS, BATCH_SIZE]);
    return rowCount;
  }

  const poll = setInterval(() => {
    if (!client || stopped) return;
    drain();
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
        c.on('notification', () => drain());
        client = c;
        backoff = BACKOFF_MIN_MS;
        say({ event: 'connected', database });
        events.emit('connected');
        drain(); // whatever was queued while we were away
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
    // Let deliveries in flight record their responses, then disconnect.
    await Promise.allSettled([...inflight]);
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
