// Local API keys and JWTs, shaped as Supabase issues them (HS256, the legacy JWT secret).
//
// A fresh secret is generated per local stack and kept in <stateDir>/keys.json (git-ignored), so
// no key is ever committed. The anon and service_role keys are long-lived JWTs signed with it, as
// the Supabase CLI's are; user access tokens (Auth stand-in) are signed with it too.

import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

const b64url = (buf) => Buffer.from(buf).toString('base64url');

export class JwtError extends Error {
  constructor(message) {
    super(message);
    this.name = 'JwtError';
  }
}

/** Signs claims as an HS256 JWT. */
export function signJwt(claims, secret) {
  const header = b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));
  const payload = b64url(JSON.stringify(claims));
  const sig = crypto.createHmac('sha256', secret).update(`${header}.${payload}`).digest();
  return `${header}.${payload}.${b64url(sig)}`;
}

/** Verifies an HS256 JWT and its exp; returns its claims or throws JwtError. */
export function verifyJwt(token, secret, now = Date.now()) {
  const parts = typeof token === 'string' ? token.split('.') : [];
  if (parts.length !== 3) throw new JwtError('malformed JWT');
  let header, claims;
  try {
    header = JSON.parse(Buffer.from(parts[0], 'base64url').toString('utf8'));
    claims = JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8'));
  } catch {
    throw new JwtError('malformed JWT');
  }
  if (header.alg !== 'HS256') throw new JwtError(`unsupported JWT algorithm ${header.alg}`);
  const expected = crypto.createHmac('sha256', secret).update(`${parts[0]}.${parts[1]}`).digest();
  const given = Buffer.from(parts[2], 'base64url');
  if (given.length !== expected.length || !crypto.timingSafeEqual(given, expected)) {
    throw new JwtError('invalid JWT signature');
  }
  if (typeof claims.exp === 'number' && claims.exp * 1000 <= now) throw new JwtError('JWT expired');
  if (typeof claims.role !== 'string') throw new JwtError('JWT has no role claim');
  return claims;
}

/**
 * Loads or creates the stack's keys. Returns { jwtSecret, anonKey, serviceRoleKey, sign(claims),
 * verify(token) }. `stateDir` is the git-ignored folder of the stack (.spool for npm start, a temp
 * folder for npm test).
 */
export function loadKeys(stateDir) {
  const file = path.join(stateDir, 'keys.json');
  let jwtSecret;
  if (fs.existsSync(file)) {
    jwtSecret = JSON.parse(fs.readFileSync(file, 'utf8')).jwtSecret;
  } else {
    jwtSecret = crypto.randomBytes(32).toString('base64url');
    fs.mkdirSync(stateDir, { recursive: true });
    fs.writeFileSync(file, JSON.stringify({ jwtSecret }, null, 2) + '\n', { mode: 0o600 });
  }
  const iat = 1735689600; // 2025-01-01, like the CLI's fixed local keys
  const exp = iat + 10 * 365 * 24 * 3600;
  return {
    jwtSecret,
    anonKey: signJwt({ iss: 'supabase-local', ref: 'local', role: 'anon', iat, exp }, jwtSecret),
    serviceRoleKey: signJwt({ iss: 'supabase-local', ref: 'local', role: 'service_role', iat, exp }, jwtSecret),
    sign: (claims) => signJwt(claims, jwtSecret),
    verify: (token) => verifyJwt(token, jwtSecret),
  };
}
