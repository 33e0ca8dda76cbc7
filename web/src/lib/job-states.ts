// Job states: one vocabulary with the SQL enum public.job_status (through the generated
// database.types.ts) and supabase/functions/_shared/job-kinds.ts JOB_STATES. The UI's labels,
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
    label: 'Waiting on provider',
    description: 'Handed to an external provider that will call back.',
    tone: 'active',
  },
  done: { label: 'Done', description: 'Finished: the result is ready.', tone: 'success' },
  failed: { label: 'Failed', description: 'It stopped with an error.', tone: 'danger' },
  cancelled: { label: 'Cancelled', description: 'It was cancelled.', tone: 'muted' },
};

export const isTerminal = (s: JobState) => TERMINAL_STATES.includes(s);
/** cancel_job accepts unfinished jobs. */
export const canCancel = (s: JobState) => s === 'pending' || s === 'running' || s === 'waiting';
/** retry_job accepts failed and cancelled jobs. */
export const canRetry = (s: JobState) => s === 'failed' || s === 'cancelled';
export const isJobState = (s: unknown): s is JobState =>
  typeof s === 'string' && (JOB_STATES as readonly string[]).includes(s);
