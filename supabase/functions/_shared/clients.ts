// Supabase clients, typed by the schema (database.types.ts is generated from the migrations:
// `npm run gen:types`; npm test fails when it is stale).
import { createClient, type SupabaseClient } from './deps.ts';
import type { Database } from './database.types.ts';
import type { SupabaseEnv } from './env.ts';

export type Db = SupabaseClient<Database>;
export type JobRow = Database['public']['Tables']['jobs']['Row'];
export type JobStatus = Database['public']['Enums']['job_status'];

const serverAuth = { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false };

/** A client with the secret key: bypasses RLS. Server-side only. */
export function adminClient(env: SupabaseEnv): Db {
  return createClient<Database>(env.url, env.secretKey, { auth: serverAuth });
}

/** A client acting as the calling user: every query and Storage call runs under their RLS. */
export function userClient(env: SupabaseEnv, jwt: string): Db {
  return createClient<Database>(env.url, env.anonKey, {
    auth: serverAuth,
    global: { headers: { Authorization: `Bearer ${jwt}` } },
  });
}
