// The OpenAI SDK as the handlers use it (image, text): one client per key and endpoint, made from
// the providers' configuration (read once at load), and SDK errors mapped to JobErrors:
//   429, 5xx, network failures, timeouts    retryable ('rate_limited', 'provider_unavailable')
//   a prompt refused by the safety system   permanent 'content_policy', with OpenAI's message
//   other 4xx (bad request, auth, model)    permanent 'provider_rejected', with OpenAI's message
import OpenAI from 'npm:openai@7.57.0';
import { JobError } from '../_jobs/kind.ts';
import type { ProviderConfig } from '../_jobs/providers.ts';

const clients = new Map<string, OpenAI>();

/** The SDK client for this configuration (retries once itself; the queue retries beyond that). */
export function openaiClient(config: ProviderConfig): OpenAI {
  const apiKey = config.openaiApiKey;
  if (!apiKey) throw new JobError('provider_not_configured', 'OPENAI_API_KEY is not set', false);
  const key = `${config.openaiBaseUrl ?? ''} ${apiKey}`;
  let client = clients.get(key);
  if (!client) {
    client = new OpenAI({
      apiKey,
      ...(config.openaiBaseUrl ? { baseURL: config.openaiBaseUrl } : {}),
      maxRetries: 1,
      timeout: 120_000,
    });
    clients.set(key, client);
  }
  return client;
}

/** Maps an SDK error to a JobError (see the header); aborts are passed through. */
export function openaiFailure(err: unknown): unknown {
  if (err instanceof OpenAI.APIUserAbortError) return err;
  if (err instanceof OpenAI.APIConnectionError) {
    return new JobError(
      'provider_unavailable',
      `OpenAI could not be reached: ${err.message}`,
      true,
      { provider: 'openai' },
    );
  }
  if (err instanceof OpenAI.APIError) {
    const status = err.status ?? 0;
    const body = err.error as { message?: string; code?: string; type?: string } | undefined;
    const message = body?.message ?? err.message;
    const details = { provider: 'openai', status, code: err.code ?? body?.code ?? null };
    if (status === 429) return new JobError('rate_limited', `OpenAI: ${message}`, true, details);
    if (status >= 500 || status === 408 || status === 409) {
      return new JobError('provider_unavailable', `OpenAI: ${message}`, true, details);
    }
    const code = String(err.code ?? body?.code ?? '');
    if (/content_policy|moderation_blocked|safety/i.test(code) || /safety system/i.test(message)) {
      return new JobError(
        'content_policy',
        `OpenAI refused the prompt: ${message}`,
        false,
        details,
      );
    }
    return new JobError('provider_rejected', `OpenAI: ${message}`, false, details);
  }
  return err;
}
