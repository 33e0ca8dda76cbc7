// Enqueue from another Edge Function (_jobs/enqueue.ts): the helper an app's own function calls
// has the creators' validation, refusals, quotas and idempotency, and reads a job's input file as
// its owner only.
import assert from 'node:assert/strict';
import { createEnqueuer } from '../_jobs/enqueue.ts';
import colorGrade from '../_jobs/kinds/color-grade.ts';
import text from '../_jobs/kinds/text.ts';
import { HttpError } from '../_shared/http.ts';
import {
  countJobs,
  createUser,
  functionEnv,
  integration,
  sql,
  uploadInput,
} from './support/api-stack.ts';
import { solidPng } from './support/fake-providers.ts';

async function refused(p: Promise<unknown>, status: number, code: string) {
  await assert.rejects(p, (err) => {
    assert.ok(err instanceof HttpError, String(err));
    assert.equal(`${err.status} ${err.code}`, `${status} ${code}`);
    return true;
  });
}

Deno.test(
  "an Edge Function enqueues a job for a user with the kind's defaults, once per idempotency key",
  integration,
  async () => {
    const spool = createEnqueuer(text, { reader: functionEnv({ OPENAI_API_KEY: 'sk-test' }) });
    const user = await createUser();
    const job = await spool.enqueue({
      userId: user.id,
      input: { prompt: ' a mug ' },
      idempotencyKey: 'k1',
    });
    assert.equal(job.type, 'text');
    assert.equal(job.status, 'pending');
    assert.equal((job.input as { prompt: string }).prompt, 'a mug');
    assert.equal((job.input as { max_output_tokens: number }).max_output_tokens, 1000);
    const again = await spool.enqueue({
      userId: user.id,
      input: { prompt: 'a mug' },
      idempotencyKey: 'k1',
    });
    assert.equal(again.id, job.id, 'the same key returns the same job');
    const [row] = await sql<{ route: string; max_attempts: number }>(
      'select route, max_attempts from public.jobs where id = $1',
      [job.id],
    );
    assert.deepEqual(
      row,
      { route: 'openai', max_attempts: 2 },
      "the route is stored; attempts are the type's row's",
    );
    assert.equal(await countJobs(user.id), 1);
  },
);

Deno.test(
  'the helper refuses what a creator refuses, and writes nothing',
  integration,
  async () => {
    const user = await createUser();
    const withKey = createEnqueuer(text, { reader: functionEnv({ OPENAI_API_KEY: 'sk-test' }) });
    await refused(withKey.enqueue({ userId: user.id, input: { prompt: '' } }), 400, 'invalid_body');
    await refused(
      withKey.enqueue({ userId: user.id, input: { prompt: 'p', extra: 1 } }),
      400,
      'invalid_body',
    );
    const noKey = createEnqueuer(text, { reader: functionEnv({}) });
    await refused(
      noKey.enqueue({ userId: user.id, input: { prompt: 'p' } }),
      503,
      'provider_not_configured',
    );
    assert.equal(await countJobs(user.id), 0);
  },
);

Deno.test(
  "a job with an input file is enqueued only with its owner's JWT, and only for a file in their folder",
  integration,
  async () => {
    const spool = createEnqueuer(colorGrade, { reader: functionEnv({}) });
    const alice = await createUser();
    const bob = await createUser();
    const path = await uploadInput(alice, 'p.png', solidPng(8, 8, [10, 20, 30]), 'image/png');
    await assert.rejects(
      spool.enqueue({ userId: alice.id, input: { input_path: path } }),
      /need the owner's JWT/,
    );
    await refused(
      spool.enqueue({ userId: bob.id, userJwt: bob.token, input: { input_path: path } }),
      403,
      'forbidden_input',
    );
    const job = await spool.enqueue({
      userId: alice.id,
      userJwt: alice.token,
      input: { input_path: path },
    });
    assert.equal(job.status, 'pending');
    const [row] = await sql<{ route: string; cpu_ms: number }>(
      'select route, cpu_ms from public.jobs where id = $1',
      [job.id],
    );
    assert.equal(row.route, 'in-function');
    assert.ok(row.cpu_ms > 0, 'the CPU estimate from its header is stored');
  },
);
