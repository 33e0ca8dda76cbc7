// The local pg_net worker: delivers what net.http_post queues.
//
// The stand-in extension (local/standins/extensions/pg_net) queues rows in net.http_request_queue
// and NOTIFYs 'spool_pg_net' at COMMIT. This route of server.mjs (no HTTP prefix) is pg_net's
// background worker, connected as the superuser with application_name 'spool-pg-net' (what
// net.check_worker_is_up() looks for). On every notification and every second it claims up to 200
// requests oldest first, sends them concurrently with fetch, and records each in net._http_response
// (id = request id): answered (status_code, content_type, headers, content), a network error
// (status_code NULL, error_msg = curl's message), or a timeout (timed_out, "Timeout of N ms
// reached. …": timeout_milliseconds bounds the whole exchange, like CURLOPT_TIMEOUT_MS).
// Like pg_net it follows redirects, sends User-Agent: pg_net/0.20.0 unless one is given, refuses
// headers fetch cannot send (CR/LF), deletes responses older than 6 hours, and loses requests
// claimed but unanswered when it dies (pg_net's tables are unlogged). On a lost connection it
// retries every second and drains what was queued meanwhile.

import { EventEmitter } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';

export const USER_AGENT = 'pg_net/0.20.0';
const BATCH_SIZE = 200; // pg_net's batch_size: requests claimed (and in flight) at once
const POLL_MS = 1_000; // the safety-net poll, and the wait before reconnecting

const CLAIM = `delete from net.http_request_queue
  where id in (select id from net.http_request_queue order by id limit $1 for update skip locked)
  returning id, method, url, headers, body, timeout_milliseconds`;
const INSERT_RESPONSES = `
  insert into net._http_response (id, status_code, content_type, headers, content, timed_out, error_msg)
  select id, status_code, content_type, headers, content, timed_out, error_msg
  from jsonb_populate_recordset(null::net._http_response, $1::jsonb)`;
/** pg_net's ttl: run after every batch (an index scan on created). */
const PURGE = `delete from net._http_response where created < now() - interval '6 hours'`;

/** curl_easy_strerror() texts for the failures fetch reports most, so error_msg reads like pg_net's. */
const CURL_MESSAGES = {
  ECONNREFUSED: "Couldn't connect to server",
  EHOSTUNREACH: "Couldn't connect to server",
  ENOTFOUND: "Couldn't resolve host name",
};

function timeoutMessage(timeoutMs, elapsedMs) {
  // pg_net splits the time into DNS / handshake / HTTP phases from curl's timings; fetch does not
  // expose them, so all of it is reported as the HTTP phase.
  const f = (n) => n.toFixed(6);
  return `Timeout of ${timeoutMs} ms reached. Total time: ${f(elapsedMs)} ms (DNS time: ${f(0)} ms, ` +
    `TCP/SSL handshake time: ${f(0)} ms, HTTP Request/Response time: ${f(elapsedMs)} ms)`;
}

/** Performs one net.http_request_queue row; resolves to its net._http_response values, never rejects. */
async function deliver(row) {
  const result = { id: row.id, timed_out: false }; // the columns left out are NULL
  const timeoutMs = row.timeout_milliseconds;
  if (!(timeoutMs > 0)) return { ...result, error_msg: `timeout_milliseconds must be positive, got ${timeoutMs}` };
  const headers = new Headers();
  for (const [name, value] of Object.entries(row.headers ?? {})) {
    try {
      // Headers refuses a name or value with CR, LF or NUL in it.
      headers.append(name, typeof value === 'string' ? value : JSON.stringify(value));
    } catch (err) {
      return { ...result, error_msg: `header "${name.split(/[\r\n]/)[0]}" is not valid: ${err.message}` };
    }
  }
  if (!headers.has('user-agent')) headers.set('user-agent', USER_AGENT);
  const started = performance.now();
  const signal = AbortSignal.timeout(timeoutMs);
  try {
    const method = String(row.method).toUpperCase();
    const response = await fetch(row.url, { method, headers, body: row.body ?? undefined, redirect: 'follow', signal });
    const body = await response.text();
    result.status_code = response.status;
    result.content_type = response.headers.get('content-type');
    result.headers = Object.fromEntries(response.headers);
    // Postgres text cannot hold NUL; pg_net's C string stops at the first one.
    result.content = body.length > 0 ? body.split('\u0000')[0] : null;
  } catch (err) {
    const cause = err?.cause ?? err;
    result.timed_out = signal.aborted;
    result.error_msg = signal.aborted
      ? timeoutMessage(timeoutMs, performance.now() - started)
      : CURL_MESSAGES[cause?.code] ?? cause?.message ?? String(err);
  }
  return result;
}

/**
 * Starts the deliverer. Returns an EventEmitter with stop(); it emits 'connected' and
 * 'disconnected' (error), never 'error': failures are logged and retried.
 */
export function startPgNet({ connectionString, log = () => {} } = {}) {
  const events = new EventEmitter();
  const say = (obj) => log({ service: 'pg_net', ...obj });
  const halt = new AbortController(); // stop(): ends the reconnect wait early
  let client = null;
  let again = false; // woken while a batch was running
  let draining = null; // the running drain() loop

  /**
   * Claims, sends and records batches until the queue is empty, then purges expired responses.
   * The only code that queries `client` once it is connected, so no two queries overlap on it.
   */
  async function drain() {
    while (again && client && !halt.signal.aborted) {
      again = false;
      const c = client;
      try {
        const { rows } = await c.query(CLAIM, [BATCH_SIZE]);
        if (rows.length === BATCH_SIZE) again = true;
        if (rows.length > 0) {
          const results = await Promise.all(rows.map(deliver));
          // On the connection we have now: it may have been replaced while the batch was out.
          await (client ?? c).query(INSERT_RESPONSES, [JSON.stringify(results)]).catch((err) => {
            say({ level: 'warn', event: 'responses_lost', ids: rows.map((r) => String(r.id)), error: err.message });
          });
        }
        if (!again) await (client ?? c).query(PURGE);
      } catch (err) {
        if (client === c) say({ level: 'warn', event: 'drain_failed', error: err.message });
      }
    }
  }

  function wake() {
    again = true;
    draining ??= drain().finally(() => (draining = null));
  }

  const poll = setInterval(() => client && wake(), POLL_MS);
  poll.unref();

  async function connectLoop() {
    while (!halt.signal.aborted) {
      const c = new pg.Client({ connectionString, application_name: 'spool-pg-net' });
      const lost = new Promise((resolve) => {
        c.on('error', resolve);
        c.on('end', () => resolve(new Error('connection ended')));
      });
      try {
        await c.connect();
        await c.query('listen spool_pg_net');
        if (halt.signal.aborted) {
          await c.end().catch(() => {}); // stop() came while this connection was opening
          break;
        }
        c.on('notification', wake);
        client = c;
        say({ event: 'connected', database: c.database });
        events.emit('connected');
        wake(); // whatever was queued while we were away
        const err = await lost;
        if (client === c) client = null;
        if (!halt.signal.aborted) {
          say({ level: 'warn', event: 'disconnected', error: err?.message });
          events.emit('disconnected', err);
        }
      } catch (err) {
        if (client === c) client = null;
        const failed = { level: 'warn', event: 'connect_failed', error: err.message, retryInMs: POLL_MS };
        if (!halt.signal.aborted) say(failed);
      }
      c.end().catch(() => {});
      await sleep(POLL_MS, null, { signal: halt.signal }).catch(() => {});
    }
  }

  const loop = connectLoop();
  events.stop = async () => {
    halt.abort();
    clearInterval(poll);
    await draining; // the batch in flight records its responses, then we disconnect
    const c = client;
    client = null;
    await c?.end().catch(() => {});
    await loop;
  };
  return events;
}

/** The deliverer as a route of local/standins/server.mjs (no HTTP prefix). */
export function create(ctx) {
  const connectionString = `postgresql://supabase_admin@127.0.0.1:${ctx.dbPort}/postgres`;
  const deliverer = startPgNet({ connectionString, log: ctx.log });
  return { name: 'pg_net', prefix: null, handle() {}, close: () => deliverer.stop() };
}
