// The one module that talks to Spool's Edge Functions, through supabase.functions.invoke:
//   the creators   POST /functions/v1/<type>                 -> 202 {job}
//   the jobs API   GET  /jobs, GET /jobs/<id>, POST /jobs/<id>/cancel|retry, GET /jobs/health
// Every failure becomes an ApiError with a stable `code` (the functions' error shape
// {"error": {code, message, details}}, or the gateway's {code, message}) and a `friendly`
// message for people.
import {
  FunctionsFetchError,
  FunctionsHttpError,
  FunctionsRelayError,
} from '@supabase/supabase-js';
import type { Json } from '../../../supabase/functions/_shared/database.types.ts';
import type { JobState } from './job-states.ts';
import type { FieldValue, JobType } from './operations.ts';
import { supabase } from './supabase.ts';

/** The public view of a job (supabase/functions/_shared/job-view.ts PUBLIC_JOB_FIELDS). */
export interface Job {
  id: string;
  type: string;
  status: JobState;
  progress: number;
  step: string | null;
  input: Record<string, Json | undefined>;
  output: Json | null;
  error: { code?: string; message?: string; [k: string]: Json | undefined } | null;
  /** Attempts over the job's whole life; a retry raises max_attempts by a fresh budget. */
  attempts: number;
  max_attempts: number;
  /** Earlier runs, oldest first, one per retry (job-view.ts RetriedRun). */
  history: RetriedRun[] | null;
  run_at: string;
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
  updated_at: string;
}

/** One earlier run of a job, as a retry archived it. */
export interface RetriedRun {
  status: JobState;
  attempts: number;
  max_attempts: number;
  error: { code?: string; message?: string; [k: string]: Json | undefined } | null;
  started_at: string | null;
  finished_at: string | null;
  retried_at: string;
}

export const PUBLIC_JOB_FIELDS = [
  'id',
  'type',
  'status',
  'progress',
  'step',
  'input',
  'output',
  'error',
  'attempts',
  'max_attempts',
  'history',
  'run_at',
  'created_at',
  'started_at',
  'finished_at',
  'updated_at',
] as const satisfies readonly (keyof Job)[];

/** Picks the public fields of a row (e.g. a Realtime record, which has every column). */
export function toJob(row: Record<string, unknown>): Job {
  const job: Record<string, unknown> = {};
  for (const f of PUBLIC_JOB_FIELDS) job[f] = row[f] ?? null;
  return job as unknown as Job;
}

export interface OutputFile {
  path: string;
  content_type: string;
  size: number;
  width?: number;
  height?: number;
  duration_seconds?: number;
  /** Signed download URL (1 hour), or null if it could not be signed. */
  url: string | null;
  expires_at: string | null;
}

export interface JobDetail {
  job: Job;
  output_url: string | null;
  output_files: OutputFile[];
}

export interface JobPage {
  jobs: Job[];
  next_cursor: string | null;
}

export interface QueueStats {
  at: string;
  window_seconds: number;
  depth: { type: string; status: JobState; count: number }[];
  oldest_pending_seconds: number | null;
  running: number;
  waiting: number;
  window: WindowStats;
  by_type: (WindowStats & { type: string })[];
}
export interface WindowStats {
  finished: number;
  done: number;
  failed: number;
  cancelled: number;
  success_rate: number | null;
  p50_ms: number | null;
  p95_ms: number | null;
}

/** A refused or failed call, with a message for people. */
export class ApiError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly friendly: string,
    readonly status: number | null = null,
    readonly details?: unknown,
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
  if (error instanceof FunctionsHttpError) {
    const res = error.context as Response;
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
    return new ApiError(
      code,
      message,
      friendlyMessage(code, message, res.status, details, res.headers.get('retry-after')),
      res.status,
      details,
    );
  }
  if (error instanceof FunctionsRelayError || error instanceof FunctionsFetchError) {
    return new ApiError('network', String((error as Error).message), friendlyMessage('network', '', null, null, null));
  }
  if (error instanceof ApiError) return error;
  const message = error instanceof Error ? error.message : String(error);
  return new ApiError('unknown', message, friendlyMessage('unknown', message, null, null, null));
}

async function call<T>(
  name: string,
  options: { method?: 'GET' | 'POST'; body?: Record<string, unknown>; headers?: Record<string, string> } = {},
): Promise<T> {
  let result;
  try {
    result = await supabase.functions.invoke<T>(name, {
      method: options.method ?? 'POST',
      body: options.body,
      headers: options.headers,
    });
  } catch (err) {
    throw await toApiError(err);
  }
  if (result.error) throw await toApiError(result.error);
  if (result.data === null || typeof result.data !== 'object') {
    throw new ApiError('bad_response', `unexpected response from ${name}`, 'Spool answered in a way this page does not understand. Reload and try again.');
  }
  return result.data;
}

/** Starts a job with the type's creator; the key makes a repeated click return the same job. */
export async function createJob(
  type: JobType,
  body: Record<string, FieldValue>,
  idempotencyKey: string,
): Promise<Job> {
  const res = await call<{ job: Job }>(type, {
    body,
    headers: { 'Idempotency-Key': idempotencyKey },
  });
  return res.job;
}

export async function listJobs(
  opts: { cursor?: string | null; limit?: number; status?: JobState[]; type?: string[] } = {},
): Promise<JobPage> {
  const q = new URLSearchParams();
  q.set('limit', String(opts.limit ?? 10));
  if (opts.cursor) q.set('cursor', opts.cursor);
  if (opts.status?.length) q.set('status', opts.status.join(','));
  if (opts.type?.length) q.set('type', opts.type.join(','));
  return await call<JobPage>(`jobs?${q}`, { method: 'GET' });
}

export async function getJob(id: string): Promise<JobDetail> {
  return await call<JobDetail>(`jobs/${encodeURIComponent(id)}`, { method: 'GET' });
}

export async function cancelJob(id: string): Promise<Job> {
  return (await call<{ job: Job }>(`jobs/${encodeURIComponent(id)}/cancel`)).job;
}

export async function retryJob(id: string): Promise<Job> {
  return (await call<{ job: Job }>(`jobs/${encodeURIComponent(id)}/retry`)).job;
}

/** Queue health (get_queue_stats over the last `windowSeconds`): admins only (403 otherwise). */
export async function getHealth(windowSeconds = 60): Promise<QueueStats> {
  return (await call<{ stats: QueueStats }>(`jobs/health?window_seconds=${windowSeconds}`, {
    method: 'GET',
  })).stats;
}
