// Contract: every kind in web/tests/fixtures/kinds.json (an answer of GET /functions/v1/jobs/kinds
// that kinds.test.ts builds the browser's forms from) is what the server sends today for a
// project with no provider configured; a kind the fixture does not have (one you add) changes
// nothing here (supabase/functions/_jobs/capabilities.ts over the kinds'
// descriptors). The browser itself imports nothing of the server; this test only keeps its
// fixture honest. Run with Deno: `deno test -A web/tests/kinds-fixture.contract.test.ts` (npm
// test runs web/tests/*.contract.test.ts). When a kind changes on purpose, regenerate the fixture
// (the command is in the assertion message) and look at what kinds.test.ts then says.
import assert from 'node:assert/strict';
import fixture from './fixtures/kinds.json' with { type: 'json' };
import { capabilitiesOf } from '../../supabase/functions/_jobs/capabilities.ts';
import { KINDS } from '../../supabase/functions/_jobs/kinds/index.ts';
import type { ProviderConfig } from '../../supabase/functions/_jobs/providers.ts';

/** No OpenAI, no Replicate, no noop: the capabilities read only these three. */
const NONE = { openai: false, replicate: () => false, noop: false } as unknown as ProviderConfig;

Deno.test('each kind of the fixture is what GET /jobs/kinds answers for it with no provider configured', () => {
  const served = JSON.parse(JSON.stringify(capabilitiesOf(KINDS, NONE))) as { type: string }[];
  const byType = new Map(served.map((k) => [k.type, k]));
  assert.deepEqual(
    fixture.kinds.map((k) => byType.get(k.type) ?? { type: k.type, missing: 'not served' }),
    fixture.kinds,
    'web/tests/fixtures/kinds.json is out of date: regenerate it with\n' +
      `  deno eval "import {KINDS} from './supabase/functions/_jobs/kinds/index.ts'; ` +
      `import {capabilitiesOf} from './supabase/functions/_jobs/capabilities.ts'; ` +
      `console.log(JSON.stringify({kinds: capabilitiesOf(KINDS, {openai: false, replicate: () => false, noop: false})}, null, 2))" ` +
      '> web/tests/fixtures/kinds.json',
  );
});
