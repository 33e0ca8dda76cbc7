// The local stack's API keys and JWTs, in either of Supabase's two key systems (SPOOL_KEYS):
//
//   new (default)  the API keys are opaque sb_publishable_… / sb_secret_… strings (not JWTs), and
//                  Auth signs user access tokens with an asymmetric signing key (ES256, with a
//                  `kid`) whose public half is the JWKS (GET /auth/v1/.well-known/jwks.json, and
//                  SUPABASE_JWKS in the functions). This is a project with its legacy API keys and
//                  its legacy JWT secret turned off: HS256 tokens are refused everywhere.
//   legacy         the anon and service_role keys are long-lived HS256 JWTs signed with the
//                  project's JWT secret, as the Supabase CLI's are; user access tokens are signed
//                  with it too. The new keys do not exist.
//
// Fresh secrets are generated per local stack and kept in <stateDir>/keys.json (git-ignored, mode
// 0600), so no key is ever committed; a stack started in the other mode later adds what it lacks.
//
// The API gateway's part (as Supabase's hosted gateway does it, guides/api/api-keys.mdx):
// `apikey` must be one of the keys in force; a request that carries only an API key (no
// Authorization, or `Authorization: Bearer <the same sb_ key>`) reaches the services with a
// short-lived JWT the gateway mints for that key's role (anon or service_role); an sb_ key in
// Authorization that is not the apikey goes down as it is and fails the service's JWT check.
// `forwardedToken()` is that step.
//
// verifySignature() is the one signature check every stand-in uses (PostgREST, Storage, Realtime,
// Auth, the functions' verify_jwt); each then checks the claims and words refusals its own way.

import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

const b64url = (buf) => Buffer.from(buf).toString('base64url');

export const KEY_MODES = ['new', 'legacy'];

/** SPOOL_KEYS from `env`: 'new' (default) or 'legacy'; anything else throws. */
export function keyModeFromEnv(env = process.env) {
  const raw = (env.SPOOL_KEYS ?? '').trim();
  if (raw === '') return 'new';
  if (!KEY_MODES.includes(raw)) {
    throw new Error(`SPOOL_KEYS must be "new" or "legacy", got ${JSON.stringify(raw)}`);
  }
  return raw;
}

/** Why a token was refused; each service words these its own way. */
export class TokenError extends Error {
  constructor(reason, detail) {
    super(`${reason}${detail === undefined ? '' : `: ${detail}`}`);
    this.name = 'TokenError';
    this.reason = reason; // empty | parts | decode | alg | signature | expired | nbf | iat | role
    this.detail = detail;
  }
}

/** keys.verify's error (kept for callers that test for it). */
export const JwtError = TokenError;

const HMAC = { HS256: 'sha256', HS384: 'sha384', HS512: 'sha512' };
const ASYMMETRIC = { ES256: 'sha256', RS256: 'sha256' };

/** Signs claims as an HS256 JWT. */
export function signJwt(claims, secret) {
  const header = b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));
  const payload = b64url(JSON.stringify(claims));
  const sig = crypto.createHmac('sha256', secret).update(`${header}.${payload}`).digest();
  return `${header}.${payload}.${b64url(sig)}`;
}

/** Signs claims as an ES256 JWT with a private EC JWK (P-256) that has a `kid`. */
export function signEs256(claims, privateJwk) {
  const header = b64url(JSON.stringify({ alg: 'ES256', kid: privateJwk.kid, typ: 'JWT' }));
  const payload = b64url(JSON.stringify(claims));
  const key = crypto.createPrivateKey({ key: privateJwk, format: 'jwk' });
  const sig = crypto.sign('sha256', Buffer.from(`${header}.${payload}`), { key, dsaEncoding: 'ieee-p1363' });
  return `${header}.${payload}.${b64url(sig)}`;
}

/** A new ES256 signing key: { privateJwk, publicJwk }, shaped as Supabase Auth publishes keys. */
export function generateSigningKey() {
  const { privateKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const kid = crypto.randomUUID();
  const privateJwk = { ...privateKey.export({ format: 'jwk' }), kid, alg: 'ES256' };
  return { privateJwk, publicJwk: publicJwkOf(privateJwk) };
}

/** The public half of a private JWK, as GoTrue serves it (use sig, key_ops [verify]). */
function publicJwkOf({ kty, crv, x, y, kid, alg }) {
  return { kty, crv, x, y, kid, alg, use: 'sig', key_ops: ['verify'] };
}

/**
 * Decodes a compact JWT and checks its signature: HS256/384/512 against `hmacSecret`, ES256/RS256
 * against the JWKS key with the token's `kid`. A key system the stack does not have (no secret,
 * no JWKS) refuses its algorithms as 'alg'. Returns { header, claims }; throws TokenError with
 * reason empty | parts | decode | alg | signature.
 */
export function verifySignature(token, { hmacSecret = null, jwks = null } = {}) {
  if (typeof token !== 'string' || token === '') throw new TokenError('empty');
  const parts = token.split('.');
  if (parts.length !== 3) throw new TokenError('parts', parts.length);
  let header;
  let claims;
  try {
    header = JSON.parse(Buffer.from(parts[0], 'base64url').toString('utf8'));
    claims = JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8'));
  } catch {
    throw new TokenError('decode');
  }
  if (
    !header || typeof header !== 'object' || !claims || typeof claims !== 'object' ||
    Array.isArray(claims)
  ) {
    throw new TokenError('decode');
  }
  const signed = Buffer.from(`${parts[0]}.${parts[1]}`);
  const given = Buffer.from(parts[2], 'base64url');
  const alg = header.alg;
  if (HMAC[alg] && hmacSecret) {
    const expected = crypto.createHmac(HMAC[alg], hmacSecret).update(signed).digest();
    if (given.length !== expected.length || !crypto.timingSafeEqual(given, expected)) {
      throw new TokenError('signature');
    }
    return { header, claims };
  }
  if (ASYMMETRIC[alg] && jwks) {
    const jwk = jwks.keys.find((k) => k.kid === header.kid && (k.alg === undefined || k.alg === alg));
    if (!jwk) throw new TokenError('signature', `no key with kid ${JSON.stringify(header.kid)}`);
    let ok = false;
    try {
      const key = crypto.createPublicKey({ key: jwk, format: 'jwk' });
      ok = alg === 'ES256'
        ? crypto.verify('sha256', signed, { key, dsaEncoding: 'ieee-p1363' }, given)
        : crypto.verify('sha256', signed, key, given);
    } catch {
      ok = false;
    }
    if (!ok) throw new TokenError('signature');
    return { header, claims };
  }
  throw new TokenError('alg', String(alg));
}

/**
 * exp / nbf / iat checks with `skewSeconds` of leeway (PostgREST allows 30 s; Storage's jose
 * none). Throws TokenError expired | nbf | iat.
 */
export function checkTimes(claims, { nowMs = Date.now(), skewSeconds = 0 } = {}) {
  const now = nowMs / 1000;
  if (
    claims.exp !== undefined && (typeof claims.exp !== 'number' || now > claims.exp + skewSeconds)
  ) {
    throw new TokenError('expired');
  }
  if (claims.nbf !== undefined && typeof claims.nbf === 'number' && now + skewSeconds < claims.nbf) {
    throw new TokenError('nbf');
  }
  if (claims.iat !== undefined && typeof claims.iat === 'number' && now + skewSeconds < claims.iat) {
    throw new TokenError('iat');
  }
  return claims;
}

/** Verifies an HS256 JWT and its exp (and a role claim); returns its claims or throws TokenError. */
export function verifyJwt(token, secret, now = Date.now()) {
  const { claims } = verifySignature(token, { hmacSecret: secret });
  if (typeof claims.exp === 'number' && claims.exp * 1000 <= now) throw new TokenError('expired');
  if (typeof claims.role !== 'string') throw new TokenError('role', 'JWT has no role claim');
  return claims;
}

function readState(file) {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    if (err.code === 'ENOENT') return {};
    throw new Error(`${file}: ${err.message}`);
  }
}

/** An sb_ API key: the prefix, then random base64url, as Supabase's look. */
const apiKey = (prefix) => `${prefix}${crypto.randomBytes(24).toString('base64url')}`;

/**
 * Loads or creates the stack's keys in `mode` ('new' | 'legacy', default SPOOL_KEYS). Returns:
 *   mode
 *   anonKey, serviceRoleKey   the keys in force for the anon and service_role roles: the
 *                             sb_publishable_… / sb_secret_… keys (new) or the legacy JWTs
 *   publishableKey, secretKey the same two keys under their new names (in both modes)
 *   jwtSecret                 the HS256 secret: legacy keys and tokens; in new mode only what a
 *                             service signs for itself (Storage's signed-URL tokens)
 *   jwks                      { keys: [public JWK] } in new mode, null in legacy
 *   signingKey                the private JWK (new mode; tests sign tokens with it), else null
 *   sign(claims)              a user access token (ES256 with kid, or HS256)
 *   verify(token, nowMs?)     claims of a valid token of this mode with a role, or TokenError
 *   verifier                  { hmacSecret, jwks } for verifySignature()
 *   apiKeyRole(key)           'anon' | 'service_role' for a key in force, else null
 *   forwardedToken(req, opts) the gateway step (see forwardedToken below)
 * `stateDir` is the stack's state folder, outside the repository (local/db.mjs STATE_DIR for npm
 * start, a temp folder for npm test).
 */
export function loadKeys(stateDir, { mode = keyModeFromEnv() } = {}) {
  if (!KEY_MODES.includes(mode)) throw new Error(`unknown key mode ${JSON.stringify(mode)}`);
  const file = path.join(stateDir, 'keys.json');
  const state = readState(file);
  let changed = false;
  if (!state.jwtSecret) {
    state.jwtSecret = crypto.randomBytes(32).toString('base64url');
    changed = true;
  }
  if (mode === 'new' && (!state.publishableKey || !state.secretKey || !state.signingKey)) {
    state.publishableKey ??= apiKey('sb_publishable_');
    state.secretKey ??= apiKey('sb_secret_');
    state.signingKey ??= generateSigningKey().privateJwk;
    changed = true;
  }
  if (changed) {
    fs.mkdirSync(stateDir, { recursive: true });
    fs.writeFileSync(file, JSON.stringify(state, null, 2) + '\n', { mode: 0o600 });
  }
  const { jwtSecret } = state;
  const iat = 1735689600; // 2025-01-01, like the CLI's fixed local keys
  const exp = iat + 10 * 365 * 24 * 3600;

  if (mode === 'legacy') {
    const anonKey = signJwt({ iss: 'supabase-local', ref: 'local', role: 'anon', iat, exp }, jwtSecret);
    const serviceRoleKey = signJwt(
      { iss: 'supabase-local', ref: 'local', role: 'service_role', iat, exp },
      jwtSecret,
    );
    const verifier = { hmacSecret: jwtSecret, jwks: null };
    const roles = new Map([[anonKey, 'anon'], [serviceRoleKey, 'service_role']]);
    return {
      mode,
      jwtSecret,
      anonKey,
      serviceRoleKey,
      publishableKey: anonKey,
      secretKey: serviceRoleKey,
      jwks: null,
      signingKey: null,
      verifier,
      sign: (claims) => signJwt(claims, jwtSecret),
      verify: (token, now = Date.now()) => verifyClaims(token, verifier, now),
      apiKeyRole: (key) => roles.get(key) ?? null,
      // The legacy keys are JWTs: the services verify the apikey itself when there is no
      // Authorization header.
      forwardedToken: ({ apikey, authorization }) => ({
        token: authorization === null || authorization === undefined ? apikey ?? null : bearerOf(authorization),
        minted: false,
      }),
    };
  }

  const signingKey = state.signingKey;
  const jwks = { keys: [publicJwkOf(signingKey)] };
  const verifier = { hmacSecret: null, jwks };
  const roles = new Map([[state.publishableKey, 'anon'], [state.secretKey, 'service_role']]);
  const minted = new Map();
  const keys = {
    mode,
    jwtSecret,
    anonKey: state.publishableKey,
    serviceRoleKey: state.secretKey,
    publishableKey: state.publishableKey,
    secretKey: state.secretKey,
    jwks,
    signingKey,
    verifier,
    sign: (claims) => signEs256(claims, signingKey),
    verify: (token, now = Date.now()) => verifyClaims(token, verifier, now),
    apiKeyRole: (key) => roles.get(key) ?? null,
    /**
     * The gateway step for a request's `apikey` and Authorization header (null when absent):
     * { token, minted }. With only an API key (no Authorization, or Bearer <that same sb_ key>)
     * the token is a JWT minted for the key's role (minted: true; null when the apikey is not
     * a key in force); otherwise the token is the bearer, for the service to verify.
     */
    forwardedToken({ apikey, authorization }, { nowMs = Date.now(), ttlSeconds = 3600 } = {}) {
      const bearer = authorization === null || authorization === undefined ? null : bearerOf(authorization);
      // Any other bearer goes down as it is; an sb_ key there that is not the apikey then fails
      // the service's JWT check ("rejected as the value is not a JWT", as hosted documents).
      if (bearer !== null && (!bearer.startsWith('sb_') || bearer !== apikey)) {
        return { token: bearer, minted: false };
      }
      const role = keys.apiKeyRole(apikey);
      if (!role) return { token: null, minted: false };
      // One minted token per role and lifetime, renewed once a quarter of it has passed.
      const cacheKey = `${role}:${ttlSeconds}`;
      const now = Math.floor(nowMs / 1000);
      const hit = minted.get(cacheKey);
      if (hit && hit.iat <= now && now < hit.iat + ttlSeconds / 4) return { token: hit.token, minted: true };
      const token = signEs256({ iss: 'supabase-local', ref: 'local', role, iat: now, exp: now + ttlSeconds }, signingKey);
      minted.set(cacheKey, { iat: now, token });
      return { token, minted: true };
    },
  };
  return keys;
}

/** The token of an Authorization header value ('' when it has none after "Bearer"). */
function bearerOf(header) {
  return String(header).replace(/^Bearer\s+/i, '').trim();
}

/** Signature, exp (no leeway) and a role claim: keys.verify. */
function verifyClaims(token, verifier, now) {
  const { claims } = verifySignature(token, verifier);
  if (typeof claims.exp === 'number' && claims.exp * 1000 <= now) throw new TokenError('expired');
  if (typeof claims.role !== 'string') throw new TokenError('role', 'JWT has no role claim');
  return claims;
}
