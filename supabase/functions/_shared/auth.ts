// Who is calling. Two kinds of caller exist:
//   user    an end user with a session JWT (anonymous sign-ins included), role `authenticated`.
//           With the project's JWKS (SUPABASE_JWKS: asymmetric signing keys, ES256/RS256) the
//           token is first verified here, signature, exp and nbf, as Supabase's own services
//           verify it, so a forgery or an expired token is refused without a round trip. Every
//           token that passes (and every token when the JWKS has no say: legacy HS256, no JWKS)
//           is then checked with Supabase Auth (GET /auth/v1/user via auth.getUser), which
//           refuses a session that was signed out (403 session_not_found: GoTrue looks the
//           token's session_id up in auth.sessions) and answers app_metadata as it is now (admin).
//           Cost: one request to Auth per call of a function, a few ms in-region; it is what
//           makes logout (scope=global included) end access at once rather than at token expiry.
//           A token whose role is not `authenticated` is refused (401), since no query as that
//           role could succeed. Either way a bad token is 401 even if verify_jwt is off.
//   secret  a server holding one of the project's secret keys (sb_secret_… or the legacy
//           service_role JWT): pg_net's doorbell, pg_cron, admin scripts. Checked against the
//           keys Supabase injects, in constant time (secure-compare.ts).
// An admin is a user whose app_metadata (writable only server-side) has "spool_admin": true.
import {
  createClient,
  createLocalJWKSet,
  decodeJwt,
  decodeProtectedHeader,
  jwtVerify,
} from './deps.ts';
import type { Jwks, SupabaseEnv } from './env.ts';
import { HttpError, unstorableTextPath } from './http.ts';
import { secureEqual } from './secure-compare.ts';

export interface UserCaller {
  kind: 'user';
  userId: string;
  jwt: string;
  isAnonymous: boolean;
  isAdmin: boolean;
}
export interface SecretCaller {
  kind: 'secret';
}
export type Caller = UserCaller | SecretCaller;

function bearer(req: Request): string | null {
  const header = req.headers.get('authorization') ?? '';
  const match = /^Bearer\s+(\S+)$/i.exec(header);
  return match ? match[1] : null;
}

/** True when the request carries one of the project's secret keys, in `apikey` or as the Bearer token. */
export function hasSecretKey(req: Request, env: SupabaseEnv): boolean {
  const candidates = [req.headers.get('apikey'), bearer(req)].filter((v): v is string => !!v);
  return candidates.some((c) => env.acceptedSecretKeys.some((key) => secureEqual(c, key)));
}

/** Requires the secret key; 401 otherwise. */
export function requireSecret(req: Request, env: SupabaseEnv): SecretCaller {
  if (!hasSecretKey(req, env)) {
    throw new HttpError(401, 'unauthorized', 'this endpoint requires the project secret key');
  }
  return { kind: 'secret' };
}

/** The algorithms of Supabase's asymmetric signing keys. */
const ASYMMETRIC = new Set(['ES256', 'RS256']);

const jwksVerifiers = new WeakMap<Jwks, ReturnType<typeof createLocalJWKSet>>();

/** The token's claims if the JWKS verifies it; null when the JWKS has no say over it (HS256). */
async function verifiedClaims(jwt: string, jwks: Jwks): Promise<Record<string, unknown> | null> {
  let alg: string | undefined;
  try {
    alg = decodeProtectedHeader(jwt).alg;
  } catch {
    throw new HttpError(401, 'invalid_token', 'the session token is invalid or expired');
  }
  if (!alg || !ASYMMETRIC.has(alg)) return null;
  let keys = jwksVerifiers.get(jwks);
  if (!keys) {
    keys = createLocalJWKSet(jwks as Parameters<typeof createLocalJWKSet>[0]);
    jwksVerifiers.set(jwks, keys);
  }
  try {
    const { payload } = await jwtVerify(jwt, keys, { algorithms: [...ASYMMETRIC] });
    return payload as Record<string, unknown>;
  } catch {
    throw new HttpError(401, 'invalid_token', 'the session token is invalid or expired');
  }
}

const invalidToken = () =>
  new HttpError(401, 'invalid_token', 'the session token is invalid or expired');

/** The unverified claims of a compact JWT (after Auth vouched for it), or null. */
function claimsOfToken(jwt: string): Record<string, unknown> | null {
  try {
    return decodeJwt(jwt) as Record<string, unknown>;
  } catch {
    return null;
  }
}

/**
 * Requires a signed-in user whose session is still alive; 401 when the token is missing,
 * invalid, expired, not yet valid, of another role, or its session was signed out; 503 when Auth
 * cannot be asked. isAdmin and isAnonymous are Auth's answer now, not the token's.
 */
export async function requireUser(req: Request, env: SupabaseEnv): Promise<UserCaller> {
  const jwt = bearer(req);
  if (!jwt || jwt === env.anonKey) {
    throw new HttpError(
      401,
      'unauthorized',
      'sign in first: send the session access token as a Bearer token',
    );
  }
  const claims = (env.jwks ? await verifiedClaims(jwt, env.jwks) : null) ?? claimsOfToken(jwt);
  if (!claims) throw invalidToken();
  if (typeof claims.sub !== 'string' || claims.sub === '' || claims.role !== 'authenticated') {
    throw new HttpError(401, 'invalid_token', "the session token is not a signed-in user's");
  }
  // The claims reach Postgres (request.jwt.claims), which refuses NUL and lone surrogates.
  if (unstorableTextPath(claims) !== null) throw invalidToken();
  const auth = createClient(env.url, env.anonKey, {
    auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false },
  }).auth;
  const { data, error } = await auth.getUser(jwt);
  if (error || !data.user) {
    if (error && (error.status ?? 0) >= 500) {
      throw new HttpError(503, 'auth_unavailable', 'could not verify the session, try again');
    }
    // auth-js turns Auth's 403 session_not_found into an AuthSessionMissingError.
    if (error?.name === 'AuthSessionMissingError' || error?.code === 'session_not_found') {
      throw new HttpError(401, 'invalid_token', 'the session was signed out: sign in again');
    }
    throw invalidToken();
  }
  const user = data.user;
  if (user.id !== claims.sub) throw invalidToken();
  return {
    kind: 'user',
    userId: user.id,
    jwt,
    isAnonymous: user.is_anonymous === true,
    isAdmin: user.app_metadata?.spool_admin === true,
  };
}

/** Accepts either the secret key or a signed-in user (see requireUser). */
export async function requireCaller(req: Request, env: SupabaseEnv): Promise<Caller> {
  if (hasSecretKey(req, env)) return { kind: 'secret' };
  return await requireUser(req, env);
}
