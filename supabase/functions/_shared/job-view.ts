// The public view of a job: what the API shows its owner. Lease and scheduling internals
// (lease_token, lease_expires_at, worker_id, fair_at, priority, idempotency_key, external ids,
// user_id) never leave the server: the jobs API reads only PUBLIC_JOB_COLUMNS, and the database
// lets `authenticated` select nothing else of jobs but user_id and priority (column privileges,
// migration 20261202141000_job_columns.sql, which PostgREST and Realtime both apply). parent_id,
// the flow a job belongs to, is public (20261203180000_parent_visible.sql): a flow's children are
// listed by it (GET /jobs?parent=<id>).
//
// Retrying (POST /jobs/<id>/retry, retry_job): `attempts` counts the attempts of the job's whole
// life and a retry gives it a fresh budget (max_attempts grows); each earlier run is in `history`
// (RetriedRun), and the retried job's `error` starts empty. A retry counts against the owner's
// jobs-per-minute rate like a new job (429 quota_rate). A permanent failure (error.retryable
// false) would fail the same way again: the retry is 409 not_retryable, saying why, unless the
// job's input file was replaced after it failed (see retryRefusal).
import type { JobRow } from './clients.ts';

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
] as const;

export type PublicJobField = (typeof PUBLIC_JOB_FIELDS)[number];
export type PublicJob = Pick<JobRow, PublicJobField>;

/**
 * The select list for PostgREST: only the public columns are ever read from jobs. Spelled out
 * (equal to PUBLIC_JOB_FIELDS joined by commas, which a test checks) so supabase-js types the rows.
 */
export const PUBLIC_JOB_COLUMNS =
  'id,type,status,progress,step,input,output,error,attempts,max_attempts,history,parent_id,run_at,created_at,started_at,finished_at,updated_at' as const;

/** Picks the public fields of a job row (any extra field is dropped). */
export function toPublicJob(row: PublicJob): PublicJob {
  const view = {} as Record<PublicJobField, unknown>;
  for (const field of PUBLIC_JOB_FIELDS) view[field] = row[field] ?? null;
  return view as PublicJob;
}

/** Where a job can be fetched, relative to the project URL. */
export function jobLocation(id: string): string {
  return `/functions/v1/jobs/${id}`;
}

/** One earlier run of a job, as retry_job archives it in `history` (oldest first, the last 20). */
export interface RetriedRun {
  status: 'failed' | 'cancelled';
  /** The job's attempts counter when the run ended. */
  attempts: number;
  max_attempts: number;
  error: { code?: string; message?: string; retryable?: boolean; [k: string]: unknown } | null;
  started_at: string | null;
  finished_at: string | null;
  retried_at: string;
}

/**
 * Why retry_job would refuse this job whatever the owner's quotas, as it decides: null if it may
 * be retried; 'invalid_transition' unless it failed or was cancelled (a pending job is accepted
 * and left as it is); 'not_retryable' for a permanent failure (error.retryable false), with
 * `unlessInputReplaced` when the job reads an input file: retry_job accepts it once that file was
 * uploaded again after the failure.
 */
export function retryRefusal(
  job: Pick<PublicJob, 'status' | 'error' | 'input'>,
): null | { code: 'invalid_transition' } | { code: 'not_retryable'; unlessInputReplaced: boolean } {
  if (job.status === 'pending') return null;
  if (job.status !== 'failed' && job.status !== 'cancelled') return { code: 'invalid_transition' };
  const error = job.error as { retryable?: unknown } | null;
  if (job.status === 'failed' && error?.retryable === false) {
    const input = job.input as { input_path?: unknown } | null;
    return { code: 'not_retryable', unlessInputReplaced: typeof input?.input_path === 'string' };
  }
  return null;
}
