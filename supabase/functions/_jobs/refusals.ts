// The refusals a creator answers for a job it will not enqueue (4xx/503, one error shape), apart
// from the media code so that a kind without a file loads none of it.
import type { InputFile } from '../_shared/input-file.ts';
import type { Refusal, Route } from './kind.ts';
import type { ProviderConfig } from './providers.ts';

export function unsupported(
  type: string,
  contentType: string,
  accepted: readonly string[],
): Refusal {
  return {
    status: 422,
    code: 'unsupported_format',
    message: `${type} cannot process ${contentType || 'files of unknown type'}`,
    details: { content_type: contentType, accepted },
  };
}

export function unreadable(what: string, why: unknown): Refusal {
  return {
    status: 422,
    code: 'unreadable_file',
    message: `the input file is not a readable ${what}`,
    details: { reason: why instanceof Error ? why.message : String(why) },
  };
}

/**
 * A file whose header promises more bytes than it has (an interrupted upload): no route can
 * process it. Checked at create time from the head, and again by the worker on the whole file.
 */
export function truncatedFile(file: InputFile, reason: string): Refusal {
  return {
    status: 422,
    code: 'truncated_file',
    message: `the input file is cut short (${reason}): upload it again`,
    details: { size: file.size, reason },
  };
}

export function providerNotConfigured(provider: 'replicate' | 'openai', what: string): Refusal {
  const name = provider === 'openai' ? 'OpenAI' : 'Replicate';
  return {
    status: 503,
    code: 'provider_not_configured',
    message: `${what} needs ${name}, which this project has not configured`,
    details: { provider },
  };
}

/** Replicate when it is configured for `type`, otherwise the refusal. */
export function replicateOr(
  type: string,
  providers: ProviderConfig,
  otherwise: Refusal,
): Route | Refusal {
  return providers.replicate(type) ? { provider: 'replicate' } : otherwise;
}
