// The Realtime stand-in at /realtime/v1/websocket: Supabase Realtime's Phoenix channel protocol
// over a WebSocket (`ws`) for Postgres Changes, so that realtime-js inside supabase-js subscribes
// to it unchanged. Change capture and the per-subscriber checks are in realtime-cdc.mjs.
//
//   connect   ?apikey=<key in force>&vsn=2.0.0 (realtime-js's default; else 403). The gateway's key
//             check (401 {message: "No API key found in request" | "Invalid API key"}), then
//             Realtime's on the tenant token (401 {error}): the legacy key JWT, or with sb_ keys
//             the JWT the gateway mints for the key's role (keys.mjs forwardedToken).
//   frames    JSON text arrays [join_ref, ref, topic, event, payload]. heartbeat -> ok;
//             phx_leave -> ok, phx_close; unknown topics -> "unmatched topic"; a second join of a
//             topic closes the first; a stale join_ref is ignored; 60 s of silence closes it.
//   phx_join  realtime:<name> {config: {postgres_changes: [bindings], private}, access_token}: the
//             token (else the tenant token) must verify (keys.mjs) with role and exp, or the join
//             is refused in Realtime's words ("InvalidJWTToken: Token has expired 12 seconds
//             ago", ...). The reply lists the bindings with ids (27-bit hashes, as phash2), then
//             a system message {extension: postgres_changes, status: ok, message: "Subscribed to
//             PostgreSQL"} once live (or status error and Realtime's message). Changes: [null,
//             null, topic, "postgres_changes", {ids, data: {schema, table, commit_timestamp,
//             type, columns, record, old_record, errors}}].
//   tokens    access_token re-verifies and re-subscribes (sb_ keys and the same token ignored);
//             a bad token, or the token expiring while joined, ends the channel with a system
//             error and phx_close, as Realtime does.
//
// Deviations from Realtime, in what Spool does not use: no vsn 1.0.0 (JSON objects), no
// broadcast or presence (their pushes are ignored), private channels refused, no joins without
// `config` (the legacy topic API), no postgres_changes_options.wait, no REST endpoints; filters take eq neq lt lte gt gte in is (not
// like ilike match imatch isdistinct: refused as unknown operators); no rate limit but 100
// channels per socket; join errors wait 100 ms (Realtime: 5 s). As with Realtime, a change
// committed before "Subscribed to PostgreSQL" may be missed: refetch then.

import crypto from 'node:crypto';
import { WebSocketServer } from 'ws';
import {
  ChangeFeed,
  dropStaleSlots,
  parseSubscriptionParams,
  SubscriptionError,
  SubscriptionParamsError,
} from './realtime-cdc.mjs';
import { TokenError, verifyToken } from './keys.mjs';
import { apiKeyRefusal, nowMs, refuseUpgrade } from './shared.mjs';

const SOCKET_PATH = '/realtime/v1/websocket';
const MAX_CHANNELS = 100;
const JOIN_ERROR_MS = 100;
const IDLE_MS = 60_000;
const CONFIRM_TOKEN_MS = 5 * 60_000;

/** Realtime's token refusals: [code, message, the shutdown message when joined]. */
const REFUSALS = {
  malformed: ['MalformedJWT', 'The token provided is not a valid JWT'],
  alg: [
    'JwtSignerError',
    'Failed to generate JWT signer, check your JWT secret or JWKS configuration',
    ':error_generating_signer',
  ],
  signature: ['JwtSignatureError', 'Failed to validate JWT signature', ':signature_error'],
  claims: ['InvalidJWTToken', 'Fields `role` and `exp` are required in JWT'],
  other: [null, 'Unknown Error on Channel', 'Invalid token'],
};

class TokenRefused extends Error {
  constructor(kind, code = REFUSALS[kind][0], message = REFUSALS[kind][1]) {
    super(message);
    this.kind = kind;
    this.reason = code ? `${code}: ${message}` : message; // in the join reply
    this.shutdown = REFUSALS[kind]?.[2] ?? message; // ends a joined channel
  }
}

/**
 * The token's claims as Realtime's Joken check sees them: keys.mjs's verifyToken, then `role` and
 * `exp` required; throws TokenRefused in Realtime's words.
 */
async function realtimeClaims(token, verifier, now) {
  let raw = typeof token === 'string' ? token : '';
  try {
    raw = decodeURIComponent(raw);
  } catch { /* as given */ }
  raw = raw.replace(/\s/g, '');
  if (raw === '') throw new TokenRefused('malformed');
  let claims;
  try {
    claims = await verifyToken(raw, verifier, { nowMs: now });
  } catch (err) {
    if (!(err instanceof TokenError)) throw err;
    if (err.reason === 'expired') {
      const ago = Math.floor(now / 1000) - Math.round(err.claims.exp);
      throw new TokenRefused('expired', 'InvalidJWTToken', `Token has expired ${ago} seconds ago`);
    }
    const known = ['alg', 'signature'].includes(err.reason);
    throw new TokenRefused(known ? err.reason : ['nbf', 'iat'].includes(err.reason) ? 'other' : 'malformed');
  }
  if (!('role' in claims) || claims.exp === undefined) throw new TokenRefused('claims');
  return claims;
}

/** :erlang.phash2-like id of a binding: a stable positive 27-bit hash of its params. */
function bindingId(params) {
  const canonical = (v) =>
    Array.isArray(v)
      ? `[${v.map(canonical).join(',')}]`
      : v && typeof v === 'object'
      ? `{${Object.keys(v).sort().map((k) => `${JSON.stringify(k)}:${canonical(v[k])}`)}}`
      : JSON.stringify(v);
  const hash = crypto.createHash('sha1').update(canonical(params)).digest().readUInt32BE(0);
  return (hash & 0x7ffffff) || 1;
}

/** A client frame as {join_ref, ref, topic, event, payload}; throws on anything else. */
function decodeFrame(text) {
  const msg = JSON.parse(text);
  if (!Array.isArray(msg) || msg.length < 5) throw new Error('expected a V2 array');
  const [join_ref, ref, topic, event, payload] = msg;
  return { join_ref, ref, topic, event, payload };
}

export async function create(ctx) {
  const verifier = ctx.keys.verifier;
  const now = () => nowMs(ctx);
  const log = (line) => ctx.log({ route: 'realtime', ...line });
  const connections = new Set();
  const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, maxPayload: 5e6 });
  const feed = new ChangeFeed({
    dbPort: ctx.dbPort,
    adminPool: ctx.adminPool,
    log,
    onChange: (data, subs) => {
      const byChannel = new Map();
      for (const { channel, bindingId: id } of subs) {
        byChannel.set(channel, [...new Set([...(byChannel.get(channel) ?? []), id])]);
      }
      for (const [ch, ids] of byChannel) if (!ch.closed) ch.push('postgres_changes', { ids, data });
    },
  });
  await dropStaleSlots(ctx.adminPool).catch((err) =>
    log({ level: 'warn', msg: 'could not drop stale replication slots', error: err.message })
  );

  class Channel {
    constructor(conn, topic, joinRef, payload) {
      Object.assign(this, { conn, topic, joinRef, subs: [], gen: 0, closed: false });
      this.subTopic = topic.slice('realtime:'.length);
      const list = payload.config?.postgres_changes;
      const params = Array.isArray(list) ? list.filter((p) => p != null) : [];
      this.bindings = params.map((p) => ({ params: p, id: bindingId(p) }));
      const token = payload.access_token ?? payload.user_token;
      const own = typeof token === 'string' && !token.startsWith('sb_');
      this.accessToken = own ? token : conn.tenantToken;
    }

    push(event, payload, joinRef = null, ref = null) {
      this.conn.send({ join_ref: joinRef, ref, topic: this.topic, event, payload });
    }

    system(extension, status, message) {
      this.push('system', { extension, status, message, channel: this.subTopic }, this.joinRef);
    }

    /** Verifies the current token and (re)arms the expiry check; rejects with TokenRefused. */
    async confirmToken() {
      this.claims = await realtimeClaims(this.accessToken, verifier, now());
      clearTimeout(this.confirmTimer);
      if (this.closed) return;
      const left = Math.max(0, Math.min(CONFIRM_TOKEN_MS, this.claims.exp * 1000 - now()));
      this.confirmTimer = setTimeout(async () => {
        try {
          await this.confirmToken();
          for (const sub of this.subs) sub.claims = this.claims;
          feed.changed();
        } catch (err) {
          this.shutdown(err instanceof TokenRefused ? err.shutdown : String(err.message));
        }
      }, left);
      this.confirmTimer.unref?.();
    }

    /** Subscribes the bindings with the current claims; pushes Realtime's system message. */
    async subscribe() {
      const gen = ++this.gen;
      clearTimeout(this.retryTimer);
      if (this.bindings.length === 0) return;
      let subs;
      try {
        subs = await feed.subscribe(this.bindings.map((b) => ({
          params: parseSubscriptionParams(b.params),
          claims: this.claims,
          channel: this,
          bindingId: b.id,
        })));
      } catch (err) {
        if (!(err instanceof SubscriptionParamsError || err instanceof SubscriptionError)) {
          throw err;
        }
        if (this.closed || gen !== this.gen) return;
        this.system('postgres_changes', 'error', err.message);
        if (err instanceof SubscriptionError && !err.message.startsWith('Unable to subscribe')) {
          // Not the parameters' fault (the replication slot could not be made): retry in 5-10 s.
          const retry = () => this.subscribe().catch(() => {});
          this.retryTimer = setTimeout(retry, 5000 + Math.random() * 5000);
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

    close(notify = true) {
      if (this.closed) return;
      this.closed = true;
      this.gen++;
      clearTimeout(this.confirmTimer);
      clearTimeout(this.retryTimer);
      feed.unsubscribe(this.subs);
      if (this.conn.channels.get(this.topic) === this) this.conn.channels.delete(this.topic);
      if (notify) this.push('phx_close', {}, this.joinRef, this.joinRef);
    }
  }

  class Connection {
    constructor(ws, tenantToken) {
      Object.assign(this, { ws, tenantToken, channels: new Map(), queue: Promise.resolve() });
      this.touch();
      ws.on('message', (data, isBinary) => {
        this.touch();
        if (isBinary) return; // binary frames carry broadcast only
        let msg;
        try {
          msg = decodeFrame(data.toString('utf8'));
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
      this.idleTimer = setTimeout(() => this.ws.close(1000, 'idle'), IDLE_MS);
      this.idleTimer.unref?.();
    }

    send({ join_ref, ref, topic, event, payload }) {
      if (this.ws.readyState !== this.ws.OPEN) return;
      this.ws.send(JSON.stringify([join_ref, ref, topic, event, payload]));
    }

    reply(msg, status, response, joinRef = msg.join_ref ?? null) {
      const payload = { status, response };
      this.send({
        join_ref: joinRef,
        ref: msg.ref ?? null,
        topic: msg.topic,
        event: 'phx_reply',
        payload,
      });
    }

    teardown() {
      clearTimeout(this.idleTimer);
      for (const channel of [...this.channels.values()]) channel.close(false);
      connections.delete(this);
    }

    async handle(msg) {
      const { topic, event, join_ref } = msg;
      if (topic === 'phoenix' && event === 'heartbeat') return this.reply(msg, 'ok', {}, null);
      if (event === 'phx_join') return this.join(msg);
      const channel = this.channels.get(topic);
      if (!channel && event === 'phx_leave') return this.reply(msg, 'ok', {});
      if (!channel) return this.reply(msg, 'error', { reason: 'unmatched topic' }, null);
      if (join_ref !== null && join_ref !== undefined && join_ref !== channel.joinRef) return; // stale
      if (event === 'phx_leave') {
        this.reply(msg, 'ok', {});
        return channel.close();
      }
      const token = msg.payload?.access_token;
      if (event !== 'access_token' || typeof token !== 'string') return; // broadcast, presence, ...
      if (token.startsWith('sb_') || token === channel.accessToken) return;
      channel.accessToken = token;
      try {
        await channel.confirmToken();
      } catch (err) {
        if (!(err instanceof TokenRefused)) throw err;
        return channel.shutdown(err.shutdown);
      }
      channel.subscribe().catch((err) =>
        log({ level: 'error', msg: 'resubscribe failed', error: err.stack })
      );
    }

    async join(msg) {
      const { topic } = msg;
      if (typeof topic !== 'string' || !topic.startsWith('realtime:')) {
        return this.reply(msg, 'error', { reason: 'unmatched topic' }, null);
      }
      this.channels.get(topic)?.close(); // Phoenix: a duplicate join closes the old channel first
      const payload = msg.payload && typeof msg.payload === 'object' ? msg.payload : {};
      const channel = new Channel(this, topic, msg.join_ref ?? null, payload);
      let reason = null;
      if (topic === 'realtime:') reason = 'TopicNameRequired: You must provide a topic name';
      else if (this.channels.size >= MAX_CHANNELS) {
        reason = 'ChannelRateLimitReached: Too many channels';
      } else {
        try {
          await channel.confirmToken();
        } catch (err) {
          if (!(err instanceof TokenRefused)) throw err;
          reason = err.reason;
        }
      }
      if (!reason && payload.config?.private === true) {
        reason =
          `Unauthorized: You do not have permissions to read from this Channel topic: ${channel.subTopic}`;
      }
      if (reason) {
        clearTimeout(channel.confirmTimer);
        await new Promise((r) => setTimeout(r, JOIN_ERROR_MS));
        return this.reply(msg, 'error', { reason });
      }
      this.channels.set(topic, channel);
      const bindings = channel.bindings.map((b) => ({ ...b.params, id: b.id }));
      this.reply(msg, 'ok', { postgres_changes: bindings });
      channel.subscribe().catch((err) =>
        log({ level: 'error', msg: 'subscribe', error: err.stack })
      );
    }
  }

  return {
    name: 'realtime',
    prefix: '/realtime/v1',

    /** Plain HTTP under /realtime/v1: only the WebSocket lives here. */
    handle(_req, res, url) {
      const socket = url.pathname.replace(/\/$/, '') === SOCKET_PATH;
      res.writeHead(socket ? 400 : 404, { 'content-type': 'application/json' });
      const body = socket
        ? { error: 'expected a WebSocket upgrade' }
        : { message: `no route for ${url.pathname}` };
      res.end(JSON.stringify(body));
    },

    /** The HTTP 'upgrade' event for requests under the prefix. */
    async upgrade(req, socket, head, url) {
      if (url.pathname.replace(/\/$/, '') !== SOCKET_PATH) {
        return refuseUpgrade(socket, 404, { message: `no route for ${url.pathname}` });
      }
      // The API gateway's key check (as for the other routes), then Realtime's own.
      const apikey = url.searchParams.get('apikey') || req.headers.apikey || null;
      const refusal = apiKeyRefusal(ctx, apikey);
      if (refusal) return refuseUpgrade(socket, 401, refusal);
      // The tenant token: the legacy key JWT, or the one the gateway mints for a new key's role.
      const tenantToken = ctx.keys.forwardedToken({ apikey, authorization: null }, { nowMs: now() }).token;
      try {
        await realtimeClaims(tenantToken, verifier, now());
      } catch (err) {
        if (!(err instanceof TokenRefused)) throw err;
        const error = { expired: 'Token has expired' }[err.kind] ?? err.message;
        return refuseUpgrade(socket, 401, { error });
      }
      const requested = url.searchParams.get('vsn') ?? '1.0.0';
      if (!/^2\.0\.\d+$/.test(requested)) {
        const error =
          `The client's requested transport version "${requested}" does not match server's version requirements`;
        return refuseUpgrade(socket, 403, { error });
      }
      const open = (ws) => connections.add(new Connection(ws, tenantToken));
      wss.handleUpgrade(req, socket, head, open);
    },

    async close() {
      for (const conn of connections) {
        conn.teardown();
        conn.ws.terminate();
      }
      wss.close();
      await feed.close();
    },
  };
}
