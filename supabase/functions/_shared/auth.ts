// Who is calling. Two kinds of caller exist:
//   user    an end user with a session JWT (anonymous sign-ins included). Verified with Supabase
//           Auth (GET /auth/v1/user), so a revoked session or a forged token is refused even if
//           a function runs with verify_jwt off.
//   secret  a server holding the project's secret (service role) key: pg_net's doorbell, pg_cron,
//           admin scripts. Checked against the key Supabase injects, in constant time.
// An admin is a user whose app_metadata (writable only server-side) has "spool_admin": true.
import { createClient } from './deps.ts';
import type { SupabaseEnv } from './env.ts';
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

/** Requires a signed-in user; 401 when the token is missing, invalid or expired. */
export async function requireUser(req: Request, env: SupabaseEnv): Promise<UserCaller> {
  const jwt = bearer(req);
  if (!jwt || jwt === env.anonKey) {
    throw new HttpError(
      401,
      'unauthorized',
      'sign in first: send the session access token as a Bearer token',
    );
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

/** Accepts either the secret key or a signed-in user. */
export async function requireCaller(req: Request, env: SupabaseEnv): Promise<Caller> {
  if (hasSecretKey(req, env)) return { kind: 'secret' };
  return await requireUser(req, env);
}
