// noop: the test and benchmark kind. Does nothing, optionally for a while, or fails on purpose.
// Hidden unless SPOOL_ENABLE_NOOP=true; no creator. Handler: job-worker/handlers/noop.ts.
import { z } from '../../_shared/deps.ts';
import { defineKind } from '../kind.ts';

export const NoopInput = z.object({
  sleep_ms: z.number().int().min(0).max(60_000).default(0),
  fail: z.enum(['never', 'retryable', 'permanent']).default('never'),
}).strict();
export type NoopInput = z.infer<typeof NoopInput>;

export default defineKind<NoopInput>({
  type: 'noop',
  label: 'No-op (tests)',
  summary: 'Does nothing: for tests and benchmarks.',
  schema: NoopInput,
  provider: 'in-function',
  testOnly: true,
});
