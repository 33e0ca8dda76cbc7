// The Auth (GoTrue) stand-in at /auth/v1, for the subset Spool uses:
//   POST /signup                            anonymous sign-up (no email or phone) -> session
//   POST /token?grant_type=refresh_token    rotate a refresh token -> session
//   GET  /user                              the user behind an access token
//   POST /logout[?scope=global|local]       revoke the session(s) -> 204
//   GET  /.well-known/jwks.json             the public keys that verify access tokens
// Sessions and refresh tokens live in auth.sessions / auth.refresh_tokens (created here). Access
// tokens carry GoTrue's claims, last [auth] jwt_expiry seconds and are signed as keys.mjs says for
// SPOOL_KEYS (legacy: HS256, and the JWKS is empty: GoTrue never publishes an HMAC key).
// An access token is accepted as GoTrue's requireAuthentication accepts one: signature, exp and
// nbf (no leeway), a user that exists, and its session (403 session_not_found once signed out).
// Anonymous sign-ups are limited per client address like GoTrue's RATE_LIMIT_ANONYMOUS_USERS (a
// token bucket of [auth.rate_limit] anonymous_users an hour, default 30): past it 429.
// Errors are GoTrue's API-version 2024-01-01 {code, message} with X-Supabase-Api-Version (auth-js reads it).

import crypto from 'node:crypto';
import {
  apiKeyOf, apiKeyRefusal, corsHeaders, inTransaction, nowMs, readConfigSection, readJson, sendJson,
  sendPreflight,
} from './shared.mjs';

const API_VERSION = '2024-01-01';
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const NIL_UUID = '00000000-0000-0000-0000-000000000000';

const SCHEMA_SQL = `
create table if not exists auth.sessions (
  id uuid primary key,
  user_id uuid not null references auth.users (id) on delete cascade,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
create table if not exists auth.refresh_tokens (
  id bigserial primary key,
  token text not null unique,
  user_id text not null,
  revoked boolean not null default false,
  session_id uuid references auth.sessions (id) on delete cascade,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);`;

function send(req, res, status, body) {
  const headers = { ...corsHeaders(req, 'X-Supabase-Api-Version'), 'X-Supabase-Api-Version': API_VERSION };
  if (body !== undefined) return sendJson(res, status, body, headers);
  res.writeHead(status, headers);
  res.end();
}

class AuthError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** The User JSON GoTrue returns for a row of auth.users. */
function userJson(row) {
  return {
    id: row.id, aud: row.aud ?? 'authenticated', role: row.role ?? 'authenticated',
    email: row.email ?? '', phone: row.phone ?? '',
    app_metadata: row.raw_app_meta_data ?? {}, user_metadata: row.raw_user_meta_data ?? {}, identities: [],
    created_at: row.created_at, updated_at: row.updated_at, last_sign_in_at: row.last_sign_in_at,
    is_anonymous: row.is_anonymous === true,
  };
}

export async function create(ctx) {
  const config = readConfigSection(ctx.root, 'auth');
  const expiresIn = Number(config.jwt_expiry ?? 3600);
  // Before the gateway serves, so auth.sessions exists (tests insert sessions).
  await ctx.adminPool.query(SCHEMA_SQL);

  const anonymousPerHour = Number(readConfigSection(ctx.root, 'auth.rate_limit').anonymous_users ?? 30);
  /** Token buckets per client address: { tokens, atMs } (GoTrue's tollbooth limiter). */
  const anonymousBuckets = new Map();

  /** Takes one anonymous sign-up from the caller's bucket, or 429 as GoTrue answers. */
  function limitAnonymousSignUp(req) {
    const now = nowMs(ctx);
    const key = req.socket.remoteAddress ?? 'unknown';
    const perMs = anonymousPerHour / 3_600_000;
    for (const [k, b] of anonymousBuckets) {
      if (b.tokens + (now - b.atMs) * perMs >= anonymousPerHour) anonymousBuckets.delete(k);
    }
    const bucket = anonymousBuckets.get(key) ?? { tokens: anonymousPerHour, atMs: now };
    bucket.tokens = Math.min(anonymousPerHour, bucket.tokens + (now - bucket.atMs) * perMs);
    bucket.atMs = now;
    anonymousBuckets.set(key, bucket);
    if (bucket.tokens < 1) throw new AuthError(429, 'over_request_rate_limit', 'Request rate limit reached');
    bucket.tokens -= 1;
  }

  /**
   * GoTrue's requireAuthentication: a Bearer token with valid claims, then the user and (when the
   * token names one) the session must still exist. Returns { claims, user }.
   */
  async function authenticate(req) {
    const token = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '')?.[1];
    if (!token) throw new AuthError(401, 'no_authorization', 'This endpoint requires a Bearer token');
    let claims;
    try {
      claims = await ctx.keys.verify(token, nowMs(ctx));
    } catch (err) {
      const why = { expired: 'token is expired', nbf: 'token is not valid yet', iat: 'token used before issued' };
      const message = `invalid JWT: unable to parse or verify signature, ${why[err.reason] ?? err.message}`;
      throw new AuthError(403, 'bad_jwt', message);
    }
    if (!claims.sub) throw new AuthError(403, 'bad_jwt', 'invalid claim: missing sub claim');
    if (!UUID.test(String(claims.sub))) throw new AuthError(400, 'bad_jwt', 'invalid claim: sub claim must be a UUID');
    const { rows: [user] } = await ctx.adminPool.query('select * from auth.users where id = $1', [claims.sub]);
    if (!user) throw new AuthError(403, 'user_not_found', 'User from sub claim in JWT does not exist');
    const sessionId = claims.session_id;
    if (sessionId !== undefined && sessionId !== '' && sessionId !== NIL_UUID) {
      if (typeof sessionId !== 'string' || !UUID.test(sessionId)) {
        throw new AuthError(403, 'bad_jwt', 'invalid claim: session_id claim must be a UUID');
      }
      const { rows } = await ctx.adminPool.query('select 1 from auth.sessions where id = $1', [sessionId]);
      if (rows.length === 0) {
        throw new AuthError(403, 'session_not_found', 'Session from session_id claim in JWT does not exist');
      }
    }
    return { claims, user };
  }

  /** A session response for `user` in `sessionId`, with a fresh refresh token. */
  async function session(client, user, sessionId) {
    const iat = Math.floor(nowMs(ctx) / 1000);
    const exp = iat + expiresIn;
    const refreshToken = crypto.randomBytes(16).toString('base64url');
    await client.query(
      'insert into auth.refresh_tokens (token, user_id, session_id) values ($1, $2, $3)',
      [refreshToken, user.id, sessionId],
    );
    const { email, phone, app_metadata, user_metadata, is_anonymous } = userJson(user);
    const accessToken = await ctx.keys.sign({
      iss: `${ctx.publicUrl}/auth/v1`, sub: user.id, aud: 'authenticated', exp, iat,
      email, phone, app_metadata, user_metadata, role: 'authenticated', aal: 'aal1',
      amr: [{ method: is_anonymous ? 'anonymous' : 'password', timestamp: iat }], session_id: sessionId, is_anonymous,
    });
    return {
      access_token: accessToken, token_type: 'bearer', expires_in: expiresIn, expires_at: exp,
      refresh_token: refreshToken, user: userJson(user),
    };
  }

  const jsonBody = (req) => readJson(req, 64 * 1024, {
    tooLarge: () => new AuthError(413, 'request_too_large', 'Request body is larger than 64 KiB'),
    invalid: () => new AuthError(400, 'bad_json', 'Could not parse request body as JSON'),
  });

  async function signup(req) {
    const body = await jsonBody(req);
    if (body.email || body.phone) {
      throw new AuthError(422, 'signup_disabled', 'Only anonymous sign-ins are enabled on the local platform');
    }
    if (config.enable_anonymous_sign_ins !== true) {
      throw new AuthError(422, 'anonymous_provider_disabled', 'Anonymous sign-ins are disabled');
    }
    limitAnonymousSignUp(req);
    const data = body.data && typeof body.data === 'object' ? body.data : {};
    return await inTransaction(ctx.adminPool, async (client) => {
      const { rows: [user] } = await client.query(
        `insert into auth.users (instance_id, id, aud, role, raw_app_meta_data, raw_user_meta_data,
                                 is_anonymous, created_at, updated_at, last_sign_in_at)
         values ($1, gen_random_uuid(), 'authenticated', 'authenticated', '{}'::jsonb, $2::jsonb, true,
                 now(), now(), now())
         returning *`,
        [NIL_UUID, JSON.stringify(data)],
      );
      const sessionId = crypto.randomUUID();
      await client.query('insert into auth.sessions (id, user_id) values ($1, $2)', [sessionId, user.id]);
      return await session(client, user, sessionId);
    });
  }

  async function refresh(req) {
    const body = await jsonBody(req);
    if (typeof body.refresh_token !== 'string' || body.refresh_token === '') {
      throw new AuthError(400, 'validation_failed', 'Refresh Token is required');
    }
    return await inTransaction(ctx.adminPool, async (client) => {
      const sql = 'select * from auth.refresh_tokens where token = $1 for update';
      const { rows: [token] } = await client.query(sql, [body.refresh_token]);
      if (!token || !token.session_id) {
        throw new AuthError(400, 'refresh_token_not_found', 'Invalid Refresh Token: Refresh Token Not Found');
      }
      if (token.revoked) throw new AuthError(400, 'refresh_token_already_used', 'Invalid Refresh Token: Already Used');
      await client.query('update auth.refresh_tokens set revoked = true, updated_at = now() where id = $1', [token.id]);
      await client.query('update auth.sessions set updated_at = now() where id = $1', [token.session_id]);
      const user = (await client.query('select * from auth.users where id = $1', [token.user_id])).rows[0];
      if (!user) throw new AuthError(400, 'user_not_found', 'User not found');
      return await session(client, user, token.session_id);
    });
  }

  /** Ends every session of the user (global, supabase-js's default) or only this one (local). */
  async function logout(req, url) {
    const { claims } = await authenticate(req);
    const scope = url.searchParams.get('scope') ?? 'global';
    if (scope === 'global') return ctx.adminPool.query('delete from auth.sessions where user_id = $1', [claims.sub]);
    if (scope !== 'local') throw new AuthError(400, 'validation_failed', 'Unsupported logout scope');
    const sql = 'delete from auth.sessions where user_id = $1 and id = $2';
    await ctx.adminPool.query(sql, [claims.sub, claims.session_id ?? null]);
  }

  return {
    name: 'auth',
    prefix: '/auth/v1',
    async handle(req, res, url) {
      if (req.method === 'OPTIONS') return sendPreflight(req, res);
      const route = `${req.method} ${url.pathname.slice('/auth/v1'.length)}`;
      try {
        // The gateway's answer, before GoTrue sees the request.
        const apikey = apiKeyOf(req, url);
        const refusal = apiKeyRefusal(ctx, apikey);
        if (refusal) return send(req, res, 401, apikey === null ? { code: 'no_api_key', ...refusal } : refusal);
        if (route === 'GET /.well-known/jwks.json') return send(req, res, 200, { keys: ctx.keys.jwks?.keys ?? [] });
        if (route === 'POST /signup') return send(req, res, 200, await signup(req));
        if (route === 'POST /token') {
          const grant = url.searchParams.get('grant_type');
          if (grant !== 'refresh_token') {
            throw new AuthError(400, 'unsupported_grant_type', `grant_type ${grant} is not supported locally`);
          }
          return send(req, res, 200, await refresh(req));
        }
        if (route === 'GET /user') return send(req, res, 200, userJson((await authenticate(req)).user));
        if (route === 'POST /logout') {
          await logout(req, url);
          return send(req, res, 204);
        }
        throw new AuthError(404, 'not_found', `no auth route ${route}`);
      } catch (err) {
        if (err instanceof AuthError) return send(req, res, err.status, { code: err.code, message: err.message });
        throw err;
      }
    },
  };
}
