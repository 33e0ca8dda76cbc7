// A worker that dies mid-job: its lease runs out, rescue_jobs puts the job back, and the next
// worker completes it exactly once; the dead worker's lease token can no longer complete it.
// The first worker is a real job-worker drain in a process of its own, killed with SIGKILL while
// its handler runs (a noop that would sleep for a minute).
import assert from 'node:assert/strict';
import {
  createUser,
  integration,
  serviceDb,
  sql,
  theStack,
  withSettings,
} from './support/api-stack.ts';
import { enqueue, job, quietStack, runWorker, waitForStatus } from './support/worker.ts';

const WORKER_PROCESS = new URL('./support/worker-process.ts', import.meta.url).pathname;

Deno.test(
  'a worker killed mid-job has its job rescued after the lease expires and completed once by the next worker',
  integration,
  async () => {
    const s = theStack();
    const user = await createUser();
    await quietStack();
    // The first worker: only noop jobs, polling long enough to see the delayed job come due.
    const child = new Deno.Command(Deno.execPath(), {
      args: ['run', '-A', '--no-lock', WORKER_PROCESS],
      env: {
        SUPABASE_URL: s.url,
        SUPABASE_ANON_KEY: s.anonKey,
        SUPABASE_SERVICE_ROLE_KEY: s.serviceKey,
        SPOOL_ENABLE_NOOP: 'true',
        SPOOL_WORKER_TYPES: 'noop',
        SPOOL_WORKER_LINGER_MS: '20000',
        SPOOL_WORKER_LEASE_SECONDS: '5',
        SPOOL_TEST_WORKER_ID: 'jw-doomed',
      },
      stdout: 'null',
      stderr: 'piped',
    }).spawn();
    let killed = false;
    try {
      // Delayed, so no doorbell rings and the stack's own worker stays asleep.
      const created = await enqueue(user.id, 'noop', { sleep_ms: 60_000 }, { runInMs: 1_500 });
      const running = await waitForStatus(created.id, ['running'], 20_000);
      assert.equal(running.worker_id, 'jw-doomed');
      const staleToken = running.lease_token!;

      child.kill('SIGKILL');
      killed = true;
      await child.status;
      const orphan = await job(created.id);
      assert.equal(orphan.status, 'running', 'the dead worker still holds the lease');

      // Time passes beyond the lease (moved for this row instead of slept).
      await sql(
        `update public.jobs set lease_expires_at = now() - interval '1 second' where id = $1`,
        [
          created.id,
        ],
      );
      // deno-lint-ignore no-explicit-any
      const { data: rescued, error } = await (serviceDb().rpc as any)('rescue_jobs');
      assert.equal(error, null);
      assert.ok((rescued as number) >= 1);
      const pending = await job(created.id);
      assert.equal(pending.status, 'pending');
      assert.equal((pending.error as { code: string }).code, 'lease_expired');
      assert.equal(pending.lease_token, null);

      // The next attempt is quick, and due shortly (run by a worker of this test).
      await sql(
        `update public.jobs set input = '{"sleep_ms": 0}', run_at = now() + interval '300 milliseconds'
          where id = $1`,
        [created.id],
      );
      const summary = await runWorker({ types: ['noop'], lingerMs: 1_500 }, { noop: true });
      assert.equal(summary.done, 1);
      const done = await job(created.id);
      assert.equal(done.status, 'done');
      assert.equal(done.attempts, 2, 'one attempt died, the second completed');
      const notes = await sql<{ status: string }>(
        'select status from public.notifications where job_id = $1',
        [created.id],
      );
      assert.deepEqual(
        notes.map((n) => n.status),
        ['done'],
        'the owner hears about it exactly once',
      );

      // The dead worker's token is fenced off.
      const db = serviceDb();
      // deno-lint-ignore no-explicit-any
      const rpc = (db.rpc as any).bind(db);
      const stale = await rpc('complete_job', {
        p_id: created.id,
        p_lease_token: staleToken,
        p_output: { files: [] },
      });
      assert.equal(stale.error?.code, 'PT409');
      assert.equal(stale.error?.hint, 'lease_lost');
      const batch = await rpc('complete_jobs', {
        p_results: [{ id: created.id, lease_token: staleToken, output: { stale: true } }],
      });
      assert.deepEqual(batch.data, [], 'a stale batch completion completes nothing');
      assert.deepEqual(
        (await job(created.id)).output,
        { files: [] },
        "the output is the live worker's",
      );
    } finally {
      if (!killed) {
        child.kill('SIGKILL');
        await child.status;
      }
      await child.stderr.cancel().catch(() => {});
    }
  },
);

Deno.test(
  'a job whose noop handler fails retryably is retried after backoff and then dead',
  integration,
  async () => {
    const user = await createUser();
    await quietStack();
    await withSettings({ backoff_base_seconds: 0.05 }, async () => {
      const created = await enqueue(user.id, 'noop', { fail: 'retryable' }, {
        runInMs: 300,
        maxAttempts: 2,
      });
      await runWorker({ types: ['noop'], lingerMs: 1_000 }, { noop: true });
      const dead = await job(created.id);
      assert.equal(dead.status, 'failed');
      assert.equal(dead.attempts, 2, 'retried once within the invocation, then out of attempts');
      assert.equal((dead.error as { code: string; dead: boolean }).code, 'noop_failed');
      assert.equal((dead.error as { dead: boolean }).dead, true);
    });
  },
);
