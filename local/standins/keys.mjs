// The local stack's API keys and JWTs, in either of Supabase's two key systems (SPOOL_KEYS):
//
//   new (default)  opaque sb_publishable_… / sb_secret_… API keys (not JWTs); Auth signs user
//                  tokens with an ES256 key (with a `kid`) whose public half is the JWKS
//                  (GET /auth/v1/.well-known/jwks.json, SUPABASE_JWKS in the functions). HS256
//                  tokens are refused everywhere, as with the legacy JWT secret turned off.
//   legacy         the anon and service_role keys are HS256 JWTs signed with the project's JWT
//                  secret, as the Supabase CLI's are; user tokens are signed with it too.
//
// Secrets are generated per stack into <stateDir>/keys.json (mode 0600, outside the repository).
// Signing and verification are jose's. verifyToken() is the one check every stand-in uses
// (PostgREST, Storage, Realtime, Auth, the functions' verify_jwt); each words refusals its own way
// from TokenError.reason.
//
// The API gateway's part (hosted's, guides/api/api-keys.mdx) is forwardedToken(): a request with
// only an API key (no Authorization, or Bearer <that same sb_ key>) reaches the services with a
// short-lived JWT minted for the key's role; any other bearer goes down as it is.

import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { createLocalJWKSet, errors, jwtVerify, SignJWT } from 'jose';

export const KEY_MODES = ['new', 'legacy'];
const HMAC_ALGS = ['HS256', 'HS384', 'HS512'];
const ASYMMETRIC_ALGS = ['ES256', 'RS256'];
/** Lifetime of the JWTs the gateway mints for a request that carries only an sb_ API key. */
const MINTED_TTL_SECONDS = 3600;

/** SPOOL_KEYS from `env`: 'new' (default) or 'legacy'; anything else throws. */
export function keyModeFromEnv(env = process.env) {
  const raw = (env.SPOOL_KEYS ?? '').trim();
  if (raw === '') return 'new';
  if (!KEY_MODES.includes(raw)) {
    throw new Error(`SPOOL_KEYS must be "new" or "legacy", got ${JSON.stringify(raw)}`);
  }
  return raw;
}

/**
 * Why a token was refused: reason is empty | parts | decode | alg | signature | expired | nbf | iat
 * | role; `claims` are the token's when its signature held (expired, nbf, iat).
 */
export class TokenError extends Error {
  constructor(reason, detail, claims) {
    super(`${reason}${detail === undefined ? '' : `: ${detail}`}`);
    this.name = 'TokenError';
    this.reason = reason;
    this.detail = detail;
    this.claims = claims;
  }
}

/** Signs claims as an HS256 JWT with `secret`. */
export function signJwt(claims, secret) {
  return new SignJWT(claims).setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .sign(new TextEncoder().encode(secret));
}

/** Signs claims as an ES256 JWT with a private EC JWK (P-256) that has a `kid`. */
export function signEs256(claims, privateJwk) {
  const key = crypto.createPrivateKey({ key: privateJwk, format: 'jwk' });
  return new SignJWT(claims).setProtectedHeader({ alg: 'ES256', kid: privateJwk.kid, typ: 'JWT' })
    .sign(key);
}

/** A new ES256 signing key: { privateJwk, publicJwk }, shaped as Supabase Auth publishes keys. */
export function generateSigningKey() {
  const { privateKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const privateJwk = { ...privateKey.export({ format: 'jwk' }), kid: crypto.randomUUID(), alg: 'ES256' };
  return { privateJwk, publicJwk: publicJwkOf(privateJwk) };
}

/** The public half of a private JWK, as GoTrue serves it. */
function publicJwkOf({ kty, crv, x, y, kid, alg }) {
  return { kty, crv, x, y, kid, alg, use: 'sig', key_ops: ['verify'] };
}

const jwkSets = new WeakMap();

/**
 * Verifies a compact JWT: HS256/384/512 against `hmacSecret`, ES256/RS256 against the JWKS key
 * with the token's kid (a key system the stack lacks refuses its algorithms as 'alg'), then
 * exp/nbf/iat with `skewSeconds` of leeway (PostgREST allows 30 s, the others none) and, with
 * `requireRole`, a string role claim. Resolves to the claims; rejects with TokenError.
 */
export async function verifyToken(
  token,
  { hmacSecret = null, jwks = null } = {},
  { nowMs = Date.now(), skewSeconds = 0, requireRole = false } = {},
) {
  if (typeof token !== 'string' || token === '') throw new TokenError('empty');
  const parts = token.split('.').length;
  if (parts !== 3) throw new TokenError('parts', parts);
  let key;
  let algorithms;
  if (hmacSecret) {
    key = new TextEncoder().encode(hmacSecret);
    algorithms = HMAC_ALGS;
  } else {
    if (!jwkSets.has(jwks)) jwkSets.set(jwks, createLocalJWKSet(jwks ?? { keys: [] }));
    key = jwkSets.get(jwks);
    algorithms = ASYMMETRIC_ALGS;
  }
  let claims;
  try {
    ({ payload: claims } = await jwtVerify(token, key, {
      algorithms,
      clockTolerance: skewSeconds,
      currentDate: new Date(nowMs),
    }));
  } catch (err) {
    throw tokenErrorOf(err);
  }
  if (typeof claims.iat === 'number' && nowMs / 1000 + skewSeconds < claims.iat) {
    throw new TokenError('iat');
  }
  if (requireRole && typeof claims.role !== 'string') {
    throw new TokenError('role', 'JWT has no role claim');
  }
  return claims;
}

/** jose's error as a TokenError. */
function tokenErrorOf(err) {
  if (err instanceof errors.JWTExpired) return new TokenError('expired', undefined, err.payload);
  if (err instanceof errors.JWTClaimValidationFailed) {
    const reason = err.claim === 'nbf' ? 'nbf' : err.claim === 'iat' ? 'iat' : 'decode';
    return new TokenError(reason, err.message, err.payload);
  }
  if (err instanceof errors.JOSEAlgNotAllowed || err instanceof errors.JOSENotSupported) {
    return new TokenError('alg', err.message);
  }
  if (
    err instanceof errors.JWSSignatureVerificationFailed || err instanceof errors.JWKSNoMatchingKey ||
    err instanceof errors.JWKSMultipleMatchingKeys
  ) {
    return new TokenError('signature', err.message);
  }
  if (err instanceof errors.JOSEError) return new TokenError('decode', err.message);
  return err;
}

/** An sb_ API key: the prefix, then random base64url. */
const apiKey = (prefix) => `${prefix}${crypto.randomBytes(24).toString('base64url')}`;

/** The token of an Authorization header value ('' when it has none after "Bearer"). */
export function bearerOf(header) {
  return String(header).replace(/^Bearer\s+/i, '').trim();
}

/**
 * Loads or creates the stack's keys in `mode` ('new' | 'legacy', default SPOOL_KEYS). Resolves to:
 *   mode, anonKey, serviceRoleKey   the keys in force for anon and service_role
 *   publishableKey, secretKey       the same two under their new names (in both modes)
 *   jwtSecret                       HS256: legacy keys and tokens; in new mode only what a
 *                                   service signs for itself (Storage's signed-URL tokens)
 *   jwks, signingKey                { keys: [public JWK] } and the private JWK (new mode), else null
 *   sign(claims)                    a user access token (ES256 with kid, or HS256)
 *   verify(token, nowMs?)           the claims of a valid token with a role, or TokenError
 *   verifier                        { hmacSecret, jwks } for verifyToken()
 *   apiKeyRole(key)                 'anon' | 'service_role' for a key in force, else null
 *   forwardedToken(headers, opts)   the gateway step: { token, minted }
 */
export async function loadKeys(stateDir, { mode = keyModeFromEnv() } = {}) {
  if (!KEY_MODES.includes(mode)) throw new Error(`unknown key mode ${JSON.stringify(mode)}`);
  const file = path.join(stateDir, 'keys.json');
  let state = {};
  try {
    state = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    if (err.code !== 'ENOENT') throw new Error(`${file}: ${err.message}`);
  }
  const before = JSON.stringify(state);
  state.jwtSecret ??= crypto.randomBytes(32).toString('base64url');
  if (mode === 'new') {
    state.publishableKey ??= apiKey('sb_publishable_');
    state.secretKey ??= apiKey('sb_secret_');
    state.signingKey ??= generateSigningKey().privateJwk;
  }
  if (JSON.stringify(state) !== before) {
    fs.mkdirSync(stateDir, { recursive: true });
    fs.writeFileSync(file, JSON.stringify(state, null, 2) + '\n', { mode: 0o600 });
  }
  const { jwtSecret } = state;
  const legacy = mode === 'legacy';
  const signingKey = legacy ? null : state.signingKey;
  const jwks = legacy ? null : { keys: [publicJwkOf(signingKey)] };
  const verifier = legacy ? { hmacSecret: jwtSecret, jwks: null } : { hmacSecret: null, jwks };
  const sign = (claims) => legacy ? signJwt(claims, jwtSecret) : signEs256(claims, signingKey);
  let anonKey = state.publishableKey;
  let serviceRoleKey = state.secretKey;
  if (legacy) {
    const iat = 1735689600; // 2025-01-01, like the CLI's fixed local keys
    const base = { iss: 'supabase-local', ref: 'local', iat, exp: iat + 10 * 365 * 24 * 3600 };
    anonKey = await sign({ ...base, role: 'anon' });
    serviceRoleKey = await sign({ ...base, role: 'service_role' });
  }
  const roles = new Map([[anonKey, 'anon'], [serviceRoleKey, 'service_role']]);
  // The gateway's minted tokens (new mode): one per role, signed ahead so forwardedToken stays
  // synchronous, and re-signed in the background once a quarter of MINTED_TTL_SECONDS has passed.
  const minted = new Map();
  const mint = async (role, now = Math.floor(Date.now() / 1000)) => {
    const token = await sign({ iss: 'supabase-local', ref: 'local', role, iat: now, exp: now + MINTED_TTL_SECONDS });
    minted.set(role, { iat: now, token });
  };
  if (!legacy) await Promise.all([mint('anon'), mint('service_role')]);
  const keys = {
    mode,
    jwtSecret,
    anonKey,
    serviceRoleKey,
    publishableKey: anonKey,
    secretKey: serviceRoleKey,
    jwks,
    signingKey,
    verifier,
    sign,
    verify: (token, nowMs = Date.now()) => verifyToken(token, verifier, { nowMs, requireRole: true }),
    apiKeyRole: (key) => roles.get(key) ?? null,
    /**
     * The gateway step for a request's `apikey` and Authorization header (null when absent).
     * Legacy: the bearer, else the apikey JWT itself. New: with only an API key (or Bearer <that
     * same sb_ key>) the JWT minted for the key's role (null for a key not in force); any other
     * bearer as it is (an sb_ key there then fails the service's JWT check, as hosted's does).
     */
    forwardedToken({ apikey, authorization }, { nowMs = Date.now() } = {}) {
      const bearer = authorization === null || authorization === undefined ? null : bearerOf(authorization);
      if (legacy) return { token: bearer ?? apikey ?? null, minted: false };
      if (bearer !== null && (!bearer.startsWith('sb_') || bearer !== apikey)) {
        return { token: bearer, minted: false };
      }
      const role = keys.apiKeyRole(apikey);
      if (!role) return { token: null, minted: false };
      const hit = minted.get(role);
      const now = Math.floor(nowMs / 1000);
      if (!hit.renewing && (now < hit.iat || now >= hit.iat + MINTED_TTL_SECONDS / 4)) {
        hit.renewing = true;
        mint(role, now).catch(() => (hit.renewing = false));
      }
      return { token: hit.token, minted: true };
    },
  };
  return keys;
}
