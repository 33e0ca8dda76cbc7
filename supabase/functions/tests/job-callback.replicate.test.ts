// Replicate end to end against a fake Replicate API: job-worker (in this process) hands a roto job
// over with a signed input URL and the callback URL; job-callback (its handler, in this process)
// refuses bad signatures, settles a valid callback once (outputs stored, job done) and ignores
// duplicates and unknown predictions; the sweep-side poll settles a job whose callback never came.
// The jobs are the test's own (own-jobs.ts): the stack's worker never claims or polls them, and
// time moves for them only with spool.now.
import assert from 'node:assert/strict';
import type { JobRow } from '../_shared/clients.ts';
import type { JobOutput } from '../_jobs/kind.ts';
import { signWebhook } from '../_jobs/replicate.ts';
import { createCallbackHandler } from '../job-callback/callback.ts';
import { pollReplicate } from '../job-worker/poll.ts';
import { rpcOf, settleDepsOf } from '../_jobs/platform.ts';
import {
  createUser,
  integration,
  serviceDb,
  type TestUser,
  theStack,
  uploadInput,
  withSettings,
} from './support/api-stack.ts';
import { FakeProviders, solidPng } from './support/fake-providers.ts';
import { ownRpc, secondsAfter } from './support/own-jobs.ts';
import {
  cancelOwnJobs,
  downloadOutput,
  enqueueOwn,
  job,
  runWorker,
  useEnv,
} from './support/worker.ts';

const SECRET = `whsec_${btoa('spool-test-replicate-signing-key-0001')}`;

function callbackHandler() {
  const db = serviceDb();
  return createCallbackHandler({
    webhookSecret: SECRET,
    settle: settleDepsOf(db, () => {}),
    nowSeconds: () => Math.floor(Date.now() / 1000),
    background: (work) => work.then(() => {}),
    log: () => {},
  });
}

async function deliver(
  prediction: unknown,
  { secret = SECRET, timestamp = Math.floor(Date.now() / 1000), tamper = false } = {},
) {
  const body = JSON.stringify(prediction);
  const id = `msg_${crypto.randomUUID()}`;
  const signature = await signWebhook(secret, id, timestamp, body);
  const res = await callbackHandler()(
    new Request(`${theStack().url}/functions/v1/job-callback?provider=replicate`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'webhook-id': id,
        'webhook-timestamp': String(timestamp),
        'webhook-signature': signature,
      },
      body: tamper ? body.replace('succeeded', 'failed') : body,
    }),
  );
  return { status: res.status, json: await res.json() };
}

async function withReplicate(fn: (fake: FakeProviders) => Promise<void>) {
  const fake = new FakeProviders();
  const restore = useEnv({
    REPLICATE_API_TOKEN: 'r8_spool_test',
    REPLICATE_WEBHOOK_SECRET: SECRET,
    REPLICATE_API_BASE: fake.replicateBase,
    SPOOL_REPLICATE_ROTO_VERSION: 'spool-test-roto-version',
  });
  try {
    // On the real clock (PostgREST's calls: await_job, resume_job, fail_job), nothing of the
    // test's comes due while it runs: a retry waits half an hour or more, and a waiting job is
    // polled after a day without news. The test moves spool.now past those explicitly.
    await withSettings(
      { backoff_base_seconds: 3600, waiting_poll_interval: '1 day' },
      () => fn(fake),
    );
  } finally {
    restore();
    await fake.close();
    await cancelOwnJobs();
  }
}

/** Enqueues a roto job in ai mode that only this test's worker runs. */
function rotoJob(user: TestUser, path: string): Promise<JobRow> {
  return enqueueOwn(user.id, 'roto', { input_path: path, mode: 'ai' });
}

/** A roto job in ai mode, handed over to (fake) Replicate by a worker of this test. */
async function handedOver(user: TestUser) {
  const input = solidPng(8, 8, [10, 200, 30]);
  const path = await uploadInput(
    user,
    `clip-${crypto.randomUUID().slice(0, 4)}.png`,
    input,
    'image/png',
  );
  const created = await rotoJob(user, path);
  const summary = await runWorker([created.id], { types: ['roto'] });
  assert.equal(summary.waiting, 1, 'the worker handed the job over');
  return { row: await job(created.id), input };
}

Deno.test(
  'a roto job is handed to Replicate with the callback URL, and only a validly signed callback completes it, once',
  integration,
  async () => {
    await withReplicate(async (fake) => {
      const user = await createUser();
      const { row, input } = await handedOver(user);

      // Handed over: a prediction was created with the webhook, and the job waits on it.
      const [create] = fake.requestsTo('POST', '/replicate/v1/predictions');
      const body = create.body as {
        version: string;
        input: { image: string; mode: string };
        webhook: string;
        webhook_events_filter: string[];
      };
      assert.equal(create.headers.get('authorization'), 'Bearer r8_spool_test');
      assert.equal(body.version, 'spool-test-roto-version');
      assert.equal(body.webhook, `${theStack().url}/functions/v1/job-callback?provider=replicate`);
      assert.deepEqual(body.webhook_events_filter, ['completed']);
      assert.equal(body.input.mode, 'ai');
      const signed = await fetch(body.input.image);
      assert.equal(signed.status, 200, 'the model can fetch the input through its signed URL');
      assert.deepEqual(new Uint8Array(await signed.arrayBuffer()), input);
      const [prediction] = fake.predictions.values();
      assert.equal(row.status, 'waiting');
      assert.equal(row.external_provider, 'replicate');
      assert.equal(row.external_id, prediction.id);
      assert.equal(row.lease_token, null);

      const matte = solidPng(8, 8, [255, 255, 255]);
      const finished = {
        ...prediction,
        status: 'succeeded',
        output: fake.addFile('matte.png', matte, 'image/png'),
        metrics: { predict_time: 1.25 },
      };

      // Refused: a bad signature, a tampered body, an old timestamp. The job keeps waiting.
      const forged = await deliver(finished, { secret: `whsec_${btoa('not-the-secret')}` });
      assert.equal(forged.status, 401);
      assert.deepEqual(Object.keys(forged.json.error).sort(), ['code', 'message']);
      assert.equal(forged.json.error.code, 'invalid_signature');
      assert.equal((await deliver(finished, { tamper: true })).status, 401);
      assert.equal(
        (await deliver(finished, { timestamp: Math.floor(Date.now() / 1000) - 600 })).status,
        401,
      );
      assert.equal((await job(row.id)).status, 'waiting', 'refused callbacks change nothing');

      // Accepted: outputs stored, job done.
      const ok = await deliver(finished);
      assert.equal(ok.status, 202);
      assert.deepEqual(ok.json, { accepted: true, job_id: row.id });
      const done = await job(row.id);
      assert.equal(done.status, 'done');
      const output = done.output as unknown as JobOutput & {
        prediction_id: string;
        predict_time_seconds: number;
      };
      assert.equal(output.prediction_id, prediction.id);
      assert.equal(output.predict_time_seconds, 1.25);
      assert.equal(output.files.length, 1);
      assert.equal(output.files[0].path, `${user.id}/${row.id}/replicate-0-matte.png`);
      assert.equal(output.files[0].content_type, 'image/png');
      assert.deepEqual(await downloadOutput(output.files[0].path), matte);

      // A duplicate delivery changes nothing and is answered 200.
      const again = await deliver(finished);
      assert.equal(again.status, 200);
      assert.deepEqual(again.json, { duplicate: true, job_id: row.id, status: 'done' });
      const after = await job(row.id);
      assert.deepEqual(after.updated_at, done.updated_at);
      assert.deepEqual(after.output, done.output);

      // An unknown prediction is acknowledged, so Replicate stops retrying it.
      const unknown = await deliver({ ...finished, id: 'pred-nobody-knows' });
      assert.equal(unknown.status, 200);
      assert.deepEqual(unknown.json, { ignored: true, reason: 'unknown_prediction' });
      // So is an event that is not the completion.
      assert.deepEqual((await deliver({ ...prediction, status: 'processing' })).json, {
        ignored: true,
        reason: 'not_completed',
      });
    });
  },
);

Deno.test(
  'a failed prediction retries the job when the failure is transient, and fails it otherwise',
  integration,
  async () => {
    await withReplicate(async () => {
      const user = await createUser();
      const first = await handedOver(user);
      const oom = await deliver({
        id: first.row.external_id,
        status: 'failed',
        error: 'CUDA out of memory',
      });
      assert.equal(oom.status, 202);
      const retried = await job(first.row.id);
      assert.equal(retried.status, 'pending', 'out of memory is worth another attempt');
      assert.equal((retried.error as { code: string }).code, 'provider_failed');

      const second = await handedOver(user);
      await deliver({
        id: second.row.external_id,
        status: 'failed',
        error: 'Input image has an unsupported mode',
      });
      const failed = await job(second.row.id);
      assert.equal(failed.status, 'failed');
      assert.match((failed.error as { message: string }).message, /unsupported mode/);
    });
  },
);

Deno.test(
  'a waiting job whose callback never came is completed by the poll',
  integration,
  async () => {
    await withReplicate(async (fake) => {
      const user = await createUser();
      const { row } = await handedOver(user);
      const prediction = fake.predictions.get(row.external_id!)!;
      const db = serviceDb();
      /** One poll as of `at` (spool.now), that can take only this job. */
      const pollAsOf = (at: Date) =>
        pollReplicate({
          rpc: ownRpc(rpcOf(db), [row.id], at),
          settle: settleDepsOf(db, () => {}),
          api: { apiBase: fake.replicateBase, token: 'r8_spool_test' },
          log: () => {},
        });
      const DAY = 86_400;
      const waitingSince = row.updated_at;

      assert.deepEqual(
        await pollAsOf(secondsAfter(waitingSince, DAY - 1)),
        { polled: 0, settled: 0, errors: 0 },
        'not overdue yet: nothing polled',
      );
      // A day passes without a callback (spool.now moved, not slept).
      const overdue = secondsAfter(waitingSince, DAY + 1);
      assert.deepEqual(
        await pollAsOf(overdue),
        { polled: 1, settled: 0, errors: 0 },
        'still running at Replicate: keeps waiting',
      );
      assert.equal((await job(row.id)).status, 'waiting');

      prediction.status = 'succeeded';
      prediction.output = [fake.addFile('poll-out.png', solidPng(4, 4, [1, 2, 3]), 'image/png')];
      assert.deepEqual(
        await pollAsOf(overdue),
        { polled: 0, settled: 0, errors: 0 },
        'polled a moment ago: not again yet',
      );
      assert.deepEqual(await pollAsOf(secondsAfter(overdue, DAY + 1)), {
        polled: 1,
        settled: 1,
        errors: 0,
      });
      const done = await job(row.id);
      assert.equal(done.status, 'done');
      assert.equal(
        (done.output as unknown as JobOutput).files[0].path,
        `${user.id}/${row.id}/replicate-0-poll-out.png`,
      );
      assert.equal(
        fake.requestsTo('GET', `/replicate/v1/predictions/${row.external_id}`).length,
        2,
      );

      // The webhook arriving late is a duplicate.
      assert.equal((await deliver({ ...prediction })).json.duplicate, true);
    });
  },
);

Deno.test(
  'Replicate throttling the prediction (429) retries the job later; refusing it (4xx) fails the job',
  integration,
  async () => {
    await withReplicate(async (fake) => {
      const user = await createUser();
      fake.replicateScript = [{ status: 429, body: { detail: 'Request was throttled.' } }];
      const path = await uploadInput(user, 'a.png', solidPng(4, 4, [0, 0, 0]), 'image/png');
      const throttled = await rotoJob(user, path);
      await runWorker([throttled.id], { types: ['roto'] });
      const row = await job(throttled.id);
      assert.equal(row.status, 'pending', 'retried later');
      assert.equal((row.error as { code: string }).code, 'provider_unavailable');
      const backoff = new Date(row.run_at).getTime() - new Date(row.updated_at).getTime();
      assert.ok(backoff >= 30 * 60_000 - 1, `after a backoff (${backoff} ms)`);
      // deno-lint-ignore no-explicit-any
      await (serviceDb().rpc as any)('cancel_job', { p_id: throttled.id });

      fake.replicateScript = [{
        status: 422,
        body: { detail: 'Invalid version or not permitted' },
      }];
      const refused = await rotoJob(user, path);
      await runWorker([refused.id], { types: ['roto'] });
      const failed = await job(refused.id);
      assert.equal(failed.status, 'failed');
      assert.equal((failed.error as { code: string }).code, 'provider_rejected');
      assert.match((failed.error as { message: string }).message, /Invalid version/);
    });
  },
);
