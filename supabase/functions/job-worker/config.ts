// job-worker's settings, read from the environment once when the function loads (fail fast).
//
//   SPOOL_WORKER_BATCH           jobs per claim_jobs call                          default 100 (1..1000)
//   SPOOL_WORKER_CONCURRENCY     handlers running at once in one invocation; a claim asks for
//                                at most the free slots, so with batch <= half of it two
//                                claims overlap                                   default 200 (1..1000)
//   SPOOL_WORKER_LEASE_SECONDS   lease asked for per claim; heartbeats every third  default 60 (5..3600)
//   SPOOL_WORKER_BUDGET_MS       wall clock one instance (isolate) works, from its first
//                                request and across the invocations it serves, before handing
//                                over (Supabase's wall clock is per instance: 150 s on Free,
//                                400 s on paid)                                    default 120000
//   SPOOL_WORKER_DRAIN_MS        stop claiming this long before the budget ends,
//                                so jobs in flight can finish                      default budget/4, at most 30000
//   SPOOL_WORKER_LINGER_MS       keep polling an empty queue this long after the
//                                invocation started (covers the doorbell debounce) default 1500
//   SPOOL_WORKER_IDLE_POLL_MS    pause between claims while the queue is empty     default 10
//   SPOOL_WORKER_JOB_LOGS        one JSON log line per job outcome                 default true
//   SPOOL_WORKER_TYPES           comma-separated job types this worker claims      default all
//   SPOOL_WORKER_MEDIA_CONCURRENCY  media jobs (kinds with an input file) processing at once;
//                                the worker holds no more than that many          default 2 (1..64)
//   SPOOL_WORKER_MEDIA_BUDGET_MS CPU one isolate (function instance) spends on media and on
//                                round trips (2 ms estimated per call) over its
//                                life, shared by all the invocations it serves: the Edge
//                                Runtime counts CPU per isolate (retired at 1 s, killed at
//                                2 s; see cpu-budget.ts). A media job is claimed only if its
//                                estimate (jobs.cpu_ms, from its input's size: 40 ms up to
//                                1200 ms at the size limits) fits in what is left; otherwise it
//                                stays queued, with no attempt spent, for a fresh invocation;
//                                0 = no limit
//                                                                                  default 1500
//
// The providers' variables (OpenAI, Replicate, SPOOL_ENABLE_NOOP) are read by
// _jobs/providers.ts; index.ts reads both sets once, at load, and nothing reads Deno.env later.
import type { EnvReader } from '../_shared/env.ts';

export interface WorkerConfig {
  batchSize: number;
  concurrency: number;
  leaseSeconds: number;
  /** Heartbeat period per running job; a third of the lease. */
  heartbeatMs: number;
  budgetMs: number;
  drainMs: number;
  lingerMs: number;
  idlePollMs: number;
  jobLogs: boolean;
  /** Only these job types are claimed; null for all. */
  types: string[] | null;
  mediaConcurrency: number;
  mediaBudgetMs: number;
  /**
   * CPU (ms) one round trip (an RPC through supabase-js) is estimated to cost the isolate, charged
   * against SPOOL_WORKER_MEDIA_BUDGET_MS with the media work (cpu-budget.ts). Not a variable: a
   * measurement, 2 ms.
   */
  callCpuMs: number;
}

/** See WorkerConfig.callCpuMs. */
export const CALL_CPU_MS = 2;

export interface WorkerEnv {
  worker: WorkerConfig;
}

/** Reads the worker's variables; problems are collected in `reader` (call reader.done()). */
export function readWorkerEnv(reader: EnvReader): WorkerEnv {
  const leaseSeconds = reader.int('SPOOL_WORKER_LEASE_SECONDS', 60, 5, 3600);
  const budgetMs = reader.int('SPOOL_WORKER_BUDGET_MS', 120_000, 100, 3_600_000);
  return {
    worker: {
      batchSize: reader.int('SPOOL_WORKER_BATCH', 100, 1, 1000),
      concurrency: reader.int('SPOOL_WORKER_CONCURRENCY', 200, 1, 1000),
      leaseSeconds,
      heartbeatMs: Math.floor((leaseSeconds * 1000) / 3),
      budgetMs,
      drainMs: reader.int(
        'SPOOL_WORKER_DRAIN_MS',
        Math.min(30_000, Math.floor(budgetMs / 4)),
        0,
        budgetMs,
      ),
      lingerMs: reader.int('SPOOL_WORKER_LINGER_MS', 1500, 0, 600_000),
      idlePollMs: reader.int('SPOOL_WORKER_IDLE_POLL_MS', 10, 1, 60_000),
      jobLogs: reader.flag('SPOOL_WORKER_JOB_LOGS', true),
      types: reader.optional('SPOOL_WORKER_TYPES').split(',').map((t) => t.trim()).filter(Boolean)
        .reduce<string[] | null>((all, t) => [...(all ?? []), t], null),
      mediaConcurrency: reader.int('SPOOL_WORKER_MEDIA_CONCURRENCY', 2, 1, 64),
      mediaBudgetMs: reader.int('SPOOL_WORKER_MEDIA_BUDGET_MS', 1500, 0, 3_600_000),
      callCpuMs: CALL_CPU_MS,
    },
  };
}
