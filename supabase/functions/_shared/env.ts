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

/** What every Spool function needs: the project URL and its keys. */
export interface SupabaseEnv {
  url: string;
  /** Publishable (anon) key: for calls made on behalf of a user, with the user's JWT. */
  anonKey: string;
  /** Secret (service role) key the functions call Supabase with. Server-side only. */
  secretKey: string;
  /**
   * Every secret key a caller may present to a secret-only endpoint (job-worker, health): the
   * legacy service_role JWT, SUPABASE_SECRET_KEY, and each key in SUPABASE_SECRET_KEYS (the JSON
   * object of named `sb_secret_…` keys Supabase injects for the new API keys).
   */
  acceptedSecretKeys: string[];
}

/** Parses SUPABASE_SECRET_KEYS ({"default": "sb_secret_…", …}); malformed JSON is a problem. */
function namedKeys(reader: EnvReader, name: string): string[] {
  const raw = reader.optional(name);
  if (!raw) return [];
  try {
    const parsed = JSON.parse(raw);
    if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) {
      return Object.values(parsed).filter((v): v is string => typeof v === 'string' && v !== '');
    }
  } catch { /* reported below */ }
  reader.problems.push(`${name} must be a JSON object of named keys`);
  return [];
}

/** Reads the variables Supabase injects into every Edge Function. */
export function readSupabaseEnv(reader: EnvReader): SupabaseEnv {
  const url = reader.required('SUPABASE_URL');
  if (url && !/^https?:\/\//.test(url)) reader.problems.push('SUPABASE_URL must be an http(s) URL');
  const secretKey = reader.required('SUPABASE_SERVICE_ROLE_KEY', 'SUPABASE_SECRET_KEY');
  const accepted = [
    secretKey,
    reader.optional('SUPABASE_SECRET_KEY'),
    ...namedKeys(reader, 'SUPABASE_SECRET_KEYS'),
  ].filter((k) => k !== '');
  return {
    url: url.replace(/\/+$/, ''),
    anonKey: reader.required('SUPABASE_ANON_KEY', 'SUPABASE_PUBLISHABLE_KEY'),
    secretKey,
    acceptedSecretKeys: [...new Set(accepted)],
  };
}
