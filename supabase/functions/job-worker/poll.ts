// The sweep-side poll: Replicate's webhook can be lost (our endpoint was down, a deploy dropped
// it, Replicate gave up retrying). So job-worker invocations ask (at most every 10 s per function
// instance) which jobs have waited on Replicate for spool.settings.waiting_poll_interval without
// news (claim_waiting_polls: each job at most once per interval across all workers), read their
// predictions and settle the finished ones exactly as the webhook would. The pg_cron sweep rings
// job-worker when such jobs exist; rescue_jobs still retries jobs whose callback deadline passed.
import {
  getPrediction,
  type ReplicateApi,
  type SettleDeps,
  settlePrediction,
  TERMINAL,
} from '../_jobs/replicate.ts';
import type { JobRow } from '../_shared/clients.ts';
import type { Rpc } from './run.ts';

export interface PollDeps {
  rpc: Rpc;
  settle: SettleDeps;
  /** Null when Replicate is not configured: the polls are claimed (so the sweep stops ringing
   * for them) but cannot be made; the jobs are retried at their callback deadline. */
  api: ReplicateApi | null;
  /** At most this many jobs per poll. */
  limit?: number;
  log(line: Record<string, unknown>): void;
}

export interface PollSummary {
  polled: number;
  settled: number;
  errors: number;
}

/** Polls Replicate for overdue waiting jobs once. Never throws. */
export async function pollReplicate(deps: PollDeps): Promise<PollSummary> {
  const summary: PollSummary = { polled: 0, settled: 0, errors: 0 };
  const { data, error } = await deps.rpc('claim_waiting_polls', {
    p_provider: 'replicate',
    p_limit: deps.limit ?? 20,
  });
  if (error) {
    deps.log({
      level: 'warn',
      msg: 'claim_waiting_polls failed',
      error: error.message ?? String(error.code),
    });
    summary.errors++;
    return summary;
  }
  const jobs = (data as JobRow[] | null) ?? [];
  if (jobs.length > 0 && !deps.api) {
    deps.log({
      level: 'warn',
      msg: 'replicate poll skipped: REPLICATE_API_TOKEN is not set',
      jobs: jobs.length,
    });
    return summary;
  }
  for (const job of jobs) {
    if (!job.external_id || !deps.api) continue;
    summary.polled++;
    try {
      const prediction = await getPrediction(deps.api, job.external_id);
      if (!TERMINAL.includes(prediction.status)) continue;
      const settled = await settlePrediction(deps.settle, prediction);
      if (settled.result === 'resumed') {
        summary.settled++;
        deps.log({
          level: 'info',
          msg: 'job',
          job_id: job.id,
          type: job.type,
          attempt: job.attempts,
          outcome: settled.outcome === 'done'
            ? 'done'
            : settled.status === 'pending'
            ? 'retry'
            : 'failed',
          via: 'replicate_poll',
          prediction_id: prediction.id,
        });
      }
    } catch (err) {
      summary.errors++;
      deps.log({ level: 'warn', msg: 'replicate poll failed', job_id: job.id, error: String(err) });
    }
  }
  return summary;
}

/** How often one function instance may ask for polls. */
export const POLL_THROTTLE_MS = 10_000;

/** At most one poll per interval per function instance (module state survives requests). */
export class PollThrottle {
  private last = -Infinity;
  private running: Promise<PollSummary> | null = null;

  constructor(
    private readonly intervalMs: number = POLL_THROTTLE_MS,
    private readonly now: () => number = () => Date.now(),
  ) {}

  /** Runs `poll` unless one ran within the interval or is running; returns its result or null. */
  maybe(poll: () => Promise<PollSummary>): Promise<PollSummary> | null {
    const now = this.now();
    if (this.running || now - this.last < this.intervalMs) return null;
    this.last = now;
    this.running = poll().finally(() => {
      this.running = null;
    });
    return this.running;
  }
}
