// The job kinds as this worker runs them: each kind's descriptor (its schema, whether it has an
// input file) with its handler from the lazy registry (handlers/index.ts).
import type { ProviderConfig } from '../_jobs/providers.ts';
import { kindOf } from '../_jobs/kinds/index.ts';
import { HANDLERS } from './handlers/index.ts';
import type { RunnableKind } from './run.ts';

/** The kind of `type` with its handler, or undefined for a type this worker does not run. */
export function runnableKind(
  type: string,
  providers: Pick<ProviderConfig, 'noop'>,
): RunnableKind | undefined {
  const kind = kindOf(type, providers);
  if (!kind || !Object.hasOwn(HANDLERS, type)) return undefined;
  return {
    schema: kind.schema,
    ...(kind.file ? { file: kind.file } : {}),
    handler: () => HANDLERS[type]().then((m) => m.default),
  };
}
