// Unit tests of web/src/lib/pack.ts: the pack's form from the image kind (available exactly when
// image is, saying why not), the card's slots (the parent's output order once it has ended, the
// prompts' views before, leftovers in free slots, nobody twice), the A+ content and the tally.
//
//   deno test -A web/tests/pack.test.ts
import assert from 'node:assert/strict';
import fixture from './fixtures/kinds.json' with { type: 'json' };
import { defaultValues, fieldsOf, type JobKind, missingFields, requestBody } from '../src/lib/kinds.ts';
import {
  APLUS_LABEL,
  aplusOf,
  PACK_VIEW_HINTS,
  packKindOf,
  packSlots,
  type PackJob,
  packTally,
  viewOfChild,
} from '../src/lib/pack.ts';

type Job = PackJob & { updated_at: string };

const KINDS = fixture.kinds as unknown as JobKind[];
const VIEWS = PACK_VIEW_HINTS.map((v) => v.view);

let seq = 0;
function job(over: Partial<Job>): Job {
  seq += 1;
  return {
    id: `00000000-0000-7000-8000-${String(seq).padStart(12, '0')}`,
    type: 'image',
    status: 'pending',
    input: {},
    output: null,
    created_at: '2026-12-03T10:00:00+00:00',
    updated_at: '2026-12-03T10:00:00+00:00',
    ...over,
  };
}
const imageFor = (view: string, over: Partial<Job> = {}) =>
  job({
    input: { prompt: `a mug. Show ${PACK_VIEW_HINTS.find((v) => v.view === view)!.hint}.` },
    ...over,
  });
const parent = (over: Partial<Job> = {}) =>
  job({ type: 'pack', status: 'waiting', input: { prompt: 'a mug', views: VIEWS }, ...over });

Deno.test('pack form: without OpenAI (image unavailable) the pack is unavailable and says it needs OpenAI', () => {
  const kind = packKindOf(KINDS)!;
  assert.equal(kind.type, 'pack');
  assert.equal(kind.available, false);
  assert.equal(kind.unavailable?.code, 'provider_not_configured');
  assert.match(kind.unavailable!.message, /needs OpenAI/);
  assert.equal(packKindOf(KINDS.filter((k) => k.type !== 'image')), null, 'no image kind, no pack');
});

Deno.test('pack form: a product prompt, size and quality (no n); the body is what POST /pack takes', () => {
  const image = KINDS.find((k) => k.type === 'image')!;
  const kind = packKindOf([{ ...image, available: true, unavailable: null }])!;
  assert.equal(kind.available, true);
  assert.equal(kind.unavailable, null);
  assert.deepEqual(fieldsOf(kind).map((f) => [f.name, f.label]), [
    ['prompt', 'Product'],
    ['size', 'Size'],
    ['quality', 'Quality'],
  ]);
  const values = defaultValues(kind);
  assert.deepEqual(missingFields(kind, values).map((f) => f.name), ['prompt']);
  assert.deepEqual(requestBody(kind, { ...values, prompt: 'a mug' }, null), {
    prompt: 'a mug',
    size: '1024x1024',
    quality: 'auto',
  });
});

Deno.test('slots: six views from the parent\'s input, then the A+ content, children placed by their prompts', () => {
  const children = [
    job({ type: 'text' }),
    ...[...VIEWS].reverse().map((v) => imageFor(v)),
  ];
  const slots = packSlots(parent(), children);
  assert.deepEqual(slots.map((s) => s.label), [
    'Main',
    'Lifestyle',
    'Detail',
    'Scale',
    'Features',
    'Packaging',
    APLUS_LABEL,
  ]);
  assert.deepEqual(
    slots.map((s) => (s.job!.type === 'text' ? 'text' : viewOfChild(s.job!))),
    [...VIEWS, 'text'],
  );
});

Deno.test('slots: once the parent has ended, its output\'s order is the truth', () => {
  const children = VIEWS.map(() => job({ input: { prompt: 'no hint here' } }));
  const text = job({ type: 'text' });
  const order = [children[3], children[0], children[5], children[1], children[4], children[2], text];
  const ended = parent({
    status: 'done',
    output: { children: order.map((c, index) => ({ index, id: c.id, type: c.type, status: 'done' })) },
  });
  assert.deepEqual(packSlots(ended, [...children, text]).map((s) => s.job?.id), order.map((c) => c.id));
});

Deno.test('slots: children of unknown views fill the free slots of their type oldest first; none twice', () => {
  const a = job({ input: {}, created_at: '2026-12-03T10:00:01+00:00' });
  const b = job({ input: {}, created_at: '2026-12-03T10:00:00+00:00' });
  const main = imageFor('main');
  const odd = job({ type: 'roto' });
  const slots = packSlots(parent(), [a, main, b, odd, main]);
  assert.deepEqual(slots.map((s) => s.job?.id ?? null), [
    main.id,
    b.id,
    a.id,
    null,
    null,
    null,
    null,
    odd.id,
  ]);
  assert.equal(slots[7].label, 'roto');
  // A parent made without views (SQL) gets the pack's six.
  assert.equal(packSlots(parent({ input: {} }), []).length, 7);
});

Deno.test('A+ content: headline, modules and closing from output.result; anything else is null', () => {
  const done = job({
    type: 'text',
    status: 'done',
    output: {
      result: {
        headline: 'Coffee, better',
        modules: [{ title: 'Glaze', body: 'Speckled.' }, { title: 5 }],
        closing: 'Enjoy.',
      },
    },
  });
  assert.deepEqual(aplusOf(done), {
    headline: 'Coffee, better',
    modules: [{ title: 'Glaze', body: 'Speckled.' }],
    closing: 'Enjoy.',
  });
  assert.equal(aplusOf(job({ output: { result: 'text' } })), null);
  assert.equal(aplusOf(job({ output: null })), null);
});

Deno.test('tally: done of all, then failed and cancelled when there are any', () => {
  assert.equal(packTally([], 7), '0 of 7 done');
  assert.equal(
    packTally([{ status: 'done' }, { status: 'failed' }, { status: 'cancelled' }, { status: 'done' }], 7),
    '2 of 7 done · 1 failed · 1 cancelled',
  );
});
