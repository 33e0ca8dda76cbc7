// An in-memory stand-in for the queue's SQL API (claim_jobs, heartbeat_job, complete_jobs,
// fail_job, await_job), with the same fencing and error shapes, for unit tests of the drain loop.
// It records every call so tests can count round trips. Its clock (run_at, leases, backoff) is
// `date`: pass the drain's virtual scheduler's date() so retries fall due in virtual time.
import type { JobRow } from '../../_shared/clients.ts';
import type { ApiError } from '../../_shared/http.ts';
import type { RpcResult } from '../../job-worker/run.ts';

export interface Call {
  fn: string;
  args: Record<string, unknown>;
}

function apiError(status: number, code: string, message: string): ApiError {
  return { code: `PT${status}`, message, hint: code, details: null };
}

export class FakeQueue {
  readonly jobs = new Map<string, JobRow>();
  readonly calls: Call[] = [];
  /** Milliseconds added to "now" for run_at after a retryable failure. */
  backoffMs = 0;
  /** max_running_per_user: a claim passes over owners with this many running jobs. */
  maxRunningPerUser = Infinity;
  /** timeout_seconds of a type's row in spool.job_types: a claim sets timeout_at from it. */
  timeoutSeconds: Record<string, number> = {};
  private seq = 0;

  /** `date`: wall-clock milliseconds, as the drain's scheduler reads them. */
  constructor(private readonly date: () => number = () => Date.now()) {}

  add(type: string, input: Record<string, unknown> = {}, overrides: Partial<JobRow> = {}): JobRow {
    const id = `00000000-0000-4000-8000-${String(++this.seq).padStart(12, '0')}`;
    const now = new Date(this.date()).toISOString();
    const job: JobRow = {
      id,
      user_id: '11111111-1111-4111-8111-111111111111',
      type,
      status: 'pending',
      priority: 0,
      input: input as JobRow['input'],
      output: null,
      progress: 0,
      step: null,
      error: null,
      attempts: 0,
      max_attempts: 3,
      run_at: now,
      fair_at: now,
      worker_id: null,
      lease_token: null,
      lease_expires_at: null,
      idempotency_key: null,
      external_provider: null,
      external_id: null,
      parent_id: null,
      created_at: now,
      started_at: null,
      finished_at: null,
      updated_at: now,
      cpu_ms: 0,
      timeout_at: null,
      route: null,
      has_dependents: false,
      dependency_outputs: null,
      history: [],
      ...overrides,
    };
    this.jobs.set(id, job);
    return job;
  }

  addMany(
    n: number,
    type: string,
    input: Record<string, unknown> = {},
    overrides: Partial<JobRow> = {},
  ): JobRow[] {
    return Array.from({ length: n }, () => this.add(type, input, overrides));
  }

  count(fn: string): number {
    return this.calls.filter((c) => c.fn === fn).length;
  }

  callsOf(fn: string): Call[] {
    return this.calls.filter((c) => c.fn === fn);
  }

  byStatus(status: string): JobRow[] {
    return [...this.jobs.values()].filter((j) => j.status === status);
  }

  /** Cancels a job as its owner would: a worker holding it loses its lease. */
  cancel(id: string) {
    const job = this.jobs.get(id)!;
    Object.assign(job, { status: 'cancelled', lease_token: null, lease_expires_at: null });
  }

  private leased(id: string, token: unknown): JobRow | ApiError {
    const job = this.jobs.get(id);
    if (!job) return apiError(404, 'job_not_found', 'job not found');
    if (job.status !== 'running' || job.lease_token !== token) {
      return apiError(409, 'lease_lost', `this worker no longer holds the lease on job ${id}`);
    }
    return job;
  }

  rpc = (fn: string, args: Record<string, unknown>): Promise<RpcResult> => {
    this.calls.push({ fn, args: structuredClone(args) });
    return Promise.resolve(this.handle(fn, args));
  };

  private handle(fn: string, args: Record<string, unknown>): RpcResult {
    const ok = (data: unknown): RpcResult => ({ data, error: null });
    const fail = (error: ApiError): RpcResult => ({ data: null, error });
    const now = this.date();
    switch (fn) {
      case 'claim_jobs': {
        const limit = args.p_limit as number;
        const types = args.p_types as string[] | undefined;
        const budget = args.p_cpu_budget_ms as number | undefined;
        // As the SQL does: jobs over the CPU left are no candidates; of the rest, the longest
        // run in order whose estimates fit together.
        // And as it does, never so many of one owner's jobs that they pass the cap.
        let cpuUpTo = 0;
        const running = new Map<string, number>();
        for (const j of this.jobs.values()) {
          if (j.status === 'running') running.set(j.user_id, (running.get(j.user_id) ?? 0) + 1);
        }
        const withinCap = (j: JobRow) => {
          const n = running.get(j.user_id) ?? 0;
          if (n >= this.maxRunningPerUser) return false;
          running.set(j.user_id, n + 1);
          return true;
        };
        const picked = [...this.jobs.values()]
          .filter((j) => j.status === 'pending' && Date.parse(j.run_at) <= now)
          .filter((j) => !types || types.includes(j.type))
          .filter((j) => budget === undefined || j.cpu_ms <= budget)
          .filter(withinCap)
          .slice(0, limit)
          .filter((j) => budget === undefined || (cpuUpTo += j.cpu_ms) <= budget);
        for (const j of picked) {
          Object.assign(j, {
            status: 'running',
            attempts: j.attempts + 1,
            worker_id: args.p_worker_id,
            lease_token: crypto.randomUUID(),
            lease_expires_at: new Date(now + (args.p_lease_seconds as number) * 1000).toISOString(),
            timeout_at: j.type in this.timeoutSeconds
              ? new Date(now + this.timeoutSeconds[j.type] * 1000).toISOString()
              : null,
            started_at: new Date(now).toISOString(),
            progress: 0,
            step: null,
          });
        }
        return ok(picked.map((j) => ({ ...j })));
      }
      case 'cheapest_pending_cpu': {
        const types = args.p_types as string[];
        const costs = [...this.jobs.values()]
          .filter((j) => j.status === 'pending' && Date.parse(j.run_at) <= now)
          .filter((j) => types.includes(j.type))
          .map((j) => j.cpu_ms);
        return ok(costs.length > 0 ? Math.min(...costs) : null);
      }
      case 'heartbeat_job': {
        const job = this.leased(args.p_id as string, args.p_lease_token);
        if (!('id' in job)) return fail(job);
        if (typeof args.p_progress === 'number') {
          job.progress = Math.max(job.progress, args.p_progress);
        }
        if (typeof args.p_step === 'string') job.step = args.p_step;
        return ok({ ...job });
      }
      case 'complete_jobs': {
        const done: string[] = [];
        for (const r of args.p_results as { id: string; lease_token: string; output: unknown }[]) {
          const job = this.jobs.get(r.id);
          if (!job || job.status !== 'running' || job.lease_token !== r.lease_token) continue;
          Object.assign(job, {
            status: 'done',
            output: r.output,
            progress: 100,
            lease_token: null,
            finished_at: new Date(now).toISOString(),
          });
          done.push(job.id);
        }
        return ok(done);
      }
      case 'fail_job': {
        const job = this.leased(args.p_id as string, args.p_lease_token);
        if (!('id' in job)) return fail(job);
        const retry = args.p_retryable === true && job.attempts < job.max_attempts;
        Object.assign(job, {
          status: retry ? 'pending' : 'failed',
          error: { ...(args.p_error as object), retryable: args.p_retryable, dead: !retry },
          run_at: retry ? new Date(now + this.backoffMs).toISOString() : job.run_at,
          lease_token: null,
        });
        return ok({ ...job });
      }
      case 'await_job': {
        const job = this.leased(args.p_id as string, args.p_lease_token);
        if (!('id' in job)) return fail(job);
        Object.assign(job, {
          status: 'waiting',
          external_provider: args.p_provider,
          external_id: args.p_external_id,
          lease_token: null,
        });
        return ok({ ...job });
      }
      default:
        return fail({ code: 'PGRST202', message: `no function ${fn}`, hint: null, details: null });
    }
  }
}
