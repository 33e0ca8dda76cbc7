// The public view of a job: what the API shows its owner. Lease and scheduling internals
// (lease_token, lease_expires_at, worker_id, fair_at, priority, idempotency_key, external ids,
// user_id) never leave the server.
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
  'id,type,status,progress,step,input,output,error,attempts,max_attempts,run_at,created_at,started_at,finished_at,updated_at' as const;

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
