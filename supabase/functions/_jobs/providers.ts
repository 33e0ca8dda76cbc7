// The providers' configuration: read from the environment once, when a function loads, with every
// problem named at once (EnvReader.done()); then passed to whatever needs it (creators route with
// it, job-worker hands it to handlers in their context). Nothing reads Deno.env later.
//
//   OPENAI_API_KEY                    the OpenAI key; unset: kinds that need OpenAI are refused
//   OPENAI_BASE_URL                   another OpenAI-compatible endpoint (tests: a local fake)
//   SPOOL_OPENAI_IMAGE_MODEL          the image model                     default gpt-image-1
//   SPOOL_OPENAI_TEXT_MODEL           the text model                      default gpt-4o-mini
//   REPLICATE_API_TOKEN, REPLICATE_WEBHOOK_SECRET   Replicate; with a kind's version variable
//                                     (its descriptor's replicateVersionVar) that kind may use it
//   REPLICATE_API_BASE                another Replicate API endpoint      default the real one
//   SPOOL_REPLICATE_TIMEOUT_SECONDS   how long a Replicate job may wait for its callback before
//                                     rescue_jobs retries it              default 3600 (10..86400)
//   SPOOL_ENABLE_NOOP                 the test/bench-only noop kind       default false
import type { EnvReader } from '../_shared/env.ts';

export const DEFAULT_REPLICATE_API_BASE = 'https://api.replicate.com/v1';

export interface ProviderConfig {
  /** OPENAI_API_KEY is set. */
  openai: boolean;
  /** Replicate is configured for this job type (token, webhook secret and model version set). */
  replicate: (type: string) => boolean;
  /** The test/bench-only `noop` kind is enabled (SPOOL_ENABLE_NOOP=true). Never in production. */
  noop: boolean;
  openaiApiKey: string | null;
  /** null: the SDK's default endpoint. */
  openaiBaseUrl: string | null;
  openaiImageModel: string;
  openaiTextModel: string;
  replicateApiToken: string | null;
  replicateWebhookSecret: string | null;
  replicateApiBase: string;
  replicateTimeoutSeconds: number;
  /** The webhook Replicate calls (job-callback on this project's URL); null: no URL given. */
  replicateCallbackUrl: string | null;
  /** The Replicate model version for a job type, or null. */
  replicateVersion: (type: string) => string | null;
}

/**
 * Reads the providers' configuration. `versionVars` maps each job type Replicate may serve to
 * the variable naming its model version (from the kinds' descriptors). A job type is
 * Replicate-configured only when REPLICATE_API_TOKEN, REPLICATE_WEBHOOK_SECRET and its version
 * variable are all set; a partial setup leaves it unconfigured (and jobs that need it are refused
 * when they are created). `supabaseUrl` (SUPABASE_URL, already read) makes the callback URL.
 */
export function readProviderConfig(
  reader: EnvReader,
  versionVars: Readonly<Record<string, string>>,
  supabaseUrl: string | null = null,
): ProviderConfig {
  const openaiApiKey = reader.optional('OPENAI_API_KEY') || null;
  const replicateApiToken = reader.optional('REPLICATE_API_TOKEN') || null;
  const replicateWebhookSecret = reader.optional('REPLICATE_WEBHOOK_SECRET') || null;
  const versions: Record<string, string> = {};
  for (const [type, name] of Object.entries(versionVars)) {
    const version = reader.optional(name);
    if (version) versions[type] = version;
  }
  const replicateVersion = (type: string) =>
    replicateApiToken && replicateWebhookSecret && Object.hasOwn(versions, type)
      ? versions[type]
      : null;
  return {
    openai: openaiApiKey !== null,
    replicate: (type) => replicateVersion(type) !== null,
    noop: reader.flag('SPOOL_ENABLE_NOOP', false),
    openaiApiKey,
    openaiBaseUrl: reader.optional('OPENAI_BASE_URL').replace(/\/+$/, '') || null,
    openaiImageModel: reader.optional('SPOOL_OPENAI_IMAGE_MODEL') || 'gpt-image-1',
    openaiTextModel: reader.optional('SPOOL_OPENAI_TEXT_MODEL') || 'gpt-4o-mini',
    replicateApiToken,
    replicateWebhookSecret,
    replicateApiBase: (reader.optional('REPLICATE_API_BASE') || DEFAULT_REPLICATE_API_BASE)
      .replace(/\/+$/, ''),
    replicateTimeoutSeconds: reader.int('SPOOL_REPLICATE_TIMEOUT_SECONDS', 3600, 10, 86_400),
    replicateCallbackUrl: supabaseUrl
      ? `${supabaseUrl.replace(/\/+$/, '')}/functions/v1/job-callback?provider=replicate`
      : null,
    replicateVersion,
  };
}
