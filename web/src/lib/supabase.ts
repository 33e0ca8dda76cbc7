// The one place the web client makes its Supabase client, from import.meta.env:
//   VITE_SUPABASE_URL              the project URL (locally http://127.0.0.1:54321, `npm start`
//                                  sets it)
//   VITE_SUPABASE_PUBLISHABLE_KEY  the publishable key (sb_publishable_…), or
//   VITE_SUPABASE_ANON_KEY         the legacy anon key (a JWT): the first that is set is used
// A secret key (sb_secret_… or the service_role JWT) is refused: it must never reach a browser
// (Supabase answers it 401 from one anyway). Nothing else in web/ knows where the project runs. When either is missing or malformed,
// `configProblem` says so and main.tsx shows it on screen instead of the app; touching `supabase`
// then throws the same message.
import { createClient, type SupabaseClient } from '@supabase/supabase-js';
import type { Database } from '../../../supabase/functions/_shared/database.types.ts';

export type Db = SupabaseClient<Database>;

/** True for a secret key: sb_secret_…, or a legacy JWT whose role is service_role. */
function isSecretKey(key: string): boolean {
  if (key.startsWith('sb_secret_')) return true;
  try {
    const claims = JSON.parse(atob(key.split('.')[1].replace(/-/g, '+').replace(/_/g, '/')));
    return claims?.role === 'service_role';
  } catch {
    return false;
  }
}

function problemOf(url: string | undefined, key: string | undefined): string | null {
  const missing = [
    !url?.trim() && 'VITE_SUPABASE_URL',
    !key?.trim() && 'VITE_SUPABASE_PUBLISHABLE_KEY (or VITE_SUPABASE_ANON_KEY)',
  ].filter(Boolean);
  if (missing.length > 0) {
    return `${missing.join(' and ')} ${missing.length > 1 ? 'are' : 'is'} not set. ` +
      'Set them in the environment or in .env at the repository root (see .env.example), ' +
      'then restart the dev server or rebuild. `npm start` sets both for the local stack.';
  }
  if (isSecretKey(key!.trim())) {
    return 'The key in VITE_SUPABASE_PUBLISHABLE_KEY / VITE_SUPABASE_ANON_KEY is a secret key. ' +
      'A browser must only get the publishable (anon) key: set that one and rebuild.';
  }
  try {
    const parsed = new URL(url!);
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new Error('scheme');
  } catch {
    return `VITE_SUPABASE_URL must be an http(s) URL such as https://<project-ref>.supabase.co, got ${
      JSON.stringify(url)
    }.`;
  }
  return null;
}

const url = import.meta.env.VITE_SUPABASE_URL as string | undefined;
const anonKey = ((import.meta.env.VITE_SUPABASE_PUBLISHABLE_KEY as string | undefined)?.trim() ||
  import.meta.env.VITE_SUPABASE_ANON_KEY) as string | undefined;

/** Why the client cannot start, in words for the person at the screen; null when configured. */
export const configProblem: string | null = problemOf(url, anonKey);

/** The project URL without a trailing slash ('' when not configured). */
export const supabaseUrl: string = configProblem ? '' : url!.replace(/\/+$/, '');
export const supabaseAnonKey: string = configProblem ? '' : anonKey!.trim();

function unconfigured(): Db {
  return new Proxy({} as Db, {
    get() {
      throw new Error(configProblem ?? 'Supabase is not configured');
    },
  });
}

export const supabase: Db = configProblem ? unconfigured() : createClient<Database>(
  supabaseUrl,
  supabaseAnonKey,
  {
    auth: { persistSession: true, autoRefreshToken: true, detectSessionInUrl: false },
  },
);
