// HTTP plumbing shared by every function: CORS, JSON responses and the one error shape
//   {"error": {"code": "<stable_snake_case>", "message": "<for humans>", "details": <optional>}}
// Handlers throw HttpError (or let a ZodError / Postgres API error escape) and `serve` turns it
// into that shape. Anything unexpected becomes a logged 500 `internal_error` without internals.

export const corsHeaders: Record<string, string> = {
  'access-control-allow-origin': '*',
  'access-control-allow-headers':
    'authorization, x-client-info, apikey, content-type, idempotency-key',
  'access-control-allow-methods': 'GET, POST, OPTIONS',
  'access-control-expose-headers': 'retry-after, location',
};

export interface ErrorBody {
  error: { code: string; message: string; details?: unknown };
}

export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details?: unknown,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = 'HttpError';
  }
}

export function json(body: unknown, status = 200, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { ...corsHeaders, 'content-type': 'application/json', ...headers },
  });
}

export function errorResponse(err: HttpError): Response {
  const body: ErrorBody = { error: { code: err.code, message: err.message } };
  if (err.details !== undefined) body.error.details = err.details;
  return json(body, err.status, err.headers);
}

/**
 * Retry-After for a 429 whose SQL error names no wait (quota_active_jobs: room comes back when one
 * of the caller's jobs ends, which nobody can predict): a polite polling interval.
 */
export const DEFAULT_RETRY_AFTER_SECONDS = 30;

/** A PostgREST error as supabase-js returns it. */
export interface ApiError {
  code?: string;
  message?: string;
  details?: string | null;
  hint?: string | null;
}

/**
 * Maps a Spool SQL API error to an HttpError. The SQL API raises SQLSTATE `PT<status>` with its
 * machine code in `hint` and JSON in `details`; anything else is unexpected.
 */
export function fromApiError(err: ApiError): HttpError {
  const status = /^PT(\d{3})$/.exec(err.code ?? '')?.[1];
  if (status) {
    let details: unknown = undefined;
    if (err.details) {
      try {
        details = JSON.parse(err.details);
      } catch {
        details = err.details;
      }
    }
    const headers: Record<string, string> = {};
    if (status === '429') {
      const retry = (details as { retry_after_seconds?: unknown } | undefined)?.retry_after_seconds;
      headers['retry-after'] = String(
        typeof retry === 'number' && retry > 0 ? Math.ceil(retry) : DEFAULT_RETRY_AFTER_SECONDS,
      );
    }
    return new HttpError(
      Number(status),
      err.hint || 'error',
      err.message ?? 'request failed',
      details,
      headers,
    );
  }
  // Not the API's own error: a bug or an outage. Logged here, since handle() logs only errors
  // that are not HttpErrors; the caller learns nothing of the internals.
  console.error(JSON.stringify({
    level: 'error',
    msg: 'unexpected database API error',
    code: err.code,
    message: err.message,
    details: err.details,
    hint: err.hint,
  }));
  return new HttpError(500, 'internal_error', 'the database refused the request', undefined);
}

/** Zod-style issues as a compact, stable list for `details`. */
export function issuesOf(
  err: { issues: { path: PropertyKey[]; message: string; code?: string }[] },
) {
  return err.issues.map((i) => ({ path: i.path.map(String).join('.'), message: i.message }));
}

function isZodError(err: unknown): err is { issues: { path: PropertyKey[]; message: string }[] } {
  return typeof err === 'object' && err !== null &&
    Array.isArray((err as { issues?: unknown }).issues) &&
    (err as Error).name === 'ZodError';
}

/** The media type of a Content-Type header, lowercased and without parameters. */
export function mediaType(header: string | null): string {
  return (header ?? '').split(';')[0].trim().toLowerCase();
}

/**
 * Reads at most `maxBytes` of a body; throws 413 `body_too_large` past that. A declared
 * Content-Length over the cap is refused before anything is read, and a body without one is
 * read only up to the cap, so an oversized upload never sits in memory whole.
 */
export async function readCappedBody(req: Request, maxBytes: number): Promise<Uint8Array> {
  const tooLarge = () =>
    new HttpError(413, 'body_too_large', `the request body must be at most ${maxBytes} bytes`);
  const declared = Number(req.headers.get('content-length') ?? NaN);
  if (Number.isFinite(declared) && declared > maxBytes) throw tooLarge();
  if (!req.body) return new Uint8Array(0);
  const chunks: Uint8Array[] = [];
  let total = 0;
  const reader = req.body.getReader();
  while (true) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > maxBytes) {
      await reader.cancel().catch(() => {});
      throw tooLarge();
    }
    chunks.push(value);
  }
  const body = new Uint8Array(total);
  let at = 0;
  for (const c of chunks) {
    body.set(c, at);
    at += c.byteLength;
  }
  return body;
}

/** Whether a string holds a NUL character or a UTF-16 surrogate half without its partner. */
const unstorable = (text: string) => text.includes('\u0000') || !text.isWellFormed();

/**
 * The path ("a.0.b", "" for the value itself) of the first string, object key included, that
 * Postgres cannot store: jsonb and text refuse NUL (\u0000), and a lone surrogate is no Unicode
 * text (JSON.parse accepts "\ud800", UTF-8 cannot carry it). Null when every string is fine.
 */
export function unstorableTextPath(value: unknown, path: string[] = []): string | null {
  if (typeof value === 'string') return unstorable(value) ? path.join('.') : null;
  if (typeof value !== 'object' || value === null) return null;
  for (const [key, child] of Object.entries(value)) {
    if (unstorable(key)) return [...path, key].join('.');
    const found = unstorableTextPath(child, [...path, key]);
    if (found !== null) return found;
  }
  return null;
}

/**
 * Reads a JSON object body: 415 for another content type, 413 past `maxBytes`, 400 for malformed
 * JSON (`invalid_json`), a value that is not an object, or one holding a string Postgres cannot
 * store (`invalid_body`, naming its path: see unstorableTextPath), so no endpoint reaches the
 * database with it and answers 500.
 */
export async function readJsonObject(
  req: Request,
  maxBytes = 65536,
): Promise<Record<string, unknown>> {
  const type = mediaType(req.headers.get('content-type'));
  if (type !== 'application/json' && !/^application\/[\w.+-]+\+json$/.test(type)) {
    throw new HttpError(415, 'unsupported_media_type', 'send the request body as application/json');
  }
  const bytes = await readCappedBody(req, maxBytes);
  let body: unknown;
  try {
    body = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch {
    throw new HttpError(400, 'invalid_json', 'the request body is not valid JSON');
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new HttpError(400, 'invalid_body', 'the request body must be a JSON object');
  }
  const bad = unstorableTextPath(body);
  if (bad !== null) {
    throw new HttpError(400, 'invalid_body', 'the request body is invalid', [
      { path: bad, message: 'text must not contain NUL characters or unpaired surrogates' },
    ]);
  }
  return body as Record<string, unknown>;
}

export type Handler = (req: Request) => Promise<Response>;

/**
 * Wraps a handler: answers CORS preflights, allows only `methods`, and turns every thrown error
 * into the one error shape. Unexpected errors are logged with `name` and answered with 500.
 */
export function handle(name: string, methods: string[], handler: Handler): Handler {
  return async (req) => {
    if (req.method === 'OPTIONS') return new Response(null, { status: 204, headers: corsHeaders });
    try {
      if (!methods.includes(req.method)) {
        throw new HttpError(405, 'method_not_allowed', `use ${methods.join(' or ')}`, undefined, {
          allow: methods.join(', '),
        });
      }
      return await handler(req);
    } catch (err) {
      if (err instanceof HttpError) return errorResponse(err);
      if (isZodError(err)) {
        return errorResponse(
          new HttpError(400, 'invalid_body', 'the request body is invalid', issuesOf(err)),
        );
      }
      console.error(JSON.stringify({
        level: 'error',
        function: name,
        msg: 'unhandled error',
        error: err instanceof Error ? (err.stack ?? err.message) : String(err),
      }));
      return errorResponse(
        new HttpError(500, 'internal_error', 'something went wrong on our side'),
      );
    }
  };
}
