// A worker that dies mid-job: its lease runs out, rescue_jobs puts the job back, and the next
// worker completes it exactly once; the dead worker's lease token can no longer complete it.
// The first worker is a real job-worker drain in a process of its own, killed with SIGKILL while
// its handler runs (a noop that would sleep for a minute). The job is the test's own (own-jobs.ts):
// the stack's worker and the pg_cron sweep never touch it, and time moves only with spool.now.
import assert from 'node:assert/strict';
import {
  asOf,
  createUser,
  integration,
  serviceDb,
  sql,
  theStack,
  withSettings,
} from './support/api-stack.ts';
import { secondsAfter } from './support/own-jobs.ts';
import { cancelOwnJobs, enqueueOwn, job, runWorker, waitForStatus } from './support/worker.ts';

const WORKER_PROCESS = new URL('./support/worker-process.ts', import.meta.url).pathname;

Deno.test(
  'a worker killed mid-job has its job rescued after the lease expires and completed once by the next worker',
  integration,
  async () => {
    const s = theStack();
    const user = await createUser();
    const created = await enqueueOwn(user.id, 'noop', { sleep_ms: 60_000 });
    // The first worker: claims that job (as of OWN_TIME) and runs it until it is killed. Its lease
    // (300 s, heartbeats every 100 s) outlasts the test, so it never heartbeats (a heartbeat would
    // extend the lease from the real clock) and the lease runs out only when the test moves
    // spool.now past it: before the attempt's timeout (noop's row: 600 s), which rescue_jobs would
    // otherwise name instead.
    const child = new Deno.Command(Deno.execPath(), {
      args: ['run', '-A', '--no-lock', WORKER_PROCESS],
      env: {
        SUPABASE_URL: s.url,
        SUPABASE_ANON_KEY: s.anonKey,
        SUPABASE_SERVICE_ROLE_KEY: s.serviceKey,
        SPOOL_ENABLE_NOOP: 'true',
        SPOOL_WORKER_TYPES: 'noop',
        SPOOL_WORKER_LINGER_MS: '0',
        SPOOL_WORKER_LEASE_SECONDS: '300',
        SPOOL_TEST_WORKER_ID: 'jw-doomed',
        SPOOL_TEST_OWN_JOBS: created.id,
      },
      stdout: 'null',
      stderr: 'piped',
    }).spawn();
    let killed = false;
    try {
      const running = await waitForStatus(created.id, ['running'], 20_000);
      assert.equal(running.worker_id, 'jw-doomed');
      const staleToken = running.lease_token!;

      child.kill('SIGKILL');
      killed = true;
      await child.status;
      const orphan = await job(created.id);
      assert.equal(orphan.status, 'running', 'the dead worker still holds the lease');
      assert.equal(orphan.lease_token, staleToken);

      // Before the lease runs out nothing is rescued; a second after it, the job is.
      const rescue = async (at: Date) =>
        (await asOf<{ rescued: number }>(
          at,
          [created.id],
          'select public.rescue_jobs() as rescued',
        ))[
          0
        ].rescued;
      assert.equal(
        await rescue(secondsAfter(orphan.lease_expires_at!, -1)),
        0,
        'lease still valid',
      );
      assert.equal((await job(created.id)).status, 'running');
      assert.equal(await rescue(secondsAfter(orphan.lease_expires_at!, 1)), 1);
      const pending = await job(created.id);
      assert.equal(pending.status, 'pending');
      assert.equal((pending.error as { code: string }).code, 'lease_expired');
      assert.equal(pending.lease_token, null);

      // The next attempt is quick, and run by a worker of this test once the retry is due.
      await sql(`update public.jobs set input = '{"sleep_ms": 0}' where id = $1`, [created.id]);
      const early = await runWorker([created.id], { types: ['noop'] }, {
        noop: true,
        at: secondsAfter(pending.run_at, -1),
      });
      assert.equal(early.claimed, 0, 'not claimed before its backoff ends');
      const summary = await runWorker([created.id], { types: ['noop'] }, {
        noop: true,
        at: secondsAfter(pending.run_at, 1),
      });
      assert.equal(summary.claimed, 1);
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
      await cancelOwnJobs();
    }
  },
);

Deno.test(
  'a job whose noop handler fails retryably is retried after backoff and then dead',
  integration,
  async () => {
    const user = await createUser();
    // A backoff of half an hour or more (on the real clock, where fail_job schedules the retry):
    // the retry is never due for the stack's worker while this runs, but due for this test's
    // worker at once, as of OWN_TIME.
    await withSettings({ backoff_base_seconds: 3600 }, async () => {
      try {
        const created = await enqueueOwn(user.id, 'noop', { fail: 'retryable' }, {
          maxAttempts: 2,
        });
        const first = await runWorker([created.id], { types: ['noop'] }, { noop: true });
        assert.deepEqual([first.claimed, first.retried], [1, 1]);
        const retry = await job(created.id);
        assert.equal(retry.status, 'pending', 'back in the queue');
        assert.equal(retry.attempts, 1);
        assert.equal((retry.error as { dead: boolean }).dead, false);
        const backoff = new Date(retry.run_at).getTime() - new Date(retry.updated_at).getTime();
        assert.ok(backoff >= 30 * 60_000 - 1, `due after its backoff (${backoff} ms)`);

        const second = await runWorker([created.id], { types: ['noop'] }, { noop: true });
        assert.deepEqual([second.claimed, second.failed], [1, 1]);
        const dead = await job(created.id);
        assert.equal(dead.status, 'failed');
        assert.equal(dead.attempts, 2, 'retried once, then out of attempts');
        assert.equal((dead.error as { code: string; dead: boolean }).code, 'noop_failed');
        assert.equal((dead.error as { dead: boolean }).dead, true);
      } finally {
        await cancelOwnJobs();
      }
    });
  },
);
