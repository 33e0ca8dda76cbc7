// The Realtime stand-in at /realtime/v1/websocket: Supabase Realtime's Phoenix channel protocol
// over a WebSocket (the `ws` package), for Postgres Changes, so that the official realtime-js
// inside supabase-js subscribes to it unchanged. Change capture, filters and the per-subscriber
// RLS check live in realtime-cdc.mjs.
//
//   connect   GET /realtime/v1/websocket?apikey=<key in force>&vsn=1.0.0|2.0.0
//             [&log_level=info|warning|error], upgraded to a WebSocket. The gateway's key check
//             first (401 {"message": "No API key found in request" | "Invalid API key"}), then
//             Realtime's on the tenant token (401 {"error": "..."}): the legacy anon/service_role
//             key JWT itself, or, with the new sb_ keys (SPOOL_KEYS=new), the JWT the gateway
//             mints for the key's role, valid 24 hours. vsn defaults to 1.0.0 as in Phoenix;
//             anything but 1.0.x / 2.0.x is refused with 403.
//   frames    vsn 1.0.0: JSON objects {topic, event, payload, ref[, join_ref]} in, {topic, event,
//             payload, ref} out (Phoenix's V1 serializer drops join_ref). vsn 2.0.0: JSON arrays
//             [join_ref, ref, topic, event, payload]; binary frames for broadcast (kind 3, the
//             client's user broadcast push, in; kind 4, user broadcast, out), as Realtime's
//             V2Serializer.
//   phoenix   heartbeat -> phx_reply {status: ok, response: {}}; unmatched topics -> phx_reply
//             {status: error, response: {reason: "unmatched topic"}}; a second join of a topic
//             closes the first (phx_close); phx_leave -> ok then phx_close; messages carrying a
//             stale join_ref are ignored; 60 s without a frame closes the socket.
//   phx_join  topic realtime:<name>, payload {config: {broadcast, presence, postgres_changes,
//             private, postgres_changes_options}, access_token}. The token (else the tenant
//             token) must verify (HS256/384/512 with the JWT secret in legacy mode, ES256 against
//             the JWKS in new mode: keys.mjs verifySignature) and carry role and exp;
//             refusals as Realtime words them ("InvalidJWTToken: Token has expired 12 seconds
//             ago", "JwtSignatureError: Failed to validate JWT signature", "MalformedJWT: ...").
//             The reply carries postgres_changes with server ids (a 27-bit hash of each binding,
//             as :erlang.phash2 is), then a system message {extension: postgres_changes, status:
//             ok, message: "Subscribed to PostgreSQL", channel} once the subscription is live
//             (or status error with Realtime's message). postgres_changes_options.wait holds the
//             join reply until then.
//   changes   [null, null, topic, "postgres_changes", {ids, data: {schema, table,
//             commit_timestamp, type, columns, record, old_record, errors}}]; joins without a
//             config (the legacy API) get the data as event INSERT/UPDATE/DELETE.
//   tokens    `access_token` re-verifies and re-subscribes with the new claims ("sb_" keys and
//             the same token are ignored); a bad or expired one, or the token expiring while
//             joined, ends the channel with a system error and phx_close, as Realtime does.
//   broadcast public channels route between subscribers of a topic (self and ack honoured);
//             presence pushes are acknowledged but not tracked; private channels are refused
//             (there is no realtime.messages here to hold their policies).
//
// Deviations from Supabase Realtime: no presence state; no private channels; no REST broadcast
// endpoint (/api/broadcast); no rate limits except 100 channels per socket; join errors wait
// 100 ms (Realtime's CHANNEL_ERROR_BACKOFF_MS is 5 s; options.realtime.channelErrorBackoffMs);
// numbers outside 2^53 lose precision in our JSON (Realtime sends the exact digits; JSON.parse in
// the client loses them anyway); composite-type values stay strings; ordering filters (lt, gt...)
// on types other than numbers, booleans, dates/timestamps and enums compare code points (the
// local cluster's collation, C.UTF-8, does the same) and match/imatch use JavaScript regular
// expressions. As with Realtime, a change committed before "Subscribed to PostgreSQL" may be
// missed: refetch on SUBSCRIBED.

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
const MAX_FRAME = 5_000_000;
const IDLE_TIMEOUT_MS = 60_000;
const CONFIRM_TOKEN_MS = 5 * 60_000;
const WAIT_DEFAULT_MS = 15_000;
const WAIT_MAX_MS = 20_000;
/** Lifetime of the token minted for a connection made with a new API key alone. */
const PUBLIC_CONNECTION_SECONDS = 24 * 3600;

// ---------------------------------------------------------------------------------------------
// Tokens (Realtime's ChannelsAuthorization.authorize_conn over Joken)
// ---------------------------------------------------------------------------------------------

/** A token Realtime refuses: `code` and `message` as its channel logs word them. */
class TokenRefused extends Error {
  constructor(kind, code, message, shutdownMessage = message) {
    super(message);
    this.kind = kind; // malformed | signature | signer | expired | missing_claims | other
    this.code = code;
    this.shutdownMessage = shutdownMessage;
  }
  /** The join reply's reason: "<Code>: <message>" (an unknown error has no code in it). */
  get reason() {
    return this.kind === 'other' ? this.message : `${this.code}: ${this.message}`;
  }
}

/** The token's claims as Realtime's Joken check sees them; throws TokenRefused. */
function verifyToken(token, verifier, now) {
  let raw = token;
  if (typeof token === 'string') {
    try {
      raw = decodeURIComponent(token);
    } catch {
      raw = token;
    }
    raw = raw.replace(/\s/g, '');
  }
  const malformed = () =>
    new TokenRefused('malformed', 'MalformedJWT', 'The token provided is not a valid JWT');
  if (typeof raw !== 'string' || raw === '') throw malformed();
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
    throw malformed();
  }
  const current = Math.floor(now / 1000);
  if (claims.exp !== undefined && !(typeof claims.exp === 'number' && claims.exp > current)) {
    if (typeof claims.exp === 'number') {
      const msg = `Token has expired ${current - Math.round(claims.exp)} seconds ago`;
      throw new TokenRefused('expired', 'InvalidJWTToken', msg);
    }
    throw new TokenRefused(
      'other',
      'UnknownErrorOnChannel',
      'Unknown Error on Channel',
      'Invalid token',
    );
  }
  if (claims.iat !== undefined && typeof claims.iat !== 'number') {
    throw new TokenRefused(
      'other',
      'UnknownErrorOnChannel',
      'Unknown Error on Channel',
      'Invalid token',
    );
  }
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
  const h = crypto.createHash('sha1').update(canonical(params)).digest().readUInt32BE(0) &
    0x7ffffff;
  return h || 1;
}

// ---------------------------------------------------------------------------------------------
// Serializers
// ---------------------------------------------------------------------------------------------

const KIND_PUSH = 0;
const KIND_USER_BROADCAST_PUSH = 3;
const KIND_USER_BROADCAST = 4;

/** Decodes a client frame into {join_ref, ref, topic, event, payload} or throws. */
function decodeFrame(vsn, data, isBinary) {
  if (isBinary) {
    if (vsn !== '2') throw new Error('binary frames need vsn 2.0.0');
    const buf = Buffer.from(data);
    const kind = buf[0];
    if (kind === KIND_USER_BROADCAST_PUSH) {
      const [jl, rl, tl, el, ml, enc] = [buf[1], buf[2], buf[3], buf[4], buf[5], buf[6]];
      let o = 7;
      const take = (n) => {
        const s = buf.subarray(o, o + n);
        o += n;
        return s;
      };
      const joinRef = take(jl).toString('utf8');
      const ref = take(rl).toString('utf8');
      const topic = take(tl).toString('utf8');
      const userEvent = take(el).toString('utf8');
      const meta = ml > 0 ? JSON.parse(take(ml).toString('utf8')) : {};
      const userPayload = Buffer.from(buf.subarray(o));
      return {
        join_ref: joinRef || null,
        ref: ref || null,
        topic,
        event: 'broadcast',
        payload: {
          userBroadcast: {
            event: userEvent,
            encoding: enc === 1 ? 'json' : 'binary',
            payload: userPayload,
            meta,
          },
        },
      };
    }
    if (kind === KIND_PUSH) {
      const [jl, rl, tl, el] = [buf[1], buf[2], buf[3], buf[4]];
      let o = 5;
      const take = (n) => {
        const s = buf.subarray(o, o + n).toString('utf8');
        o += n;
        return s;
      };
      const joinRef = take(jl);
      const ref = take(rl);
      const topic = take(tl);
      const event = take(el);
      return {
        join_ref: joinRef || null,
        ref: ref || null,
        topic,
        event,
        payload: { binary: Buffer.from(buf.subarray(o)) },
      };
    }
    throw new Error(`unknown binary frame kind ${kind}`);
  }
  const msg = JSON.parse(data.toString('utf8'));
  if (vsn === '2') {
    if (!Array.isArray(msg) || msg.length < 5) throw new Error('expected V2 array');
    const [join_ref, ref, topic, event, payload] = msg;
    return { join_ref, ref, topic, event, payload };
  }
  if (!msg || typeof msg !== 'object' || Array.isArray(msg)) {
    throw new Error('V1 JSON Serializer expected a map');
  }
  for (const k of ['topic', 'event', 'payload', 'ref']) {
    if (!(k in msg)) throw new Error(`missing ${k}`);
  }
  return {
    join_ref: msg.join_ref ?? null,
    ref: msg.ref,
    topic: msg.topic,
    event: msg.event,
    payload: msg.payload,
  };
}

/** Encodes a server message for the connection's serializer (text frames). */
function encodeFrame(vsn, { join_ref = null, ref = null, topic, event, payload }) {
  if (vsn === '2') return JSON.stringify([join_ref, ref, topic, event, payload]);
  return JSON.stringify({ topic, event, payload, ref });
}

/** Realtime's UserBroadcast frame (kind 4) for vsn 2 subscribers. */
function encodeUserBroadcast(topic, { event, encoding, payload }) {
  const t = Buffer.from(topic, 'utf8');
  const e = Buffer.from(event, 'utf8');
  const head = Buffer.from([
    KIND_USER_BROADCAST,
    t.length,
    e.length,
    0,
    encoding === 'json' ? 1 : 0,
  ]);
  return Buffer.concat([head, t, e, payload]);
}

// ---------------------------------------------------------------------------------------------
// The route
// ---------------------------------------------------------------------------------------------

export async function create(ctx) {
  const opts = ctx.options?.realtime ?? {};
  const errorBackoffMs = opts.channelErrorBackoffMs ?? 100;
  const idleTimeoutMs = opts.idleTimeoutMs ?? IDLE_TIMEOUT_MS;
  const verifier = ctx.keys.verifier;
  const now = () => nowMs(ctx);
  const connections = new Set();
  /** realtime:<name> -> Set<Channel>, for broadcast. */
  const topics = new Map();

  const feed = new ChangeFeed({
    connection: {
      host: '127.0.0.1',
      port: ctx.dbPort,
      database: 'postgres',
      user: 'supabase_admin',
    },
    adminPool: ctx.adminPool,
    pool: ctx.pool,
    log: (line) => ctx.log({ route: 'realtime', ...line }),
    pollMs: opts.pollMs,
    idlePollMs: opts.idlePollMs,
    stopAfterMs: opts.stopAfterMs,
    onChange: (groups) => {
      for (const { data, subs } of groups) {
        const byChannel = new Map();
        for (const sub of subs) {
          if (sub.channel.closed) continue;
          let ids = byChannel.get(sub.channel);
          if (!ids) byChannel.set(sub.channel, ids = []);
          if (!ids.includes(sub.bindingId)) ids.push(sub.bindingId);
        }
        for (const [channel, ids] of byChannel) channel.pushChange(data, ids);
      }
    },
  });

  const wss = new WebSocketServer({
    noServer: true,
    perMessageDeflate: false,
    maxPayload: MAX_FRAME,
  });

  try {
    const dropped = await dropStaleSlots(ctx.adminPool);
    if (dropped.length) {
      ctx.log({
        level: 'info',
        route: 'realtime',
        msg: 'dropped stale replication slots',
        slots: dropped,
      });
    }
  } catch (err) {
    ctx.log({
      level: 'warn',
      route: 'realtime',
      msg: 'could not look for stale replication slots',
      error: err.message,
    });
  }

  /** Answers a refused upgrade with an HTTP response on the raw socket. */
  function refuse(socket, status, body) {
    const text = JSON.stringify(body);
    const reason =
      { 400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found' }[status] ??
        'Error';
    socket.end(
      `HTTP/1.1 ${status} ${reason}\r\ncontent-type: application/json\r\ncontent-length: ${
        Buffer.byteLength(text)
      }\r\nconnection: close\r\n\r\n${text}`,
    );
  }

  class Channel {
    constructor(conn, topic, joinRef, payload) {
      this.conn = conn;
      this.topic = topic;
      this.subTopic = topic.slice('realtime:'.length);
      this.joinRef = joinRef;
      this.payload = payload ?? {};
      const config = this.payload.config;
      this.newApi = this.payload && typeof this.payload === 'object' && 'config' in this.payload;
      this.private = !!(config && config.private === true);
      this.selfBroadcast = !!config?.broadcast?.self;
      this.ackBroadcast = !!config?.broadcast?.ack;
      this.subs = [];
      this.subGen = 0;
      this.closed = false;
      this.confirmTimer = null;
      this.retryTimer = null;
      this.accessToken = null;
      this.claims = null;
      this.bindings = this.pgChangeParams().map((params) => ({ params, id: bindingId(params) }));
    }

    /** Realtime's pg_change_params: the config's list (new API) or one from the topic (legacy). */
    pgChangeParams() {
      if (this.newApi) {
        const list = this.payload.config?.postgres_changes;
        return Array.isArray(list) ? list.filter((p) => p !== null && p !== undefined) : [];
      }
      const parts = this.subTopic.split(':');
      const [schema, table, ...filter] = parts;
      if (parts.length >= 3) return [{ schema, table, filter: filter.join(':') }];
      if (parts.length === 2) return [{ schema, table }];
      return [{ schema }];
    }

    push(event, payload) {
      this.conn.send({ join_ref: this.joinRef, ref: null, topic: this.topic, event, payload });
    }

    system(extension, status, message) {
      this.push('system', { extension, status, message, channel: this.subTopic });
    }

    pushChange(data, ids) {
      if (this.closed) return;
      if (this.newApi) {
        this.conn.send({
          join_ref: null,
          ref: null,
          topic: this.topic,
          event: 'postgres_changes',
          payload: { ids, data },
        });
      } else {
        this.conn.send({
          join_ref: null,
          ref: null,
          topic: this.topic,
          event: data.type,
          payload: data,
        });
      }
    }

    /** Verifies the current token and (re)arms the expiry check; throws TokenRefused. */
    confirmToken() {
      const claims = verifyToken(this.accessToken, verifier, now());
      const left = claims.exp * 1000 - now();
      clearTimeout(this.confirmTimer);
      this.confirmTimer = setTimeout(
        () => this.onConfirmToken(),
        Math.max(0, Math.min(CONFIRM_TOKEN_MS, left)),
      );
      this.confirmTimer.unref?.();
      this.claims = claims;
      return claims;
    }

    onConfirmToken() {
      if (this.closed) return;
      try {
        this.confirmToken();
        for (const sub of this.subs) {
          sub.claims = this.claims;
          sub.claimsKey = JSON.stringify(this.claims);
        }
      } catch (err) {
        this.shutdown(err instanceof TokenRefused ? err.shutdownMessage : String(err.message));
      }
    }

    /** Subscribes the bindings with the current claims; pushes Realtime's system message. */
    async postgresSubscribe({ reply } = {}) {
      const gen = ++this.subGen;
      clearTimeout(this.retryTimer);
      if (this.bindings.length === 0) return { ok: true };
      let specs;
      try {
        specs = this.bindings.map((b) => ({
          params: parseSubscriptionParams(b.params),
          claims: this.claims,
          channel: this,
          bindingId: b.id,
        }));
      } catch (err) {
        if (!(err instanceof SubscriptionParamsError)) throw err;
        if (!reply) this.system('postgres_changes', 'error', err.message);
        return { ok: false, message: err.message };
      }
      let subs;
      try {
        subs = await feed.subscribe(specs);
      } catch (err) {
        const message = err instanceof SubscriptionError
          ? err.message
          : `Unable to subscribe to changes: ${err.message}`;
        if (this.closed || gen !== this.subGen) return { ok: false, message };
        if (!reply) this.system('postgres_changes', 'error', message);
        if (!/^Unable to subscribe/.test(message)) {
          // Not the parameters' fault (the replication slot could not be made): retry in 5-10 s.
          this.retryTimer = setTimeout(
            () => this.postgresSubscribe().catch(() => {}),
            5000 + Math.random() * 5000,
          );
          this.retryTimer.unref?.();
        }
        return { ok: false, message };
      }
      if (this.closed || gen !== this.subGen) {
        feed.unsubscribe(subs);
        return { ok: false, message: 'superseded' };
      }
      const old = this.subs;
      this.subs = subs;
      feed.unsubscribe(old);
      if (!reply) this.system('postgres_changes', 'ok', 'Subscribed to PostgreSQL');
      return { ok: true };
    }

    /** Realtime's shutdown_response: a system error, then the channel stops (phx_close). */
    shutdown(message) {
      if (this.closed) return;
      this.system('system', 'error', message);
      this.close();
    }

    /** Ends the channel and tells the client (phx_close, as Phoenix does for a normal stop). */
    close({ notify = true } = {}) {
      if (this.closed) return;
      this.teardown();
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

    teardown() {
      if (this.closed) return;
      this.closed = true;
      this.subGen++;
      clearTimeout(this.confirmTimer);
      clearTimeout(this.retryTimer);
      feed.unsubscribe(this.subs);
      this.subs = [];
      if (this.conn.channels.get(this.topic) === this) this.conn.channels.delete(this.topic);
      const peers = topics.get(this.topic);
      peers?.delete(this);
      if (peers?.size === 0) topics.delete(this.topic);
    }
  }

  class Connection {
    constructor(ws, { vsn, tenantToken, logLevel }) {
      this.ws = ws;
      this.vsn = vsn;
      this.tenantToken = tenantToken;
      this.logLevel = logLevel;
      this.channels = new Map();
      this.queue = Promise.resolve();
      this.idleTimer = null;
      this.touch();
      ws.on('message', (data, isBinary) => {
        this.touch();
        let msg;
        try {
          msg = decodeFrame(this.vsn, data, isBinary);
        } catch (err) {
          ctx.log({
            level: 'warn',
            route: 'realtime',
            msg: 'undecodable frame; closing the socket',
            error: err.message,
          });
          this.ws.close(1011, 'invalid message');
          return;
        }
        this.queue = this.queue.then(() => this.handle(msg)).catch((err) => {
          ctx.log({
            level: 'error',
            route: 'realtime',
            msg: 'message handling failed',
            error: err.stack ?? String(err),
          });
        });
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
      if (this.ws.readyState !== this.ws.OPEN) return;
      this.ws.send(encodeFrame(this.vsn, msg));
    }

    sendBinary(buf) {
      if (this.ws.readyState !== this.ws.OPEN) return;
      this.ws.send(buf, { binary: true });
    }

    reply(msg, status, response, { withJoinRef = true } = {}) {
      this.send({
        join_ref: withJoinRef ? msg.join_ref ?? null : null,
        ref: msg.ref ?? null,
        topic: msg.topic,
        event: 'phx_reply',
        payload: { status, response },
      });
    }

    teardown() {
      clearTimeout(this.idleTimer);
      for (const channel of [...this.channels.values()]) channel.teardown();
      connections.delete(this);
    }

    async handle(msg) {
      const { topic, event } = msg;
      if (topic === 'phoenix' && event === 'heartbeat') {
        this.reply(msg, 'ok', {}, { withJoinRef: false });
        return;
      }
      if (event === 'phx_join') return this.join(msg);
      const channel = this.channels.get(topic);
      if (!channel) {
        if (event === 'phx_leave') this.reply(msg, 'ok', {});
        else this.reply(msg, 'error', { reason: 'unmatched topic' }, { withJoinRef: false });
        return;
      }
      if (msg.join_ref !== null && msg.join_ref !== undefined && msg.join_ref !== channel.joinRef) {
        return; // stale
      }
      switch (event) {
        case 'phx_leave':
          this.reply(msg, 'ok', {});
          channel.close();
          return;
        case 'access_token':
          return this.accessToken(channel, msg.payload);
        case 'broadcast':
          return this.broadcast(channel, msg);
        case 'presence':
          this.reply(msg, 'ok', {});
          return;
        default:
          return; // Realtime logs and ignores unexpected events
      }
    }

    async joinError(msg, reason) {
      if (errorBackoffMs > 0) await new Promise((r) => setTimeout(r, errorBackoffMs));
      this.reply(msg, 'error', { reason });
    }

    async join(msg) {
      const { topic } = msg;
      if (typeof topic !== 'string' || !topic.startsWith('realtime:')) {
        this.reply(msg, 'error', { reason: 'unmatched topic' }, { withJoinRef: false });
        return;
      }
      const existing = this.channels.get(topic);
      if (existing) existing.close(); // Phoenix: a duplicate join closes the old channel first
      if (topic === 'realtime:') {
        return this.joinError(msg, 'TopicNameRequired: You must provide a topic name');
      }
      const payload = msg.payload && typeof msg.payload === 'object' ? msg.payload : {};
      const channel = new Channel(this, topic, msg.join_ref ?? null, payload);
      const token = payload.access_token ?? payload.user_token;
      channel.accessToken = typeof token === 'string' && !token.startsWith('sb_')
        ? token
        : this.tenantToken;
      if (this.channels.size >= MAX_CHANNELS) {
        return this.joinError(msg, 'ChannelRateLimitReached: Too many channels');
      }
      try {
        channel.confirmToken();
      } catch (err) {
        if (!(err instanceof TokenRefused)) throw err;
        return this.joinError(msg, err.reason);
      }
      if (channel.private) {
        clearTimeout(channel.confirmTimer);
        return this.joinError(
          msg,
          `Unauthorized: You do not have permissions to read from this Channel topic: ${channel.subTopic}`,
        );
      }
      this.channels.set(topic, channel);
      let peers = topics.get(topic);
      if (!peers) topics.set(topic, peers = new Set());
      peers.add(channel);

      const response = {
        postgres_changes: channel.bindings.map((b) => ({ ...b.params, id: b.id })),
      };
      const waitOpts = payload.config?.postgres_changes_options;
      if (waitOpts?.wait === true && channel.bindings.length > 0) {
        const limit = Math.min(
          Number(waitOpts.timeout) > 0 ? Number(waitOpts.timeout) : WAIT_DEFAULT_MS,
          WAIT_MAX_MS,
        );
        let timer;
        const outcome = await Promise.race([
          channel.postgresSubscribe({ reply: true }),
          new Promise((r) => {
            timer = setTimeout(() => r({ ok: false, timeout: true }), limit);
          }),
        ]);
        clearTimeout(timer);
        if (!outcome.ok) {
          channel.teardown();
          const reason = outcome.timeout
            ? `PostgresChangesSubscribeTimeout: postgres_changes subscription was not confirmed within ${limit} ms`
            : `RealtimeDisabledForConfiguration: ${outcome.message}`;
          return this.joinError(msg, reason);
        }
        this.reply(msg, 'ok', response);
        channel.system('postgres_changes', 'ok', 'Subscribed to PostgreSQL');
        return;
      }
      this.reply(msg, 'ok', response);
      if (channel.bindings.length > 0) {
        channel.postgresSubscribe().catch((err) =>
          ctx.log({
            level: 'error',
            route: 'realtime',
            msg: 'postgres_changes subscribe failed',
            error: err.stack ?? String(err),
          })
        );
      }
    }

    async accessToken(channel, payload) {
      const token = payload?.access_token;
      if (token === null || token === undefined) return;
      if (typeof token !== 'string') return;
      if (token.startsWith('sb_') || token === channel.accessToken) return;
      channel.accessToken = token;
      try {
        channel.confirmToken();
      } catch (err) {
        if (!(err instanceof TokenRefused)) throw err;
        channel.shutdown(err.shutdownMessage);
        return;
      }
      if (channel.bindings.length > 0) {
        channel.postgresSubscribe().catch((err) =>
          ctx.log({
            level: 'error',
            route: 'realtime',
            msg: 'postgres_changes resubscribe failed',
            error: err.stack ?? String(err),
          })
        );
      }
    }

    broadcast(channel, msg) {
      const peers = topics.get(channel.topic) ?? new Set();
      const p = msg.payload ?? {};
      for (const peer of peers) {
        if (peer === channel && !channel.selfBroadcast) continue;
        if (peer.closed) continue;
        if (p.userBroadcast) {
          const ub = p.userBroadcast;
          if (peer.conn.vsn === '2') {
            peer.conn.sendBinary(encodeUserBroadcast(peer.topic, ub));
          } else if (ub.encoding === 'json') {
            let inner;
            try {
              inner = JSON.parse(ub.payload.toString('utf8'));
            } catch {
              continue;
            }
            peer.conn.send({
              topic: peer.topic,
              event: 'broadcast',
              payload: { event: ub.event, payload: inner, type: 'broadcast' },
            });
          } // binary payloads cannot reach vsn 1 sockets
        } else if (p && typeof p === 'object' && !p.binary) {
          peer.conn.send({
            join_ref: null,
            ref: null,
            topic: peer.topic,
            event: 'broadcast',
            payload: p,
          });
        }
      }
      if (channel.ackBroadcast) this.reply(msg, 'ok', {});
    }
  }

  return {
    name: 'realtime',
    prefix: PREFIX,

    /** Plain HTTP under /realtime/v1: only the WebSocket lives here. */
    async handle(req, res, url) {
      const status = url.pathname === SOCKET_PATH || url.pathname === `${SOCKET_PATH}/` ? 400 : 404;
      const body = JSON.stringify(
        status === 400
          ? { error: 'expected a WebSocket upgrade' }
          : { message: `no route for ${url.pathname}` },
      );
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(body);
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
      // The tenant token: the legacy key JWT itself, or the JWT the gateway mints for a new
      // key's role (for 24 hours: hosted limits public connections to 24 hours).
      const tenantToken = ctx.keys.mode === 'new'
        ? ctx.keys.forwardedToken({ apikey: String(apikey), authorization: null }, {
          nowMs: now(),
          ttlSeconds: PUBLIC_CONNECTION_SECONDS,
        }).token
        : String(apikey);
      try {
        verifyToken(tenantToken, verifier, now());
      } catch (err) {
        const message = err.kind === 'expired'
          ? 'Token has expired'
          : err.kind === 'signature'
          ? 'Failed to validate JWT signature'
          : err.message;
        return refuse(socket, 401, { error: message });
      }
      const requested = url.searchParams.get('vsn') ?? '1.0.0';
      const vsn = /^1\.0\.\d+$/.test(requested) ? '1' : /^2\.0\.\d+$/.test(requested) ? '2' : null;
      if (!vsn) {
        return refuse(socket, 403, {
          error:
            `The client's requested transport version "${requested}" does not match server's version requirements`,
        });
      }
      const logLevel = ['info', 'warning', 'error'].includes(url.searchParams.get('log_level'))
        ? url.searchParams.get('log_level')
        : 'error';
      wss.handleUpgrade(req, socket, head, (ws) => {
        connections.add(new Connection(ws, { vsn, tenantToken, logLevel }));
      });
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
