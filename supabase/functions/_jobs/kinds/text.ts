// text: structured text from a prompt (the "A+ content" beside a product's images), by the OpenAI
// API (SPOOL_OPENAI_TEXT_MODEL) with a JSON output schema; the answer is validated against that
// schema (zod) before the job is done. Handler: job-worker/handlers/text.ts.
import { z } from '../../_shared/deps.ts';
import { defineKind } from '../kind.ts';

/** The output schema when none is given: one string, `text`. */
export const DEFAULT_OUTPUT_SCHEMA = {
  type: 'object',
  properties: { text: { type: 'string' } },
  required: ['text'],
  additionalProperties: false,
};

/** Largest output schema accepted, as JSON. */
const MAX_SCHEMA_BYTES = 8 * 1024;

/**
 * Why `schema` cannot be an output schema, or null. OpenAI's structured outputs (strict mode) take
 * an object schema whose every object lists all its properties as required and allows no others;
 * such a schema is refused here, when the job is created, not by OpenAI at the first attempt.
 */
export function outputSchemaProblem(schema: unknown, at = 'output_schema'): string | null {
  if (schema === null || typeof schema !== 'object' || Array.isArray(schema)) {
    return `${at} must be a JSON Schema object`;
  }
  const s = schema as Record<string, unknown>;
  if (s.type === 'object') {
    const props = s.properties;
    if (props === null || typeof props !== 'object' || Array.isArray(props)) {
      return `${at} must list its properties`;
    }
    if (s.additionalProperties !== false) return `${at} must set additionalProperties: false`;
    const required = Array.isArray(s.required) ? s.required : [];
    for (const name of Object.keys(props)) {
      if (!required.includes(name)) return `${at} must list "${name}" as required`;
      const inner = outputSchemaProblem((props as Record<string, unknown>)[name], `${at}.${name}`);
      if (inner) return inner;
    }
  } else if (s.type === 'array' && s.items !== undefined) {
    return outputSchemaProblem(s.items, `${at}[]`);
  }
  return null;
}

const OutputSchema = z.record(z.string(), z.unknown())
  .superRefine((schema, ctx) => {
    if ((schema as { type?: unknown }).type !== 'object') {
      ctx.addIssue({ code: 'custom', message: 'the output must be an object: type "object"' });
      return;
    }
    if (JSON.stringify(schema).length > MAX_SCHEMA_BYTES) {
      ctx.addIssue({
        code: 'custom',
        message: `must be at most ${MAX_SCHEMA_BYTES} bytes as JSON`,
      });
      return;
    }
    const problem = outputSchemaProblem(schema);
    if (problem) {
      ctx.addIssue({ code: 'custom', message: problem });
      return;
    }
    try {
      z.fromJSONSchema(schema);
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: `is not a JSON Schema zod can check: ${err}` });
    }
  });

export const TextInput = z.object({
  prompt: z.string().trim().min(1).max(16_000).meta({
    title: 'Prompt',
    'x-widget': 'textarea',
    'x-placeholder': 'Write the A+ content for a hand-thrown stoneware mug',
  }),
  instructions: z.string().trim().max(4000).optional().meta({
    title: 'Instructions',
    description: 'how to write it: tone, length, audience (a system message)',
    'x-widget': 'textarea',
  }),
  output_schema: OutputSchema.default(DEFAULT_OUTPUT_SCHEMA).meta({
    title: 'Output schema',
    description: 'the JSON the answer must be, as a JSON Schema (every property required)',
    'x-widget': 'json',
  }),
  max_output_tokens: z.number().int().min(16).max(8000).default(1000).meta({
    title: 'Longest answer',
    description: 'in tokens (about ¾ of a word each)',
    'x-widget': 'range',
    'x-step': 16,
  }),
}).strict();
export type TextInput = z.infer<typeof TextInput>;

export default defineKind<TextInput>({
  type: 'text',
  label: 'Write text',
  summary: 'Structured text from a prompt (OpenAI), in the JSON shape you give. No upload needed.',
  schema: TextInput,
  provider: 'openai',
});
