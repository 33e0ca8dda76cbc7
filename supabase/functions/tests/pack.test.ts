// The pack creator (supabase/functions/pack): one prompt becomes one flow of six image jobs and
// one text job under a `pack` parent, in one call, refused as a creator refuses; and the flow
// fans in through the running stack: its children run on the stack's job-worker, and the parent
// ends exactly once, with a report of all seven in order.
import assert from 'node:assert/strict';
import { PACK_VIEWS, packChildren, PackInput } from '../_jobs/pack.ts';
import { packHandler } from '../pack/api.ts';
import { call, countJobs, createUser, functionEnv, integration, sql } from './support/api-stack.ts';
import { waitForStatus } from './support/worker.ts';

// Made on first use: functionEnv needs the stack, which the pure test below does not.
let handlers: {
  withOpenAI: ReturnType<typeof packHandler>;
  withoutOpenAI: ReturnType<typeof packHandler>;
};
const creator = (openai: boolean) => {
  handlers ??= {
    withOpenAI: packHandler({ reader: functionEnv({ OPENAI_API_KEY: 'sk-test' }) }),
    withoutOpenAI: packHandler({ reader: functionEnv({}) }),
  };
  return openai ? handlers.withOpenAI : handlers.withoutOpenAI;
};

Deno.test('a pack is six views and the A+ text, each a valid input of its kind', () => {
  const children = packChildren(PackInput.parse({ prompt: 'a hand-thrown stoneware mug' }));
  assert.deepEqual(children.map((c) => c.type), [...PACK_VIEWS.map(() => 'image'), 'text']);
  assert.equal(
    new Set(children.map((c) => c.input.prompt)).size,
    7,
    'each child asks for its own view',
  );
  for (const c of children.slice(0, 6)) {
    assert.match(String(c.input.prompt), /^a hand-thrown stoneware mug\. Show /);
    assert.deepEqual(Object.keys(c.input).sort(), ['n', 'prompt', 'quality', 'size']);
  }
});

Deno.test(
  'the pack creator refuses a bad body and a project without OpenAI, and writes nothing',
  integration,
  async () => {
    const user = await createUser();
    const bad = await call(creator(true), '/pack', {
      method: 'POST',
      token: user.token,
      body: { prompt: '' },
    });
    assert.equal(bad.status, 400, bad.text);
    assert.equal((bad.json!.error as { code: string }).code, 'invalid_body');
    const off = await call(creator(false), '/pack', {
      method: 'POST',
      token: user.token,
      body: { prompt: 'a mug' },
    });
    assert.equal(off.status, 503, off.text);
    assert.equal((off.json!.error as { code: string }).code, 'provider_not_configured');
    const anonymous = await call(creator(true), '/pack', {
      method: 'POST',
      body: { prompt: 'a mug' },
    });
    assert.equal(anonymous.status, 401);
    assert.equal(await countJobs(user.id), 0);
  },
);

Deno.test(
  'one prompt becomes one flow of seven, once per Idempotency-Key, and the parent ends once with all seven reported',
  integration,
  async () => {
    const user = await createUser();
    const post = () =>
      call(creator(true), '/pack', {
        method: 'POST',
        token: user.token,
        headers: { 'idempotency-key': 'pack-1' },
        body: { prompt: 'a hand-thrown stoneware mug' },
      });
    const res = await post();
    assert.equal(res.status, 202, res.text);
    const parent = res.json!.job as { id: string; type: string; status: string };
    const children = res.json!.children as { id: string; type: string }[];
    assert.equal(parent.type, 'pack');
    assert.equal(parent.status, 'waiting', 'the parent waits for its children');
    assert.deepEqual(children.map((c) => c.type), [...PACK_VIEWS.map(() => 'image'), 'text']);
    assert.equal(res.headers.get('location'), `/functions/v1/jobs/${parent.id}`);
    const again = await post();
    assert.equal(again.status, 202, again.text);
    assert.equal(
      (again.json!.job as { id: string }).id,
      parent.id,
      'a retried request starts no second pack',
    );
    assert.equal(await countJobs(user.id), 8);
    const rows = await sql<{ parent_id: string; route: string }>(
      'select parent_id, route from public.jobs where id = any($1)',
      [children.map((c) => c.id)],
    );
    assert.ok(rows.every((r) => r.parent_id === parent.id && r.route === 'openai'));

    // The stack's worker has OpenAI, a fake (local/tools/fake-openai.mjs): every child succeeds, and
    // the parent is done once, listing all seven in the pack's order.
    const ended = await waitForStatus(parent.id, ['done', 'failed', 'cancelled'], 120_000);
    assert.equal(ended.status, 'done', JSON.stringify(ended.error));
    const output = ended.output as { children: { id: string; status: string }[] };
    assert.deepEqual(
      output.children.map((c) => c.id),
      children.map((c) => c.id),
      "in the pack's order",
    );
    assert.ok(output.children.every((c) => c.status === 'done'), JSON.stringify(output.children));
    const [{ n }] = await sql<{ n: number }>(
      `select count(*)::int as n from public.notifications where job_id = $1`,
      [parent.id],
    );
    assert.equal(n, 1, 'the parent ended exactly once: one notification');
  },
);
