// Replicate, as Spool uses it: create a prediction that calls back (job-worker hands a job over),
// verify the callback's signature (job-callback), read a prediction (the sweep-side poll), and
// settle a finished prediction into its job: store its output files and resume the job. The
// webhook and the poll share `settlePrediction`, so a prediction ends the same way whichever
// arrives first, and the second changes nothing (resume_job ignores jobs no longer waiting).
//
// Plain fetch against the HTTP API (https://replicate.com/docs/reference/http): the calls are
// few and small, and tests point REPLICATE_API_BASE at a local fake (ProviderConfig.replicateApiBase).
import { Webhook, WebhookVerificationError } from '../_shared/deps.ts';
import type { ApiError } from '../_shared/http.ts';
import { JobError, type OutputFile } from './kind.ts';

/** Replicate's webhook signatures older (or newer) than this are refused (replay protection). */
export const WEBHOOK_TOLERANCE_SECONDS = 5 * 60;
/** Largest output file the callback stores (the outputs bucket's own cap). */
export const MAX_OUTPUT_BYTES = 200 * 1024 * 1024;

export type PredictionStatus =
  | 'starting'
  | 'processing'
  | 'succeeded'
  | 'failed'
  | 'canceled'
  | 'aborted';

/** The fields of a Replicate prediction object Spool reads. */
export interface Prediction {
  id: string;
  status: PredictionStatus;
  version?: string;
  output?: unknown;
  error?: unknown;
  logs?: string | null;
  metrics?: Record<string, unknown>;
  created_at?: string;
  completed_at?: string | null;
}

export const TERMINAL: readonly PredictionStatus[] = ['succeeded', 'failed', 'canceled', 'aborted'];

export interface ReplicateApi {
  apiBase: string;
  token: string;
  fetch?: typeof fetch;
}

function providerError(status: number, body: string, what: string): JobError {
  let message = body.slice(0, 500);
  try {
    const parsed = JSON.parse(body);
    message = String(parsed.detail ?? parsed.title ?? parsed.error ?? message);
  } catch {
    // not JSON: keep the text
  }
  const retryable = status === 429 || status >= 500;
  return new JobError(
    retryable ? 'provider_unavailable' : 'provider_rejected',
    `Replicate ${what} answered ${status}: ${message}`,
    retryable,
    { provider: 'replicate', status },
  );
}

async function request(
  api: ReplicateApi,
  method: string,
  path: string,
  body?: unknown,
): Promise<Prediction> {
  const doFetch = api.fetch ?? fetch;
  let res: Response;
  try {
    res = await doFetch(`${api.apiBase}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${api.token}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(30_000),
    });
  } catch (err) {
    throw new JobError(
      'provider_unavailable',
      `Replicate could not be reached: ${(err as Error).message}`,
      true,
      {
        provider: 'replicate',
      },
    );
  }
  const text = await res.text();
  if (!res.ok) throw providerError(res.status, text, `${method} ${path.split('?')[0]}`);
  try {
    return JSON.parse(text) as Prediction;
  } catch {
    throw new JobError(
      'provider_unavailable',
      'Replicate answered with something that is not JSON',
      true,
    );
  }
}

/**
 * Creates a prediction that calls `webhook` once it completes. Throws JobError: retryable for
 * 429, 5xx and network failures, permanent for other refusals.
 */
export function createPrediction(
  api: ReplicateApi,
  params: { version: string; input: Record<string, unknown>; webhook: string },
): Promise<Prediction> {
  return request(api, 'POST', '/predictions', {
    version: params.version,
    input: params.input,
    webhook: params.webhook,
    webhook_events_filter: ['completed'],
  });
}

export function getPrediction(api: ReplicateApi, id: string): Promise<Prediction> {
  return request(api, 'GET', `/predictions/${encodeURIComponent(id)}`);
}

// Webhook signatures (Standard Webhooks, as Replicate signs them) ---------------------------------
// Verified with the `standardwebhooks` package (the scheme's reference library, which Replicate's
// own client builds on): HMAC-SHA256 over "<webhook-id>.<webhook-timestamp>.<raw body>" with the
// base64 key after `whsec_`, any one of the space-separated "v1,<base64>" signatures matching
// (key rotation), compared in constant time. Only its clock is Spool's: the 5-minute window is
// measured from the caller's `nowSeconds`, so the callback and its tests share one clock.

/** A Webhook whose timestamp window is measured from `nowSeconds` instead of Date.now(). */
function webhookAt(secret: string, nowSeconds: number): Webhook {
  const webhook = new Webhook(secret);
  // standardwebhooks@1.1.1 checks the window in its (private) verifyTimestamp; the same rules
  // against the injected clock. Tested: a signature dated at `nowSeconds`, far from today, verifies.
  Object.defineProperty(webhook, 'verifyTimestamp', {
    value: (header: string): Date => {
      const timestamp = Number(header);
      if (Math.abs(nowSeconds - timestamp) > WEBHOOK_TOLERANCE_SECONDS) {
        throw new WebhookVerificationError('webhook-timestamp is too old or in the future');
      }
      return new Date(timestamp * 1000);
    },
  });
  return webhook;
}

/** The `webhook-signature` header value for a body (used by tests and fakes). */
export function signWebhook(
  secret: string,
  id: string,
  timestamp: number,
  body: string,
): Promise<string> {
  return Promise.resolve(new Webhook(secret).sign(id, new Date(timestamp * 1000), body));
}

export type SignatureCheck = { ok: true } | { ok: false; why: string };

/**
 * Verifies a webhook per Replicate's scheme (Standard Webhooks, see above). The timestamp must be
 * whole seconds within 5 minutes of `nowSeconds`.
 */
export function verifyWebhook(
  secret: string,
  headers: Headers,
  body: string,
  nowSeconds: number,
): Promise<SignatureCheck> {
  const id = headers.get('webhook-id');
  const timestamp = headers.get('webhook-timestamp');
  const signatures = headers.get('webhook-signature');
  if (!id || !timestamp || !signatures) {
    return Promise.resolve({
      ok: false,
      why: 'missing webhook-id, webhook-timestamp or webhook-signature',
    });
  }
  // Stricter than the library's parseInt: "12abc" or "1e9" is malformed, not a time.
  if (!/^\d{1,12}$/.test(timestamp)) {
    return Promise.resolve({ ok: false, why: 'malformed webhook-timestamp' });
  }
  let webhook: Webhook;
  try {
    webhook = webhookAt(secret, nowSeconds);
  } catch {
    return Promise.resolve({ ok: false, why: 'the webhook secret is not configured correctly' });
  }
  try {
    webhook.verify(body, {
      'webhook-id': id,
      'webhook-timestamp': timestamp,
      'webhook-signature': signatures,
    }, { jsonParse: false });
    return Promise.resolve({ ok: true });
  } catch (err) {
    const why = err instanceof WebhookVerificationError
      ? (err.message === 'No matching signature found' ? 'no signature matches' : err.message)
      : 'the signature could not be checked';
    return Promise.resolve({ ok: false, why });
  }
}

// Settling a finished prediction ------------------------------------------------------------------

/** The URLs in a prediction's output: a string, an array of them, or an object holding them. */
export function outputUrls(output: unknown): string[] {
  const urls: string[] = [];
  const walk = (v: unknown, depth: number) => {
    if (depth > 4) return;
    if (typeof v === 'string') {
      if (/^https?:\/\//i.test(v)) urls.push(v);
    } else if (Array.isArray(v)) {
      for (const x of v) walk(x, depth + 1);
    } else if (v && typeof v === 'object') {
      for (const x of Object.values(v)) walk(x, depth + 1);
    }
  };
  walk(output, 0);
  return [...new Set(urls)];
}

/**
 * Whether a failed prediction is worth another attempt: infrastructure trouble (out of memory,
 * timeouts, interruptions, capacity) is; a model that rejects its input is not, and neither is a
 * prediction someone cancelled.
 */
export function failureOutcome(prediction: Prediction): 'retry' | 'failed' {
  if (prediction.status === 'canceled') return 'failed';
  if (prediction.status === 'aborted') return 'retry';
  const error = typeof prediction.error === 'string'
    ? prediction.error
    : JSON.stringify(prediction.error ?? '');
  return /out of memory|oom|timed? ?out|timeout|interrupted|retry|temporar|unavailable|capacity|rate limit|internal error|connection/i
      .test(error)
    ? 'retry'
    : 'failed';
}

/** A waiting job as the settling code needs it. */
export interface WaitingJob {
  id: string;
  user_id: string;
  type: string;
  status: string;
}

export interface SettleDeps {
  rpc(
    fn: string,
    args: Record<string, unknown>,
  ): PromiseLike<{ data: unknown; error: ApiError | null }>;
  /** The job waiting on (provider, external id), in any state, or null. */
  findJob(provider: string, externalId: string): Promise<WaitingJob | null>;
  /** Writes outputs/<path> (overwriting). */
  upload(path: string, bytes: Uint8Array, contentType: string): Promise<void>;
  fetch?: typeof fetch;
  log(line: Record<string, unknown>): void;
}

export type SettleResult =
  | { result: 'unknown' }
  | { result: 'not_waiting'; job_id: string; status: string }
  | { result: 'still_running'; job_id: string }
  | { result: 'resumed'; job_id: string; outcome: 'done' | 'retry' | 'failed'; status: string };

const EXTENSIONS: Record<string, string> = {
  'image/png': 'png',
  'image/jpeg': 'jpg',
  'image/webp': 'webp',
  'audio/wav': 'wav',
  'audio/x-wav': 'wav',
  'audio/mpeg': 'mp3',
  'video/mp4': 'mp4',
  'video/webm': 'webm',
  'video/quicktime': 'mov',
  'application/json': 'json',
};

/** A safe object name for the i-th output, from its URL's last segment or its type. */
export function outputName(url: string, index: number, contentType: string): string {
  let base = '';
  try {
    base = decodeURIComponent(new URL(url).pathname.split('/').pop() ?? '');
  } catch {
    base = '';
  }
  base = base.replace(/[^\w.-]+/g, '_').replace(/^\.+/, '').slice(0, 100);
  if (!base || !/\.[a-z0-9]{1,5}$/i.test(base)) {
    const ext = EXTENSIONS[contentType] ?? 'bin';
    base = `output-${index}.${ext}`;
  }
  return `replicate-${index}-${base}`;
}

async function download(
  doFetch: typeof fetch,
  url: string,
): Promise<{ bytes: Uint8Array; contentType: string }> {
  const res = await doFetch(url, { signal: AbortSignal.timeout(120_000) });
  if (!res.ok) {
    await res.body?.cancel();
    throw new Error(`downloading ${new URL(url).host} output answered ${res.status}`);
  }
  const declared = Number(res.headers.get('content-length') ?? NaN);
  if (Number.isFinite(declared) && declared > MAX_OUTPUT_BYTES) {
    await res.body?.cancel();
    throw new Error(`output is ${declared} bytes, more than ${MAX_OUTPUT_BYTES}`);
  }
  const bytes = new Uint8Array(await res.arrayBuffer());
  if (bytes.length > MAX_OUTPUT_BYTES) {
    throw new Error(`output is more than ${MAX_OUTPUT_BYTES} bytes`);
  }
  const contentType = (res.headers.get('content-type') ?? 'application/octet-stream').split(';')[0]
    .trim()
    .toLowerCase();
  return { bytes, contentType };
}

async function resume(
  deps: SettleDeps,
  externalId: string,
  outcome: 'done' | 'retry' | 'failed',
  payload: { output?: unknown; error?: unknown },
): Promise<string> {
  const { data, error } = await deps.rpc('resume_job', {
    p_provider: 'replicate',
    p_external_id: externalId,
    p_outcome: outcome,
    p_output: payload.output ?? null,
    p_error: payload.error ?? null,
  });
  if (error) throw new Error(`resume_job failed: ${error.message ?? error.code}`);
  return (data as { status?: string } | null)?.status ?? 'unknown';
}

/**
 * Ends the job waiting on a finished prediction: a success stores every output file under
 * outputs/<user>/<job>/ and resumes the job as done with a JobOutput; a failure resumes it as
 * retry or failed (failureOutcome). Unknown predictions and jobs no longer waiting change nothing.
 * A download or Storage failure throws (the job keeps waiting; the next poll tries again).
 */
export async function settlePrediction(
  deps: SettleDeps,
  prediction: Prediction,
): Promise<SettleResult> {
  const job = await deps.findJob('replicate', prediction.id);
  if (!job) return { result: 'unknown' };
  if (job.status !== 'waiting') {
    return { result: 'not_waiting', job_id: job.id, status: job.status };
  }
  if (!TERMINAL.includes(prediction.status)) return { result: 'still_running', job_id: job.id };

  if (prediction.status === 'succeeded') {
    const doFetch = deps.fetch ?? fetch;
    const files: OutputFile[] = [];
    const urls = outputUrls(prediction.output);
    for (const [i, url] of urls.entries()) {
      const { bytes, contentType } = await download(doFetch, url);
      const path = `${job.user_id}/${job.id}/${outputName(url, i, contentType)}`;
      await deps.upload(path, bytes, contentType);
      files.push({ path, content_type: contentType, size: bytes.length });
    }
    const output: Record<string, unknown> = {
      files,
      provider: 'replicate',
      prediction_id: prediction.id,
    };
    if (urls.length === 0 && prediction.output !== undefined) output.result = prediction.output;
    const predictTime = prediction.metrics?.predict_time;
    if (typeof predictTime === 'number') output.predict_time_seconds = predictTime;
    const status = await resume(deps, prediction.id, 'done', { output });
    return { result: 'resumed', job_id: job.id, outcome: 'done', status };
  }

  const outcome = failureOutcome(prediction);
  const message = typeof prediction.error === 'string' && prediction.error
    ? prediction.error.slice(0, 1000)
    : `the prediction ended ${prediction.status}`;
  const status = await resume(deps, prediction.id, outcome, {
    error: {
      code: prediction.status === 'canceled' ? 'provider_cancelled' : 'provider_failed',
      message: `Replicate: ${message}`,
      prediction_id: prediction.id,
    },
  });
  return { result: 'resumed', job_id: job.id, outcome, status };
}
