// The one module that talks to Spool's Edge Functions, through supabase.functions.invoke:
//   the creators   POST /functions/v1/<type>                 -> 202 {job}
//                  POST /functions/v1/pack                   -> 202 {job, children}
//   the jobs API   GET  /jobs, GET /jobs/<id>, POST /jobs/<id>/cancel|retry, GET /jobs/health
//                  (GET /jobs/kinds: lib/kinds.ts fetchKinds)
// Every failure becomes an ApiError with a stable `code` (the functions' error shape
// {"error": {code, message, details}}, or the gateway's {code, message}) and a `friendly`
// message for people.
import type { Json } from '../../../supabase/functions/_shared/database.types.ts';
import type { JobState } from './job-states.ts';
import { ApiError, toApiError } from './api-error.ts';
import { supabase } from './supabase.ts';

export { ApiError, toApiError };

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
  /** The flow parent this job is a child of (a pack's image or text job), or null. */
  parent_id: string | null;
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
  'parent_id',
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

export async function call<T>(
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
  type: string,
  body: Record<string, unknown>,
  idempotencyKey: string,
): Promise<Job> {
  const res = await call<{ job: Job }>(type, {
    body,
    headers: { 'Idempotency-Key': idempotencyKey },
  });
  return res.job;
}

/** Starts a complete pack (the pack creator); the key makes a repeated click return the same pack. */
export async function createPack(
  body: Record<string, unknown>,
  idempotencyKey: string,
): Promise<{ job: Job; children: Job[] }> {
  return await call<{ job: Job; children: Job[] }>('pack', {
    body,
    headers: { 'Idempotency-Key': idempotencyKey },
  });
}

export async function listJobs(
  opts: {
    cursor?: string | null;
    limit?: number;
    status?: JobState[];
    type?: string[];
    /** Only this flow parent's children. */
    parent?: string;
  } = {},
): Promise<JobPage> {
  const q = new URLSearchParams();
  q.set('limit', String(opts.limit ?? 10));
  if (opts.cursor) q.set('cursor', opts.cursor);
  if (opts.status?.length) q.set('status', opts.status.join(','));
  if (opts.type?.length) q.set('type', opts.type.join(','));
  if (opts.parent) q.set('parent', opts.parent);
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

/**
 * One job type's limits as claim and create apply them, and its activity now (the health
 * response's `job_types`, public.job_type_stats). A null limit is no limit; a null retention is
 * spool.settings' default. Retentions are Postgres intervals as text ("7 days", "01:00:00").
 */
export interface JobTypeStats {
  type: string;
  max_running: number | null;
  rate_per_minute: number | null;
  timeout_seconds: number | null;
  max_attempts: number | null;
  priority: number | null;
  retention_done: string | null;
  retention_failed: string | null;
  running: number;
  started_last_minute: number;
  pending: number;
}

export interface Health {
  stats: QueueStats;
  /** Absent (null here) from a server older than the per-type limits. */
  job_types: JobTypeStats[] | null;
}

/**
 * Queue health (get_queue_stats over the last `windowSeconds`, and the job types' limits and
 * activity): admins only (403 otherwise).
 */
export async function getHealth(windowSeconds = 60): Promise<Health> {
  const res = await call<{ stats: QueueStats; job_types?: unknown }>(
    `jobs/health?window_seconds=${windowSeconds}`,
    { method: 'GET' },
  );
  return {
    stats: res.stats,
    job_types: Array.isArray(res.job_types) ? (res.job_types as JobTypeStats[]) : null,
  };
}
