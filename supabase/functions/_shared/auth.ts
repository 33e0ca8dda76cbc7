// Who is calling. Two kinds of caller exist:
//   user    an end user with a session JWT (anonymous sign-ins included). With the project's
//           JWKS (SUPABASE_JWKS: asymmetric signing keys, ES256/RS256) the token is verified here,
//           signature and expiry, as Supabase's own services verify it; a token those keys cannot
//           verify (a legacy HS256 one, or no JWKS at all) is checked with Supabase Auth (GET
//           /auth/v1/user), which also refuses a session that was signed out; so is every token
//           when the caller asks for `fresh` (admin checks: app_metadata as it is now). Either
//           way a forged or expired token is refused even if a function runs with verify_jwt off.
//   secret  a server holding one of the project's secret keys (sb_secret_… or the legacy
//           service_role JWT): pg_net's doorbell, pg_cron, admin scripts. Checked against the
//           keys Supabase injects, in constant time.
// An admin is a user whose app_metadata (writable only server-side) has "spool_admin": true.
import { createClient, createLocalJWKSet, decodeProtectedHeader, jwtVerify } from './deps.ts';
import type { Jwks, SupabaseEnv } from './env.ts';
import { HttpError } from './http.ts';

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

/** Constant-time string comparison. */
function sameSecret(a: string, b: string): boolean {
  const x = new TextEncoder().encode(a);
  const y = new TextEncoder().encode(b);
  let diff = x.length ^ y.length;
  for (let i = 0; i < Math.max(x.length, y.length); i++) diff |= (x[i] ?? 0) ^ (y[i] ?? 0);
  return diff === 0;
}

/** True when the request carries one of the project's secret keys, in `apikey` or as the Bearer token. */
export function hasSecretKey(req: Request, env: SupabaseEnv): boolean {
  const candidates = [req.headers.get('apikey'), bearer(req)].filter((v): v is string => !!v);
  return candidates.some((c) => env.acceptedSecretKeys.some((key) => sameSecret(c, key)));
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

/**
 * Requires a signed-in user; 401 when the token is missing, invalid or expired. `fresh` asks Auth
 * even when the JWKS could verify the token: for decisions that rest on app_metadata (admin),
 * which a token carries as it was when it was issued, up to an hour ago.
 */
export async function requireUser(
  req: Request,
  env: SupabaseEnv,
  { fresh = false }: { fresh?: boolean } = {},
): Promise<UserCaller> {
  const jwt = bearer(req);
  if (!jwt || jwt === env.anonKey) {
    throw new HttpError(
      401,
      'unauthorized',
      'sign in first: send the session access token as a Bearer token',
    );
  }
  const claims = env.jwks && !fresh ? await verifiedClaims(jwt, env.jwks) : null;
  if (claims) {
    if (typeof claims.sub !== 'string' || claims.sub === '' || claims.role === 'anon') {
      throw new HttpError(401, 'invalid_token', 'the session token is not a signed-in user\'s');
    }
    const appMetadata = claims.app_metadata as Record<string, unknown> | undefined;
    return {
      kind: 'user',
      userId: claims.sub,
      jwt,
      isAnonymous: claims.is_anonymous === true,
      isAdmin: appMetadata?.spool_admin === true,
    };
  }
  const auth = createClient(env.url, env.anonKey, {
    auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false },
  }).auth;
  const { data, error } = await auth.getUser(jwt);
  if (error || !data.user) {
    if (error && (error.status ?? 0) >= 500) {
      throw new HttpError(503, 'auth_unavailable', 'could not verify the session, try again');
    }
    throw new HttpError(401, 'invalid_token', 'the session token is invalid or expired');
  }
  const user = data.user;
  return {
    kind: 'user',
    userId: user.id,
    jwt,
    isAnonymous: user.is_anonymous === true,
    isAdmin: user.app_metadata?.spool_admin === true,
  };
}

/** Accepts either the secret key or a signed-in user (see requireUser for `fresh`). */
export async function requireCaller(
  req: Request,
  env: SupabaseEnv,
  options: { fresh?: boolean } = {},
): Promise<Caller> {
  if (hasSecretKey(req, env)) return { kind: 'secret' };
  return await requireUser(req, env, options);
}
