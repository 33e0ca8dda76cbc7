// Third-party modules, pinned in one place. Only `npm:` specifiers: they resolve the same on
// Supabase's Edge Runtime, in `supabase functions serve` and in the local runtime (local/).
export { createClient } from 'npm:@supabase/supabase-js@2.109.0';
export type { SupabaseClient } from 'npm:@supabase/supabase-js@2.109.0';
export { z } from 'npm:zod@4.6.7';
// JWT verification against the project's JWKS (SUPABASE_JWKS), as @supabase/server does it.
export { createLocalJWKSet, decodeJwt, decodeProtectedHeader, jwtVerify } from 'npm:jose@6.2.18';
// Standard Webhooks signatures (Replicate's webhooks).
export { Webhook, WebhookVerificationError } from 'npm:standardwebhooks@1.1.1';
