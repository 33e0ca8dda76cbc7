// Contract: the web client's pack views (web/src/lib/pack.ts PACK_VIEW_HINTS, by which a running
// pack's image children are placed) are the pack creator's (supabase/functions/_jobs/pack.ts
// PACK_VIEWS), and each image child the creator makes is placed in its own view. Run with Deno:
// `deno test -A web/tests/pack.contract.test.ts` (npm test runs web/tests/*.test.ts).
import assert from 'node:assert/strict';
import { PACK_VIEWS, packChildren, PackInput } from '../../supabase/functions/_jobs/pack.ts';
import { PACK_VIEW_HINTS, viewOfChild } from '../src/lib/pack.ts';

Deno.test('the pack views and their hints are the pack creator\'s', () => {
  assert.deepEqual(
    PACK_VIEW_HINTS.map((v) => ({ ...v })),
    PACK_VIEWS.map((v) => ({ view: v.view, hint: v.hint })),
  );
});

Deno.test('each image child the pack creator makes is placed in its view, the text in none', () => {
  const children = packChildren(PackInput.parse({ prompt: 'a mug. Show the product alone' }));
  assert.deepEqual(
    children.map((c) => viewOfChild({ input: c.input as Record<string, never> })),
    [...PACK_VIEWS.map((v) => v.view), null],
  );
});
