// Contract: the web client's operations (web/src/lib/operations.ts) and job states
// (web/src/lib/job-states.ts) say what the job creators accept (supabase/functions/_shared/
// job-kinds.ts) and what the inputs bucket takes (the storage migration). Run with Deno, which
// loads both sides as they are: `deno test web/tests/` (npm test runs it).
import assert from 'node:assert/strict';
import {
  AudioCleanInput,
  ColorGradeInput,
  ImageInput,
  JOB_STATES as SERVER_STATES,
  KINDS,
  RotoInput,
  TERMINAL_STATES as SERVER_TERMINAL,
} from '../../supabase/functions/_shared/job-kinds.ts';
import {
  BUCKET_TYPES,
  defaultValues,
  type Field,
  INPUT_MAX_BYTES,
  OPERATIONS,
  requestBody,
} from '../src/lib/operations.ts';
import { JOB_STATES, TERMINAL_STATES } from '../src/lib/job-states.ts';

const SCHEMAS = {
  'color-grade': ColorGradeInput,
  'audio-clean': AudioCleanInput,
  'roto': RotoInput,
  'image': ImageInput,
} as const;

const PATH = '00000000-0000-4000-8000-000000000000/photo.png';

function base(type: keyof typeof SCHEMAS): Record<string, unknown> {
  return type === 'image' ? { prompt: 'a lighthouse' } : { input_path: PATH };
}

/** Every combination of `when` conditions is exercised by setting the field's own gate open. */
function valuesWith(op: (typeof OPERATIONS)[number], name: string, value: unknown) {
  const values = { ...defaultValues(op), [name]: value } as Record<string, string | number | boolean>;
  if (op.type === 'image' && name !== 'prompt') values.prompt = 'a lighthouse';
  return values;
}

Deno.test('the web client offers exactly the job types that have creators', () => {
  const creatable = Object.values(KINDS).filter((k) => !k.testOnly).map((k) => k.type).sort();
  assert.deepEqual(OPERATIONS.map((o) => o.type).sort(), creatable);
});

Deno.test('job states are one vocabulary with the server', () => {
  assert.deepEqual([...JOB_STATES], [...SERVER_STATES]);
  assert.deepEqual([...TERMINAL_STATES].sort(), [...SERVER_TERMINAL].sort());
});

for (const op of OPERATIONS) {
  const schema = SCHEMAS[op.type];

  Deno.test(`${op.type}: the form's defaults are the creator's defaults`, () => {
    const values = defaultValues(op);
    if (op.type === 'image') values.prompt = 'a lighthouse';
    const body = requestBody(op, values, op.file ? PATH : null);
    assert.deepEqual(schema.parse(body), schema.parse(base(op.type)));
  });

  Deno.test(`${op.type}: every field's range and choices are what the creator accepts`, () => {
    const accepts = (f: Field, v: unknown) =>
      schema.safeParse(requestBody(op, valuesWith(op, f.name, v as never), op.file ? PATH : null)).success;
    for (const f of op.fields) {
      if (f.kind === 'range') {
        assert.ok(accepts(f, f.min), `${f.name} = min ${f.min}`);
        assert.ok(accepts(f, f.max), `${f.name} = max ${f.max}`);
        assert.ok(!accepts(f, f.min - f.step), `${f.name} below min is refused`);
        assert.ok(!accepts(f, f.max + f.step), `${f.name} above max is refused`);
        // The slider's steps land on valid values (e.g. integers where the schema wants them).
        assert.ok(accepts(f, f.min + f.step), `${f.name} one step above min`);
      } else if (f.kind === 'select') {
        for (const o of f.options) assert.ok(accepts(f, o.value), `${f.name} = ${o.value}`);
        const inner = (schema.shape as Record<string, { unwrap?: () => { options?: unknown[] } }>)[f.name];
        const options = inner?.unwrap?.().options;
        if (options) {
          assert.deepEqual(f.options.map((o) => (f.numeric ? Number(o.value) : o.value)).sort(), [...options].sort());
        }
        assert.ok(!accepts(f, f.numeric ? '99' : 'not-an-option'), `${f.name} refuses other values`);
      } else if (f.kind === 'color') {
        assert.ok(accepts(f, '#123abc'));
        assert.ok(!accepts(f, 'green'));
      } else if (f.kind === 'checkbox') {
        assert.ok(accepts(f, true) && accepts(f, false));
      } else if (f.kind === 'text') {
        assert.ok(accepts(f, 'x'.repeat(f.maxLength)), `${f.name} at its max length`);
        assert.ok(!accepts(f, 'x'.repeat(f.maxLength + 1)), `${f.name} past its max length`);
        if (f.required) assert.ok(!accepts(f, '   '), `${f.name} is required`);
      }
    }
  });

  Deno.test(`${op.type}: the same input files as the creator`, () => {
    const kind = KINDS[op.type];
    if (!op.file) {
      assert.equal(kind.file, undefined);
      return;
    }
    assert.deepEqual([...op.file.contentTypes].sort(), [...kind.file!.contentTypes].sort());
    assert.equal(op.file.maxBytes, kind.file!.maxBytes);
  });
}

Deno.test('the upload checks use the inputs bucket limits', async () => {
  const dir = new URL('../../supabase/migrations/', import.meta.url);
  let sql = '';
  for await (const entry of Deno.readDir(dir)) {
    if (entry.name.endsWith('_storage_buckets.sql')) sql = await Deno.readTextFile(new URL(entry.name, dir));
  }
  const m = /\('inputs',\s*'inputs',\s*false,\s*(\d+),\s*array\[([^\]]+)\]/.exec(sql);
  assert.ok(m, 'the inputs bucket row is found in the storage migration');
  assert.equal(Number(m[1]), INPUT_MAX_BYTES);
  const types = [...m[2].matchAll(/'([^']+)'/g)].map((x) => x[1]).sort();
  assert.deepEqual([...BUCKET_TYPES].sort(), types);
});
