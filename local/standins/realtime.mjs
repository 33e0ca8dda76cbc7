// The Realtime stand-in at /realtime/v1/websocket: Supabase Realtime's Phoenix channel protocol
// (vsn 2.0.0) over a WebSocket, for Postgres Changes only, so that realtime-js inside supabase-js
// subscribes to it unchanged. Change capture and the per-subscriber checks are in realtime-cdc.mjs.
//
//   connect   ?apikey=<key in force>&vsn=2.0.0 (else 403), the key refused as the gateway does (401).
//   frames    [join_ref, ref, topic, event, payload]: heartbeat, phx_join, phx_leave, access_token;
//             the rest is ignored. Unknown topics: "unmatched topic"; a second join of a topic
//             closes the first; a stale join_ref is ignored; 60 s of silence closes the socket.
//   phx_join  the token (an sb_ key: the tenant token) must verify with role and exp, else the join
//             is refused in Realtime's words. The reply lists the bindings with ids, then a system
//             message ("Subscribed to PostgreSQL", or status error and Realtime's message); changes
//             come as postgres_changes {ids, data}. A token replaced by a bad one, or expiring while
//             joined, ends the channel (system error, phx_close), as Realtime does.
//   failures  replication that cannot start or stops errors the channel (phx_error, as when a
//             Phoenix channel process dies): realtime-js reports CHANNEL_ERROR and rejoins.
// Deviations, in what Spool does not use: no vsn 1.0.0, broadcast or presence, private channels
// refused, no REST endpoints; binding ids are positions (Realtime: phash2); 100 channels per socket,
// no other rate limit; join errors wait 100 ms (Realtime: 5 s). A change committed before
// "Subscribed to PostgreSQL" may be missed: refetch then.

import { WebSocketServer } from 'ws';
import { ChangeFeed, parseSubscriptionParams, SubscriptionError } from './realtime-cdc.mjs';
import { TokenError, verifyToken } from './keys.mjs';
import { apiKeyRefusal, nowMs, refuseUpgrade } from './shared.mjs';

const SOCKET_PATH = '/realtime/v1/websocket';
const MAX_CHANNELS = 100;
const JOIN_ERROR_MS = 100;
const IDLE_MS = 60_000;
const MAX_TIMER_MS = 2 ** 31 - 1;

/** Realtime's token refusals (by TokenError.reason, else malformed): [code, message, shutdown message]. */
const REFUSALS = {
  alg: ['JwtSignerError', 'Failed to generate JWT signer, check your JWT secret or JWKS configuration',
    ':error_generating_signer'],
  signature: ['JwtSignatureError', 'Failed to validate JWT signature', ':signature_error'],
  nbf: [null, 'Unknown Error on Channel', 'Invalid token'],
  claims: ['InvalidJWTToken', 'Fields `role` and `exp` are required in JWT'],
  malformed: ['MalformedJWT', 'The token provided is not a valid JWT'],
};
REFUSALS.iat = REFUSALS.nbf;

class TokenRefused extends Error {
  constructor([code, message, shutdown = message]) {
    super(message);
    Object.assign(this, { reason: code ? `${code}: ${message}` : message, shutdown });
  }
}

/** The token's claims as Realtime's Joken check sees them (verifyToken, then `role` and `exp`). */
async function realtimeClaims(token, verifier, now) {
  let claims;
  try {
    claims = await verifyToken(token, verifier, { nowMs: now });
  } catch (err) {
    if (!(err instanceof TokenError)) throw err;
    if (err.reason === 'expired') {
      const ago = Math.floor(now / 1000) - Math.round(err.claims.exp);
      throw new TokenRefused(['InvalidJWTToken', `Token has expired ${ago} seconds ago`]);
    }
    throw new TokenRefused(REFUSALS[err.reason] ?? REFUSALS.malformed);
  }
  if (!('role' in claims) || claims.exp === undefined) throw new TokenRefused(REFUSALS.claims);
  return claims;
}

/** A rejection's TokenRefused as the value; any other error goes on. */
function asRefusal(err) {
  if (err instanceof TokenRefused) return err;
  throw err;
}

export function create(ctx) {
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
      const byChannel = new Map(); // a change matches at most one table of each binding
      for (const { channel, bindingId } of subs) byChannel.set(channel, [...(byChannel.get(channel) ?? []), bindingId]);
      for (const [ch, ids] of byChannel) if (!ch.closed) ch.push('postgres_changes', { ids, data });
    },
    onLost: (subs, err) => new Set(subs.map((s) => s.channel)).forEach((ch) => ch.fail(err)),
  });

  class Channel {
    constructor(conn, topic, joinRef, payload) {
      Object.assign(this, { conn, topic, joinRef, subs: [], gen: 0, closed: false });
      const list = payload.config?.postgres_changes;
      this.bindings = (Array.isArray(list) ? list : []).map((params, i) => ({ params, id: i + 1 }));
      this.accessToken = conn.tokenFor(payload.access_token);
    }

    push(event, payload, joinRef = null, ref = null) {
      this.conn.send([joinRef, ref, this.topic, event, payload]);
    }

    system(extension, status, message) {
      const channel = this.topic.slice('realtime:'.length);
      this.push('system', { extension, status, message, channel }, this.joinRef);
    }

    /** Verifies the current token, and again when it expires; rejects with TokenRefused. */
    async confirmToken() {
      this.claims = await realtimeClaims(this.accessToken, verifier, now());
      clearTimeout(this.confirmTimer);
      if (this.closed) return;
      const left = Math.max(0, Math.min(MAX_TIMER_MS, this.claims.exp * 1000 - now()));
      this.confirmTimer = setTimeout(() => {
        this.confirmToken().catch((err) => this.shutdown(err.shutdown ?? String(err.message)));
      }, left);
      this.confirmTimer.unref?.();
    }

    /** Subscribes the bindings with the current claims; pushes Realtime's system message. */
    async subscribe() {
      const gen = ++this.gen;
      if (this.bindings.length === 0) return;
      let subs;
      try {
        subs = await feed.subscribe(this.bindings.map((b) =>
          ({ params: parseSubscriptionParams(b.params), claims: this.claims, channel: this, bindingId: b.id })));
      } catch (err) {
        if (this.closed || gen !== this.gen) return;
        if (err instanceof SubscriptionError) return this.system('postgres_changes', 'error', err.message);
        return this.fail(err); // replication could not start
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

    /** The channel "crashed" (replication failed): phx_error, after which realtime-js rejoins. */
    fail(err) {
      log({ level: 'error', msg: 'realtime channel failed', error: err.stack ?? String(err) });
      if (this.closed) return;
      this.push('phx_error', {}, this.joinRef, this.joinRef);
      this.close(false);
    }

    close(notify = true) {
      if (this.closed) return;
      this.closed = true;
      clearTimeout(this.confirmTimer);
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
          msg = JSON.parse(data.toString('utf8'));
          if (!Array.isArray(msg) || msg.length < 5) throw new Error('expected a V2 array');
        } catch (err) {
          log({ level: 'warn', msg: 'undecodable frame; closing the socket', error: err.message });
          return this.ws.close(1011, 'invalid message');
        }
        this.queue = this.queue.then(() => this.handle(...msg)).catch((err) =>
          log({ level: 'error', msg: 'message handling failed', error: err.stack ?? String(err) })
        );
      });
      for (const event of ['close', 'error']) ws.on(event, () => this.teardown());
    }

    touch() {
      clearTimeout(this.idleTimer);
      this.idleTimer = setTimeout(() => this.ws.close(1000, 'idle'), IDLE_MS);
      this.idleTimer.unref?.();
    }

    /** A client's token for a channel: its own JWT, else (none, or an sb_ key) the tenant token. */
    tokenFor(token) {
      return typeof token === 'string' && !token.startsWith('sb_') ? token : this.tenantToken;
    }

    send(frame) {
      if (this.ws.readyState === this.ws.OPEN) this.ws.send(JSON.stringify(frame));
    }

    teardown() {
      clearTimeout(this.idleTimer);
      for (const channel of [...this.channels.values()]) channel.close(false);
      connections.delete(this);
    }

    async handle(joinRef, ref, topic, event, payload) {
      const reply = (status, response, replyJoinRef = joinRef) =>
        this.send([replyJoinRef, ref, topic, 'phx_reply', { status, response }]);
      if (topic === 'phoenix' && event === 'heartbeat') return reply('ok', {}, null);
      if (event === 'phx_join') return this.join(joinRef, topic, payload, reply);
      const channel = this.channels.get(topic);
      if (!channel && event === 'phx_leave') return reply('ok', {});
      if (!channel) return reply('error', { reason: 'unmatched topic' }, null);
      if (joinRef !== null && joinRef !== undefined && joinRef !== channel.joinRef) return; // stale
      if (event === 'phx_leave') {
        reply('ok', {});
        return channel.close();
      }
      const token = payload?.access_token;
      if (event !== 'access_token' || typeof token !== 'string') return; // broadcast, presence, ...
      if (token.startsWith('sb_') || token === channel.accessToken) return;
      channel.accessToken = token;
      const refused = await channel.confirmToken().catch(asRefusal);
      if (refused) return channel.shutdown(refused.shutdown);
      channel.subscribe();
    }

    async join(joinRef, topic, payload, reply) {
      if (typeof topic !== 'string' || !topic.startsWith('realtime:')) {
        return reply('error', { reason: 'unmatched topic' }, null);
      }
      this.channels.get(topic)?.close(); // Phoenix: a duplicate join closes the old channel first
      const channel = new Channel(this, topic, joinRef ?? null, payload && typeof payload === 'object' ? payload : {});
      let reason = null;
      if (topic === 'realtime:') reason = 'TopicNameRequired: You must provide a topic name';
      else if (this.channels.size >= MAX_CHANNELS) reason = 'ChannelRateLimitReached: Too many channels';
      else reason = (await channel.confirmToken().catch(asRefusal))?.reason ?? null;
      if (!reason && payload?.config?.private === true) {
        reason = `Unauthorized: You do not have permissions to read from this Channel topic: ${topic.slice(9)}`;
      }
      if (reason) {
        channel.close(false);
        await new Promise((r) => setTimeout(r, JOIN_ERROR_MS));
        return reply('error', { reason });
      }
      this.channels.set(topic, channel);
      reply('ok', { postgres_changes: channel.bindings.map((b) => ({ ...b.params, id: b.id })) });
      channel.subscribe();
    }
  }

  return {
    name: 'realtime',
    prefix: '/realtime/v1',

    /** Plain HTTP under /realtime/v1: only the WebSocket lives here. */
    handle(_req, res, url) {
      const socket = url.pathname.replace(/\/$/, '') === SOCKET_PATH;
      res.writeHead(socket ? 400 : 404, { 'content-type': 'application/json' });
      const body = socket ? { error: 'expected a WebSocket upgrade' } : { message: `no route for ${url.pathname}` };
      res.end(JSON.stringify(body));
    },

    upgrade(req, socket, head, url) {
      if (url.pathname.replace(/\/$/, '') !== SOCKET_PATH) {
        return refuseUpgrade(socket, 404, { message: `no route for ${url.pathname}` });
      }
      // The gateway's key check. The tenant token it forwards (the legacy key JWT, or one the
      // gateway mints) always passes Realtime's check.
      const apikey = url.searchParams.get('apikey') || req.headers.apikey || null;
      const refusal = apiKeyRefusal(ctx, apikey);
      if (refusal) return refuseUpgrade(socket, 401, refusal);
      const requested = url.searchParams.get('vsn') ?? '1.0.0';
      if (!/^2\.0\.\d+$/.test(requested)) {
        const error = `The client's requested transport version "${requested}" does not match server's version`;
        return refuseUpgrade(socket, 403, { error: `${error} requirements` });
      }
      const tenantToken = ctx.keys.forwardedToken({ apikey, authorization: null }, { nowMs: now() }).token;
      wss.handleUpgrade(req, socket, head, (ws) => connections.add(new Connection(ws, tenantToken)));
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
