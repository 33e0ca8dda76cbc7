// The local stack's API keys and JWTs, in either of Supabase's two key systems (SPOOL_KEYS):
//   new (default)  opaque sb_publishable_… / sb_secret_… API keys; Auth signs user tokens ES256
//                  with a key whose public half is the JWKS; HS256 tokens are refused everywhere,
//                  as with the legacy JWT secret turned off.
//   legacy         the anon and service_role keys are HS256 JWTs signed with the project's JWT
//                  secret, as the Supabase CLI's are; user tokens are signed with it too.
// Secrets are generated per stack into <stateDir>/keys.json (0600). verifyToken() (jose) is the one
// check every stand-in uses; each words refusals its own way from TokenError.reason.
// The API gateway's part (hosted's, guides/api/api-keys.mdx) is forwardedToken(): a request with
// only an API key (no Authorization, or Bearer <that same sb_ key>) reaches the services with a
// short-lived JWT minted for the key's role; any other bearer goes down as it is.

import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { createLocalJWKSet, errors, jwtVerify, SignJWT } from 'jose';

const KEY_MODES = ['new', 'legacy'];
const HMAC_ALGS = ['HS256', 'HS384', 'HS512'];
const ASYMMETRIC_ALGS = ['ES256', 'RS256'];
/** Lifetime of the JWTs the gateway mints for a request that carries only an sb_ API key. */
const MINTED_TTL_SECONDS = 3600;

/** SPOOL_KEYS from `env`: 'new' (default) or 'legacy'; anything else throws. */
export function keyModeFromEnv(env = process.env) {
  const raw = (env.SPOOL_KEYS ?? '').trim();
  if (raw === '') return 'new';
  if (!KEY_MODES.includes(raw)) throw new Error(`SPOOL_KEYS must be "new" or "legacy", got ${JSON.stringify(raw)}`);
  return raw;
}

/** Why a token was refused: `reason` empty|parts|decode|alg|signature|expired|nbf|iat|role; `claims` once signed. */
export class TokenError extends Error {
  constructor(reason, detail, claims) {
    super(`${reason}${detail === undefined ? '' : `: ${detail}`}`);
    this.name = 'TokenError';
    this.reason = reason;
    this.detail = detail;
    this.claims = claims;
  }
}

export function signJwt(claims, secret) {
  return new SignJWT(claims).setProtectedHeader({ alg: 'HS256', typ: 'JWT' }).sign(new TextEncoder().encode(secret));
}

/** Signs claims as ES256 with a private P-256 JWK that has a `kid`. */
export function signEs256(claims, privateJwk) {
  const key = crypto.createPrivateKey({ key: privateJwk, format: 'jwk' });
  return new SignJWT(claims).setProtectedHeader({ alg: 'ES256', kid: privateJwk.kid, typ: 'JWT' }).sign(key);
}

/** A new ES256 signing key: { privateJwk, publicJwk }, shaped as Supabase Auth publishes keys. */
export function generateSigningKey() {
  const { privateKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const privateJwk = { ...privateKey.export({ format: 'jwk' }), kid: crypto.randomUUID(), alg: 'ES256' };
  return { privateJwk, publicJwk: publicJwkOf(privateJwk) };
}

function publicJwkOf({ kty, crv, x, y, kid, alg }) {
  return { kty, crv, x, y, kid, alg, use: 'sig', key_ops: ['verify'] };
}

const jwkSets = new WeakMap();

/**
 * The claims of a compact JWT: HS256/384/512 against `hmacSecret`, else ES256/RS256 against the
 * JWKS key of its kid (a key system the stack lacks refuses its algorithms as 'alg'), then exp/nbf/
 * iat with `skewSeconds` of leeway (PostgREST allows 30 s, the others none). Rejects with TokenError.
 */
export async function verifyToken(token, { hmacSecret = null, jwks = null } = {}, options = {}) {
  const { nowMs = Date.now(), skewSeconds = 0 } = options;
  if (typeof token !== 'string' || token === '') throw new TokenError('empty');
  const parts = token.split('.').length;
  if (parts !== 3) throw new TokenError('parts', parts);
  if (!hmacSecret && !jwkSets.has(jwks)) jwkSets.set(jwks, createLocalJWKSet(jwks ?? { keys: [] }));
  const key = hmacSecret ? new TextEncoder().encode(hmacSecret) : jwkSets.get(jwks);
  const algorithms = hmacSecret ? HMAC_ALGS : ASYMMETRIC_ALGS;
  let claims;
  try {
    const options = { algorithms, clockTolerance: skewSeconds, currentDate: new Date(nowMs) };
    ({ payload: claims } = await jwtVerify(token, key, options));
  } catch (err) {
    throw tokenErrorOf(err);
  }
  if (typeof claims.iat === 'number' && nowMs / 1000 + skewSeconds < claims.iat) throw new TokenError('iat');
  return claims;
}

function tokenErrorOf(err) {
  if (err instanceof errors.JWTExpired) return new TokenError('expired', undefined, err.payload);
  if (err instanceof errors.JWTClaimValidationFailed) {
    const reason = err.claim === 'nbf' ? 'nbf' : err.claim === 'iat' ? 'iat' : 'decode';
    return new TokenError(reason, err.message, err.payload);
  }
  if (err instanceof errors.JOSEAlgNotAllowed || err instanceof errors.JOSENotSupported) {
    return new TokenError('alg', err.message);
  }
  const { JWSSignatureVerificationFailed, JWKSNoMatchingKey, JWKSMultipleMatchingKeys } = errors;
  if ([JWSSignatureVerificationFailed, JWKSNoMatchingKey, JWKSMultipleMatchingKeys].some((E) => err instanceof E)) {
    return new TokenError('signature', err.message);
  }
  if (err instanceof errors.JOSEError) return new TokenError('decode', err.message);
  return err;
}

const apiKey = (prefix) => `${prefix}${crypto.randomBytes(24).toString('base64url')}`;

/** The token of an Authorization header value ('' when it has none after "Bearer"). */
export function bearerOf(header) {
  return String(header).replace(/^Bearer\s+/i, '').trim();
}

/**
 * Loads or creates the stack's keys in `mode` (default SPOOL_KEYS): mode; anonKey/serviceRoleKey,
 * also named publishableKey/secretKey; jwtSecret (legacy keys and tokens; in new mode only what a
 * service signs for itself: Storage's signed URLs); jwks and signingKey (new mode, else null);
 * sign(claims); verify(token, nowMs?) (a valid token with a role); verifier (for verifyToken);
 * apiKeyRole(key) ('anon' | 'service_role' | null); forwardedToken (the gateway step).
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
    mode, jwtSecret, anonKey, serviceRoleKey, publishableKey: anonKey, secretKey: serviceRoleKey, jwks, signingKey,
    verifier, sign,
    async verify(token, nowMs = Date.now()) {
      const claims = await verifyToken(token, verifier, { nowMs });
      if (typeof claims.role !== 'string') throw new TokenError('role', 'JWT has no role claim');
      return claims;
    },
    apiKeyRole: (key) => roles.get(key) ?? null,
    /**
     * The gateway step for a request's `apikey` and Authorization header (null when absent) ->
     * { token }. Legacy: the bearer, else the apikey JWT. New: with only an API key (or Bearer
     * <that same sb_ key>) the JWT minted for the key's role (null for a key not in force); any
     * other bearer as it is (an sb_ key there then fails the service's JWT check, as hosted's does).
     */
    forwardedToken({ apikey, authorization }, { nowMs = Date.now() } = {}) {
      const bearer = authorization === null || authorization === undefined ? null : bearerOf(authorization);
      if (legacy) return { token: bearer ?? apikey ?? null };
      if (bearer !== null && (!bearer.startsWith('sb_') || bearer !== apikey)) return { token: bearer };
      const role = keys.apiKeyRole(apikey);
      if (!role) return { token: null };
      const hit = minted.get(role);
      const now = Math.floor(nowMs / 1000);
      if (!hit.renewing && (now < hit.iat || now >= hit.iat + MINTED_TTL_SECONDS / 4)) {
        hit.renewing = true;
        mint(role, now).catch(() => (hit.renewing = false));
      }
      return { token: hit.token };
    },
  };
  return keys;
}
