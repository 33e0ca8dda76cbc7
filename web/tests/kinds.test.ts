// Unit tests of web/src/lib/kinds.ts (the forms and file checks the browser derives from GET
// /functions/v1/jobs/kinds), in Deno, against a fixture of that response: fixtures/kinds.json is
// the contract's shape (/work/brief/kinds-contract.md, supabase/functions/_jobs/capabilities.ts)
// for the shipped kinds, as the server answered it with no provider configured. The expected
// labels, ranges and defaults below are the ones the hand-written web/src/lib/operations.ts had,
// so a form built from the server's schema is the form people had before.
//
//   deno test -A web/tests/kinds.test.ts
import assert from 'node:assert/strict';
import fixture from './fixtures/kinds.json' with { type: 'json' };
import { ApiError } from '../src/lib/api-error.ts';
import {
  acceptOf,
  defaultValues,
  fetchKinds,
  type Field,
  fieldProblems,
  fieldsOf,
  fileProblem,
  formatBytes,
  formatValue,
  type FunctionsInvoker,
  type JobKind,
  kindLabel,
  mediaProblem,
  mediaTypeOf,
  missingFields,
  type RangeField,
  requestBody,
  type SelectField,
  shownFields,
  wavFacts,
} from '../src/lib/kinds.ts';

const KINDS = fixture.kinds as unknown as JobKind[];
const PATH = '00000000-0000-4000-8000-000000000000/photo.png';
const MiB = 1024 * 1024;

function kind(type: string): JobKind {
  const k = KINDS.find((x) => x.type === type);
  assert.ok(k, `the fixture has ${type}`);
  return structuredClone(k);
}

/** A fake supabase-js client whose functions.invoke answers `answer` (and records the call). */
function client(answer: () => Promise<{ data: unknown; error: unknown }>) {
  const calls: { name: string; options: unknown }[] = [];
  const fake: FunctionsInvoker = {
    functions: {
      async invoke<T>(name: string, options: { method: 'GET' }) {
        calls.push({ name, options });
        return (await answer()) as { data: T | null; error: unknown };
      },
    },
  };
  return { fake, calls };
}

/** An error as functions-js makes them (its classes set these names in their constructors). */
function functionsError(name: string, context: unknown): Error {
  return Object.assign(new Error('Edge Function returned a non-2xx status code'), { name, context });
}

const byName = (fields: readonly Field[]) => Object.fromEntries(fields.map((f) => [f.name, f]));

// Fetching -------------------------------------------------------------------------------------

Deno.test('fetchKinds asks GET jobs/kinds and returns the kinds as sent', async () => {
  const { fake, calls } = client(() => Promise.resolve({ data: structuredClone(fixture), error: null }));
  const kinds = await fetchKinds(fake);
  assert.deepEqual(calls, [{ name: 'jobs/kinds', options: { method: 'GET' } }]);
  assert.deepEqual(kinds.map((k) => k.type), ['color-grade', 'audio-clean', 'roto', 'image', 'text']);
  assert.deepEqual(kinds, fixture.kinds);
});

Deno.test('fetchKinds surfaces a refused call as the ApiError jobs.ts would make', async () => {
  const res = new Response(
    JSON.stringify({ error: { code: 'unauthorized', message: 'missing or invalid token' } }),
    { status: 401, headers: { 'content-type': 'application/json' } },
  );
  const { fake } = client(() => Promise.resolve({ data: null, error: functionsError('FunctionsHttpError', res) }));
  const err = await fetchKinds(fake).then(() => null, (e) => e);
  assert.ok(err instanceof ApiError);
  assert.equal(err.code, 'unauthorized');
  assert.equal(err.status, 401);
  assert.equal(err.friendly, 'Your session has expired. Reload the page to sign in again.');
});

Deno.test('fetchKinds: an unreachable server is network, an odd answer bad_response', async () => {
  for (const name of ['FunctionsFetchError', 'FunctionsRelayError']) {
    const { fake } = client(() => Promise.resolve({ data: null, error: functionsError(name, {}) }));
    const err = await fetchKinds(fake).then(() => null, (e) => e);
    assert.ok(err instanceof ApiError);
    assert.equal(err.code, 'network', name);
  }
  for (const data of [{}, { kinds: 'no' }, { kinds: [{ type: 'x' }] }, null]) {
    const { fake } = client(() => Promise.resolve({ data, error: null }));
    const err = await fetchKinds(fake).then(() => null, (e) => e);
    assert.ok(err instanceof ApiError);
    assert.equal(err.code, 'bad_response', JSON.stringify(data));
  }
  const { fake } = client(() => Promise.reject(new TypeError('fetch failed')));
  const err = await fetchKinds(fake).then(() => null, (e) => e);
  assert.ok(err instanceof ApiError);
  assert.equal(err.code, 'unknown');
});

Deno.test('kindLabel names a type by its kind, and by itself when not listed', () => {
  assert.equal(kindLabel(KINDS, 'color-grade'), 'Colour grade');
  assert.equal(kindLabel(KINDS, 'roto'), 'Cut out (roto)');
  assert.equal(kindLabel(KINDS, 'noop'), 'noop');
  assert.equal(kindLabel(null, 'roto'), 'roto');
});

// The forms: today's operations.ts, derived ----------------------------------------------------

Deno.test('the kinds keep the labels and summaries the page had', () => {
  assert.deepEqual(KINDS.map((k) => [k.type, k.label]), [
    ['color-grade', 'Colour grade'],
    ['audio-clean', 'Clean up audio'],
    ['roto', 'Cut out (roto)'],
    ['image', 'Generate an image'],
    ['text', 'Write text'],
  ]);
  assert.equal(
    kind('color-grade').summary,
    'A look preset plus exposure, contrast, saturation and white balance.',
  );
});

Deno.test('color-grade: fields in order, the upload and the hidden field left out', () => {
  const fields = fieldsOf(kind('color-grade'));
  assert.deepEqual(fields.map((f) => [f.name, f.widget, f.label]), [
    ['preset', 'select', 'Preset'],
    ['exposure', 'range', 'Exposure'],
    ['contrast', 'range', 'Contrast'],
    ['saturation', 'range', 'Saturation'],
    ['temperature', 'range', 'Temperature'],
    ['tint', 'range', 'Tint'],
    ['output_format', 'select', 'Output format'],
  ]);
  // An optional choice without a default starts at "Default", which sends nothing.
  assert.deepEqual((byName(fields).output_format as SelectField).options, [
    { value: '', label: 'Default' },
    { value: 'png', label: 'PNG (lossless)' },
    { value: 'jpeg', label: 'JPEG (smaller)' },
  ]);
  const f = byName(fields);
  assert.deepEqual((f.preset as SelectField).options, [
    { value: 'none', label: 'None' },
    { value: 'warm', label: 'Warm' },
    { value: 'cool', label: 'Cool' },
    { value: 'noir', label: 'Noir (black & white)' },
    { value: 'teal-orange', label: 'Teal & orange' },
  ]);
  const exposure = f.exposure as RangeField;
  assert.deepEqual([exposure.min, exposure.max, exposure.step, exposure.format], [-3, 3, 0.1, 'stops']);
  for (const name of ['contrast', 'saturation', 'temperature', 'tint']) {
    const r = f[name] as RangeField;
    assert.deepEqual([r.min, r.max, r.step, r.format, r.integer], [-1, 1, 0.05, 'signed', false], name);
  }
  assert.equal(f.temperature.hint, 'cooler ← → warmer');
  assert.equal(f.tint.hint, 'green ← → magenta');
  assert.equal(f.contrast.hint, undefined);
});

Deno.test('audio-clean and roto: ranges, formats, hints and conditions as before', () => {
  const audio = byName(fieldsOf(kind('audio-clean')));
  const r = (name: string) => {
    const x = audio[name] as RangeField;
    return [x.label, x.min, x.max, x.step, x.format];
  };
  assert.deepEqual(r('target_lufs'), ['Target loudness', -30, -10, 1, 'lufs']);
  assert.deepEqual(r('noise_reduction'), ['Noise reduction', 0, 1, 0.05, 'percent']);
  assert.deepEqual(r('highpass_hz'), ['High-pass filter', 20, 300, 5, 'hz']);
  assert.equal(audio.target_lufs.hint, '-16 for podcasts, -23 for broadcast');

  const roto = fieldsOf(kind('roto'));
  assert.deepEqual(roto.map((f) => [f.name, f.widget, f.label]), [
    ['mode', 'select', 'Key on'],
    ['key_color', 'color', 'Key colour'],
    ['tolerance', 'range', 'Tolerance'],
    ['feather', 'range', 'Feather'],
    ['invert', 'checkbox', 'Invert the matte'],
  ]);
  const f = byName(roto);
  assert.deepEqual((f.mode as SelectField).options.map((o) => o.label), [
    'A colour (green/blue screen)',
    'Brightness (dark background)',
    'AI segmentation (needs Replicate)',
  ]);
  assert.deepEqual(f.key_color.when, { field: 'mode', in: ['color'] });
  assert.deepEqual(f.tolerance.when, { field: 'mode', not_in: ['ai'] });
  assert.deepEqual([(f.feather as RangeField).step, (f.feather as RangeField).format], [1, 'px']);
  assert.equal((f.tolerance as RangeField).format, 'fixed2');
});

Deno.test('image: a required prompt textarea with its placeholder, an integer select', () => {
  const f = byName(fieldsOf(kind('image')));
  assert.deepEqual(Object.keys(f), ['prompt', 'size', 'quality', 'n']);
  assert.equal(f.prompt.widget, 'textarea');
  assert.equal(f.prompt.required, true);
  assert.equal(f.prompt.widget === 'textarea' && f.prompt.maxLength, 4000);
  assert.equal(f.prompt.widget === 'textarea' && f.prompt.placeholder, 'A lighthouse at dusk, watercolour');
  assert.equal(f.size.required, false);
  assert.deepEqual((f.size as SelectField).options.map((o) => o.label), [
    'Square (1024×1024)',
    'Portrait (1024×1536)',
    'Landscape (1536×1024)',
    'Automatic',
  ]);
  assert.deepEqual((f.quality as SelectField).options.map((o) => [o.value, o.label]), [
    ['auto', 'Automatic'],
    ['low', 'Low (fastest)'],
    ['medium', 'Medium'],
    ['high', 'High'],
  ]);
  assert.deepEqual((f.n as SelectField).options, [1, 2, 3, 4].map((n) => ({ value: n, label: String(n) })));
});

Deno.test('defaults are the ones the page had', () => {
  assert.deepEqual(defaultValues(kind('color-grade')), {
    preset: 'none',
    exposure: 0,
    contrast: 0,
    saturation: 0,
    temperature: 0,
    tint: 0,
    output_format: '',
  });
  assert.deepEqual(defaultValues(kind('audio-clean')), {
    target_lufs: -16,
    noise_reduction: 0.5,
    highpass_hz: 80,
  });
  assert.deepEqual(defaultValues(kind('roto')), {
    mode: 'color',
    key_color: '#00b140',
    tolerance: 0.3,
    feather: 2,
    invert: false,
  });
  // Selects hold their option's value as text (the <select>'s own), sent as the option's value.
  assert.deepEqual(defaultValues(kind('image')), {
    prompt: '',
    size: '1024x1024',
    quality: 'auto',
    n: '1',
  });
  const text = defaultValues(kind('text'));
  assert.equal(text.max_output_tokens, 1000);
  assert.deepEqual(JSON.parse(String(text.output_schema)), {
    type: 'object',
    properties: { text: { type: 'string' } },
    required: ['text'],
    additionalProperties: false,
  });
});

// Request bodies -------------------------------------------------------------------------------

Deno.test('requestBody: the upload path, every shown field, never a hidden one', () => {
  const k = kind('color-grade');
  assert.deepEqual(requestBody(k, defaultValues(k), PATH), {
    input_path: PATH,
    preset: 'none',
    exposure: 0,
    contrast: 0,
    saturation: 0,
    temperature: 0,
    tint: 0,
  });
  const body = requestBody(k, { ...defaultValues(k), preset: 'noir', input_name: 'x.png' }, PATH);
  assert.equal(body.preset, 'noir');
  assert.equal('input_name' in body, false, 'hidden fields are never sent');
  assert.equal(
    requestBody(k, { ...defaultValues(k), output_format: 'jpeg' }, PATH).output_format,
    'jpeg',
    'a chosen output format is sent',
  );
  assert.throws(() => requestBody(k, defaultValues(k), null), /needs an input file/);
});

Deno.test('requestBody: only fields whose x-when holds', () => {
  const k = kind('roto');
  const values = defaultValues(k);
  assert.deepEqual(Object.keys(requestBody(k, values, PATH)), [
    'input_path',
    'mode',
    'key_color',
    'tolerance',
    'feather',
    'invert',
  ]);
  assert.deepEqual(Object.keys(requestBody(k, { ...values, mode: 'luma' }, PATH)), [
    'input_path',
    'mode',
    'tolerance',
    'feather',
    'invert',
  ]);
  assert.deepEqual(requestBody(k, { ...values, mode: 'ai', invert: true }, PATH), {
    input_path: PATH,
    mode: 'ai',
    invert: true,
  });
  assert.deepEqual(shownFields(k, { ...values, mode: 'ai' }).map((f) => f.name), ['mode', 'invert']);
  assert.equal(requestBody(k, { ...values, key_color: '#00FF00' }, PATH).key_color, '#00ff00');
});

Deno.test('requestBody: integers as numbers, text trimmed, no file field without a file', () => {
  const k = kind('image');
  assert.deepEqual(requestBody(k, { ...defaultValues(k), prompt: '  a lighthouse \n', n: '3' }, null), {
    prompt: 'a lighthouse',
    size: '1024x1024',
    quality: 'auto',
    n: 3,
  });
  // A form value the widget sent as text is still a number in the body.
  const grade = kind('color-grade');
  assert.equal(requestBody(grade, { ...defaultValues(grade), exposure: '0.5' }, PATH).exposure, 0.5);
});

Deno.test('requestBody: json parsed, blank optional text left to the server, integer ranges rounded', () => {
  const k = kind('text');
  const values = {
    ...defaultValues(k),
    prompt: 'Describe a mug',
    output_schema: '{"type":"object","properties":{"title":{"type":"string"}},"required":["title"],"additionalProperties":false}',
    max_output_tokens: 400.4,
  };
  assert.deepEqual(requestBody(k, values, null), {
    prompt: 'Describe a mug',
    output_schema: {
      type: 'object',
      properties: { title: { type: 'string' } },
      required: ['title'],
      additionalProperties: false,
    },
    max_output_tokens: 400,
  });
  assert.equal(requestBody(k, { ...values, instructions: '  Be brief. ' }, null).instructions, 'Be brief.');
  assert.equal('output_schema' in requestBody(k, { ...values, output_schema: '  ' }, null), false);
});

Deno.test('fieldProblems and missingFields: what keeps Start off, by field', () => {
  const text = kind('text');
  const values = { ...defaultValues(text), prompt: 'x' };
  assert.deepEqual(fieldProblems(text, values), {});
  assert.deepEqual(missingFields(text, values), []);
  assert.match(fieldProblems(text, { ...values, output_schema: '{"type": ' }).output_schema, /^Output schema is not valid JSON/);
  assert.equal(fieldProblems(text, { ...values, output_schema: '[1]' }).output_schema, 'Output schema must be a JSON object ({ … }).');
  assert.deepEqual(missingFields(text, { ...values, prompt: '   ' }).map((f) => f.name), ['prompt']);
  const image = kind('image');
  assert.deepEqual(missingFields(image, defaultValues(image)).map((f) => f.label), ['Prompt']);
  assert.deepEqual(missingFields(kind('color-grade'), defaultValues(kind('color-grade'))), []);
});

Deno.test('fieldsOf: a property without a known x-widget gets one from its type', () => {
  const k = kind('image');
  k.input_schema.properties = {
    flag: { type: 'boolean', title: 'Flag' },
    level: { type: 'integer', minimum: 0, maximum: 10, default: 4 },
    pick: { type: 'string', enum: ['a', 'b'], default: 'b', 'x-widget': 'carousel' },
    note: { type: 'string', maxLength: 20 },
    extra: { type: 'object' },
    when_pick: { type: 'string', 'x-widget': 'text', 'x-when': { field: 'level', in: [5] } },
  };
  const f = byName(fieldsOf(k));
  assert.deepEqual(Object.values(f).map((x) => [x.name, x.widget, x.label]), [
    ['flag', 'checkbox', 'Flag'],
    ['level', 'range', 'level'],
    ['pick', 'select', 'pick'],
    ['note', 'text', 'note'],
    ['extra', 'json', 'extra'],
    ['when_pick', 'text', 'when_pick'],
  ]);
  assert.deepEqual([(f.level as RangeField).step, (f.level as RangeField).default], [1, 4]);
  assert.equal(f.pick.default, 'b');
  // x-when compares the field's value as sent: a number for a range.
  const values = defaultValues(k);
  assert.equal('when_pick' in requestBody(k, { ...values, when_pick: 'x' }, null), false);
  assert.equal(requestBody(k, { ...values, level: '5', when_pick: 'x' }, null).when_pick, 'x');
});

Deno.test('every range steps from its minimum onto values it allows', () => {
  for (const k of KINDS) {
    for (const f of fieldsOf(k)) {
      if (f.widget !== 'range') continue;
      assert.ok(f.step > 0 && f.min + f.step <= f.max, `${k.type}.${f.name}`);
      assert.ok(f.default >= f.min && f.default <= f.max, `${k.type}.${f.name} default`);
      if (f.integer) assert.ok(Number.isInteger(f.step) && Number.isInteger(f.min), `${k.type}.${f.name}`);
    }
  }
});

Deno.test('formatValue: each x-format as the contract spells it', () => {
  assert.equal(formatValue('signed', 0.25), '+0.25');
  assert.equal(formatValue('signed', -0.25), '-0.25');
  assert.equal(formatValue('signed', 0), '0.00');
  assert.equal(formatValue('stops', 0.5), '+0.5 stops');
  assert.equal(formatValue('stops', -1), '-1.0 stops');
  assert.equal(formatValue('percent', 0.5), '50%');
  assert.equal(formatValue('lufs', -16), '-16 LUFS');
  assert.equal(formatValue('hz', 80), '80 Hz');
  assert.equal(formatValue('px', 2), '2 px');
  assert.equal(formatValue('fixed2', 0.3), '0.30');
  assert.equal(formatValue(undefined, 1000), '1000');
  assert.equal(formatValue('unheard-of', 7), '7');
});

// Files ----------------------------------------------------------------------------------------

Deno.test('fileProblem: empty, too large (both sizes named), not taken at all', () => {
  const k = kind('color-grade');
  assert.equal(fileProblem(k, { name: 'a.png', type: 'image/png', size: 0 }), 'a.png is empty.');
  assert.equal(
    fileProblem(k, { name: 'big.png', type: 'image/png', size: 60 * MiB }),
    'big.png is 60 MB; the limit is 50 MB.',
  );
  assert.equal(fileProblem(k, { name: 'max.png', type: 'image/png', size: 50 * MiB }), null);
  assert.equal(
    fileProblem(k, { name: 'notes.txt', type: 'text/plain', size: 5 }),
    "Colour grade can't take text/plain: use PNG or JPEG up to 3 megapixels.",
  );
  assert.equal(
    fileProblem(kind('audio-clean'), { name: 'a.png', type: 'image/png', size: 5 }),
    "Clean up audio can't take image/png: use WAV up to 30 s of 48 kHz stereo.",
  );
  assert.equal(fileProblem(kind('image'), { name: 'x.txt', type: 'text/plain', size: 0 }), null);
});

Deno.test('fileProblem: a type only an unconfigured provider takes is refused before upload', () => {
  const k = kind('color-grade');
  assert.equal(
    fileProblem(k, { name: 'clip.mp4', type: 'video/mp4', size: 1000 }),
    'Colour grade of video/mp4 needs Replicate, which this project has not configured: use PNG or JPEG up to 3 megapixels.',
  );
  assert.match(
    fileProblem(kind('audio-clean'), { name: 'song.mp3', type: 'audio/mpeg', size: 1000 }) ?? '',
    /^Clean up audio of audio\/mpeg needs Replicate, which this project has not configured: use WAV/,
  );
  assert.equal(fileProblem(kind('audio-clean'), { name: 'v.wav', type: 'audio/x-wav', size: 1000 }), null);
  k.file!.provider_configured = true;
  assert.equal(fileProblem(k, { name: 'clip.mp4', type: 'video/mp4', size: 1000 }), null);
});

Deno.test('mediaTypeOf: the browser type when taken, else the extension; acceptOf lists both', () => {
  const types = kind('color-grade').file!.content_types;
  assert.equal(mediaTypeOf({ name: 'a.png', type: 'image/png' }, types), 'image/png');
  assert.equal(mediaTypeOf({ name: 'A.PNG', type: '' }, types), 'image/png');
  assert.equal(mediaTypeOf({ name: 'a.jpg', type: 'image/pjpeg' }, types), 'image/jpeg');
  assert.equal(mediaTypeOf({ name: 'a.mov', type: 'Video/QuickTime; codecs=x' }, types), 'video/quicktime');
  assert.equal(mediaTypeOf({ name: 'notes.txt', type: 'text/plain' }, types), 'text/plain');
  assert.equal(mediaTypeOf({ name: 'v.wav', type: 'audio/x-wav' }), 'audio/x-wav');
  assert.equal(mediaTypeOf({ name: 'v.wav', type: 'application/octet-stream' }), 'audio/wav');
  // A PNG the browser typed oddly passes the checks as the type it is stored under.
  assert.equal(fileProblem(kind('roto'), { name: 'key.png', type: '', size: 10 }), null);

  assert.equal(
    acceptOf(kind('color-grade')),
    'image/png,image/jpeg,image/webp,video/mp4,video/quicktime,video/webm,.png,.jpg,.jpeg,.webp,.mp4,.mov,.webm',
  );
  assert.equal(
    acceptOf(kind('audio-clean')),
    'audio/wav,audio/x-wav,audio/wave,audio/vnd.wave,audio/mpeg,audio/mp4,audio/flac,.wav,.wave,.mp3,.m4a,.flac',
  );
  assert.equal(acceptOf(kind('image')), '');
});

Deno.test('the fixture is the contract: limits and availability as the server sends them', () => {
  for (const k of KINDS) {
    assert.equal(typeof k.summary, 'string');
    assert.equal(k.available, k.unavailable === null, k.type);
    if (k.file) {
      assert.equal(k.file.field, 'input_path');
      assert.equal(k.file.max_bytes, 50 * MiB);
      assert.equal(k.input_schema.properties[k.file.field]['x-widget'], 'file');
      for (const t of k.file.in_function.content_types) assert.ok(k.file.content_types.includes(t));
    }
  }
  assert.deepEqual(kind('image').unavailable, {
    code: 'provider_not_configured',
    message: 'image generation needs OpenAI, which this project has not configured',
  });
  assert.equal(formatBytes(52428800), '50 MB');
});

// Media checks before the upload -------------------------------------------------------------------

/** A WAV header (PCM, 16-bit) of `seconds` at `rate` Hz and `channels`, without its samples. */
function wavHeader(
  seconds: number,
  rate: number,
  channels: number,
): { head: Uint8Array; size: number } {
  const dataBytes = Math.round(seconds * rate) * channels * 2;
  const head = new Uint8Array(44);
  const v = new DataView(head.buffer);
  const tag = (at: number, s: string) => [...s].forEach((c, i) => (head[at + i] = c.charCodeAt(0)));
  tag(0, 'RIFF');
  v.setUint32(4, 36 + dataBytes, true);
  tag(8, 'WAVE');
  tag(12, 'fmt ');
  v.setUint32(16, 16, true);
  v.setUint16(20, 1, true);
  v.setUint16(22, channels, true);
  v.setUint32(24, rate, true);
  v.setUint32(28, rate * channels * 2, true);
  v.setUint16(32, channels * 2, true);
  v.setUint16(34, 16, true);
  tag(36, 'data');
  v.setUint32(40, dataBytes, true);
  return { head, size: 44 + dataBytes };
}

Deno.test('wavFacts reads rate, channels and duration from the header alone', () => {
  const { head, size } = wavHeader(75, 48000, 1);
  assert.deepEqual(wavFacts(head, size), { sampleRate: 48000, channels: 1, durationSeconds: 75 });
  assert.equal(wavFacts(new TextEncoder().encode('not a wav file at all'), 21), null);
});

Deno.test('mediaProblem: audio above the in-function limits, images above their megapixels', () => {
  const audio = kind('audio-clean');
  const wav = { name: 'long.wav', type: 'audio/wav' };
  assert.match(
    mediaProblem(audio, wav, { durationSeconds: 75, sampleRate: 48000, channels: 1 }) ?? '',
    /long\.wav is 1 min 15 s long; Clean up audio takes up to 1 min here: larger files need Replicate/,
  );
  assert.match(
    mediaProblem(audio, wav, { durationSeconds: 40, sampleRate: 48000, channels: 2 }) ?? '',
    /40 s of 2-channel 48 kHz audio; at that rate Clean up audio takes up to 30 s/,
  );
  assert.equal(
    mediaProblem(audio, wav, { durationSeconds: 20, sampleRate: 48000, channels: 2 }),
    null,
  );
  const grade = kind('color-grade');
  assert.match(
    mediaProblem(grade, { name: 'big.png', type: 'image/png' }, { width: 2400, height: 1600 }) ??
      '',
    /big\.png is 2400×1600 \(3\.8 megapixels\); Colour grade takes up to 3 megapixels here/,
  );
  assert.equal(
    mediaProblem(grade, { name: 'ok.png', type: 'image/png' }, { width: 1600, height: 1200 }),
    null,
  );
  const withProvider = { ...grade, file: { ...grade.file!, provider_configured: true } };
  assert.equal(
    mediaProblem(withProvider, { name: 'big.png', type: 'image/png' }, {
      width: 4000,
      height: 3000,
    }),
    null,
    'a configured provider takes larger files',
  );
});
