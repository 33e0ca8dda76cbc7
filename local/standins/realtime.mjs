// The Realtime stand-in at /realtime/v1/websocket: Supabase Realtime's Phoenix channel protocol
// over a WebSocket (the `ws` package) for Postgres Changes, so that realtime-js inside supabase-js
// subscribes to it unchanged. Change capture and the per-subscriber checks: realtime-cdc.mjs.
//
//   connect   GET /realtime/v1/websocket?apikey=<key in force>&vsn=1.0.0|2.0.0, upgraded. The
//             gateway's key check first (401 {"message": "No API key found in request" |
//             "Invalid API key"}), then Realtime's on the tenant token (401 {"error": ...}): the
//             legacy key JWT itself, or with the sb_ keys the JWT the gateway mints for the key's
//             role, valid 24 hours. vsn defaults to 1.0.0; anything but 1.0.x / 2.0.x: 403.
//   frames    JSON text: vsn 1.0.0 objects {topic, event, payload, ref} (join_ref dropped on the
//             way out, as Phoenix's V1 serializer), vsn 2.0.0 arrays [join_ref, ref, topic, event,
//             payload]. heartbeat -> ok; phx_leave -> ok, then phx_close; unknown topics ->
//             "unmatched topic"; a second join of a topic closes the first; frames with a stale
//             join_ref are ignored; 60 s without a frame closes the socket.
//   phx_join  topic realtime:<name>, payload {config: {postgres_changes: [bindings], private},
//             access_token}. The token (else the tenant token) must verify (keys.mjs) and carry
//             role and exp; refusals worded as Realtime's ("InvalidJWTToken: Token has expired 12
//             seconds ago", "JwtSignatureError: ...", "MalformedJWT: ..."). The reply lists the
//             bindings with server ids (a 27-bit hash, as :erlang.phash2), then a system message
//             {extension: postgres_changes, status: ok, message: "Subscribed to PostgreSQL"} once
//             live (or status error with Realtime's message).
//   changes   [null, null, topic, "postgres_changes", {ids, data: {schema, table,
//             commit_timestamp, type, columns, record, old_record, errors}}].
//   tokens    `access_token` re-verifies and re-subscribes with the new claims (sb_ keys and the
//             same token are ignored); a bad token, or the token expiring while joined, ends the
//             channel with a system error and phx_close, as Realtime does.
//
// Deviations from Supabase Realtime (nothing in Spool uses these): no broadcast, presence or
// private channels (broadcast and presence pushes are ignored, private joins refused), no joins
// without `config` (the legacy topic API), no postgres_changes_options.wait, no REST endpoints;
// filters take eq neq lt lte gt gte in is (hosted also like, ilike, match, imatch, isdistinct:
// refused here as unknown operators); no rate limits except 100 channels per socket; join errors
// wait 100 ms (Realtime's CHANNEL_ERROR_BACKOFF_MS is 5 s). As with Realtime, a change committed
// before "Subscribed to PostgreSQL" may be missed: refetch on SUBSCRIBED.

import crypto from 'node:crypto';
import { WebSocketServer } from 'ws';
import {
  ChangeFeed,
  dropStaleSlots,
  parseSubscriptionParams,
  SubscriptionError,
  SubscriptionParamsError,
} from './realtime-cdc.mjs';
import { TokenError, verifySignature } from './keys.mjs';
import { nowMs } from './shared.mjs';

const PREFIX = '/realtime/v1';
const SOCKET_PATH = `${PREFIX}/websocket`;
const MAX_CHANNELS = 100;
const CONFIRM_TOKEN_MS = 5 * 60_000;
/** Lifetime of the token minted for a connection made with a new API key alone. */
const PUBLIC_CONNECTION_SECONDS = 24 * 3600;

/** A token Realtime refuses: the join reason is "<code>: <message>"; `shutdown` ends a channel. */
class TokenRefused extends Error {
  constructor(kind, code, message, shutdown = message) {
    super(message);
    Object.assign(this, { kind, code, shutdown, reason: code ? `${code}: ${message}` : message });
  }
}

/** The token's claims as Realtime's Joken check sees them (ChannelsAuthorization); throws TokenRefused. */
function verifyToken(token, verifier, now) {
  let raw = token;
  try {
    raw = decodeURIComponent(token);
  } catch { /* as given */ }
  raw = typeof raw === 'string' ? raw.replace(/\s/g, '') : raw;
  const malformed = new TokenRefused(
    'malformed',
    'MalformedJWT',
    'The token provided is not a valid JWT',
  );
  const unknown = new TokenRefused('other', null, 'Unknown Error on Channel', 'Invalid token');
  if (typeof raw !== 'string' || raw === '') throw malformed;
  let claims;
  try {
    ({ claims } = verifySignature(raw, verifier));
  } catch (err) {
    if (!(err instanceof TokenError)) throw err;
    if (err.reason === 'alg') {
      throw new TokenRefused(
        'signer',
        'JwtSignerError',
        'Failed to generate JWT signer, check your JWT secret or JWKS configuration',
        ':error_generating_signer',
      );
    }
    if (err.reason === 'signature') {
      throw new TokenRefused(
        'signature',
        'JwtSignatureError',
        'Failed to validate JWT signature',
        ':signature_error',
      );
    }
    throw malformed;
  }
  const current = Math.floor(now / 1000);
  if (claims.exp !== undefined && !(typeof claims.exp === 'number' && claims.exp > current)) {
    if (typeof claims.exp !== 'number') throw unknown;
    const ago = current - Math.round(claims.exp);
    throw new TokenRefused('expired', 'InvalidJWTToken', `Token has expired ${ago} seconds ago`);
  }
  if (claims.iat !== undefined && typeof claims.iat !== 'number') throw unknown;
  if (!('role' in claims) || !('exp' in claims)) {
    throw new TokenRefused(
      'missing_claims',
      'InvalidJWTToken',
      'Fields `role` and `exp` are required in JWT',
    );
  }
  const out = { ...claims };
  for (const k of ['exp', 'iat']) if (typeof out[k] === 'number') out[k] = Math.round(out[k]);
  return out;
}

/** :erlang.phash2-like id of a binding: a stable positive 27-bit hash of its params. */
function bindingId(params) {
  const canonical = (v) => {
    if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
    if (v && typeof v === 'object') {
      return `{${
        Object.keys(v).sort().map((k) => `${JSON.stringify(k)}:${canonical(v[k])}`).join(',')
      }}`;
    }
    return JSON.stringify(v);
  };
  return (crypto.createHash('sha1').update(canonical(params)).digest().readUInt32BE(0) &
    0x7ffffff) || 1;
}

/** A client frame as {join_ref, ref, topic, event, payload}; throws on anything else. */
function decodeFrame(vsn, text) {
  const msg = JSON.parse(text);
  if (vsn === '2') {
    if (!Array.isArray(msg) || msg.length < 5) throw new Error('expected a V2 array');
    const [join_ref, ref, topic, event, payload] = msg;
    return { join_ref, ref, topic, event, payload };
  }
  if (!msg || typeof msg !== 'object' || Array.isArray(msg)) {
    throw new Error('V1 JSON Serializer expected a map');
  }
  for (const k of ['topic', 'event', 'payload', 'ref']) {
    if (!(k in msg)) throw new Error(`missing ${k}`);
  }
  return { ...msg, join_ref: msg.join_ref ?? null };
}

function encodeFrame(vsn, { join_ref = null, ref = null, topic, event, payload }) {
  return JSON.stringify(
    vsn === '2' ? [join_ref, ref, topic, event, payload] : { topic, event, payload, ref },
  );
}

export async function create(ctx) {
  const opts = ctx.options?.realtime ?? {};
  const errorBackoffMs = opts.channelErrorBackoffMs ?? 100;
  const idleTimeoutMs = opts.idleTimeoutMs ?? 60_000;
  const verifier = ctx.keys.verifier;
  const now = () => nowMs(ctx);
  const log = (line) => ctx.log({ route: 'realtime', ...line });
  const connections = new Set();

  const feed = new ChangeFeed({
    connection: {
      host: '127.0.0.1',
      port: ctx.dbPort,
      database: 'postgres',
      user: 'supabase_admin',
    },
    adminPool: ctx.adminPool,
    log,
    pollMs: opts.pollMs,
    idlePollMs: opts.idlePollMs,
    stopAfterMs: opts.stopAfterMs,
    onChange: (groups) => {
      for (const { data, subs } of groups) {
        const byChannel = new Map();
        for (const { channel, bindingId: id } of subs) {
          const ids = byChannel.get(channel) ?? [];
          if (!ids.includes(id)) byChannel.set(channel, [...ids, id]);
        }
        for (const [channel, ids] of byChannel) {
          if (!channel.closed) {
            channel.conn.send({
              topic: channel.topic,
              event: 'postgres_changes',
              payload: { ids, data },
            });
          }
        }
      }
    },
  });
  const wss = new WebSocketServer({
    noServer: true,
    perMessageDeflate: false,
    maxPayload: 5_000_000,
  });

  try {
    const dropped = await dropStaleSlots(ctx.adminPool);
    if (dropped.length) {
      log({ level: 'info', msg: 'dropped stale replication slots', slots: dropped });
    }
  } catch (err) {
    log({ level: 'warn', msg: 'could not look for stale replication slots', error: err.message });
  }

  /** Answers a refused upgrade with an HTTP response on the raw socket. */
  function refuse(socket, status, body) {
    const text = JSON.stringify(body);
    const reason = { 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found' }[status];
    socket.end(
      `HTTP/1.1 ${status} ${reason}\r\ncontent-type: application/json\r\ncontent-length: ${
        Buffer.byteLength(text)
      }\r\nconnection: close\r\n\r\n${text}`,
    );
  }

  class Channel {
    constructor(conn, topic, joinRef, payload) {
      Object.assign(this, { conn, topic, joinRef, subs: [], gen: 0, closed: false, claims: null });
      this.subTopic = topic.slice('realtime:'.length);
      const list = payload.config?.postgres_changes;
      this.bindings = (Array.isArray(list) ? list.filter((p) => p !== null && p !== undefined) : [])
        .map((params) => ({ params, id: bindingId(params) }));
      const token = payload.access_token ?? payload.user_token;
      this.accessToken = typeof token === 'string' && !token.startsWith('sb_')
        ? token
        : conn.tenantToken;
    }

    system(extension, status, message) {
      this.conn.send({
        join_ref: this.joinRef,
        topic: this.topic,
        event: 'system',
        payload: { extension, status, message, channel: this.subTopic },
      });
    }

    /** Verifies the current token and (re)arms the expiry check; throws TokenRefused. */
    confirmToken() {
      this.claims = verifyToken(this.accessToken, verifier, now());
      clearTimeout(this.confirmTimer);
      const left = this.claims.exp * 1000 - now();
      this.confirmTimer = setTimeout(() => {
        if (this.closed) return;
        try {
          this.confirmToken();
          for (const sub of this.subs) sub.claims = this.claims;
          feed.changed();
        } catch (err) {
          this.shutdown(err instanceof TokenRefused ? err.shutdown : String(err.message));
        }
      }, Math.max(0, Math.min(CONFIRM_TOKEN_MS, left)));
      this.confirmTimer.unref?.();
    }

    /** Subscribes the bindings with the current claims; pushes Realtime's system message. */
    async subscribe() {
      const gen = ++this.gen;
      clearTimeout(this.retryTimer);
      if (this.bindings.length === 0) return;
      let subs;
      try {
        const specs = this.bindings.map((b) => ({
          params: parseSubscriptionParams(b.params),
          claims: this.claims,
          channel: this,
          bindingId: b.id,
        }));
        subs = await feed.subscribe(specs);
      } catch (err) {
        if (!(err instanceof SubscriptionParamsError || err instanceof SubscriptionError)) {
          throw err;
        }
        if (this.closed || gen !== this.gen) return;
        this.system('postgres_changes', 'error', err.message);
        if (!err.message.startsWith('Unable to subscribe') && err instanceof SubscriptionError) {
          // Not the parameters' fault (the replication slot could not be made): retry in 5-10 s.
          this.retryTimer = setTimeout(
            () => this.subscribe().catch(() => {}),
            5000 + Math.random() * 5000,
          );
          this.retryTimer.unref?.();
        }
        return;
      }
      if (this.closed || gen !== this.gen) return feed.unsubscribe(subs);
      feed.unsubscribe(this.subs);
      this.subs = subs;
      this.system('postgres_changes', 'ok', 'Subscribed to PostgreSQL');
    }

    /** Realtime's shutdown_response: a system error, then the channel stops (phx_close). */
    shutdown(message) {
      if (this.closed) return;
      this.system('system', 'error', message);
      this.close();
    }

    close({ notify = true } = {}) {
      if (this.closed) return;
      this.closed = true;
      this.gen++;
      clearTimeout(this.confirmTimer);
      clearTimeout(this.retryTimer);
      feed.unsubscribe(this.subs);
      if (this.conn.channels.get(this.topic) === this) this.conn.channels.delete(this.topic);
      if (notify) {
        this.conn.send({
          join_ref: this.joinRef,
          ref: this.joinRef,
          topic: this.topic,
          event: 'phx_close',
          payload: {},
        });
      }
    }
  }

  class Connection {
    constructor(ws, vsn, tenantToken) {
      Object.assign(this, { ws, vsn, tenantToken, channels: new Map(), queue: Promise.resolve() });
      this.touch();
      ws.on('message', (data, isBinary) => {
        this.touch();
        if (isBinary) return; // binary frames carry broadcast only
        let msg;
        try {
          msg = decodeFrame(this.vsn, data.toString('utf8'));
        } catch (err) {
          log({ level: 'warn', msg: 'undecodable frame; closing the socket', error: err.message });
          return this.ws.close(1011, 'invalid message');
        }
        this.queue = this.queue.then(() => this.handle(msg)).catch((err) =>
          log({ level: 'error', msg: 'message handling failed', error: err.stack ?? String(err) })
        );
      });
      ws.on('close', () => this.teardown());
      ws.on('error', () => this.teardown());
    }

    touch() {
      clearTimeout(this.idleTimer);
      this.idleTimer = setTimeout(() => this.ws.close(1000, 'idle'), idleTimeoutMs);
      this.idleTimer.unref?.();
    }

    send(msg) {
      if (this.ws.readyState === this.ws.OPEN) this.ws.send(encodeFrame(this.vsn, msg));
    }

    reply(msg, status, response, joinRef = msg.join_ref ?? null) {
      this.send({
        join_ref: joinRef,
        ref: msg.ref ?? null,
        topic: msg.topic,
        event: 'phx_reply',
        payload: { status, response },
      });
    }

    teardown() {
      clearTimeout(this.idleTimer);
      for (const channel of [...this.channels.values()]) channel.close({ notify: false });
      connections.delete(this);
    }

    handle(msg) {
      const { topic, event } = msg;
      if (topic === 'phoenix' && event === 'heartbeat') return this.reply(msg, 'ok', {}, null);
      if (event === 'phx_join') return this.join(msg);
      const channel = this.channels.get(topic);
      if (!channel) {
        if (event === 'phx_leave') return this.reply(msg, 'ok', {});
        return this.reply(msg, 'error', { reason: 'unmatched topic' }, null);
      }
      if (msg.join_ref !== null && msg.join_ref !== undefined && msg.join_ref !== channel.joinRef) {
        return; // stale
      }
      if (event === 'phx_leave') {
        this.reply(msg, 'ok', {});
        channel.close();
      } else if (event === 'access_token') {
        const token = msg.payload?.access_token;
        if (typeof token !== 'string' || token.startsWith('sb_') || token === channel.accessToken) {
          return;
        }
        channel.accessToken = token;
        try {
          channel.confirmToken();
        } catch (err) {
          if (!(err instanceof TokenRefused)) throw err;
          return channel.shutdown(err.shutdown);
        }
        channel.subscribe().catch((err) =>
          log({ level: 'error', msg: 'resubscribe failed', error: err.stack ?? String(err) })
        );
      } // broadcast, presence and the rest: ignored
    }

    join(msg) {
      const { topic } = msg;
      if (typeof topic !== 'string' || !topic.startsWith('realtime:')) {
        return this.reply(msg, 'error', { reason: 'unmatched topic' }, null);
      }
      this.channels.get(topic)?.close(); // Phoenix: a duplicate join closes the old channel first
      const refuse = async (reason) => {
        if (errorBackoffMs > 0) await new Promise((r) => setTimeout(r, errorBackoffMs));
        this.reply(msg, 'error', { reason });
      };
      if (topic === 'realtime:') return refuse('TopicNameRequired: You must provide a topic name');
      if (this.channels.size >= MAX_CHANNELS) {
        return refuse('ChannelRateLimitReached: Too many channels');
      }
      const payload = msg.payload && typeof msg.payload === 'object' ? msg.payload : {};
      const channel = new Channel(this, topic, msg.join_ref ?? null, payload);
      try {
        channel.confirmToken();
      } catch (err) {
        if (!(err instanceof TokenRefused)) throw err;
        return refuse(err.reason);
      }
      if (payload.config?.private === true) {
        clearTimeout(channel.confirmTimer);
        return refuse(
          `Unauthorized: You do not have permissions to read from this Channel topic: ${channel.subTopic}`,
        );
      }
      this.channels.set(topic, channel);
      this.reply(msg, 'ok', {
        postgres_changes: channel.bindings.map((b) => ({ ...b.params, id: b.id })),
      });
      channel.subscribe().catch((err) =>
        log({ level: 'error', msg: 'subscribe failed', error: err.stack ?? String(err) })
      );
    }
  }

  return {
    name: 'realtime',
    prefix: PREFIX,

    /** Plain HTTP under /realtime/v1: only the WebSocket lives here. */
    handle(_req, res, url) {
      const socket = url.pathname === SOCKET_PATH || url.pathname === `${SOCKET_PATH}/`;
      res.writeHead(socket ? 400 : 404, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify(
          socket
            ? { error: 'expected a WebSocket upgrade' }
            : { message: `no route for ${url.pathname}` },
        ),
      );
    },

    /** The HTTP 'upgrade' event for requests under the prefix. */
    upgrade(req, socket, head, url) {
      if (url.pathname !== SOCKET_PATH && url.pathname !== `${SOCKET_PATH}/`) {
        return refuse(socket, 404, { message: `no route for ${url.pathname}` });
      }
      // The API gateway's key check (as for the other routes), then Realtime's own.
      const apikey = url.searchParams.get('apikey') ?? req.headers.apikey ??
        req.headers['x-api-key'];
      if (apikey === undefined || apikey === null || apikey === '') {
        return refuse(socket, 401, {
          message: 'No API key found in request',
          hint: 'No `apikey` request header or url param was found.',
        });
      }
      if (!ctx.keys.apiKeyRole(String(apikey))) {
        return refuse(socket, 401, {
          message: 'Invalid API key',
          hint: ctx.keys.mode === 'new'
            ? 'Double check your Supabase publishable or secret API key.'
            : 'Double check your Supabase `anon` or `service_role` API key.',
        });
      }
      // The tenant token: the legacy key JWT itself, or the JWT the gateway mints for a new key's
      // role (for 24 hours, as hosted limits public connections).
      const tenantToken = ctx.keys.mode === 'new'
        ? ctx.keys.forwardedToken({ apikey: String(apikey), authorization: null }, {
          nowMs: now(),
          ttlSeconds: PUBLIC_CONNECTION_SECONDS,
        }).token
        : String(apikey);
      try {
        verifyToken(tenantToken, verifier, now());
      } catch (err) {
        const message =
          { expired: 'Token has expired', signature: 'Failed to validate JWT signature' }[err.kind];
        return refuse(socket, 401, { error: message ?? err.message });
      }
      const requested = url.searchParams.get('vsn') ?? '1.0.0';
      const vsn = /^1\.0\.\d+$/.test(requested) ? '1' : /^2\.0\.\d+$/.test(requested) ? '2' : null;
      if (!vsn) {
        return refuse(socket, 403, {
          error:
            `The client's requested transport version "${requested}" does not match server's version requirements`,
        });
      }
      wss.handleUpgrade(
        req,
        socket,
        head,
        (ws) => connections.add(new Connection(ws, vsn, tenantToken)),
      );
    },

    /** For tests and diagnostics: the change feed (slot name, poll counts). */
    feed,

    async close() {
      for (const conn of [...connections]) {
        conn.teardown();
        conn.ws.terminate();
      }
      wss.close();
      await feed.close();
    },
  };
}
