// Every job kind, by type: the list the worker, the jobs API's capabilities and the providers'
// configuration read. Adding a kind adds one line here (README "Add your own job type").
// Descriptors only: importing this loads no handler, SDK or codec.
import type { AnyJobKind } from '../kind.ts';
import type { ProviderConfig } from '../providers.ts';
import audioClean from './audio-clean.ts';
import colorGrade from './color-grade.ts';
import image from './image.ts';
import noop from './noop.ts';
import roto from './roto.ts';
import text from './text.ts';

export const KINDS: readonly AnyJobKind[] = [colorGrade, audioClean, roto, image, text, noop];

/** Every kind by type. */
export const KINDS_BY_TYPE: Readonly<Record<string, AnyJobKind>> = Object.freeze(
  Object.fromEntries(KINDS.map((k) => [k.type, k])),
);

/** The Replicate model version variable of each kind that may use Replicate. */
export const REPLICATE_VERSION_VARS: Readonly<Record<string, string>> = Object.freeze(
  Object.fromEntries(
    KINDS.filter((k) => k.replicateVersionVar).map((k) => [k.type, k.replicateVersionVar!]),
  ),
);

/** The kind for `type`, or undefined when unknown or disabled (noop without SPOOL_ENABLE_NOOP). */
export function kindOf(
  type: string,
  providers: Pick<ProviderConfig, 'noop'>,
): AnyJobKind | undefined {
  if (!Object.hasOwn(KINDS_BY_TYPE, type)) return undefined;
  const kind = KINDS_BY_TYPE[type];
  if (kind.testOnly && !providers.noop) return undefined;
  return kind;
}
