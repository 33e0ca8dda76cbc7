// Environment that fails fast: a function reads all its variables when its module loads, and a
// missing or malformed one stops it there with a message naming every problem, instead of
// surfacing later as an undefined URL in the middle of a job.

export class EnvError extends Error {
  constructor(readonly problems: string[]) {
    super(`environment is not configured: ${problems.join('; ')}`);
    this.name = 'EnvError';
  }
}

type Source = (name: string) => string | undefined;
const denoEnv: Source = (name) => Deno.env.get(name);

/** Reads variables and collects every problem before throwing once. */
export class EnvReader {
  readonly problems: string[] = [];
  constructor(private readonly source: Source = denoEnv) {}

  /** A variable that must be set (the first of `names` that is set wins). */
  required(...names: string[]): string {
    for (const name of names) {
      const value = this.source(name)?.trim();
      if (value) return value;
    }
    this.problems.push(`${names.join(' or ')} is not set`);
    return '';
  }

  /** A variable that may be empty; returns `fallback` then. */
  optional(name: string, fallback = ''): string {
    return this.source(name)?.trim() || fallback;
  }

  /** An integer in [min, max], or `fallback` when unset. */
  int(name: string, fallback: number, min: number, max: number): number {
    const raw = this.source(name)?.trim();
    if (!raw) return fallback;
    const value = Number(raw);
    if (!Number.isInteger(value) || value < min || value > max) {
      this.problems.push(`${name} must be an integer between ${min} and ${max} (got "${raw}")`);
      return fallback;
    }
    return value;
  }

  /** A boolean flag: "1"/"true" or "0"/"false". */
  flag(name: string, fallback = false): boolean {
    const raw = this.source(name)?.trim().toLowerCase();
    if (!raw) return fallback;
    if (['1', 'true', 'yes'].includes(raw)) return true;
    if (['0', 'false', 'no'].includes(raw)) return false;
    this.problems.push(`${name} must be true or false (got "${raw}")`);
    return fallback;
  }

  /** Throws EnvError listing every problem found so far. */
  done(): void {
    if (this.problems.length > 0) throw new EnvError(this.problems);
  }
}

/** A JSON Web Key Set: the public keys that verify users' access tokens. */
export interface Jwks {
  keys: Array<Record<string, unknown>>;
}

/** What every Spool function needs: the project URL and its keys. */
export interface SupabaseEnv {
  url: string;
  /**
   * Publishable key (sb_publishable_…, or the legacy anon JWT): the `apikey` of calls made on
   * behalf of a user, with the user's JWT.
   */
  anonKey: string;
  /** Secret key (sb_secret_…, or the legacy service_role JWT) the functions call Supabase with. */
  secretKey: string;
  /**
   * Every secret key a caller may present to a secret-only endpoint (job-worker, health): each key
   * in SUPABASE_SECRET_KEYS, SUPABASE_SECRET_KEY and the legacy service_role JWT.
   */
  acceptedSecretKeys: string[];
  /**
   * The keys that verify users' access tokens (SUPABASE_JWKS; asymmetric signing keys), or null
   * when there are none: then a token is checked with Auth (GET /auth/v1/user).
   */
  jwks?: Jwks | null;
}

/** Parses a JSON object of named keys ({"default": "sb_secret_…", …}); malformed is a problem. */
function namedKeys(reader: EnvReader, name: string): Record<string, string> {
  const raw = reader.optional(name);
  if (!raw) return {};
  try {
    const parsed = JSON.parse(raw);
    if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) {
      return Object.fromEntries(
        Object.entries(parsed).filter((e): e is [string, string] =>
          typeof e[1] === 'string' && e[1].trim() !== ''
        ).map(([k, v]) => [k, v.trim()]),
      );
    }
  } catch { /* reported below */ }
  reader.problems.push(`${name} must be a JSON object of named keys`);
  return {};
}

/** The key named `default` of a named-keys object, else its first key, else ''. */
const defaultKey = (keys: Record<string, string>) => keys.default ?? Object.values(keys)[0] ?? '';

/** Parses SUPABASE_JWKS ({"keys": […]} or a bare array); no keys means none (null). */
function readJwks(reader: EnvReader): Jwks | null {
  const raw = reader.optional('SUPABASE_JWKS');
  if (!raw) return null;
  try {
    const parsed = JSON.parse(raw);
    const keys = Array.isArray(parsed) ? parsed : parsed?.keys;
    if (Array.isArray(keys) && keys.every((k) => k && typeof k === 'object' && !Array.isArray(k))) {
      return keys.length > 0 ? { keys } : null;
    }
  } catch { /* reported below */ }
  reader.problems.push('SUPABASE_JWKS must be a JSON Web Key Set ({"keys": [...]})');
  return null;
}

/**
 * Reads the variables Supabase injects into every Edge Function, in either key system: the new
 * API keys (SUPABASE_PUBLISHABLE_KEYS / SUPABASE_SECRET_KEYS, JSON objects of named keys, and
 * SUPABASE_JWKS: what hosted injects, and all a project with its legacy keys turned off has), the
 * singular SUPABASE_PUBLISHABLE_KEY / SUPABASE_SECRET_KEY (self-hosted, CLI), or the legacy
 * SUPABASE_ANON_KEY / SUPABASE_SERVICE_ROLE_KEY JWTs. The new keys win when several are set: the
 * legacy ones stop working once they are turned off, the new ones keep working.
 */
export function readSupabaseEnv(reader: EnvReader): SupabaseEnv {
  const url = reader.required('SUPABASE_URL');
  if (url && !/^https?:\/\//.test(url)) reader.problems.push('SUPABASE_URL must be an http(s) URL');
  const secretKeys = namedKeys(reader, 'SUPABASE_SECRET_KEYS');
  const publishableKeys = namedKeys(reader, 'SUPABASE_PUBLISHABLE_KEYS');
  const secretKey = defaultKey(secretKeys) || reader.optional('SUPABASE_SECRET_KEY') ||
    reader.optional('SUPABASE_SERVICE_ROLE_KEY');
  if (!secretKey) {
    reader.problems.push(
      'SUPABASE_SECRET_KEYS, SUPABASE_SECRET_KEY or SUPABASE_SERVICE_ROLE_KEY is not set',
    );
  }
  const anonKey = defaultKey(publishableKeys) || reader.optional('SUPABASE_PUBLISHABLE_KEY') ||
    reader.optional('SUPABASE_ANON_KEY');
  if (!anonKey) {
    reader.problems.push(
      'SUPABASE_PUBLISHABLE_KEYS, SUPABASE_PUBLISHABLE_KEY or SUPABASE_ANON_KEY is not set',
    );
  }
  const accepted = [
    ...Object.values(secretKeys),
    reader.optional('SUPABASE_SECRET_KEY'),
    reader.optional('SUPABASE_SERVICE_ROLE_KEY'),
  ].filter((k) => k !== '');
  return {
    url: url.replace(/\/+$/, ''),
    anonKey,
    secretKey,
    acceptedSecretKeys: [...new Set(accepted)],
    jwks: readJwks(reader),
  };
}
