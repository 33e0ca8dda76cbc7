// Job states: one vocabulary with the SQL enum public.job_status (through the generated
// database.types.ts) and supabase/functions/_jobs/kind.ts JOB_STATES. The UI's labels,
// tones and allowed actions are derived from it here and nowhere else.
import type { Database } from '../../../supabase/functions/_shared/database.types.ts';

export type JobState = Database['public']['Enums']['job_status'];

export const JOB_STATES = [
  'pending',
  'running',
  'waiting',
  'done',
  'failed',
  'cancelled',
] as const satisfies readonly JobState[];

// Compile-time check that the list above names every state of the enum.
type Missing = Exclude<JobState, (typeof JOB_STATES)[number]>;
const everyState: [Missing] extends [never] ? true : Missing = true;
void everyState;

export const TERMINAL_STATES: readonly JobState[] = ['done', 'failed', 'cancelled'];

interface StateInfo {
  /** What the user reads. */
  label: string;
  /** One sentence for screen readers and tooltips. */
  description: string;
  /** Colour family of the badge (see styles.css .badge--*). */
  tone: 'neutral' | 'active' | 'success' | 'danger' | 'muted';
}

export const STATE_INFO: Record<JobState, StateInfo> = {
  pending: { label: 'Queued', description: 'Waiting for a worker to pick it up.', tone: 'neutral' },
  running: { label: 'Running', description: 'A worker is processing it.', tone: 'active' },
  waiting: {
    label: 'Waiting',
    description:
      'Waiting for something other than a worker: a provider that will call back, the jobs it depends on, or its parts (a pack).',
    tone: 'active',
  },
  done: { label: 'Done', description: 'Finished: the result is ready.', tone: 'success' },
  failed: { label: 'Failed', description: 'It stopped with an error.', tone: 'danger' },
  cancelled: { label: 'Cancelled', description: 'It was cancelled.', tone: 'muted' },
};

/**
 * A running job whose worker waits for a free media slot (it reported step 'queued',
 * supabase/functions/job-worker/media-slots.ts): claimed, but no work has started. Shown as
 * such, never as Running: its state is still `running` (the one vocabulary), the words differ.
 */
export const isWaitingForSlot = (job: { status: JobState; step: string | null }) =>
  job.status === 'running' && job.step === 'queued';

const SLOT_WAIT_INFO: StateInfo = {
  label: 'Waiting for a slot',
  description: 'A worker has taken it but waits for a free worker slot: no work has started yet.',
  tone: 'neutral',
};

/** What a job's badge says: its state's words, or SLOT_WAIT_INFO while it waits for a slot. */
export const shownState = (job: { status: JobState; step: string | null }): StateInfo =>
  isWaitingForSlot(job) ? SLOT_WAIT_INFO : STATE_INFO[job.status];

/** What stands where a result will be (or would have been), by state: "Cancelled, no result." */
export function noResultCaption(status: JobState): string {
  switch (status) {
    case 'cancelled':
      return 'Cancelled, no result.';
    case 'failed':
      return 'Failed, no result.';
    case 'done':
      return 'Loading…';
    default:
      return 'Not ready yet.';
  }
}

export const isTerminal = (s: JobState) => TERMINAL_STATES.includes(s);
/** cancel_job accepts unfinished jobs. */
export const canCancel = (s: JobState) => s === 'pending' || s === 'running' || s === 'waiting';
/** retry_job accepts failed and cancelled jobs (subject to the next two rules and the quotas). */
export const canRetry = (s: JobState) => s === 'failed' || s === 'cancelled';

interface RetryFacts {
  status: JobState;
  error: { retryable?: unknown; [k: string]: unknown } | null;
  input: { input_path?: unknown; [k: string]: unknown } | null;
}

/**
 * Why a retry would not help, as retry_job decides (job-view.ts retryRefusal): a permanent
 * failure (error.retryable false) is refused unless the job reads a file that was uploaded again
 * since. Returns what to tell the user and whether the Retry button can still work (only after
 * the file is replaced), or null when a retry is fine.
 */
export function retryBlocker(job: RetryFacts): { note: string; possible: boolean } | null {
  if (job.status !== 'failed' || job.error?.retryable !== false) return null;
  return typeof job.input?.input_path === 'string'
    ? {
      note: 'This failure is permanent: retrying the same file would fail the same way. ' +
        'Upload a fixed file under the same name, then retry, or start a new job.',
      possible: true,
    }
    : {
      note: 'This failure is permanent: retrying it unchanged would fail the same way. ' +
        'Start a new job with different settings.',
      possible: false,
    };
}
export const isJobState = (s: unknown): s is JobState =>
  typeof s === 'string' && (JOB_STATES as readonly string[]).includes(s);
