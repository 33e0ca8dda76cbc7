// Where a job's work happens, or why it is refused: decided once, by its creator, and stored with
// the job (jobs.route); the worker runs the stored route.
import type { InputFile } from '../_shared/input-file.ts';
import { providerNotConfigured } from './refusals.ts';
import type { JobKind, Refusal, Route } from './kind.ts';
import type { ProviderConfig } from './providers.ts';

/** Kinds with an input file route on the file; others need their provider configured. */
export async function routeJob<I>(
  kind: JobKind<I>,
  input: I,
  file: InputFile | null,
  providers: ProviderConfig,
): Promise<Route | Refusal> {
  if (kind.file) {
    if (!file) throw new Error(`${kind.type} jobs need their input file to be routed`);
    return await kind.file.route(file, input, providers);
  }
  return providerRefusal(kind, providers) ?? { provider: kind.provider ?? 'in-function' };
}

/** Why a kind without a file cannot run in this project (its provider is not configured). */
export function providerRefusal<I>(kind: JobKind<I>, providers: ProviderConfig): Refusal | null {
  if (kind.file) return null;
  const provider = kind.provider ?? 'in-function';
  if (provider === 'openai' && !providers.openai) {
    return providerNotConfigured('openai', `${kind.type} generation`);
  }
  if (provider === 'replicate' && !providers.replicate(kind.type)) {
    return providerNotConfigured('replicate', kind.type);
  }
  return null;
}
