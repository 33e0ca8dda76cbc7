// How a failed call to Spool's Edge Functions is told to people: an ApiError with a stable `code`
// (the functions' error shape {"error": {code, message, details}}, or the gateway's {code,
// message}) and a `friendly` message. Used by lib/jobs.ts and lib/kinds.ts.
//
// No imports: supabase-js's FunctionsHttpError, FunctionsRelayError and FunctionsFetchError are
// recognised by the `name` functions-js gives each (set in their constructors, so it survives
// minification) rather than by instanceof, so this module (and kinds.ts, which uses it) loads in
// Deno for web/tests/kinds.test.ts without resolving the npm package.

/** What functions.invoke returns as `error`: a FunctionsError of functions-js, by its name. */
function isFunctionsError(
  error: unknown,
  name: 'FunctionsHttpError' | 'FunctionsRelayError' | 'FunctionsFetchError',
): error is Error & { context: unknown } {
  return error instanceof Error && error.name === name && 'context' in error;
}

/** A refused or failed call, with a message for people. */
export class ApiError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly friendly: string,
    readonly status: number | null = null,
    readonly details?: unknown,
    /** Seconds a refusal asks the caller to wait (its Retry-After header), or null. */
    readonly retryAfter: number | null = null,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

type Issue = { path?: string; param?: string; message?: string };

function issuesText(details: unknown): string {
  if (!Array.isArray(details)) return '';
  return (details as Issue[])
    .map((i) => `${i.path || i.param ? `${i.path ?? i.param}: ` : ''}${i.message ?? ''}`)
    .filter(Boolean)
    .join('; ');
}

/** People-facing wording per stable error code; the server's message is used otherwise. */
function friendlyMessage(
  code: string,
  message: string,
  status: number | null,
  details: unknown,
  retryAfter: string | null,
): string {
  const wait = retryAfter && /^\d+$/.test(retryAfter) ? ` Try again in ${retryAfter} s.` : '';
  switch (code) {
    case 'unauthorized':
    case 'invalid_token':
    case 'Invalid JWT':
      return 'Your session has expired. Reload the page to sign in again.';
    case 'quota_rate':
      return `You are starting jobs too quickly.${wait || ' Try again in a minute.'}`;
    case 'quota_active_jobs':
      return `You have too many unfinished jobs. Wait for some to finish or cancel a few.${wait}`;
    case 'invalid_body':
    case 'invalid_query': {
      const issues = issuesText(details);
      return issues ? `Some settings are not valid: ${issues}.` : message;
    }
    case 'input_not_found':
      return 'The uploaded file is gone. Upload it again.';
    case 'forbidden_input':
      return 'That file is not in your own folder. Upload it again.';
    case 'job_not_found':
      return 'That job does not exist, or it is not yours.';
    case 'invalid_transition':
      return `That cannot be done now: ${message}.`;
    case 'not_retryable':
      return (details as { input_path?: unknown } | undefined)?.input_path
        ? 'This job failed for good: retrying it as it is would fail the same way. Upload a fixed file under the same name first, or start a new job.'
        : 'This job failed for good: retrying it as it is would fail the same way. Start a new job with different settings.';
    case 'network':
      return "Can't reach Spool. Check your connection and try again.";
    case 'BOOT_ERROR':
    case 'WORKER_ERROR':
    case 'WORKER_LIMIT':
    case 'internal_error':
      return 'Something went wrong on our side. Try again in a moment.';
  }
  if (status !== null && status >= 500 && !message) {
    return 'Something went wrong on our side. Try again in a moment.';
  }
  // The functions' own messages (unsupported_format, image_too_large, provider_not_configured,
  // ...) are written for people already: capitalise and end them.
  const text = message || 'The request failed.';
  return text.charAt(0).toUpperCase() + text.slice(1) + (/[.!?]$/.test(text) ? '' : '.');
}

/** Turns what functions.invoke returned as `error` into an ApiError. */
export async function toApiError(error: unknown): Promise<ApiError> {
  if (isFunctionsError(error, 'FunctionsHttpError') && error.context instanceof Response) {
    const res = error.context;
    let body: unknown = null;
    try {
      body = await res.clone().json();
    } catch {
      // not JSON: keep the status
    }
    const shaped = (body as { error?: { code?: unknown; message?: unknown; details?: unknown } })
      ?.error;
    const gateway = body as { code?: unknown; message?: unknown } | null;
    const code = typeof shaped?.code === 'string'
      ? shaped.code
      : typeof gateway?.code === 'string'
      ? gateway.code
      : `http_${res.status}`;
    const message = typeof shaped?.message === 'string'
      ? shaped.message
      : typeof gateway?.message === 'string'
      ? gateway.message
      : res.statusText;
    const details = shaped?.details;
    const retryAfter = res.headers.get('retry-after');
    return new ApiError(
      code,
      message,
      friendlyMessage(code, message, res.status, details, retryAfter),
      res.status,
      details,
      retryAfter && /^\d+$/.test(retryAfter) ? Number(retryAfter) : null,
    );
  }
  if (isFunctionsError(error, 'FunctionsRelayError') || isFunctionsError(error, 'FunctionsFetchError')) {
    return new ApiError('network', String(error.message), friendlyMessage('network', '', null, null, null));
  }
  if (error instanceof ApiError) return error;
  const message = error instanceof Error ? error.message : String(error);
  return new ApiError('unknown', message, friendlyMessage('unknown', message, null, null, null));
}
