// The text kind, added as README "Add your own job type" says: its descriptor refuses output
// schemas OpenAI's strict structured outputs would refuse, the browser learns of it from the
// kinds' capabilities, and its handler runs with the real openai SDK against a fake chat
// completions API (OPENAI_BASE_URL), in job-worker drains in this process on jobs only they run.
import assert from 'node:assert/strict';
import { capabilitiesOf } from '../_jobs/capabilities.ts';
import { KINDS } from '../_jobs/kinds/index.ts';
import { DEFAULT_OUTPUT_SCHEMA, TextInput } from '../_jobs/kinds/text.ts';
import { readProviderConfig } from '../_jobs/providers.ts';
import { EnvReader } from '../_shared/env.ts';
import { createUser, integration, withSettings } from './support/api-stack.ts';
import { FakeProviders } from './support/fake-providers.ts';
import { cancelOwnJobs, enqueueOwn, job, runWorker, useEnv } from './support/worker.ts';

const PRODUCT = {
  type: 'object',
  properties: {
    headline: { type: 'string' },
    bullets: { type: 'array', items: { type: 'string' }, minItems: 3, maxItems: 5 },
  },
  required: ['headline', 'bullets'],
  additionalProperties: false,
};

Deno.test('text: a prompt alone gets the default output schema and answer length', () => {
  assert.deepEqual(TextInput.parse({ prompt: '  a mug  ' }), {
    prompt: 'a mug',
    output_schema: DEFAULT_OUTPUT_SCHEMA,
    max_output_tokens: 1000,
  });
});

Deno.test('text: an output schema OpenAI strict mode would refuse is refused at create, naming why', () => {
  const cases: [unknown, RegExp][] = [
    [{ type: 'string' }, /must be an object/],
    [{ type: 'object', properties: { a: { type: 'string' } } }, /additionalProperties: false/],
    [
      {
        type: 'object',
        properties: { a: { type: 'string' } },
        required: [],
        additionalProperties: false,
      },
      /"a" as required/,
    ],
    [
      {
        type: 'object',
        properties: {
          a: { type: 'object', properties: { b: { type: 'string' } }, required: ['b'] },
        },
        required: ['a'],
        additionalProperties: false,
      },
      /output_schema\.a must set additionalProperties/,
    ],
    [[1, 2], /expected record|object/i],
  ];
  for (const [schema, why] of cases) {
    const parsed = TextInput.safeParse({ prompt: 'p', output_schema: schema });
    assert.equal(parsed.success, false, JSON.stringify(schema));
    assert.match(parsed.error!.issues.map((i) => i.message).join('; '), why);
  }
  assert.equal(TextInput.safeParse({ prompt: 'p', output_schema: PRODUCT }).success, true);
});

Deno.test('text: the browser learns of the kind, unavailable without OpenAI and available with it', () => {
  const providers = (env: Record<string, string>) =>
    readProviderConfig(new EnvReader((n) => env[n]), {});
  const without = capabilitiesOf(KINDS, providers({})).find((k) => k.type === 'text')!;
  assert.equal(without.available, false);
  assert.equal(without.unavailable?.code, 'provider_not_configured');
  assert.equal(without.file, null);
  const props = without.input_schema.properties as Record<string, Record<string, unknown>>;
  assert.equal(props.prompt['x-widget'], 'textarea');
  assert.equal(props.output_schema['x-widget'], 'json');
  const withKey = capabilitiesOf(KINDS, providers({ OPENAI_API_KEY: 'sk-x' }))
    .find((k) => k.type === 'text')!;
  assert.equal(withKey.available, true);
});

async function withOpenAI(fn: (fake: FakeProviders) => Promise<void>) {
  const fake = new FakeProviders();
  const restore = useEnv({
    OPENAI_API_KEY: 'sk-spool-test',
    OPENAI_BASE_URL: fake.openaiBase,
    SPOOL_OPENAI_TEXT_MODEL: 'gpt-test-text',
  });
  try {
    // A retry is due at once for the test's worker (OWN_TIME), never for the stack's.
    await withSettings({ backoff_base_seconds: 3600 }, () => fn(fake));
  } finally {
    restore();
    await fake.close();
    await cancelOwnJobs();
  }
}

async function textJob(input: Record<string, unknown>) {
  const user = await createUser();
  const created = await enqueueOwn(user.id, 'text', input);
  return {
    async attempt() {
      const summary = await runWorker([created.id], { types: ['text'] });
      assert.equal(summary.claimed, 1, 'the worker claimed the job');
      return await job(created.id);
    },
  };
}

Deno.test(
  'a text job ends done with the answer in its output schema, asked of the configured model',
  integration,
  async () => {
    await withOpenAI(async (fake) => {
      fake.chatAnswer = () =>
        JSON.stringify({ headline: 'Made by hand', bullets: ['stoneware', 'glazed', '350 ml'] });
      const text = await textJob({
        prompt: 'A+ content for a mug',
        instructions: 'warm, short',
        output_schema: PRODUCT,
        max_output_tokens: 300,
      });
      const row = await text.attempt();
      assert.equal(row.status, 'done', JSON.stringify(row.error));
      const output = row.output as Record<string, unknown>;
      assert.deepEqual(output.result, {
        headline: 'Made by hand',
        bullets: ['stoneware', 'glazed', '350 ml'],
      });
      assert.equal(output.model, 'gpt-test-text');
      const [request] = fake.requestsTo('POST', '/openai/v1/chat/completions');
      const body = request.body as Record<string, unknown>;
      assert.equal(body.model, 'gpt-test-text');
      assert.deepEqual(body.messages, [
        { role: 'system', content: 'warm, short' },
        { role: 'user', content: 'A+ content for a mug' },
      ]);
      assert.deepEqual(body.response_format, {
        type: 'json_schema',
        json_schema: { name: 'output', schema: PRODUCT, strict: true },
      });
      assert.equal(body.max_completion_tokens, 300);
      assert.equal(request.headers.get('authorization'), 'Bearer sk-spool-test');
    });
  },
);

Deno.test(
  'a text answer in another shape than its schema is retried, and the retry can succeed',
  integration,
  async () => {
    await withOpenAI(async (fake) => {
      const answers = [
        JSON.stringify({ headline: 'Only a headline' }),
        JSON.stringify({ headline: 'Whole', bullets: ['a', 'b', 'c'] }),
      ];
      fake.chatAnswer = () => answers.shift()!;
      const text = await textJob({ prompt: 'p', output_schema: PRODUCT });
      const first = await text.attempt();
      assert.equal(first.status, 'pending', 'a retryable failure waits for its retry');
      const error = first.error as { code: string; details: { path: string }[] };
      assert.equal(error.code, 'provider_bad_output');
      assert.ok(error.details.some((d) => d.path === 'bullets'), JSON.stringify(error.details));
      const second = await text.attempt();
      assert.equal(second.status, 'done', JSON.stringify(second.error));
      assert.equal(second.attempts, 2);
    });
  },
);

Deno.test(
  'a text answer cut off at max_output_tokens fails for good, saying what to raise',
  integration,
  async () => {
    await withOpenAI(async (fake) => {
      fake.chatScript = [{
        status: 200,
        body: {
          id: 'chatcmpl-cut',
          object: 'chat.completion',
          created: 0,
          model: 'gpt-test-text',
          choices: [{
            index: 0,
            message: { role: 'assistant', content: '{"text": "and then', refusal: null },
            finish_reason: 'length',
          }],
        },
      }];
      const row = await (await textJob({ prompt: 'p', max_output_tokens: 16 })).attempt();
      assert.equal(row.status, 'failed');
      const error = row.error as { code: string; message: string };
      assert.equal(error.code, 'output_too_long');
      assert.match(error.message, /max_output_tokens/);
    });
  },
);
