// The CPU budget of this isolate (one job-worker instance), shared by every invocation it serves.
//
// How Supabase charges CPU (checked in supabase/edge-runtime, 2026-04): under the `per_worker`
// supervisor policy (the runtime's default, `--policy per_worker` in cli/src/flags.rs, which the
// platform's background tasks need) the CPU time of the isolate's thread is accumulated over the
// isolate's whole life, across all the requests it serves, and never reset
// (crates/base/src/runtime/mod.rs, get_cpu_metrics_guard; crates/base/src/worker/supervisor/
// strategy_per_worker.rs). At the soft limit the isolate is retired: it takes no new requests
// (they go to a fresh isolate) but finishes what it runs; at the hard limit it is terminated with
// shutdown reason `CPUTime`. The documented limits (.cargo/config.toml, "supabase.com/docs/guides/
// functions/limits") are 1000 ms soft and 2000 ms hard. (Under `per_request` the count restarts
// with each request; we model the stricter per-isolate count.) So two invocations that land in
// one isolate share its 2 s, and a job that would run past the hard limit kills every job the
// isolate holds: each loses an attempt.
//
// The model: media work (the only CPU-heavy work in job-worker) is charged here as it is spent,
// each synchronous stage (decode, process, encode) when it returns. Every media job carries an
// estimate of its CPU (jobs.cpu_ms, made by its creator from the input's header: _jobs/files.ts
// cpuEstimateMs, 40 ms for a tiny input up to 1.2 s at the size limits). A claim of media jobs
// holds all the CPU the isolate has left of SPOOL_WORKER_MEDIA_BUDGET_MS (after everything spent
// and held) while it is in flight, and takes only jobs whose estimates fit in it together
// (claim_jobs p_cpu_budget_ms); then each claimed job holds its own estimate. A job that does not
// fit is never claimed (so it loses no attempt); a fresh invocation, in a fresh isolate once this
// one is retired, takes it. When the job ends, what it did not use of its estimate is given back.
//
// The gap: an isolate whose budget has room only for smaller jobs than those waiting (say 0.5 s
// spent, a 1.2 s job waiting) is not retired by the runtime until its 1 s soft limit, so a ring
// for that job comes back to it. At the end of each invocation such an isolate asks the queue what
// the cheapest waiting media job needs (cheapest_pending_cpu) and, when it does not fit, hands
// over again (each costs the isolate some CPU, ~35 ms measured locally with its linger, which
// brings it to the soft limit and retirement), at most MAX_STARVED_RINGS times; after that the
// pg_cron sweep and the runtime's wall-clock retirement take over. Small jobs are never held up
// by this: they fit what such an isolate has left.
//
// Round trips are charged too, at an estimate each (WorkerConfig.callCpuMs, 2 ms): every RPC an
// invocation makes (claims, idle polls, heartbeats, completions) costs the isolate CPU in
// supabase-js, fetch and JSON, and an isolate that serves many invocations spends most of its
// CPU there. Measured on the stand-in (gateway log of a full `npm test`: process CPU at the 1 s
// soft limit against the calls each isolate had made, boot and media subtracted): 1.7 to 1.8 ms
// per call. Without this charge an isolate with 136 ms of media and ~400 calls behind it claimed
// a 1.2 s audio job, reached 90% of the hard limit (beforeunload 'cpu') inside it and lost an
// attempt. What is left unmetered is boot (110 to 200 ms measured) and anything else outside
// media and calls: the 500 ms between the default budget and the 2 s hard limit.
//
// What is measured: the wall time of each synchronous media stage. On the isolate's one JS thread
// that is at least the CPU time the stage used (more if the OS preempted the thread), so the
// charge errs on the safe side. CPU time itself is not available honestly in the Edge Runtime:
// node:process cpuUsage() there is a stub returning zeros (ext/node/polyfills/process.ts), and
// Deno.cpuUsage() (Deno CLI; not in edge-runtime's sources) is the whole process's CPU, every
// thread of it (GC, compiler, other isolates), not the isolate thread's the runtime limits.

/** A clock for synchronous sections: wall time in production, a counter in tests. */
export interface CpuMeter {
  now(): number;
}

export const wallMeter: CpuMeter = { now: () => performance.now() };

/** Hand-overs for media work an isolate out of budget makes at most (see "The gap" above). */
export const MAX_STARVED_RINGS = 60;

/** Part of the budget held for one job (or for a claim in flight). */
export class CpuReservation {
  /** Reserved and not yet spent. */
  private left: number;
  private open = true;

  constructor(private readonly budget: IsolateCpu, ms: number) {
    this.left = ms;
  }

  /** Spending counts against the reservation first (it was already held for this). */
  spend(ms: number) {
    const covered = Math.min(this.left, ms);
    this.left -= covered;
    this.budget.unreserve(covered);
  }

  /** Gives back what was not spent. Idempotent. */
  release() {
    if (!this.open) return;
    this.open = false;
    this.budget.unreserve(this.left);
    this.left = 0;
  }
}

export class IsolateCpu {
  /** Media CPU spent in this isolate so far (ms, measured). */
  spent = 0;
  /** CPU charged for round trips (ms, estimated: calls x WorkerConfig.callCpuMs). */
  calls = 0;
  /** Held for jobs claimed or being claimed and not yet spent. */
  reserved = 0;
  /** Hand-overs made for media work this isolate had no budget for. */
  starvedRings = 0;
  private readonly jobs = new Map<string, CpuReservation>();

  constructor(private readonly meter: CpuMeter = wallMeter) {}

  /** What is left of `budgetMs` after what was spent and what is reserved (may be negative). */
  available(budgetMs: number): number {
    return budgetMs - this.spent - this.calls - this.reserved;
  }

  /** Charges the estimated CPU of one round trip (not a media job's: no reservation covers it). */
  call(ms: number) {
    this.calls += ms;
  }

  /** Reserves `ms` (at most the budget) if it fits; null if it does not. */
  reserve(ms: number, budgetMs: number): CpuReservation | null {
    const est = Math.max(1, Math.min(ms, budgetMs));
    if (this.available(budgetMs) + 1e-9 < est) return null;
    this.reserved += est;
    return new CpuReservation(this, est);
  }

  /** Hands a reservation to a job: stages of that job charge against it. */
  assign(jobId: string, reservation: CpuReservation) {
    this.jobs.get(jobId)?.release();
    this.jobs.set(jobId, reservation);
  }

  /** The job has ended: what it did not use of its reservation is free again. */
  finish(jobId: string) {
    this.jobs.get(jobId)?.release();
    this.jobs.delete(jobId);
  }

  /**
   * Runs one synchronous media stage of a job and charges its measured time at once (against the
   * job's reservation first). `work` must not return a promise: awaiting is not CPU.
   */
  charge<T>(jobId: string | null, work: () => T): T {
    const start = this.meter.now();
    let result: T;
    try {
      result = work();
    } finally {
      const ms = Math.max(0, this.meter.now() - start);
      this.spent += ms;
      if (jobId !== null) this.jobs.get(jobId)?.spend(ms);
    }
    if (result instanceof Promise) {
      throw new TypeError('IsolateCpu.charge measures synchronous work only');
    }
    return result;
  }

  /** @internal */
  unreserve(ms: number) {
    this.reserved = Math.max(0, this.reserved - ms);
  }
}

/** This isolate's meter: module state, so every invocation in the isolate shares it. */
export const isolateCpu = new IsolateCpu();
