// The drain loop (job-worker/run.ts) against an in-memory queue: batching, bounded concurrency,
// the retryable/permanent mapping, fencing, the time budget and the hand-over ring. Pure: no stack.
import assert from 'node:assert/strict';
import { z } from '../_shared/deps.ts';
import { type Handler, JobError } from '../_shared/job-kinds.ts';
import type { WorkerConfig } from '../job-worker/config.ts';
import { drain, type DrainDeps, type RunnableKind, type WorkerStorage } from '../job-worker/run.ts';
import { FakeQueue } from './support/fake-queue.ts';

const Input = z.object({
  sleep_ms: z.number().int().min(0).default(0),
  fail: z.enum(['never', 'retryable', 'permanent', 'crash']).default('never'),
}).strict();
type Input = z.infer<typeof Input>;

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => {
      clearTimeout(t);
      reject(new Error('aborted'));
    }, { once: true });
  });

/** A test handler: sleeps, then fails or succeeds as its input says. */
const testHandler: Handler<Input> = async (ctx) => {
  if (ctx.input.sleep_ms > 0) await sleep(ctx.input.sleep_ms, ctx.signal);
  if (ctx.input.fail === 'retryable') throw new JobError('flaky', 'try again', true);
  if (ctx.input.fail === 'permanent') {
    throw new JobError('bad_file', 'cannot work with this', false);
  }
  if (ctx.input.fail === 'crash') throw new TypeError('undefined is not a function');
  return { output: { files: [] } };
};

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

function kind(handler: Handler<Input> = testHandler): RunnableKind {
  return { schema: Input, handler: () => Promise.resolve(handler) };
}

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
};

function setup(
  config: Partial<WorkerConfig> = {},
  kinds: Record<string, RunnableKind> = { test: kind() },
) {
  const queue = new FakeQueue();
  const logs: Record<string, unknown>[] = [];
  const rings: string[] = [];
  const deps: DrainDeps = {
    rpc: queue.rpc,
    storage: noStorage,
    clock: performance,
    kindOf: (type) => kinds[type],
    config: { ...CONFIG, ...config },
    workerId: 'jw-test',
    ring: (reason) => {
      rings.push(reason);
      return Promise.resolve();
    },
    log: (line) => logs.push(line),
  };
  const outcomes = () => logs.filter((l) => l.msg === 'job');
  return { queue, logs, rings, deps, outcomes };
}

Deno.test('N jobs are claimed in ceil(N / batch) claims and completed in batches, each exactly once', async () => {
  const { queue, deps, outcomes } = setup({ batchSize: 100, concurrency: 100 });
  queue.addMany(250, 'test');
  const summary = await drain(deps, 'test');

  assert.equal(queue.count('claim_jobs'), 3, 'claims of 100, 100 and 50');
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
  const counting: Handler<Input> = async () => {
    running++;
    peak = Math.max(peak, running);
    await sleep(3);
    running--;
    return { output: { files: [] } };
  };
  const { queue, deps } = setup({ batchSize: 10, concurrency: 4 }, { test: kind(counting) });
  queue.addMany(40, 'test');
  await drain(deps, 'test');
  assert.equal(peak, 4, 'the bound is reached and never exceeded');
  assert.equal(queue.byStatus('done').length, 40);
  for (const c of queue.callsOf('claim_jobs')) {
    assert.ok(
      (c.args.p_limit as number) <= 8,
      'a worker never holds more than twice its concurrency',
    );
  }
});

Deno.test('a retryable JobError is retried, a permanent one fails the job for good', async () => {
  const { queue, deps, outcomes } = setup();
  const flaky = queue.add('test', { fail: 'retryable' }, { max_attempts: 1 });
  const flakyWithAttempts = queue.add('test', { fail: 'retryable' });
  const bad = queue.add('test', { fail: 'permanent' });
  queue.backoffMs = 60_000; // not within this invocation
  await drain(deps, 'test');

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
  const { queue, deps, logs } = setup();
  const job = queue.add('test', { fail: 'crash' });
  queue.backoffMs = 60_000;
  await drain(deps, 'test');
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
  const { queue, deps } = setup({}, {
    test: kind(() => {
      ran = true;
      return Promise.resolve({ output: { files: [] } });
    }),
  });
  const job = queue.add('test', { sleep_ms: 'soon' });
  await drain(deps, 'test');
  const [fail] = queue.callsOf('fail_job');
  assert.equal(fail.args.p_retryable, false);
  assert.equal((fail.args.p_error as { code: string }).code, 'invalid_input');
  assert.equal((fail.args.p_error as { details: { path: string }[] }).details[0].path, 'sleep_ms');
  assert.equal(queue.jobs.get(job.id)!.status, 'failed');
  assert.equal(ran, false);
});

Deno.test('a job type the worker does not run (noop when disabled) fails permanently as unknown_type', async () => {
  const { queue, deps } = setup();
  const job = queue.add('noop');
  await drain(deps, 'test');
  const [fail] = queue.callsOf('fail_job');
  assert.equal((fail.args.p_error as { code: string }).code, 'unknown_type');
  assert.equal(fail.args.p_retryable, false);
  assert.equal(queue.jobs.get(job.id)!.status, 'failed');
});

Deno.test('a lease lost at a heartbeat aborts the job and its result is discarded', async () => {
  const started = Promise.withResolvers<void>();
  const release = Promise.withResolvers<void>();
  const finished = Promise.withResolvers<boolean>();
  const stubborn: Handler<Input> = async (ctx) => {
    started.resolve();
    // Keeps going after the abort, as a careless handler would; its result must not count.
    await release.promise;
    finished.resolve(ctx.signal.aborted);
    return { output: { files: [], late: true } };
  };
  const { queue, deps, outcomes } = setup({ heartbeatMs: 15 }, { test: kind(stubborn) });
  const job = queue.add('test');
  // Cancelled (by its owner) while the handler runs: the next heartbeat finds the lease gone.
  started.promise.then(() => queue.cancel(job.id));
  const summary = await drain(deps, 'test');

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

Deno.test('a completion whose lease is gone is refused by complete_jobs and logged as lease_lost', async () => {
  const { queue, deps, outcomes } = setup({}, {
    test: kind((ctx) => {
      queue.cancel(ctx.job.id); // cancelled just before the result is written
      return Promise.resolve({ output: { files: [] } });
    }),
  });
  queue.add('test');
  const summary = await drain(deps, 'test');
  assert.equal(queue.count('complete_jobs'), 1);
  assert.equal(summary.done, 0);
  assert.equal(outcomes()[0].outcome, 'lease_lost');
});

Deno.test('progress reported by a handler is written with heartbeat_job', async () => {
  const reporting: Handler<Input> = async (ctx) => {
    await ctx.progress(40, 'grading');
    return { output: { files: [] } };
  };
  const { queue, deps } = setup({}, { test: kind(reporting) });
  const job = queue.add('test');
  // The first report comes right after the claim: it waits for PROGRESS_MIN_INTERVAL_MS.
  await drain(deps, 'test');
  const beats = queue.callsOf('heartbeat_job');
  assert.ok(beats.length <= 1);
  if (beats.length === 1) {
    assert.equal(beats[0].args.p_progress, 40);
    assert.equal(beats[0].args.p_step, 'grading');
    assert.equal(beats[0].args.p_lease_seconds, 60);
  }
  assert.equal(queue.jobs.get(job.id)!.status, 'done');

  // A report long after the last heartbeat is written at once: the worker's clock is moved on
  // 600 ms (past PROGRESS_MIN_INTERVAL_MS), not slept.
  let skew = 0;
  const slow: Handler<Input> = async (ctx) => {
    skew += 600;
    await ctx.progress(55, 'encoding');
    return { output: { files: [] } };
  };
  const second = setup({}, { test: kind(slow) });
  second.deps.clock = { now: () => performance.now() + skew };
  const job2 = second.queue.add('test');
  await drain(second.deps, 'test');
  assert.equal(second.queue.count('heartbeat_job'), 1);
  const [beat] = second.queue.callsOf('heartbeat_job');
  assert.deepEqual(
    { id: beat.args.p_id, progress: beat.args.p_progress, step: beat.args.p_step },
    { id: job2.id, progress: 55, step: 'encoding' },
  );
});

Deno.test('a provider hand-over moves the job to waiting with await_job', async () => {
  const { queue, deps, outcomes } = setup({}, {
    test: kind(() =>
      Promise.resolve({
        await: { provider: 'replicate', externalId: 'pred-1', timeoutSeconds: 600 },
      })
    ),
  });
  const job = queue.add('test');
  const summary = await drain(deps, 'test');
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

Deno.test('claiming stops before the budget ends, and the worker rings again while work remains', async () => {
  const { queue, deps, rings, logs } = setup({
    budgetMs: 300,
    drainMs: 100,
    batchSize: 5,
    concurrency: 5,
  });
  queue.addMany(500, 'test', { sleep_ms: 10 });
  const started = performance.now();
  const summary = await drain(deps, 'test');
  const elapsed = performance.now() - started;

  assert.equal(summary.stop, 'budget');
  assert.ok(summary.done > 0 && summary.done < 500, `some work was done (${summary.done})`);
  assert.ok(elapsed < 450, `the invocation ended within its budget (${Math.round(elapsed)} ms)`);
  const lastClaimAt = queue.callsOf('claim_jobs').length;
  assert.ok(lastClaimAt > 0);
  assert.deepEqual(rings, ['continue'], 'one ring for a successor');
  assert.equal(queue.byStatus('running').length, 0, 'no job is left holding a lease');
  const drainLine = logs.find((l) => l.msg === 'drain')!;
  assert.equal(drainLine.rang, true);
  assert.equal(drainLine.claimed, summary.done);
});

Deno.test('handlers still running when the budget ends are aborted and retried, and the worker rings again', async () => {
  const { queue, deps, rings, outcomes } = setup({ budgetMs: 200, drainMs: 150 }, {
    test: kind(untilAborted()),
  });
  const job = queue.add('test');
  queue.backoffMs = 60_000;
  const summary = await drain(deps, 'test');
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
  const { queue, deps, rings } = setup({ lingerMs: 30 });
  queue.addMany(3, 'test');
  const summary = await drain(deps, 'test');
  assert.equal(summary.stop, 'empty');
  assert.equal(summary.done, 3);
  assert.deepEqual(rings, []);
  assert.ok(queue.count('claim_jobs') >= 2, 'it polled the empty queue while lingering');
});

Deno.test('a job inserted while the worker lingers is picked up without another ring', async () => {
  const { queue, deps } = setup({ lingerMs: 500, idlePollMs: 5 });
  // The job is inserted as the worker's 8th claim finds the queue empty: it is lingering, and
  // has backed off to polling every 50 ms (5, 7.5, 11.25, ... ms between the first claims).
  const INSERT_AFTER = 8;
  let insertedAt = 0;
  let pickedUpBy = 0;
  deps.rpc = async (fn, args) => {
    const result = await queue.rpc(fn, args);
    if (fn !== 'claim_jobs') return result;
    const n = queue.count('claim_jobs');
    if ((result.data as unknown[]).length > 0) pickedUpBy = n;
    if (n === INSERT_AFTER) {
      queue.add('test');
      insertedAt = performance.now();
    }
    return result;
  };
  let startedAt = 0;
  deps.kindOf = () =>
    kind(() => {
      startedAt = performance.now();
      return Promise.resolve({ output: { files: [] } });
    });
  const summary = await drain(deps, 'test');
  assert.equal(summary.done, 1);
  assert.equal(pickedUpBy, INSERT_AFTER + 1, 'the next poll picked it up');
  // The empty queue is polled every 5 ms at first, backing off to every 50 ms.
  const pickup = startedAt - insertedAt;
  assert.ok(pickup < 65, `picked up ${Math.round(pickup)} ms after insert`);
  const polls = queue.count('claim_jobs');
  assert.ok(polls < 30, `lingering 500 ms took ${polls} claims, not one every 5 ms`);
});

Deno.test('a retry due within the budget is waited for and run again in the same invocation', async () => {
  let attempts = 0;
  const flakyOnce: Handler<Input> = () => {
    attempts++;
    if (attempts === 1) return Promise.reject(new JobError('rate_limited', 'slow down', true));
    return Promise.resolve({ output: { files: [] } });
  };
  const { queue, deps } = setup({ lingerMs: 0 }, { test: kind(flakyOnce) });
  queue.backoffMs = 40;
  const job = queue.add('test');
  await drain(deps, 'test');
  assert.equal(queue.jobs.get(job.id)!.status, 'done');
  assert.equal(queue.jobs.get(job.id)!.attempts, 2);
});

Deno.test('the runtime stopping the invocation releases the jobs it holds and rings a successor', async () => {
  const stop = new AbortController();
  let started = 0;
  // The runtime says beforeunload once all three handlers are running.
  const { queue, deps, rings } = setup({}, {
    test: kind(untilAborted(() => {
      if (++started === 3) stop.abort('beforeunload');
    })),
  });
  deps.signal = stop.signal;
  queue.addMany(3, 'test');
  queue.backoffMs = 60_000;
  const summary = await drain(deps, 'test');
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
  const { deps, rings } = setup();
  deps.rpc = () => Promise.resolve({ data: null, error: { message: 'fetch failed' } });
  const summary = await drain(deps, 'test');
  assert.equal(summary.stop, 'error');
  assert.deepEqual(rings, []);
});

Deno.test('only the configured job types are claimed', async () => {
  const { queue, deps } = setup({ types: ['image'] });
  queue.add('test');
  await drain(deps, 'test');
  assert.deepEqual(queue.callsOf('claim_jobs')[0].args.p_types, ['image']);
  assert.equal(queue.byStatus('pending').length, 1);
});

Deno.test('media jobs are claimed a few at a time: at most twice the media concurrency held', async () => {
  let running = 0;
  let peak = 0;
  const media: Handler<Input> = async () => {
    running++;
    peak = Math.max(peak, running);
    await sleep(5);
    running--;
    return { output: { files: [] } };
  };
  const { queue, deps } = setup({ batchSize: 100, concurrency: 50, mediaConcurrency: 2 }, {
    'color-grade': { ...kind(media), file: {} },
  });
  queue.addMany(12, 'color-grade');
  await drain(deps, 'test');
  const limits = queue.callsOf('claim_jobs').map((c) => c.args.p_limit as number);
  assert.equal(limits[0], 100, 'the first claim cannot know what it will get');
  assert.ok(
    limits.slice(1).every((l) => l <= 4),
    `then at most 2 x 2 media jobs (${limits.join(',')})`,
  );
  assert.equal(queue.byStatus('done').length, 12);
});

Deno.test('once media processing has used its budget, the worker stops claiming and hands over', async () => {
  const slow: Handler<Input> = async () => {
    await sleep(30);
    return { output: { files: [] } };
  };
  const { queue, deps, rings } = setup({ mediaConcurrency: 1, mediaBudgetMs: 50, batchSize: 1 }, {
    'audio-clean': { ...kind(slow), file: {} },
  });
  queue.addMany(10, 'audio-clean');
  const summary = await drain(deps, 'test');
  assert.ok(
    summary.done >= 2 && summary.done <= 3,
    `stopped after about 50 ms of media work (${summary.done} jobs)`,
  );
  assert.equal(summary.stop, 'budget');
  assert.deepEqual(rings, ['continue'], 'a fresh invocation continues with the rest');
  assert.equal(queue.byStatus('running').length, 0);
});
