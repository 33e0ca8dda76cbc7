// The drain loop (job-worker/run.ts) against an in-memory queue: batching, bounded concurrency,
// the retryable/permanent mapping, fencing, the time budget, the hand-over ring and the isolate's
// media CPU budget. Pure: no stack. Time is virtual (support/virtual-scheduler.ts): a test moves
// the clock and asserts the states reached (claims made, jobs finished), never how long anything
// took on the machine's clock, so the results are the same on an idle or a loaded machine.
import assert from 'node:assert/strict';
import { z } from '../_shared/deps.ts';
import { type Handler, JobError } from '../_jobs/kind.ts';
import { readProviderConfig } from '../_jobs/providers.ts';
import { EnvReader } from '../_shared/env.ts';
import type { WorkerConfig } from '../job-worker/config.ts';
import { type CpuMeter, IsolateCpu, MAX_STARVED_RINGS } from '../job-worker/cpu-budget.ts';
import { drain, type DrainDeps, type RunnableKind, type WorkerStorage } from '../job-worker/run.ts';
import { realScheduler } from '../job-worker/scheduler.ts';
import { FakeQueue } from './support/fake-queue.ts';
import { VirtualScheduler } from './support/virtual-scheduler.ts';

const Input = z.object({
  sleep_ms: z.number().int().min(0).default(0),
  fail: z.enum(['never', 'retryable', 'permanent', 'crash']).default('never'),
  /** Media test kinds: CPU this job's one stage costs on the fake CPU meter. */
  cpu_ms: z.number().min(0).default(0),
}).strict();
type Input = z.infer<typeof Input>;

/** A virtual sleep that ends early (rejecting) when the job is aborted. */
function sleepOn(clock: VirtualScheduler, ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const aborted = new Promise<void>((r) =>
      signal?.addEventListener('abort', () => r(), { once: true })
    );
    clock.sleep(ms, aborted).then(
      () => (signal?.aborted ? reject(new Error('aborted')) : resolve()),
    );
  });
}

/** A test handler: sleeps (virtual time), then fails or succeeds as its input says. */
function testHandler(clock: VirtualScheduler): Handler<Input> {
  return async (ctx) => {
    if (ctx.input.sleep_ms > 0) await sleepOn(clock, ctx.input.sleep_ms, ctx.signal);
    if (ctx.input.fail === 'retryable') throw new JobError('flaky', 'try again', true);
    if (ctx.input.fail === 'permanent') {
      throw new JobError('bad_file', 'cannot work with this', false);
    }
    if (ctx.input.fail === 'crash') throw new TypeError('undefined is not a function');
    return { output: { files: [] } };
  };
}

/**
 * A handler that holds its job until the job is aborted (budget, shutdown, lost lease); calls
 * `onStart` as it begins, so tests act on a running job without guessing when it runs.
 */
function untilAborted(onStart: () => void = () => {}): Handler<Input> {
  return (ctx) =>
    new Promise((_, reject) => {
      onStart();
      ctx.signal.addEventListener('abort', () => reject(new Error('aborted')), { once: true });
    });
}

function kind(handler: Handler<Input>): RunnableKind {
  return { schema: Input, handler: () => Promise.resolve(handler) };
}

/** A fake CPU meter: a stage "costs" what the test adds to it while the stage runs. */
class FakeCpuMeter implements CpuMeter {
  t = 0;
  now() {
    return this.t;
  }
}

/**
 * A media kind (it has an input file) whose one synchronous stage costs `cpu_ms` on the fake
 * meter, charged to the isolate's CPU as the real handlers charge theirs; `sleep_ms` then holds it.
 */
function mediaKind(
  clock: VirtualScheduler,
  cpu: IsolateCpu,
  meter: FakeCpuMeter,
  onStage: (jobId: string) => void = () => {},
): RunnableKind {
  const handler: Handler<Input> = async (ctx) => {
    cpu.charge(ctx.job.id, () => {
      meter.t += ctx.input.cpu_ms;
    });
    onStage(ctx.job.id);
    if (ctx.input.sleep_ms > 0) await sleepOn(clock, ctx.input.sleep_ms, ctx.signal);
    return { output: { files: [] } };
  };
  return { ...kind(handler), file: {} };
}

const NO_PROVIDERS = readProviderConfig(new EnvReader(() => undefined), {});

const noStorage: WorkerStorage = {
  download: () => Promise.reject(new Error('no storage in this test')),
  upload: () => Promise.reject(new Error('no storage in this test')),
  signedUrl: () => Promise.reject(new Error('no storage in this test')),
};

const CONFIG: WorkerConfig = {
  batchSize: 10,
  concurrency: 10,
  leaseSeconds: 60,
  heartbeatMs: 20_000,
  budgetMs: 10_000,
  drainMs: 2_000,
  lingerMs: 0,
  idlePollMs: 5,
  jobLogs: true,
  types: null,
  mediaConcurrency: 2,
  mediaBudgetMs: 0,
  callCpuMs: 0,
};

interface Options {
  config?: Partial<WorkerConfig>;
  /** Job kinds by type; default { test: testHandler }. Built with the test's clock and meter. */
  kinds?: (
    t: { clock: VirtualScheduler; cpu: IsolateCpu; meter: FakeCpuMeter; queue: FakeQueue },
  ) => Record<string, RunnableKind>;
  /** Shared with another setup: one isolate, one clock, one queue. */
  share?: { clock: VirtualScheduler; queue: FakeQueue; cpu: IsolateCpu; meter: FakeCpuMeter };
}

function setup({ config = {}, kinds, share }: Options = {}) {
  const clock = share?.clock ?? new VirtualScheduler();
  const queue = share?.queue ?? new FakeQueue(() => clock.date());
  const meter = share?.meter ?? new FakeCpuMeter();
  const cpu = share?.cpu ?? new IsolateCpu(meter);
  const byType = kinds?.({ clock, cpu, meter, queue }) ?? { test: kind(testHandler(clock)) };
  const logs: Record<string, unknown>[] = [];
  const rings: string[] = [];
  const deps: DrainDeps = {
    rpc: queue.rpc,
    storage: noStorage,
    scheduler: clock,
    cpu,
    kindOf: (type) => byType[type],
    providers: NO_PROVIDERS,
    types: Object.keys(byType),
    config: { ...CONFIG, ...config },
    workerId: 'jw-test',
    ring: (reason) => {
      rings.push(reason);
      return Promise.resolve();
    },
    log: (line) => logs.push(line),
  };
  const outcomes = () => logs.filter((l) => l.msg === 'job');
  /** Runs one invocation to its end on the virtual clock. */
  const run = () => clock.run(drain(deps, 'test'));
  return { clock, queue, cpu, meter, logs, rings, deps, outcomes, run };
}

Deno.test('N jobs are claimed in ceil(N / batch) claims and completed in batches, each exactly once', async () => {
  const { queue, outcomes, run } = setup({ config: { batchSize: 100, concurrency: 100 } });
  queue.addMany(250, 'test');
  const summary = await run();

  assert.deepEqual(
    queue.callsOf('claim_jobs').map((c) => c.args.p_limit),
    [100, 100, 100, 100],
    "claims of 100, 100 and 50, and one more after the last jobs finished (a finish may free a capped owner's slot)",
  );
  assert.equal(summary.claimed, 250);
  assert.equal(queue.byStatus('done').length, 250, 'every job is done');
  const completes = queue.callsOf('complete_jobs');
  const entries = completes.flatMap((c) => c.args.p_results as { id: string }[]);
  assert.equal(entries.length, 250, 'each job is sent to complete_jobs once');
  assert.equal(new Set(entries.map((e) => e.id)).size, 250);
  assert.ok(completes.length <= 4, `results are batched (${completes.length} complete_jobs calls)`);
  assert.equal(queue.count('fail_job') + queue.count('heartbeat_job'), 0, 'no per-job round trips');
  assert.equal(summary.done, 250);
  assert.equal(outcomes().length, 250, 'one log line per job outcome');
  assert.deepEqual(Object.keys(outcomes()[0]).sort(), [
    'attempt',
    'duration_ms',
    'job_id',
    'level',
    'msg',
    'outcome',
    'type',
    'worker_id',
  ]);
  assert.equal(summary.stop, 'empty');
});

Deno.test('no more than SPOOL_WORKER_CONCURRENCY handlers run at once', async () => {
  let running = 0;
  let peak = 0;
  const { queue, run } = setup({
    config: { batchSize: 10, concurrency: 4 },
    kinds: ({ clock }) => ({
      test: kind(async () => {
        running++;
        peak = Math.max(peak, running);
        await clock.sleep(3);
        running--;
        return { output: { files: [] } };
      }),
    }),
  });
  queue.addMany(40, 'test');
  await run();
  assert.equal(peak, 4, 'the bound is reached and never exceeded');
  assert.equal(queue.byStatus('done').length, 40);
  for (const c of queue.callsOf('claim_jobs')) {
    assert.ok(
      (c.args.p_limit as number) <= 4,
      'a claim asks for no more jobs than there are free handler slots',
    );
  }
});

Deno.test('an owner at the running cap: each slot that frees is claimed at once, and 59 jobs finish in one invocation', async () => {
  // The stall a new user found: one user, 59 jobs, max_running_per_user 10. The first claim gets
  // 10 and comes back short; before, the worker called the queue empty and the rest waited for
  // the pg_cron sweep, 10 a minute.
  let running = 0;
  let peak = 0;
  const { queue, rings, run } = setup({
    config: { batchSize: 100, concurrency: 100, lingerMs: 0 },
    kinds: ({ clock }) => ({
      test: kind(async () => {
        running++;
        peak = Math.max(peak, running);
        await clock.sleep(50);
        running--;
        return { output: { files: [] } };
      }),
    }),
  });
  queue.maxRunningPerUser = 10;
  queue.addMany(59, 'test');
  const summary = await run();
  assert.equal(
    queue.byStatus('done').length,
    59,
    `every job ran in this invocation (${JSON.stringify(summary)})`,
  );
  assert.equal(peak, 10, 'at most the cap ran at once, and the cap was used');
  assert.equal(summary.stop, 'empty');
  assert.deepEqual(rings, [], 'no ring was needed: the worker claimed each freed slot itself');
  assert.ok(
    queue.count('claim_jobs') <= 59 / 10 + 2,
    `one claim per finished batch (${queue.count('claim_jobs')})`,
  );
});

Deno.test("an owner's slots that free after claiming has stopped are handed to a successor with a ring", async () => {
  const { queue, rings, run } = setup({
    config: { batchSize: 100, concurrency: 100, budgetMs: 1000, drainMs: 500 },
  });
  queue.maxRunningPerUser = 10;
  queue.addMany(30, 'test', { sleep_ms: 600 });
  const summary = await run();
  assert.equal(
    queue.byStatus('done').length,
    10,
    'the first ten ran; they finished after claiming stopped',
  );
  assert.equal(queue.byStatus('pending').length, 20);
  assert.equal(summary.stop, 'budget');
  assert.deepEqual(rings, ['continue'], "the next worker is rung for the owner's freed slots");
});

Deno.test('a retryable JobError is retried, a permanent one fails the job for good', async () => {
  const { queue, outcomes, run } = setup();
  const flaky = queue.add('test', { fail: 'retryable' }, { max_attempts: 1 });
  const flakyWithAttempts = queue.add('test', { fail: 'retryable' });
  const bad = queue.add('test', { fail: 'permanent' });
  queue.backoffMs = 60_000; // not within this invocation
  await run();

  const fails = Object.fromEntries(queue.callsOf('fail_job').map((c) => [c.args.p_id, c.args]));
  assert.equal(fails[flakyWithAttempts.id].p_retryable, true);
  assert.deepEqual(fails[flakyWithAttempts.id].p_error, { code: 'flaky', message: 'try again' });
  assert.equal(queue.jobs.get(flakyWithAttempts.id)!.status, 'pending', 'retried after backoff');
  assert.equal(queue.jobs.get(flaky.id)!.status, 'failed', 'out of attempts: dead');
  assert.equal(fails[bad.id].p_retryable, false);
  assert.equal(queue.jobs.get(bad.id)!.status, 'failed');
  const byId = Object.fromEntries(outcomes().map((l) => [l.job_id, l]));
  assert.equal(byId[flakyWithAttempts.id].outcome, 'retry');
  assert.equal(byId[flakyWithAttempts.id].error_code, 'flaky');
  assert.equal(byId[flaky.id].outcome, 'failed');
  assert.equal(byId[bad.id].outcome, 'failed');
  assert.equal(byId[bad.id].error_code, 'bad_file');
});

Deno.test('an unexpected exception is a retryable handler_crashed failure', async () => {
  const { queue, logs, run } = setup();
  const job = queue.add('test', { fail: 'crash' });
  queue.backoffMs = 60_000;
  await run();
  const [fail] = queue.callsOf('fail_job');
  assert.equal(fail.args.p_id, job.id);
  assert.equal(fail.args.p_retryable, true);
  assert.deepEqual(fail.args.p_error, {
    code: 'handler_crashed',
    message: 'undefined is not a function',
  });
  assert.ok(logs.some((l) => l.msg === 'handler crashed' && String(l.error).includes('TypeError')));
});

Deno.test("input that fails its kind's schema fails permanently as invalid_input, without running", async () => {
  let ran = false;
  const { queue, run } = setup({
    kinds: () => ({
      test: kind(() => {
        ran = true;
        return Promise.resolve({ output: { files: [] } });
      }),
    }),
  });
  const job = queue.add('test', { sleep_ms: 'soon' });
  await run();
  const [fail] = queue.callsOf('fail_job');
  assert.equal(fail.args.p_retryable, false);
  assert.equal((fail.args.p_error as { code: string }).code, 'invalid_input');
  assert.equal((fail.args.p_error as { details: { path: string }[] }).details[0].path, 'sleep_ms');
  assert.equal(queue.jobs.get(job.id)!.status, 'failed');
  assert.equal(ran, false);
});

Deno.test('a job type the worker does not run (noop when disabled) fails permanently as unknown_type', async () => {
  const { queue, run } = setup();
  const job = queue.add('noop');
  await run();
  const [fail] = queue.callsOf('fail_job');
  assert.equal((fail.args.p_error as { code: string }).code, 'unknown_type');
  assert.equal(fail.args.p_retryable, false);
  assert.equal(queue.jobs.get(job.id)!.status, 'failed');
});

Deno.test('a lease lost at a heartbeat aborts the job and its result is discarded', async () => {
  const release = Promise.withResolvers<void>();
  const finished = Promise.withResolvers<boolean>();
  const { queue, outcomes, run } = setup({
    config: { heartbeatMs: 15 },
    kinds: ({ queue }) => ({
      test: kind(async (ctx) => {
        // Cancelled (by its owner) as the handler starts: the next heartbeat finds the lease gone.
        queue.cancel(ctx.job.id);
        // Keeps going after the abort, as a careless handler would; its result must not count.
        await release.promise;
        finished.resolve(ctx.signal.aborted);
        return { output: { files: [], late: true } };
      }),
    }),
  });
  const job = queue.add('test');
  const summary = await run();

  assert.equal(queue.count('heartbeat_job'), 1, 'the heartbeat found the lease gone');
  assert.equal(queue.count('fail_job'), 0, 'the job is not failed');
  assert.equal(queue.jobs.get(job.id)!.status, 'cancelled', 'the cancellation stands');
  assert.equal(outcomes()[0].outcome, 'lease_lost');
  assert.equal(summary.lease_lost, 1);
  // The invocation is over while the handler still runs; now it finishes, late.
  release.resolve();
  assert.equal(await finished.promise, true, "the handler's signal was aborted");
  const sent = queue.callsOf('complete_jobs').flatMap((c) => c.args.p_results as { id: string }[]);
  assert.equal(sent.length, 0, 'nothing is completed for a job whose lease was lost');
});

Deno.test("a handler still running at its attempt's timeout is aborted, and the attempt fails as a retryable timeout", async () => {
  let aborted = false;
  const { queue, outcomes, run } = setup({
    kinds: ({ clock }) => ({
      test: kind(async (ctx) => {
        try {
          await sleepOn(clock, 60_000, ctx.signal);
        } finally {
          aborted = ctx.signal.aborted;
        }
        return { output: { files: [] } };
      }),
    }),
  });
  queue.timeoutSeconds = { test: 5 };
  const job = queue.add('test');
  await run();
  assert.equal(aborted, true, "the handler's signal was aborted");
  const [failed] = queue.callsOf('fail_job');
  assert.equal(failed.args.p_id, job.id);
  assert.equal((failed.args.p_error as { code: string }).code, 'timeout');
  assert.match((failed.args.p_error as { message: string }).message, /5 s timeout/);
  assert.equal(failed.args.p_retryable, true);
  assert.equal(outcomes()[0].outcome, 'retry');
});

Deno.test("a sleep longer than setTimeout's limit is clamped to it, not fired at once (a deadline years ahead)", async () => {
  // setTimeout fires at once for a delay past 2^31 - 1 ms: look at the delay realScheduler asks for.
  const real = globalThis.setTimeout;
  const delays: number[] = [];
  globalThis.setTimeout = ((fn: () => void, ms?: number) => {
    delays.push(ms ?? 0);
    return real(fn, 0);
  }) as typeof setTimeout;
  try {
    await realScheduler.sleep(2 ** 40);
  } finally {
    globalThis.setTimeout = real;
  }
  assert.deepEqual(delays, [2 ** 31 - 1]);
});

Deno.test('a job whose attempt ends before its timeout is not aborted by it', async () => {
  const { queue, outcomes, run } = setup({
    kinds: ({ clock }) => ({
      test: kind(async (ctx) => {
        await sleepOn(clock, 1_000, ctx.signal);
        return { output: { files: [] } };
      }),
    }),
  });
  queue.timeoutSeconds = { test: 5 };
  queue.add('test');
  await run();
  assert.equal(queue.count('fail_job'), 0);
  assert.equal(outcomes()[0].outcome, 'done');
});

Deno.test('a completion whose lease is gone is refused by complete_jobs and logged as lease_lost', async () => {
  const { queue, outcomes, run } = setup({
    kinds: ({ queue }) => ({
      test: kind((ctx) => {
        queue.cancel(ctx.job.id); // cancelled just before the result is written
        return Promise.resolve({ output: { files: [] } });
      }),
    }),
  });
  queue.add('test');
  const summary = await run();
  assert.equal(queue.count('complete_jobs'), 1);
  assert.equal(summary.done, 0);
  assert.equal(outcomes()[0].outcome, 'lease_lost');
});

Deno.test('progress is written with heartbeat_job at most every 500 ms, at once if the last beat is older', async () => {
  const { clock, queue, deps } = setup({
    kinds: ({ clock }) => ({
      test: kind(async (ctx) => {
        await ctx.progress(40, 'grading'); // right after the claim: not written yet
        await clock.sleep(600);
        await ctx.progress(55, 'encoding'); // 600 ms after the last beat: written at once
        await clock.sleep(1000);
        return { output: { files: [] } };
      }),
    }),
  });
  const job = queue.add('test');
  const done = drain(deps, 'test');
  await clock.advance(499);
  assert.equal(queue.count('heartbeat_job'), 0, 'a report right after the claim waits');
  await clock.advance(1);
  const beats = () => queue.callsOf('heartbeat_job').map((c) => c.args);
  assert.equal(beats().length, 1, 'the ticker writes it once 500 ms have passed');
  assert.deepEqual(
    { id: beats()[0].p_id, progress: beats()[0].p_progress, step: beats()[0].p_step },
    { id: job.id, progress: 40, step: 'grading' },
  );
  assert.equal(beats()[0].p_lease_seconds, 60);
  await clock.advance(100); // t = 600: the second report, 100 ms after that beat
  assert.equal(beats().length, 1, 'too soon after the last beat: held back');
  await clock.advance(400); // t = 1000: the ticker writes it
  assert.equal(beats().length, 2);
  assert.equal(beats()[1].p_progress, 55);
  assert.equal(beats()[1].p_step, 'encoding');
  await clock.run(done);
  assert.equal(queue.jobs.get(job.id)!.status, 'done');
  assert.equal(queue.count('heartbeat_job'), 2, 'no beat without news before the heartbeat period');
});

Deno.test('a progress report long after the last heartbeat is written at once', async () => {
  let beatsAtReport = -1;
  const { queue, run } = setup({
    config: { heartbeatMs: 60_000 },
    kinds: ({ clock, queue }) => ({
      test: kind(async (ctx) => {
        await clock.sleep(700);
        await ctx.progress(55, 'encoding');
        beatsAtReport = queue.count('heartbeat_job'); // written before progress() returned
        return { output: { files: [] } };
      }),
    }),
  });
  const job = queue.add('test');
  await run();
  assert.equal(beatsAtReport, 1);
  const [beat] = queue.callsOf('heartbeat_job');
  assert.deepEqual(
    { id: beat.args.p_id, progress: beat.args.p_progress, step: beat.args.p_step },
    { id: job.id, progress: 55, step: 'encoding' },
  );
});

Deno.test('a provider hand-over moves the job to waiting with await_job', async () => {
  const { queue, outcomes, run } = setup({
    kinds: () => ({
      test: kind(() =>
        Promise.resolve({
          await: { provider: 'replicate', externalId: 'pred-1', timeoutSeconds: 600 },
        })
      ),
    }),
  });
  const job = queue.add('test');
  const summary = await run();
  const [call] = queue.callsOf('await_job');
  assert.deepEqual(call.args, {
    p_id: job.id,
    p_lease_token: call.args.p_lease_token,
    p_provider: 'replicate',
    p_external_id: 'pred-1',
    p_timeout_seconds: 600,
  });
  assert.equal(queue.jobs.get(job.id)!.status, 'waiting');
  assert.equal(outcomes()[0].outcome, 'waiting');
  assert.equal(summary.waiting, 1);
  assert.equal(queue.count('complete_jobs'), 0);
});

Deno.test('claiming stops drainMs before the budget ends, and the worker rings again while work remains', async () => {
  const { clock, queue, deps, rings, logs } = setup({
    config: { budgetMs: 300, drainMs: 100, batchSize: 5, concurrency: 5 },
  });
  queue.addMany(500, 'test', { sleep_ms: 10 });
  const claimedAt: number[] = [];
  deps.rpc = (fn, args) => {
    if (fn === 'claim_jobs') claimedAt.push(clock.now());
    return queue.rpc(fn, args);
  };
  let ended = false;
  const done = drain(deps, 'test').finally(() => (ended = true));
  await clock.advance(300);
  assert.equal(ended, true, 'the invocation has ended by the end of its budget');
  assert.ok(claimedAt.length > 1);
  assert.ok(claimedAt.every((t) => t < 200), 'no claim after budget - drainMs');
  const summary = await done;

  assert.equal(summary.stop, 'budget');
  assert.ok(summary.done > 0 && summary.done < 500, `some work was done (${summary.done})`);
  assert.deepEqual(rings, ['continue'], 'one ring for a successor');
  assert.equal(queue.byStatus('running').length, 0, 'no job is left holding a lease');
  const drainLine = logs.find((l) => l.msg === 'drain')!;
  assert.equal(drainLine.rang, true);
  assert.equal(drainLine.claimed, summary.done);
  assert.equal(clock.pending, 0, 'the finished drain leaves no timer behind');
});

Deno.test("the budget is the isolate's: an invocation on an older isolate stops claiming drainMs before the isolate's budget ends", async () => {
  const { clock, queue, deps, rings } = setup({
    config: { budgetMs: 300, drainMs: 100, batchSize: 5, concurrency: 5 },
  });
  // The isolate's first request was 150 ms ago: 150 ms of its budget are left, 50 for claiming.
  await clock.advance(150);
  deps.isolateStartedAt = 0;
  queue.addMany(500, 'test', { sleep_ms: 10 });
  const claimedAt: number[] = [];
  deps.rpc = (fn, args) => {
    if (fn === 'claim_jobs') claimedAt.push(clock.now());
    return queue.rpc(fn, args);
  };
  let ended = false;
  const done = drain(deps, 'test').finally(() => (ended = true));
  await clock.advance(150);
  assert.equal(ended, true, "the invocation has ended by the end of the isolate's budget");
  assert.ok(claimedAt.length > 0);
  assert.ok(claimedAt.every((t) => t < 200), 'no claim after the isolate budget - drainMs');
  const summary = await done;
  assert.equal(summary.stop, 'budget');
  assert.deepEqual(rings, ['continue'], 'one ring for a successor');
  assert.equal(queue.byStatus('running').length, 0, 'no job is left holding a lease');
});

Deno.test('an invocation on an isolate with no time left to claim claims nothing and rings for a fresh one', async () => {
  const { clock, queue, deps, rings } = setup({ config: { budgetMs: 300, drainMs: 100 } });
  await clock.advance(250);
  deps.isolateStartedAt = 0;
  queue.addMany(3, 'test');
  const summary = await clock.run(drain(deps, 'test'));
  assert.equal(queue.count('claim_jobs'), 0, 'nothing claimed: no attempt spent');
  assert.equal(queue.byStatus('pending').length, 3);
  assert.equal(summary.stop, 'budget');
  assert.deepEqual(rings, ['continue']);
});

Deno.test('handlers still running when the budget ends are aborted and retried, and the worker rings again', async () => {
  const { clock, queue, deps, rings, outcomes } = setup({
    config: { budgetMs: 200, drainMs: 150 },
    kinds: () => ({ test: kind(untilAborted()) }),
  });
  const job = queue.add('test');
  queue.backoffMs = 60_000;
  const done = drain(deps, 'test');
  await clock.advance(199);
  assert.equal(queue.jobs.get(job.id)!.status, 'running', 'still within the budget');
  assert.equal(queue.count('fail_job'), 0);
  await clock.advance(1);
  const summary = await clock.run(done);
  const [fail] = queue.callsOf('fail_job');
  assert.equal(fail.args.p_id, job.id);
  assert.equal(fail.args.p_retryable, true);
  assert.equal((fail.args.p_error as { code: string }).code, 'worker_timeout');
  assert.equal(queue.jobs.get(job.id)!.status, 'pending');
  assert.equal(outcomes()[0].outcome, 'retry');
  assert.equal(summary.stop, 'budget');
  assert.deepEqual(rings, ['continue']);
});

Deno.test('an empty queue ends the invocation without ringing again', async () => {
  const { queue, rings, run } = setup({ config: { lingerMs: 30 } });
  queue.addMany(3, 'test');
  const summary = await run();
  assert.equal(summary.stop, 'empty');
  assert.equal(summary.done, 3);
  assert.deepEqual(rings, []);
  assert.ok(queue.count('claim_jobs') >= 2, 'it polled the empty queue while lingering');
});

Deno.test('an empty queue is polled every idlePollMs at first, backing off to every 50 ms', async () => {
  const { clock, queue, deps } = setup({ config: { lingerMs: 1000, idlePollMs: 10 } });
  const done = drain(deps, 'test');
  // Pauses after each empty claim: 10, 15, 22.5, 33.75, then 50 (capped) ms.
  const expected: [number, number][] = [
    [0, 1],
    [9, 1],
    [10, 2],
    [24, 2],
    [25, 3],
    [47, 3],
    [47.5, 4],
    [81, 4],
    [81.25, 5],
    [131, 5],
    [131.25, 6],
    [181.25, 7],
    [231.25, 8],
  ];
  for (const [at, claims] of expected) {
    await clock.advance(at - clock.now());
    assert.equal(queue.count('claim_jobs'), claims, `claims made by t = ${at} ms`);
  }
  const summary = await clock.run(done);
  assert.equal(summary.stop, 'empty');
  assert.equal(clock.now(), 1000, 'it stops polling when lingering ends');
});

Deno.test('a job inserted while the worker lingers is picked up by its next poll, without another ring', async () => {
  const { clock, queue, deps, rings } = setup({ config: { lingerMs: 500, idlePollMs: 5 } });
  // The job is inserted as the worker's 8th claim finds the queue empty: by then it has backed
  // off to polling every 50 ms (5, 7.5, 11.25, ... ms between the first claims).
  const INSERT_AFTER = 8;
  let insertedAt = -1;
  let pickedUpBy = 0;
  deps.rpc = async (fn, args) => {
    const result = await queue.rpc(fn, args);
    if (fn !== 'claim_jobs') return result;
    const n = queue.count('claim_jobs');
    if ((result.data as unknown[]).length > 0) pickedUpBy = n;
    if (n === INSERT_AFTER) {
      queue.add('test');
      insertedAt = clock.now();
    }
    return result;
  };
  let startedAt = -1;
  deps.kindOf = () =>
    kind(() => {
      startedAt = clock.now();
      return Promise.resolve({ output: { files: [] } });
    });
  const done = drain(deps, 'test');
  await clock.until(() => insertedAt >= 0);
  await clock.advance(49);
  assert.equal(startedAt, -1, 'not before the next poll');
  await clock.advance(1);
  assert.equal(startedAt, insertedAt + 50, 'the next poll, 50 ms later, picked it up');
  const summary = await clock.run(done);
  assert.equal(summary.done, 1);
  assert.equal(pickedUpBy, INSERT_AFTER + 1);
  assert.deepEqual(rings, []);
  const polls = queue.count('claim_jobs');
  assert.ok(polls < 30, `lingering 500 ms took ${polls} claims, not one every 5 ms`);
});

Deno.test('a retry due within the budget is waited for and run again in the same invocation', async () => {
  let attempts = 0;
  const { queue, run } = setup({
    config: { lingerMs: 0 },
    kinds: () => ({
      test: kind(() => {
        attempts++;
        if (attempts === 1) return Promise.reject(new JobError('rate_limited', 'slow down', true));
        return Promise.resolve({ output: { files: [] } });
      }),
    }),
  });
  queue.backoffMs = 40;
  const job = queue.add('test');
  await run();
  assert.equal(queue.jobs.get(job.id)!.status, 'done');
  assert.equal(queue.jobs.get(job.id)!.attempts, 2);
});

Deno.test('the runtime stopping the invocation releases the jobs it holds and rings a successor', async () => {
  const stop = new AbortController();
  let started = 0;
  // The runtime says beforeunload once all three handlers are running.
  const { queue, deps, rings, run } = setup({
    kinds: () => ({
      test: kind(untilAborted(() => {
        if (++started === 3) stop.abort('beforeunload');
      })),
    }),
  });
  deps.signal = stop.signal;
  queue.addMany(3, 'test');
  queue.backoffMs = 60_000;
  const summary = await run();
  assert.equal(summary.stop, 'shutdown');
  assert.equal(summary.claimed, 3);
  assert.equal(queue.byStatus('pending').length, 3, 'every held job is back in the queue');
  assert.deepEqual(
    queue.callsOf('fail_job').map((c) => (c.args.p_error as { code: string }).code),
    ['worker_timeout', 'worker_timeout', 'worker_timeout'],
  );
  assert.deepEqual(rings, ['shutdown']);
});

Deno.test('a database that cannot be reached ends the invocation without a ring loop', async () => {
  const { deps, rings, run } = setup();
  let calls = 0;
  deps.rpc = () => {
    calls++;
    return Promise.resolve({ data: null, error: { message: 'fetch failed' } });
  };
  const summary = await run();
  assert.equal(summary.stop, 'error');
  assert.equal(calls, 3, 'the claim was tried three times (two retries after a backoff)');
  assert.deepEqual(rings, []);
});

Deno.test('only the configured job types are claimed', async () => {
  const { queue, run } = setup({ config: { types: ['image'] } });
  queue.add('test');
  await run();
  assert.deepEqual(queue.callsOf('claim_jobs')[0].args.p_types, ['image']);
  assert.equal(queue.byStatus('pending').length, 1);
});

Deno.test('without a media budget, media jobs are claimed apart, no more than the free media slots', async () => {
  let running = 0;
  let peak = 0;
  const { queue, run } = setup({
    config: { batchSize: 100, concurrency: 50, mediaConcurrency: 2, mediaBudgetMs: 0 },
    kinds: ({ clock }) => ({
      'color-grade': {
        ...kind(async () => {
          running++;
          peak = Math.max(peak, running);
          await clock.sleep(5);
          running--;
          return { output: { files: [] } };
        }),
        file: {},
      },
    }),
  });
  queue.addMany(12, 'color-grade');
  await run();
  const claims = queue.callsOf('claim_jobs').map((c) => c.args);
  assert.ok(
    claims.every((a) => (a.p_limit as number) <= 2 && a.p_cpu_budget_ms === undefined),
    `every claim asks for at most the 2 media slots, with no CPU bound (${JSON.stringify(claims)})`,
  );
  assert.equal(peak, 2, 'both media slots are used');
  assert.equal(queue.byStatus('done').length, 12);
});

// --- the isolate's media CPU budget (job-worker/cpu-budget.ts) ------------------------------------

const MEDIA = { mediaConcurrency: 2, mediaBudgetMs: 1500 };

// Each media job carries its creator's estimate (jobs.cpu_ms); `input.cpu_ms` is what its stage
// really costs on the fake meter.
const AT_LIMITS = { cpu_ms: 1200 };

Deno.test('media jobs are claimed only while their estimates fit the CPU the isolate has left; the rest keep their attempts', async () => {
  // A 3000 ms budget fits two jobs estimated at 1200 ms; each really costs 1000 ms, so after two
  // the isolate has 1000 ms left: not enough for a third.
  const { queue, cpu, rings, run } = setup({
    config: { ...MEDIA, mediaBudgetMs: 3000 },
    kinds: ({ clock, cpu, meter }) => ({ 'color-grade': mediaKind(clock, cpu, meter) }),
  });
  queue.addMany(5, 'color-grade', { cpu_ms: 1000 }, AT_LIMITS);
  const summary = await run();
  const claims = queue.callsOf('claim_jobs').map((c) => c.args);
  assert.ok(
    claims.every((a) => JSON.stringify(a.p_types) === '["color-grade"]'),
    'media are claimed apart',
  );
  assert.equal(claims[0].p_cpu_budget_ms, 3000, 'bounded by the CPU left');
  assert.ok(
    claims.slice(1).every((a) => (a.p_cpu_budget_ms as number) < 1200),
    'claims after the first are bounded by what is left, too little for another job at the limits',
  );
  assert.equal(summary.done, 2);
  assert.equal(cpu.spent, 2000, 'charged what the stages cost');
  assert.equal(cpu.reserved, 0, 'unused estimates are given back');
  const left = queue.byStatus('pending');
  assert.equal(left.length, 3);
  assert.deepEqual(left.map((j) => j.attempts), [0, 0, 0], 'no attempt spent on them');
  assert.equal(summary.stop, 'budget');
  assert.deepEqual(rings, ['continue'], 'a fresh invocation is rung for the rest');
});

Deno.test('small media jobs still run on an isolate that has spent most of its budget, while a large one waits for a fresh isolate', async () => {
  // 700 of 1500 ms spent: no room for a job at the size limits (1200 ms), room for small ones.
  const { queue, cpu, rings, run } = setup({
    config: MEDIA,
    kinds: ({ clock, cpu, meter }) => ({ 'color-grade': mediaKind(clock, cpu, meter) }),
  });
  cpu.spent = 700;
  const large = queue.add('color-grade', { cpu_ms: 1100 }, AT_LIMITS);
  const small = queue.addMany(3, 'color-grade', { cpu_ms: 30 }, { cpu_ms: 50 });
  const summary = await run();
  const budgets = queue.callsOf('claim_jobs').map((c) => c.args.p_cpu_budget_ms as number);
  assert.equal(budgets[0], 800, 'the first claim is bounded by the 800 ms left');
  assert.ok(budgets.every((b) => b < 1200), `no claim could take the large job (${budgets})`);
  assert.deepEqual(small.map((j) => queue.jobs.get(j.id)!.status), ['done', 'done', 'done']);
  assert.equal(queue.jobs.get(large.id)!.status, 'pending', 'the large job was not claimed');
  assert.equal(queue.jobs.get(large.id)!.attempts, 0);
  assert.equal(cpu.spent, 790);
  assert.equal(summary.stop, 'budget');
  assert.deepEqual(rings, ['continue'], 'the large job waits: a fresh invocation is rung for it');
});

Deno.test("round trips count against the isolate's CPU: after many calls a job at the limits waits for a fresh isolate, its attempt kept", async () => {
  // 136 ms of media and 400 calls at 2 ms each leave 1500 - 136 - 800 = 564 ms: room for small
  // jobs, not for one at the size limits (1200 ms).
  const { queue, cpu, rings, run, logs } = setup({
    config: { ...MEDIA, callCpuMs: 2 },
    kinds: ({ clock, cpu, meter }) => ({ 'audio-clean': mediaKind(clock, cpu, meter) }),
  });
  cpu.spent = 136;
  cpu.calls = 800;
  const large = queue.add('audio-clean', { cpu_ms: 1100 }, AT_LIMITS);
  const small = queue.add('audio-clean', { cpu_ms: 30 }, { cpu_ms: 50 });
  const summary = await run();
  const budgets = queue.callsOf('claim_jobs').map((c) => c.args.p_cpu_budget_ms as number);
  assert.equal(budgets[0], 564, 'the first claim is bounded by what media and calls left');
  assert.ok(budgets.every((b) => b < 1200), `no claim could take the large job (${budgets})`);
  assert.equal(queue.jobs.get(small.id)!.status, 'done');
  assert.equal(queue.jobs.get(large.id)!.status, 'pending', 'the large job was not claimed');
  assert.equal(queue.jobs.get(large.id)!.attempts, 0);
  const calls = queue.calls.length;
  assert.equal(cpu.calls, 800 + 2 * calls, 'each round trip of this invocation was charged');
  assert.equal(summary.isolate_calls_ms, cpu.calls);
  assert.equal(summary.stop, 'budget');
  assert.deepEqual(rings, ['continue'], 'a fresh invocation is rung for the large job');
  assert.ok(logs.some((l) => l.msg === 'drain'));
});

Deno.test('two invocations in one isolate never take more media work together than its CPU budget', async () => {
  // The case: two max-size jobs (1200 ms each) and a 1500 ms budget. Both invocations
  // start at once in one isolate; only one job may start.
  const a = setup({
    config: { ...MEDIA, mediaConcurrency: 1 },
    kinds: ({ clock, cpu, meter }) => ({ 'color-grade': mediaKind(clock, cpu, meter) }),
  });
  const b = setup({
    config: { ...MEDIA, mediaConcurrency: 1 },
    kinds: ({ clock, cpu, meter }) => ({ 'color-grade': mediaKind(clock, cpu, meter) }),
    share: a,
  });
  a.queue.addMany(2, 'color-grade', { cpu_ms: 1200, sleep_ms: 50 }, AT_LIMITS);
  let peakCommitted = 0;
  a.deps.rpc = b.deps.rpc = (fn, args) => {
    peakCommitted = Math.max(peakCommitted, a.cpu.spent + a.cpu.reserved);
    return a.queue.rpc(fn, args);
  };
  const [first, second] = await a.clock.run(
    Promise.all([drain(a.deps, 'test'), drain(b.deps, 'test')]),
  );
  assert.equal(first.done + second.done, 1, 'one job ran');
  assert.ok(a.cpu.spent <= 1500, `the isolate spent ${a.cpu.spent} ms of its 1500`);
  assert.ok(peakCommitted <= 1500, `at most ${peakCommitted} ms spent or reserved at once`);
  const [left] = a.queue.byStatus('pending');
  assert.equal(left.attempts, 0, 'the other job lost no attempt');
  assert.equal(second.claimed, 0, 'the second invocation claimed no media job');
  assert.deepEqual(a.rings, ['continue'], 'the invocation that spent the budget rings once');
  assert.deepEqual(b.rings, [], 'one that found the budget held by the other does not ring');
});

Deno.test('media CPU is charged as each stage returns, visible at once to every invocation in the isolate', async () => {
  const stage = Promise.withResolvers<void>();
  const { clock, queue, cpu, deps } = setup({
    config: MEDIA,
    kinds: ({ clock, cpu, meter }) => ({
      'color-grade': mediaKind(clock, cpu, meter, () => stage.resolve()),
    }),
  });
  queue.add('color-grade', { cpu_ms: 400, sleep_ms: 1000 }, AT_LIMITS);
  const done = drain(deps, 'test');
  await stage.promise;
  assert.equal(cpu.spent, 400, 'charged while the job still runs');
  assert.equal(cpu.reserved, 800, 'the rest of its 1200 ms estimate stays reserved');
  await clock.run(done);
  assert.equal(cpu.spent, 400);
  assert.equal(cpu.reserved, 0);
});

Deno.test('an isolate with too little media CPU left still runs other jobs and leaves the media job that does not fit untouched', async () => {
  const { queue, cpu, rings, run } = setup({
    config: MEDIA,
    kinds: ({ clock, cpu, meter }) => ({
      test: kind(testHandler(clock)),
      'color-grade': mediaKind(clock, cpu, meter),
    }),
  });
  cpu.spent = 1400; // earlier invocations in this isolate
  const media = queue.add('color-grade', { cpu_ms: 100 }, { cpu_ms: 200 });
  queue.addMany(3, 'test');
  const summary = await run();
  assert.equal(summary.done, 3, 'the other jobs ran');
  const claims = queue.callsOf('claim_jobs').map((c) => c.args);
  assert.deepEqual(claims.slice(0, 2).map((a) => [a.p_types, a.p_cpu_budget_ms]), [[
    ['test'],
    undefined,
  ], [[
    'color-grade',
  ], 100]]);
  assert.ok(
    claims.every((a) => a.p_types?.toString() !== 'color-grade' || a.p_cpu_budget_ms === 100),
    'every media claim is bounded by the 100 ms left',
  );
  assert.equal(queue.jobs.get(media.id)!.status, 'pending');
  assert.equal(queue.jobs.get(media.id)!.attempts, 0);
  assert.equal(cpu.spent, 1400, 'no media CPU spent');
  assert.deepEqual(rings, ['continue'], 'the media job waits: a fresh invocation is rung for it');
});

Deno.test('an isolate that has spent media CPU does not ring when no media job waits', async () => {
  const { queue, cpu, rings, run } = setup({
    config: MEDIA,
    kinds: ({ clock, cpu, meter }) => ({ 'color-grade': mediaKind(clock, cpu, meter) }),
  });
  cpu.spent = 900;
  const summary = await run();
  assert.equal(queue.count('cheapest_pending_cpu'), 1, 'it asks once what waits');
  assert.equal(summary.stop, 'empty');
  assert.deepEqual(rings, [], 'an empty queue rings nothing');
});

Deno.test('an isolate out of media budget for what waits hands over, a bounded number of times', async () => {
  // Spent, but not yet retired by the runtime (under its 1 s soft limit): the ring may come back
  // here. Each hand-over costs this isolate CPU towards that limit; after MAX_STARVED_RINGS the
  // sweep takes over.
  const first = setup({
    config: MEDIA,
    kinds: ({ clock, cpu, meter }) => ({ 'color-grade': mediaKind(clock, cpu, meter) }),
  });
  first.cpu.spent = 700;
  const media = first.queue.add('color-grade', { cpu_ms: 100 }, AT_LIMITS);
  const summary = await first.run();
  assert.equal(summary.stop, 'budget');
  assert.deepEqual(first.rings, ['continue']);
  assert.equal(first.queue.byStatus('running').length + first.queue.byStatus('done').length, 0);
  assert.equal(first.queue.jobs.get(media.id)!.attempts, 0, 'no media job claimed');

  let rang = 1;
  for (let i = 1; i < MAX_STARVED_RINGS + 5; i++) {
    const next = setup({
      config: MEDIA,
      kinds: ({ clock, cpu, meter }) => ({ 'color-grade': mediaKind(clock, cpu, meter) }),
      share: first,
    });
    await next.run();
    rang += next.rings.length;
  }
  assert.equal(rang, MAX_STARVED_RINGS, 'hand-overs stop at the cap');
});
