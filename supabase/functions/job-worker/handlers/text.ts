// text: asks the OpenAI chat completions API (ctx.providers.openaiTextModel) for an answer in the
// job's output schema (structured outputs, strict), then checks the answer against that schema
// with zod (z.fromJSONSchema) before the job is done. Output: { result, model, usage }.
// Errors, besides the SDK's (job-worker/openai.ts):
//   the model refused                      permanent 'content_policy', with its refusal
//   the answer hit max_output_tokens       permanent 'output_too_long' (raise max_output_tokens)
//   not JSON, or not the schema's shape    retryable 'provider_bad_output', with zod's issues
import { z } from '../../_shared/deps.ts';
import { type Handler, JobError } from '../../_jobs/kind.ts';
import type { TextInput } from '../../_jobs/kinds/text.ts';
import { openaiClient, openaiFailure } from '../openai.ts';

const handler: Handler<TextInput> = async (ctx) => {
  const { prompt, instructions, output_schema, max_output_tokens } = ctx.input;
  const sdk = openaiClient(ctx.providers);
  const model = ctx.providers.openaiTextModel;
  const check = z.fromJSONSchema(output_schema);
  await ctx.progress(5, 'writing');
  let completion;
  try {
    completion = await sdk.chat.completions.create({
      model,
      messages: [
        ...(instructions ? [{ role: 'system' as const, content: instructions }] : []),
        { role: 'user' as const, content: prompt },
      ],
      response_format: {
        type: 'json_schema',
        json_schema: { name: 'output', schema: output_schema, strict: true },
      },
      max_completion_tokens: max_output_tokens,
    }, { signal: ctx.signal });
  } catch (err) {
    throw openaiFailure(err);
  }
  const choice = completion.choices?.[0];
  const refusal = choice?.message?.refusal;
  if (refusal) throw new JobError('content_policy', `OpenAI refused: ${refusal}`, false);
  if (choice?.finish_reason === 'length') {
    throw new JobError(
      'output_too_long',
      `the answer was cut off at ${max_output_tokens} tokens: raise max_output_tokens`,
      false,
    );
  }
  const content = choice?.message?.content ?? '';
  let answer: unknown;
  try {
    answer = JSON.parse(content);
  } catch {
    throw new JobError(
      'provider_bad_output',
      'OpenAI answered with something that is not JSON',
      true,
      {
        content: content.slice(0, 500),
      },
    );
  }
  const checked = check.safeParse(answer);
  if (!checked.success) {
    throw new JobError(
      'provider_bad_output',
      'OpenAI answered in another shape than output_schema',
      true,
      checked.error.issues.map((i) => ({ path: i.path.map(String).join('.'), message: i.message })),
    );
  }
  await ctx.progress(95, 'saving');
  return {
    output: {
      result: checked.data as Record<string, unknown>,
      model: completion.model ?? model,
      ...(completion.usage ? { usage: completion.usage } : {}),
    },
  };
};

export default handler;
