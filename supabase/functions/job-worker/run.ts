// The drain loop: one job-worker invocation claims batches of jobs, runs their handlers with
// bounded concurrency, keeps their leases alive, and reports every outcome to the SQL API, until the
// queue is empty or the invocation's wall-clock budget is nearly spent. Pure apart from the
// injected dependencies (database RPC, Storage, scheduler, isolate CPU meter, kinds, doorbell,
// log), so tests drive it with fakes. Every read of the clock and every wait goes through the one
// injected Scheduler (scheduler.ts): tests run the loop on a virtual clock.
//
// Round trips are what limit throughput, so they are shared:
//   claim     one claim_jobs call leases up to `batchSize` jobs, and never more than the
//             handler slots free (media: the media slots free), so every claimed job starts at
//             once: none waits inside the worker with its lease running;
//   complete  successful results are queued and written with complete_jobs in batches: a flush
//             starts as soon as none is in flight, and everything that finished meanwhile rides
//             along with the next one (group commit);
//   heartbeat one timer per invocation extends the leases of the jobs that need it.
// Failures (fail_job), hand-overs (await_job) and heartbeats are per job: they are rare.
//
// Caps: claim_jobs passes over owners at max_running_per_user, so a claim can come back short
// while such an owner's jobs wait. Every job this invocation stops holding frees one of its
// owner's slots, so after any finish each lane claims again at once; an invocation that can no
// longer claim rings for a successor instead. The queue advances as fast as the caps allow, not
// at the pace of the pg_cron sweep.
//
// Fencing: every write presents the job's lease token. A heartbeat answered `lease_lost` (the job
// was cancelled, rescued or reclaimed) aborts that job's AbortSignal and its result is discarded;
// complete_jobs skips entries whose lease is gone and they are logged as lease_lost.
//
// Time: the budget is the isolate's, not the invocation's: the Edge Runtime's wall clock runs per
// isolate from its first request, across every invocation it serves, so an invocation that starts
// on an isolate 70 s old has 70 s less (deps.isolateStartedAt). Claims stop `drainMs` before the
// budget ends; at the budget, handlers still running are aborted and their jobs failed as
// retryable (`worker_timeout`) so the next worker retries them. If runnable work may remain when
// this invocation stops, or it started with no time left to claim, it rings the doorbell again.
//
// Media CPU (cpu-budget.ts): the Edge Runtime counts CPU per isolate, over its whole life, across
// invocations. Media jobs are therefore claimed apart from the rest (claim_jobs with p_types), each
// claim bounded by what the isolate has left of SPOOL_WORKER_MEDIA_BUDGET_MS (p_cpu_budget_ms:
// only jobs whose estimates, jobs.cpu_ms, fit together are claimed; the rest keep their attempts).
// What is left is held while the claim is in flight, then each claimed job holds its estimate.
// Handlers charge what their stages really cost as they go. When media jobs wait that this
// isolate has no CPU left for (cheapest_pending_cpu), a fresh invocation is rung.
import type { JobRow } from '../_shared/clients.ts';
import type { ApiError } from '../_shared/http.ts';
import { type Handler, type HandlerContext, type HandlerResult, JobError } from '../_jobs/kind.ts';
import { KINDS_BY_TYPE } from '../_jobs/kinds/index.ts';
import type { Rpc, WorkerStorage } from '../_jobs/platform.ts';
import type { ProviderConfig } from '../_jobs/providers.ts';
import type { WorkerConfig } from './config.ts';
import {
  type CpuReservation,
  type IsolateCpu,
  isolateCpu,
  MAX_STARVED_RINGS,
} from './cpu-budget.ts';
import { MediaSlots } from './media-slots.ts';
import { realScheduler, type Scheduler } from './scheduler.ts';

export type { Rpc, RpcResult, WorkerStorage } from '../_jobs/platform.ts';

interface ParseResult {
  success: boolean;
  data?: unknown;
  error?: { issues: { path: PropertyKey[]; message: string }[] };
}

/** The part of a job kind the worker needs. */
export interface RunnableKind {
  schema: { safeParse(value: unknown): ParseResult };
  /** Kinds with an input file process media in the function (CPU-heavy) unless handed over. */
  file?: unknown;
  // deno-lint-ignore no-explicit-any
  handler: () => Promise<Handler<any>>;
}

export type JobOutcome = 'done' | 'retry' | 'failed' | 'waiting' | 'lease_lost';

export interface DrainDeps {
  rpc: Rpc;
  storage: WorkerStorage;
  /** The clock and every timer of the loop; default realScheduler. */
  scheduler?: Scheduler;
  /** The isolate's media CPU meter, shared by all invocations in it; default isolateCpu. */
  cpu?: IsolateCpu;
  /** The kind of a job type, or undefined for a type this worker does not run. */
  kindOf(type: string): RunnableKind | undefined;
  /** The providers' configuration, handed to every handler (ctx.providers). */
  providers: ProviderConfig;
  /**
   * The isolate's media slots, shared by all invocations in it (default: one set per drain,
   * sized by config.mediaConcurrency).
   */
  mediaSlots?: MediaSlots;
  /**
   * Every job type this worker may be asked to run (default: every kind). Media kinds
   * among them are claimed separately, against the isolate's CPU budget.
   */
  types?: readonly string[];
  config: WorkerConfig;
  workerId: string;
  /** Asks for another invocation (POST to job-worker). Must not throw. */
  ring(reason: string): Promise<void>;
  log(line: Record<string, unknown>): void;
  /** Aborted when the runtime is about to stop this invocation. */
  signal?: AbortSignal;
  /**
   * When this isolate's wall clock started (its first request), on the scheduler's clock; the
   * invocation works until at most isolateStartedAt + budgetMs. Default: when this drain starts.
   */
  isolateStartedAt?: number;
}

export interface DrainSummary {
  worker_id: string;
  reason: string;
  claimed: number;
  claims: number;
  done: number;
  failed: number;
  retried: number;
  waiting: number;
  lease_lost: number;
  ms: number;
  /**
   * Why the loop ended: the queue was empty, the budget ran out, the runtime is stopping this
   * invocation, or the database could not be reached (then no successor is rung: the pg_cron sweep
   * retries later, instead of a ring loop against a database that is down).
   */
  stop: 'empty' | 'budget' | 'shutdown' | 'error';
  /** Whether this invocation rang the doorbell for a successor. */
  rang: boolean;
  /** Media CPU this isolate has spent (all its invocations so far), ms. */
  isolate_media_ms: number;
  /** CPU the isolate's round trips are estimated to have cost, across its invocations. */
  isolate_calls_ms: number;
}

/** Largest complete_jobs batch (one statement; keeps request bodies reasonable). */
const MAX_COMPLETE_BATCH = 500;
/** complete_jobs calls in flight at once: the database works on one while the next forms. */
const MAX_FLUSHES = 2;
/** claim_jobs calls in flight at once while the queue is deep (one while it looks empty). */
const MAX_CLAIMS = 2;
/** Slowest pace of polling an empty queue while lingering. */
const IDLE_POLL_MAX_MS = 50;
/** A progress report is written at once if the last heartbeat is older than this. */
const PROGRESS_MIN_INTERVAL_MS = 500;
/** Signed URLs handed to providers live this long. */
const SIGNED_URL_SECONDS = 2 * 3600;

/** The machine code of a Spool SQL API error (PT<status> with the code in `hint`). */
export function apiCode(error: ApiError | null): string | null {
  if (!error) return null;
  if (/^PT\d{3}$/.test(error.code ?? '')) return error.hint || 'error';
  return null;
}

class RpcFailure extends Error {
  constructor(readonly fn: string, readonly error: ApiError) {
    super(`${fn} failed: ${error.message ?? 'unknown error'}`);
    this.name = 'RpcFailure';
  }
  get code(): string | null {
    return apiCode(this.error);
  }
}

type Stage = 'queued' | 'running' | 'finishing' | 'finished';

interface Held {
  job: JobRow;
  token: string;
  stage: Stage;
  controller: AbortController;
  claimedAt: number;
  startedAt: number;
  lastBeatAt: number;
  beating: Promise<void> | null;
  progress: number | null;
  step: string | null;
  dirty: boolean;
  /** A media kind: counts against the media limits. */
  heavy: boolean;
}

/** What became of a result sent to complete_jobs. */
type Completion = 'done' | 'lease_lost' | 'unknown';

interface PendingCompletion {
  held: Held;
  output: Record<string, unknown>;
  resolve(completion: Completion): void;
}

function abortReason(signal: AbortSignal): string {
  const reason = signal.reason;
  return typeof reason === 'string' ? reason : 'aborted';
}

/** Rejects when `signal` aborts; otherwise settles like `promise`. */
function raceAbort<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(new AbortedError(abortReason(signal)));
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(new AbortedError(abortReason(signal)));
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e) => {
        signal.removeEventListener('abort', onAbort);
        reject(e);
      },
    );
  });
}

class AbortedError extends Error {
  constructor(readonly reason: string) {
    super(`job aborted: ${reason}`);
    this.name = 'AbortedError';
  }
}

function errorJson(err: JobError): Record<string, unknown> {
  const out: Record<string, unknown> = { code: err.code, message: err.message };
  if (err.details !== undefined) out.details = err.details;
  return out;
}

/**
 * Drains the queue for one invocation. Never throws: database errors end the loop early (the
 * jobs involved are retried when their leases expire) and are logged.
 */
export async function drain(deps: DrainDeps, reason: string): Promise<DrainSummary> {
  const { rpc, config, workerId } = deps;
  const clock = deps.scheduler ?? realScheduler;
  const cpu = deps.cpu ?? isolateCpu;
  const start = clock.now();
  const hardStop = Math.min(start, deps.isolateStartedAt ?? start) + config.budgetMs;
  const claimUntil = Math.max(start, hardStop - config.drainMs);
  /** The isolate's earlier invocations spent its budget before this one could claim anything. */
  const noTimeLeft = claimUntil <= start && hardStop < start + config.budgetMs;
  const C = config.concurrency;

  const summary: DrainSummary = {
    worker_id: workerId,
    reason,
    claimed: 0,
    claims: 0,
    done: 0,
    failed: 0,
    retried: 0,
    waiting: 0,
    lease_lost: 0,
    ms: 0,
    stop: 'empty',
    rang: false,
    isolate_media_ms: 0,
    isolate_calls_ms: 0,
  };

  const held = new Map<string, Held>();
  const queue: Held[] = [];
  let active = 0;
  let idleUntil = start + config.lingerMs;
  let released = 0;
  let fatal: unknown = null;
  /** The loop has ended: nothing new starts. */
  let closing = false;

  // Wake-ups for the main loop: any job settling, a flush finishing, the runtime stopping us.
  let wake: () => void = () => {};
  let wakePromise = new Promise<void>((r) => (wake = r));
  const notify = () => {
    const w = wake;
    wakePromise = new Promise<void>((r) => (wake = r));
    w();
  };
  deps.signal?.addEventListener('abort', notify, { once: true });

  const handlers = new Map<string, Promise<Handler<unknown>>>();
  const loadHandler = (type: string, kind: RunnableKind) => {
    let h = handlers.get(type);
    if (!h) {
      h = kind.handler();
      handlers.set(type, h);
      h.catch(() => handlers.delete(type));
    }
    return h;
  };

  // --- logging ------------------------------------------------------------------------------------

  /**
   * Jobs whose outcome this invocation has committed (done, failed, retried, handed over) or
   * whose lease it found lost. Each frees a running slot of its owner: a claim that came back
   * short because that owner was at max_running_per_user would now get their next job, so a
   * lane claims again at once after any finish since its last claim was sent (one claim per
   * finished batch, not per poll).
   */
  let finishes = 0;

  /** Called once per job, when its outcome is committed (or its lease found lost). */
  const logOutcome = (h: Held, outcome: JobOutcome, errorCode?: string) => {
    finishes++;
    if (outcome === 'done') summary.done++;
    else if (outcome === 'failed') summary.failed++;
    else if (outcome === 'retry') summary.retried++;
    else if (outcome === 'waiting') summary.waiting++;
    else summary.lease_lost++;
    if (!config.jobLogs) return;
    const line: Record<string, unknown> = {
      level: outcome === 'failed' ? 'warn' : 'info',
      msg: 'job',
      worker_id: workerId,
      job_id: h.job.id,
      type: h.job.type,
      attempt: h.job.attempts,
      duration_ms: Math.round(clock.now() - (h.startedAt || h.claimedAt)),
      outcome,
    };
    if (errorCode) line.error_code = errorCode;
    deps.log(line);
  };

  // --- RPC helpers ------------------------------------------------------------------------------

  /** Calls fn; retries twice on errors that are not the API's own (network, 5xx gateway). */
  const call = async (fn: string, args: Record<string, unknown>, retries = 2): Promise<unknown> => {
    for (let attempt = 0;; attempt++) {
      const { data, error } = await rpc(fn, args);
      cpu.call(config.callCpuMs);
      if (!error) return data;
      if (apiCode(error) !== null || attempt >= retries) throw new RpcFailure(fn, error);
      await clock.sleep(50 * 4 ** attempt);
    }
  };

  // --- heartbeats --------------------------------------------------------------------------------

  const beat = (h: Held): Promise<void> => {
    if (h.beating) return h.beating;
    h.dirty = false;
    h.lastBeatAt = clock.now();
    const args: Record<string, unknown> = {
      p_id: h.job.id,
      p_lease_token: h.token,
      p_lease_seconds: config.leaseSeconds,
    };
    if (h.progress !== null) args.p_progress = h.progress;
    if (h.step !== null) args.p_step = h.step;
    h.beating = call('heartbeat_job', args, 1).then(
      () => {},
      (err) => {
        const code = err instanceof RpcFailure ? err.code : null;
        if (code === 'lease_lost' || code === 'job_not_found') {
          h.controller.abort('lease_lost');
        } else {
          deps.log({
            level: 'warn',
            msg: 'heartbeat failed',
            worker_id: workerId,
            job_id: h.job.id,
            error: String(err),
          });
        }
      },
    ).finally(() => {
      h.beating = null;
    });
    return h.beating;
  };

  const tickMs = Math.max(5, Math.min(config.heartbeatMs / 2, PROGRESS_MIN_INTERVAL_MS));
  const stopTicker = clock.every(tickMs, () => {
    const now = clock.now();
    for (const h of held.values()) {
      if (
        h.stage === 'finishing' || h.stage === 'finished' || h.beating ||
        h.controller.signal.aborted
      ) continue;
      const age = now - h.lastBeatAt;
      if (age >= config.heartbeatMs || (h.dirty && age >= PROGRESS_MIN_INTERVAL_MS)) beat(h);
    }
  });

  // --- completion batching ------------------------------------------------------------------------

  const completions: PendingCompletion[] = [];
  let flushes = 0;
  let flushScheduled = false;

  const flushOnce = async (batch: PendingCompletion[]) => {
    let completed: Set<string>;
    try {
      const ids = await call('complete_jobs', {
        p_results: batch.map((c) => ({
          id: c.held.job.id,
          lease_token: c.held.token,
          output: c.output,
        })),
      }) as string[] | null;
      completed = new Set(ids ?? []);
    } catch (err) {
      // The database is unreachable: these jobs keep their leases until they expire and are
      // retried then. Stop working; the outcome of each is unknown to us.
      deps.log({
        level: 'error',
        msg: 'complete_jobs failed',
        worker_id: workerId,
        jobs: batch.length,
        error: String(err),
      });
      fatal ??= err;
      for (const c of batch) c.resolve('unknown');
      return;
    }
    for (const c of batch) c.resolve(completed.has(c.held.job.id) ? 'done' : 'lease_lost');
  };

  /**
   * Group commit: a flush starts a macrotask after the first result arrives (so every handler
   * that finished in the same turn joins it), up to MAX_FLUSHES run at once, and results that
   * arrive meanwhile wait for the next one.
   */
  const scheduleFlush = () => {
    if (flushScheduled || flushes >= MAX_FLUSHES || completions.length === 0) return;
    flushScheduled = true;
    clock.sleep(0).then(() => {
      flushScheduled = false;
      if (completions.length === 0) return;
      flushes++;
      flushOnce(completions.splice(0, MAX_COMPLETE_BATCH)).finally(() => {
        flushes--;
        scheduleFlush();
        notify();
      });
      scheduleFlush();
    });
  };
  const flushing = () => flushes > 0 || flushScheduled || completions.length > 0;

  const complete = (h: Held, output: Record<string, unknown>): Promise<Completion> =>
    new Promise<Completion>((resolve) => {
      completions.push({ held: h, output, resolve });
      scheduleFlush();
    });

  // --- one job ----------------------------------------------------------------------------------

  const fail = async (h: Held, err: JobError): Promise<void> => {
    try {
      const row = await call('fail_job', {
        p_id: h.job.id,
        p_lease_token: h.token,
        p_error: errorJson(err),
        p_retryable: err.retryable,
      }, 1) as JobRow | null;
      if (row?.status === 'pending') {
        logOutcome(h, 'retry', err.code);
        // A short backoff (tests, or a fast retry policy) is worth waiting for: stay around.
        const runAt = Date.parse(row.run_at);
        if (Number.isFinite(runAt)) {
          const due = clock.now() + Math.max(0, runAt - clock.date()) + config.idlePollMs;
          if (due < claimUntil) idleUntil = Math.max(idleUntil, due + IDLE_POLL_MAX_MS);
        }
      } else {
        logOutcome(h, 'failed', err.code);
      }
    } catch (e) {
      if (e instanceof RpcFailure && (e.code === 'lease_lost' || e.code === 'job_not_found')) {
        logOutcome(h, 'lease_lost', err.code);
      } else {
        deps.log({
          level: 'error',
          msg: 'fail_job failed',
          worker_id: workerId,
          job_id: h.job.id,
          error: String(e),
        });
        fatal ??= e;
      }
    }
  };

  const slots = deps.mediaSlots ?? new MediaSlots(config.mediaConcurrency);
  const context = (h: Held, input: unknown): HandlerContext<unknown> => {
    const prefix = `${h.job.user_id}/${h.job.id}/`;
    const signal = h.controller.signal;
    const progress = async (percent: number, step?: string) => {
      if (signal.aborted) throw new AbortedError(abortReason(signal));
      const p = Math.max(0, Math.min(100, Math.round(percent)));
      h.progress = Math.max(h.progress ?? 0, p);
      if (step !== undefined) h.step = step.slice(0, 200);
      h.dirty = true;
      if (clock.now() - h.lastBeatAt >= PROGRESS_MIN_INTERVAL_MS) await beat(h);
      if (signal.aborted) throw new AbortedError(abortReason(signal));
    };
    return {
      job: h.job,
      input,
      providers: deps.providers,
      // A job that had to wait for a slot says 'starting' as soon as it has one, in a heartbeat
      // of its own (not held back by the progress throttle): job_attempts.started_at, the start
      // of its work, is the first step after 'queued', so the wait is never counted as running.
      mediaSlot: (work) => {
        let waited = false;
        return slots.run(signal, () => {
          waited = true;
          return progress(0, 'queued');
        }, async () => {
          if (waited) {
            h.step = 'starting';
            h.dirty = true;
            if (h.beating) await h.beating;
            await beat(h);
            if (signal.aborted) throw new AbortedError(abortReason(signal));
          }
          return await work();
        });
      },
      cpuStage: (work) => cpu.charge(h.job.id, work),
      outputPrefix: prefix,
      readInput: (path) => deps.storage.download('inputs', path),
      writeOutput: async (name, bytes, contentType) => {
        const path = prefix + name;
        await deps.storage.upload('outputs', path, bytes, contentType);
        return path;
      },
      inputUrl: (path, expiresInSeconds = SIGNED_URL_SECONDS) =>
        deps.storage.signedUrl('inputs', path, expiresInSeconds),
      progress,
      signal,
    };
  };

  const run = async (h: Held): Promise<void> => {
    h.stage = 'running';
    h.startedAt = clock.now();
    const kind = deps.kindOf(h.job.type);
    if (!kind) {
      return fail(
        h,
        new JobError(
          'unknown_type',
          `this worker does not run jobs of type "${h.job.type}"`,
          false,
        ),
      );
    }
    const parsed = kind.schema.safeParse(h.job.input);
    if (!parsed.success) {
      const details = parsed.error?.issues.map((i) => ({
        path: i.path.map(String).join('.'),
        message: i.message,
      }));
      return fail(
        h,
        new JobError('invalid_input', 'the job input does not match its type', false, details),
      );
    }
    // The attempt's deadline (jobs.timeout_at: claim time + its type's timeout_seconds in
    // spool.job_types): the handler is aborted there, and the attempt fails as 'timeout'
    // (retried while attempts remain; rescue_jobs does the same if this worker is gone).
    const deadline = h.job.timeout_at ? Date.parse(h.job.timeout_at) : NaN;
    let ended = false;
    let settle = () => {};
    // (A deadline past the invocation's own end needs no timer: the invocation ends first.)
    const untilDeadline = deadline - clock.date();
    if (Number.isFinite(untilDeadline) && clock.now() + untilDeadline < hardStop) {
      const settled = new Promise<void>((r) => (settle = r));
      void clock.sleep(untilDeadline, settled).then(() => {
        if (!ended) h.controller.abort('timeout');
      });
    }
    let result: HandlerResult;
    try {
      const handler = await loadHandler(h.job.type, kind);
      result = await raceAbort(handler(context(h, parsed.data)), h.controller.signal);
    } catch (err) {
      const signal = h.controller.signal;
      if (signal.aborted && abortReason(signal) === 'lease_lost') {
        h.stage = 'finished';
        return logOutcome(h, 'lease_lost');
      }
      if (signal.aborted && abortReason(signal) === 'timeout') {
        const seconds = Math.round((deadline - Date.parse(h.job.started_at ?? '')) / 1000);
        return fail(
          h,
          new JobError(
            'timeout',
            Number.isFinite(seconds)
              ? `the attempt ran past its ${seconds} s timeout`
              : 'the attempt ran past its timeout',
            true,
          ),
        );
      }
      if (signal.aborted) {
        return fail(
          h,
          new JobError(
            'worker_timeout',
            `the worker stopped before the job finished (${abortReason(signal)})`,
            true,
          ),
        );
      }
      if (err instanceof JobError) return fail(h, err);
      const message = err instanceof Error ? err.message : String(err);
      deps.log({
        level: 'error',
        msg: 'handler crashed',
        worker_id: workerId,
        job_id: h.job.id,
        type: h.job.type,
        error: err instanceof Error ? (err.stack ?? message) : message,
      });
      return fail(h, new JobError('handler_crashed', message || 'the handler crashed', true));
    } finally {
      ended = true;
      settle();
    }
    h.stage = 'finishing';
    if ('await' in result) {
      try {
        await call('await_job', {
          p_id: h.job.id,
          p_lease_token: h.token,
          p_provider: result.await.provider,
          p_external_id: result.await.externalId,
          p_timeout_seconds: result.await.timeoutSeconds ?? 3600,
        }, 1);
        logOutcome(h, 'waiting');
      } catch (e) {
        if (e instanceof RpcFailure && (e.code === 'lease_lost' || e.code === 'job_not_found')) {
          logOutcome(h, 'lease_lost');
        } else if (e instanceof RpcFailure && e.code !== null) {
          await fail(
            h,
            new JobError(e.code, e.error.message ?? 'await_job refused the hand-over', true),
          );
        } else {
          deps.log({
            level: 'error',
            msg: 'await_job failed',
            worker_id: workerId,
            job_id: h.job.id,
            error: String(e),
          });
          fatal ??= e;
        }
      }
      return;
    }
    // The slot is free now: the result rides along with the next complete_jobs batch while the
    // loop claims more.
    complete(h, result.output).then((completion) => {
      if (completion === 'done') logOutcome(h, 'done');
      else logOutcome(h, 'lease_lost', completion === 'unknown' ? 'complete_failed' : undefined);
    });
  };

  /** The job is no longer held: its unspent CPU reservation is free again. */
  const forget = (h: Held) => {
    held.delete(h.job.id);
    if (h.heavy) cpu.finish(h.job.id);
  };

  const pump = () => {
    while (!closing && active < C && queue.length > 0) {
      const h = queue.shift()!;
      if (h.controller.signal.aborted) {
        // Lost before it started (cancelled while queued): drop it.
        forget(h);
        logOutcome(h, 'lease_lost');
        continue;
      }
      active++;
      run(h).catch((err) => {
        deps.log({
          level: 'error',
          msg: 'job bookkeeping failed',
          worker_id: workerId,
          job_id: h.job.id,
          error: String(err),
        });
      }).finally(() => {
        active--;
        h.stage = 'finished';
        forget(h);
        pump();
        notify();
      });
    }
  };

  // --- claiming ---------------------------------------------------------------------------------

  /**
   * A stream of claims. Without a media budget one lane claims every type; with one, media kinds
   * (kinds with an input file) have a lane of their own whose claims are sized by the CPU the
   * isolate has left, and everything else goes in the other lane, unhindered by media.
   */
  interface Lane {
    /** p_types of its claims; null: every type. */
    types: string[] | null;
    /** Claims media jobs (kinds with an input file), at most the free media slots. */
    media: boolean;
    /** Its claims are bounded by the CPU the isolate has left (p_cpu_budget_ms). */
    cpuBound: boolean;
    inFlight: number;
    /** Claims answered. */
    answered: number;
    /** The last claim came back full: more may be waiting. */
    more: boolean;
    /** Claims in a row that found nothing. */
    emptyPolls: number;
    /** After a short claim: when to look again. */
    nextAt: number;
    /** `finishes` when its last claim was sent: a job that finished since may have freed room. */
    seen: number;
  }
  const lane = (types: string[] | null, media: boolean): Lane => ({
    types,
    media,
    cpuBound: media && budgeted,
    inFlight: 0,
    answered: 0,
    more: false,
    emptyPolls: 0,
    nextAt: start,
    seen: 0,
  });
  const isMedia = (type: string) => deps.kindOf(type)?.file !== undefined;
  const claimable = config.types ?? [...(deps.types ?? Object.keys(KINDS_BY_TYPE))];
  const mediaTypes = claimable.filter(isMedia);
  const otherTypes = claimable.filter((t) => !isMedia(t));
  /** Media claims are bounded by the isolate's CPU (SPOOL_WORKER_MEDIA_BUDGET_MS > 0). */
  const budgeted = config.mediaBudgetMs > 0 && mediaTypes.length > 0;
  const lanes: Lane[] = mediaTypes.length > 0
    ? [...(otherTypes.length > 0 ? [lane(otherTypes, false)] : []), lane(mediaTypes, true)]
    : [lane(config.types, false)];
  /** Media CPU (ms) the isolate has left for new jobs: its budget less what is spent and held. */
  const mediaRoom = () => Math.max(0, Math.floor(cpu.available(config.mediaBudgetMs)));

  let claims = 0;
  /** Jobs asked for by claims in flight: room they may fill. */
  let claimedAhead = 0;
  const freed = (l: Lane) => finishes > l.seen;
  const heavyHeld = () => {
    let n = 0;
    for (const h of held.values()) {
      if (h.heavy && (h.stage === 'queued' || h.stage === 'running')) n++;
    }
    return n;
  };

  // A job is claimed only when it can start: a claim asks for no more than the free handler
  // slots (and, for media, the free media slots), so no claimed job waits inside the worker
  // with its lease running and its started_at already set.
  const limitOf = (l: Lane, unfinished: number) => {
    let limit = Math.min(config.batchSize, C - unfinished, 1000);
    if (l.media) limit = Math.min(limit, config.mediaConcurrency - heavyHeld());
    if (l.cpuBound && mediaRoom() < 1) limit = 0;
    return limit;
  };
  /** Claims of a lane in flight at once: two while a deep queue feeds it, else one probe. */
  const maxInFlight = (l: Lane) => (l.more && !l.media ? MAX_CLAIMS : 1);
  /**
   * A lane wants to claim: first claim, a full last claim, a finish since its last claim, or
   * lingering on an empty queue.
   */
  const wants = (l: Lane, now: number) => l.answered === 0 || l.more || freed(l) || now < idleUntil;
  /** More work may wait in a lane this invocation can still claim from. */
  const claimableMore = () =>
    lanes.some((l) => (l.more || freed(l)) && !(l.cpuBound && mediaRoom() < 1));

  const claim = (l: Lane, limit: number) => {
    claims++;
    l.inFlight++;
    l.seen = finishes;
    claimedAhead += limit;
    // Hold all the media CPU the isolate has left while the claim is in flight, so concurrent
    // invocations in this isolate never claim more media work together than it can do; the
    // claim takes only jobs whose estimates fit in it.
    const room = l.cpuBound ? mediaRoom() : 0;
    const hold: CpuReservation | null = l.cpuBound ? cpu.reserve(room, config.mediaBudgetMs) : null;
    const args: Record<string, unknown> = {
      p_worker_id: workerId,
      p_limit: limit,
      p_lease_seconds: config.leaseSeconds,
    };
    if (l.types) args.p_types = l.types;
    if (l.cpuBound) args.p_cpu_budget_ms = room;
    call('claim_jobs', args).then(
      (data) => {
        const rows = (data as JobRow[] | null) ?? [];
        summary.claims++;
        summary.claimed += rows.length;
        l.answered++;
        l.more = rows.length >= limit;
        hold?.release(); // each media job claimed holds its own estimate instead
        const at = clock.now();
        // An empty queue is polled every idlePollMs at first, backing off to IDLE_POLL_MAX_MS
        // while it stays empty; any job found resets the pace.
        l.emptyPolls = rows.length > 0 ? 0 : l.emptyPolls + 1;
        const pause = Math.min(
          Math.max(config.idlePollMs, IDLE_POLL_MAX_MS),
          config.idlePollMs * 1.5 ** Math.max(0, l.emptyPolls - 1),
        );
        l.nextAt = l.more ? at : at + (rows.length > 0 ? config.idlePollMs : pause);
        for (const job of rows) {
          const h: Held = {
            job,
            token: job.lease_token!,
            stage: 'queued',
            controller: new AbortController(),
            claimedAt: at,
            startedAt: 0,
            lastBeatAt: at,
            beating: null,
            progress: null,
            step: null,
            dirty: false,
            heavy: isMedia(job.type),
          };
          if (h.heavy && l.cpuBound) {
            // Fits: the claim's estimates add up to at most the room just released.
            const r = cpu.reserve(job.cpu_ms ?? 0, config.mediaBudgetMs);
            if (r) cpu.assign(job.id, r);
          }
          held.set(job.id, h);
          queue.push(h);
        }
      },
      (err) => {
        deps.log({
          level: 'error',
          msg: 'claim_jobs failed',
          worker_id: workerId,
          error: String(err),
        });
        fatal ??= err;
      },
    ).finally(() => {
      hold?.release(); // a claim that failed
      claims--;
      l.inFlight--;
      claimedAhead -= limit;
      pump();
      notify();
    });
  };

  // --- the loop -----------------------------------------------------------------------------------

  const stopped = () => deps.signal?.aborted === true;

  try {
    loop: while (true) {
      if (stopped()) {
        summary.stop = 'shutdown';
        break;
      }
      if (fatal) {
        summary.stop = 'error';
        break;
      }
      const now = clock.now();
      const unfinished = queue.length + active + claimedAhead;
      // Claim while there is room: up to MAX_CLAIMS at once while the queue is deep, one probe
      // at a time (every idlePollMs, backing off) while it looks empty, and media jobs only as
      // many as the isolate's CPU budget still fits.
      if (now < claimUntil && unfinished < C) {
        for (const l of lanes) {
          const limit = limitOf(l, unfinished);
          const due = now >= l.nextAt || freed(l);
          if (wants(l, now) && limit > 0 && due && l.inFlight < maxInFlight(l)) {
            claim(l, limit);
            continue loop;
          }
        }
      }
      const more = claimableMore();
      const idle = held.size === 0 && claims === 0 && !flushing();
      if (idle && now >= claimUntil) {
        summary.stop = more ? 'budget' : 'empty';
        break;
      }
      if (idle && !more && now >= idleUntil) {
        summary.stop = 'empty';
        break;
      }
      if (now >= hardStop) {
        summary.stop = 'budget';
        break;
      }
      // Sleep until something settles (a job, a claim, a flush: they wake the loop) or the next
      // thing is due: a lane's next claim (if it has room), the end of lingering (if idle), or
      // the next deadline.
      let until = now >= claimUntil ? hardStop : claimUntil;
      if (now < claimUntil && unfinished < C) {
        for (const l of lanes) {
          if (!wants(l, now) || limitOf(l, unfinished) <= 0 || l.inFlight >= maxInFlight(l)) {
            continue;
          }
          until = Math.min(until, freed(l) ? now + 1 : Math.max(l.nextAt, now + 1));
        }
      }
      if (idle && !more) until = Math.min(until, Math.max(idleUntil, now + 1));
      await clock.sleep(until - now, wakePromise);
    }

    // Out of time or told to stop: nothing new starts; claims in flight land in the queue.
    closing = true;
    while (claims > 0) await clock.sleep(5, wakePromise);
    // Abort what still runs, release what never started.
    if (held.size > 0) {
      const why = summary.stop === 'budget' ? 'budget' : 'shutdown';
      for (const h of held.values()) {
        if (h.stage === 'queued' || h.stage === 'running') {
          h.controller.abort(why);
          released++;
        }
      }
      await Promise.all(
        queue.splice(0).map((h) => {
          forget(h);
          const why_ = `the worker stopped before the job started (${why})`;
          return fail(h, new JobError('worker_timeout', why_, true));
        }),
      );
      // Running handlers settle through their abort: wait for their fail_job (bounded).
      const until = clock.now() + 5000;
      while (held.size > 0 && clock.now() < until) await clock.sleep(50, wakePromise);
    }
    while (flushing()) await clock.sleep(5, wakePromise);
  } finally {
    stopTicker();
    deps.signal?.removeEventListener('abort', notify);
  }

  // Media jobs may wait that this isolate has too little CPU left for: ask the queue what the
  // cheapest of them needs, once, when this isolate has spent some of its budget and no other
  // invocation in it holds media CPU (that one carries on, and asks at its own end).
  let starved = false;
  if (
    budgeted && cpu.reserved === 0 && mediaRoom() < config.mediaBudgetMs &&
    (summary.stop === 'empty' || summary.stop === 'budget') && !claimableMore()
  ) {
    try {
      const cheapest = await call('cheapest_pending_cpu', { p_types: mediaTypes }) as number | null;
      starved = typeof cheapest === 'number' && cheapest > mediaRoom();
      if (starved) {
        summary.stop = 'budget';
        deps.log({
          level: 'info',
          msg: 'media jobs wait that this isolate has no CPU left for',
          worker_id: workerId,
          cheapest_ms: cheapest,
          room_ms: mediaRoom(),
        });
      }
    } catch (err) {
      deps.log({
        level: 'error',
        msg: 'cheapest_pending_cpu failed',
        worker_id: workerId,
        error: String(err),
      });
    }
  }

  // A successor is rung when runnable work may remain. For media work this isolate has no CPU
  // left for: the Edge Runtime retires an isolate past its soft CPU limit, so the ring reaches a
  // fresh one, or comes back here and costs a little more CPU towards that limit (cpu-budget.ts,
  // "The gap"), at most MAX_STARVED_RINGS times.
  if (noTimeLeft && summary.stop === 'empty') summary.stop = 'budget';
  const handOver = (summary.stop === 'budget' || summary.stop === 'shutdown') &&
    (claimableMore() || released > 0 || noTimeLeft);
  const ringForMedia = !handOver && starved && cpu.starvedRings < MAX_STARVED_RINGS;
  if (ringForMedia) cpu.starvedRings++;
  if (handOver || ringForMedia) {
    summary.rang = true;
    await deps.ring(summary.stop === 'shutdown' ? 'shutdown' : 'continue');
  }
  summary.ms = Math.round(clock.now() - start);
  summary.isolate_media_ms = Math.round(cpu.spent);
  summary.isolate_calls_ms = Math.round(cpu.calls);
  deps.log({ level: 'info', msg: 'drain', ...summary });
  return summary;
}
