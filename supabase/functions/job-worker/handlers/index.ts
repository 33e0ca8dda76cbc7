// The worker's lazy registry of handlers, one file per kind: a handler (and its SDK or codecs) is
// loaded the first time a job of its type runs in this isolate. Adding a kind adds one line here
// (README "Add your own job type"); tests check that every kind has a handler and no handler is
// without a kind.
import type { Handler } from '../../_jobs/kind.ts';

// deno-lint-ignore no-explicit-any
type Load = () => Promise<{ default: Handler<any> }>;

export const HANDLERS: Readonly<Record<string, Load>> = Object.freeze({
  'color-grade': () => import('./color-grade.ts'),
  'audio-clean': () => import('./audio-clean.ts'),
  'roto': () => import('./roto.ts'),
  'image': () => import('./image.ts'),
  'text': () => import('./text.ts'),
  'noop': () => import('./noop.ts'),
});
