// The image handler with the real OpenAI SDK against a fake Images API (OPENAI_BASE_URL), run
// by job-worker drains in this process against the stack's SQL API and Storage, on jobs only they
// run (own-jobs.ts). Retries are the SDK's own (once) and then the queue's: each invocation of the
// test's worker makes one attempt.
import assert from 'node:assert/strict';
import type { JobRow } from '../_shared/clients.ts';
import type { JobOutput } from '../_jobs/kind.ts';
import { decodeImage } from '../_jobs/media/image.ts';
import { createUser, integration, withSettings } from './support/api-stack.ts';
import { FakeProviders } from './support/fake-providers.ts';
import {
  cancelOwnJobs,
  downloadOutput,
  enqueueOwn,
  job,
  runWorker,
  useEnv,
} from './support/worker.ts';

async function withOpenAI(fn: (fake: FakeProviders) => Promise<void>) {
  const fake = new FakeProviders();
  const restore = useEnv({
    OPENAI_API_KEY: 'sk-spool-test',
    OPENAI_BASE_URL: fake.openaiBase,
    SPOOL_OPENAI_IMAGE_MODEL: 'gpt-image-1',
  });
  try {
    // A retry waits half an hour or more (on the real clock, where fail_job schedules it): never
    // due for the stack's worker while the test runs, due at once for the test's (OWN_TIME).
    await withSettings({ backoff_base_seconds: 3600 }, () => fn(fake));
  } finally {
    restore();
    await fake.close();
    await cancelOwnJobs();
  }
}

/** An image job only this test's worker runs; each attempt() is one invocation of it. */
async function imageJob(input: Record<string, unknown>) {
  const user = await createUser();
  const created = await enqueueOwn(user.id, 'image', input);
  return {
    user,
    async attempt(): Promise<JobRow> {
      const summary = await runWorker([created.id], { types: ['image'] });
      assert.equal(summary.claimed, 1, 'the worker claimed the job');
      return await job(created.id);
    },
  };
}

/** How long after its failure a retried job is due. */
const backoffMs = (row: JobRow) =>
  new Date(row.run_at).getTime() - new Date(row.updated_at).getTime();

Deno.test('an image job saves every generated image as a PNG in outputs', integration, async () => {
  await withOpenAI(async (fake) => {
    const image = await imageJob({
      prompt: 'a lighthouse at dusk',
      n: 2,
      size: '1024x1024',
      quality: 'low',
    });
    const { user } = image;
    const row = await image.attempt();
    assert.equal(row.status, 'done', JSON.stringify(row.error));
    const [call] = fake.requestsTo('POST', '/openai/v1/images/generations');
    assert.deepEqual(call.body, {
      model: 'gpt-image-1',
      prompt: 'a lighthouse at dusk',
      size: '1024x1024',
      quality: 'low',
      n: 2,
    });
    assert.equal(call.headers.get('authorization'), 'Bearer sk-spool-test');

    const output = row.output as unknown as JobOutput;
    assert.deepEqual(output.files.map((f) => f.path), [
      `${user.id}/${row.id}/image-1.png`,
      `${user.id}/${row.id}/image-2.png`,
    ]);
    for (const [i, file] of output.files.entries()) {
      assert.equal(file.content_type, 'image/png');
      const image = decodeImage(await downloadOutput(file.path), 'image/png');
      assert.deepEqual([image.width, image.height, file.width, file.height], [32, 32, 32, 32]);
      assert.deepEqual(
        [...image.data.slice(0, 3)],
        [[255, 0, 0], [0, 255, 0]][i],
        `image ${i + 1} is the one OpenAI sent`,
      );
    }
    assert.equal(output.model, 'gpt-image-1');
  });
});

Deno.test(
  'a 429 from OpenAI is retried with backoff and the job ends done',
  integration,
  async () => {
    await withOpenAI(async (fake) => {
      // The SDK retries once by itself; the second 429 fails the attempt, the queue retries it.
      fake.openaiScript = [
        {
          status: 429,
          body: {
            error: { message: 'Rate limit reached', type: 'requests', code: 'rate_limit_exceeded' },
          },
        },
        {
          status: 429,
          body: {
            error: { message: 'Rate limit reached', type: 'requests', code: 'rate_limit_exceeded' },
          },
        },
      ];
      const image = await imageJob({ prompt: 'a fox' });
      const limited = await image.attempt();
      assert.equal(limited.status, 'pending', 'back in the queue');
      assert.equal((limited.error as { code: string }).code, 'rate_limited');
      assert.ok(
        backoffMs(limited) >= 30 * 60_000 - 1,
        `after a backoff (${backoffMs(limited)} ms)`,
      );
      assert.equal(fake.requestsTo('POST', '/openai/v1/images').length, 2, 'the SDK retried once');

      const row = await image.attempt();
      assert.equal(row.status, 'done', JSON.stringify(row.error));
      assert.equal(row.attempts, 2, 'the first attempt was rate limited, the second succeeded');
      assert.equal(row.error, null, 'a job that ends done carries no earlier error');
      assert.equal(fake.requestsTo('POST', '/openai/v1/images').length, 3);
    });
  },
);

Deno.test('a 5xx from OpenAI is retried and the job ends done', integration, async () => {
  await withOpenAI(async (fake) => {
    fake.openaiScript = [
      {
        status: 503,
        body: { error: { message: 'The server is overloaded', type: 'server_error' } },
      },
      { status: 500, body: { error: { message: 'Internal error', type: 'server_error' } } },
    ];
    const image = await imageJob({ prompt: 'a boat' });
    const unavailable = await image.attempt();
    assert.equal(unavailable.status, 'pending', 'back in the queue');
    assert.equal((unavailable.error as { code: string }).code, 'provider_unavailable');
    assert.ok(backoffMs(unavailable) >= 30 * 60_000 - 1, 'after a backoff');

    const row = await image.attempt();
    assert.equal(row.status, 'done', JSON.stringify(row.error));
    assert.equal(row.attempts, 2);
    assert.equal(row.error, null, 'a job that ends done carries no earlier error');
  });
});

Deno.test(
  "a 400 from OpenAI fails the job permanently with the provider's message",
  integration,
  async () => {
    await withOpenAI(async (fake) => {
      fake.openaiScript = [{
        status: 400,
        body: {
          error: {
            message: "Invalid value: 'giant'. Supported values are: '1024x1024'",
            type: 'invalid_request_error',
            param: 'size',
            code: 'invalid_value',
          },
        },
      }];
      const row = await (await imageJob({ prompt: 'a cat' })).attempt();
      assert.equal(row.status, 'failed');
      assert.equal(row.attempts, 1, 'no retry for a request OpenAI rejects');
      const error = row.error as { code: string; message: string; retryable: boolean };
      assert.equal(error.code, 'provider_rejected');
      assert.match(error.message, /Invalid value: 'giant'/);
      assert.equal(error.retryable, false);
      assert.equal(
        fake.requestsTo('POST', '/openai/v1/images').length,
        1,
        'the SDK did not retry either',
      );
    });
  },
);

Deno.test(
  "a prompt refused by OpenAI's safety system fails as content_policy",
  integration,
  async () => {
    await withOpenAI(async (fake) => {
      fake.openaiScript = [{
        status: 400,
        body: {
          error: {
            message: 'Your request was rejected as a result of our safety system.',
            type: 'image_generation_user_error',
            code: 'moderation_blocked',
          },
        },
      }];
      const row = await (await imageJob({ prompt: 'something not allowed' })).attempt();
      assert.equal(row.status, 'failed');
      assert.equal((row.error as { code: string }).code, 'content_policy');
    });
  },
);
