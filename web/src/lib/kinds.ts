// The job kinds as the server describes them (GET /functions/v1/jobs/kinds: the capabilities
// contract, supabase/functions/_jobs/capabilities.ts), and everything the browser derives from
// them: the form of a kind (its fields, defaults and request body), the checks of an input file
// before it is uploaded, and the file input's `accept`. Nothing about a kind is written here: a
// new kind, field, range or file rule on the server shows up in the browser unchanged.
//
// Pure functions over the fetched data, plus fetchKinds. No import of server code, and nothing
// that needs the browser or the npm packages (api-error.ts has no imports): web/tests/
// kinds.test.ts runs this file in Deno against a fixture of the contract.
import { ApiError, toApiError } from './api-error.ts';

// The contract ---------------------------------------------------------------------------------

/** How a property is shown: `file` is the upload, `hidden` is never shown nor sent. */
export type Widget =
  | 'file'
  | 'range'
  | 'select'
  | 'color'
  | 'checkbox'
  | 'text'
  | 'textarea'
  | 'json'
  | 'hidden';

/** A range's value text: signed +0.25, stops +0.5 stops, percent 50%, lufs -16 LUFS, ... */
export type ValueFormat = 'signed' | 'stops' | 'percent' | 'lufs' | 'hz' | 'px' | 'fixed2';

/** The field is shown (and sent) only when the named field's current value is (not) listed. */
export type When =
  | { field: string; in: readonly unknown[]; not_in?: undefined }
  | { field: string; not_in: readonly unknown[]; in?: undefined };

/** One property of a kind's input: JSON Schema (zod's, io: 'input') plus Spool's x- keys. */
export interface PropertySchema {
  type?: 'string' | 'number' | 'integer' | 'boolean' | 'object' | 'array' | 'null';
  title?: string;
  description?: string;
  default?: unknown;
  minimum?: number;
  maximum?: number;
  minLength?: number;
  maxLength?: number;
  pattern?: string;
  enum?: readonly unknown[];
  'x-widget'?: Widget | string;
  'x-step'?: number;
  'x-format'?: ValueFormat | string;
  'x-options'?: readonly { value: string | number | boolean; label: string }[];
  'x-placeholder'?: string;
  'x-when'?: When;
  [key: string]: unknown;
}

export interface InputSchema {
  type: 'object';
  /** In form order. */
  properties: Record<string, PropertySchema>;
  required?: readonly string[];
  additionalProperties?: boolean;
  [key: string]: unknown;
}

/** The rules of a kind's input file. */
export interface KindFile {
  /** The input field that takes the upload's path ("<user id>/<name>" in the inputs bucket). */
  field: string;
  /** Media types the kind accepts for some route. */
  content_types: readonly string[];
  /** What the function itself processes; the rest of content_types needs `provider`. */
  in_function: {
    content_types: readonly string[];
    summary: string;
    /** In-function limits (files beyond them need `provider`): images, audio. */
    max_megapixels?: number;
    max_seconds?: number;
    /** Audio frames x channels. */
    max_samples?: number;
  };
  provider: string | null;
  provider_configured: boolean;
  /** Largest input file, bytes. */
  max_bytes: number;
}

export interface JobKind {
  type: string;
  label: string;
  summary: string;
  /** false: this project cannot run it (e.g. its provider is not configured). */
  available: boolean;
  unavailable: { code: string; message: string } | null;
  input_schema: InputSchema;
  file: KindFile | null;
}

export interface KindsResponse {
  kinds: JobKind[];
}

// Fetching -------------------------------------------------------------------------------------

/** What fetchKinds needs of a supabase-js client. */
export interface FunctionsInvoker {
  functions: {
    invoke<T>(
      name: string,
      options: { method: 'GET' },
    ): Promise<{ data: T | null; error: unknown }>;
  };
}

/**
 * The job kinds this user may start, from the jobs function. Failures are ApiErrors, as every
 * other call's (lib/jobs.ts); an answer that is not the contract's shape is `bad_response`.
 */
export async function fetchKinds(supabase: FunctionsInvoker): Promise<JobKind[]> {
  let result;
  try {
    result = await supabase.functions.invoke<KindsResponse>('jobs/kinds', { method: 'GET' });
  } catch (err) {
    throw await toApiError(err);
  }
  if (result.error) throw await toApiError(result.error);
  const kinds = (result.data as { kinds?: unknown } | null)?.kinds;
  if (!Array.isArray(kinds) || !kinds.every(isKind)) {
    throw new ApiError(
      'bad_response',
      'unexpected response from jobs/kinds',
      'Spool answered in a way this page does not understand. Reload and try again.',
    );
  }
  // An older or newer server may leave out the nulls: the rest of the page reads them as null.
  return kinds.map((k) => ({ ...k, unavailable: k.unavailable ?? null, file: k.file ?? null }));
}

function isKind(k: unknown): k is JobKind {
  const kind = k as Partial<JobKind> | null;
  return typeof kind === 'object' && kind !== null && typeof kind.type === 'string' &&
    typeof kind.label === 'string' && typeof kind.available === 'boolean' &&
    typeof kind.input_schema === 'object' && kind.input_schema !== null &&
    typeof kind.input_schema.properties === 'object' && kind.input_schema.properties !== null &&
    (kind.file == null || (typeof kind.file === 'object' && typeof kind.file.field === 'string'));
}

/** The label people know a job type by: the kind's, or the type itself for one not listed. */
export function kindLabel(kinds: readonly JobKind[] | null | undefined, type: string): string {
  return kinds?.find((k) => k.type === type)?.label ?? type;
}

// The form -------------------------------------------------------------------------------------

/** A form value: a number for ranges, a boolean for checkboxes, text otherwise (json: its text). */
export type FieldValue = string | number | boolean;
export type FormValues = Record<string, FieldValue>;

interface FieldBase {
  name: string;
  label: string;
  hint?: string;
  /** In the schema's `required`. */
  required: boolean;
  when?: When;
}
export interface RangeField extends FieldBase {
  widget: 'range';
  min: number;
  max: number;
  step: number;
  default: number;
  /** The value is an integer (sent rounded). */
  integer: boolean;
  format?: string;
}
export interface SelectOption {
  /** The value as sent (a number for integer fields). */
  value: string | number | boolean;
  label: string;
}
export interface SelectField extends FieldBase {
  widget: 'select';
  options: readonly SelectOption[];
  /** The form holds String(option.value); requestBody sends the option's own value. */
  default: string;
}
export interface ColorField extends FieldBase {
  widget: 'color';
  default: string;
}
export interface CheckboxField extends FieldBase {
  widget: 'checkbox';
  default: boolean;
}
export interface TextField extends FieldBase {
  widget: 'text' | 'textarea';
  default: string;
  minLength?: number;
  maxLength?: number;
  placeholder?: string;
}
export interface JsonField extends FieldBase {
  widget: 'json';
  /** The default value as indented JSON text. */
  default: string;
}
export type Field = RangeField | SelectField | ColorField | CheckboxField | TextField | JsonField;

const finite = (n: unknown): n is number => typeof n === 'number' && Number.isFinite(n);

/** The widget of a property: its x-widget when the browser knows it, else one from its type. */
function widgetOf(p: PropertySchema): Widget {
  const known: readonly string[] = [
    'file',
    'range',
    'select',
    'color',
    'checkbox',
    'text',
    'textarea',
    'json',
    'hidden',
  ];
  const w = p['x-widget'];
  if (typeof w === 'string' && known.includes(w)) return w as Widget;
  if (p.enum || p['x-options']) return 'select';
  if (p.type === 'boolean') return 'checkbox';
  if ((p.type === 'number' || p.type === 'integer') && finite(p.minimum) && finite(p.maximum)) {
    return 'range';
  }
  if (p.type === 'object' || p.type === 'array') return 'json';
  return 'text';
}

/** A property as a field; null for the upload and for hidden properties (never shown). */
function fieldOf(name: string, p: PropertySchema, required: boolean): Field | null {
  const widget = widgetOf(p);
  const base: FieldBase = {
    name,
    label: p.title ?? name,
    required,
    ...(p.description ? { hint: p.description } : {}),
    ...(p['x-when'] ? { when: p['x-when'] } : {}),
  };
  switch (widget) {
    case 'file':
    case 'hidden':
      return null;
    case 'range': {
      const integer = p.type === 'integer';
      const min = finite(p.minimum) ? p.minimum : 0;
      const max = finite(p.maximum) ? p.maximum : min + 100;
      const step = finite(p['x-step']) && p['x-step'] > 0 ? p['x-step'] : integer ? 1 : (max - min) / 100;
      const def = finite(p.default) ? p.default : Math.min(max, Math.max(min, 0));
      return {
        ...base,
        widget,
        min,
        max,
        step,
        default: def,
        integer,
        ...(typeof p['x-format'] === 'string' ? { format: p['x-format'] } : {}),
      };
    }
    case 'select': {
      const options: SelectOption[] = p['x-options']
        ? p['x-options'].map((o) => ({ value: o.value, label: o.label }))
        : (p.enum ?? []).map((v) => ({ value: v as string | number | boolean, label: String(v) }));
      // An optional choice with no default (the server decides, e.g. colour grade's output
      // format): offered as a first option that sends nothing.
      if (!required && p.default === undefined) {
        options.unshift({ value: '', label: 'Default' });
      }
      const def = p.default !== undefined && options.some((o) => o.value === p.default)
        ? p.default
        : options[0]?.value;
      return { ...base, widget, options, default: def === undefined ? '' : String(def) };
    }
    case 'color':
      return { ...base, widget, default: typeof p.default === 'string' ? p.default : '#000000' };
    case 'checkbox':
      return { ...base, widget, default: p.default === true };
    case 'text':
    case 'textarea':
      return {
        ...base,
        widget,
        default: typeof p.default === 'string' ? p.default : '',
        ...(finite(p.minLength) ? { minLength: p.minLength } : {}),
        ...(finite(p.maxLength) ? { maxLength: p.maxLength } : {}),
        ...(p['x-placeholder'] ? { placeholder: p['x-placeholder'] } : {}),
      };
    case 'json':
      return {
        ...base,
        widget,
        default: p.default === undefined ? '' : JSON.stringify(p.default, null, 2),
      };
  }
}

/**
 * The fields of a kind's form, in the schema's property order: every property but the upload
 * (x-widget file) and hidden ones. Whether a field shows now is isShown(field, values).
 */
export function fieldsOf(kind: JobKind): Field[] {
  const required = kind.input_schema.required ?? [];
  const fields: Field[] = [];
  for (const [name, p] of Object.entries(kind.input_schema.properties)) {
    if (kind.file && name === kind.file.field) continue;
    const field = fieldOf(name, p, required.includes(name));
    if (field) fields.push(field);
  }
  return fields;
}

/** The form's starting values: each field's default. */
export function defaultValues(kind: JobKind): FormValues {
  return Object.fromEntries(fieldsOf(kind).map((f) => [f.name, f.default]));
}

/** The value a field's form value stands for, as it is sent (numbers, the option's value). */
function valueOf(field: Field, raw: FieldValue | undefined): unknown {
  const v = raw ?? field.default;
  switch (field.widget) {
    case 'range': {
      const n = Number(v);
      return field.integer ? Math.round(n) : n;
    }
    case 'select':
      return field.options.find((o) => String(o.value) === String(v))?.value ?? v;
    case 'color':
      return String(v).toLowerCase();
    case 'checkbox':
      return Boolean(v);
    case 'text':
    case 'textarea':
      return String(v).trim();
    case 'json':
      return String(v);
  }
}

/** Whether a field shows (and is sent) with these values: its x-when holds, or it has none. */
export function isShown(field: Field, values: FormValues, fields: readonly Field[]): boolean {
  if (!field.when) return true;
  const other = fields.find((f) => f.name === field.when!.field);
  const current = other ? valueOf(other, values[other.name]) : values[field.when.field];
  if (field.when.in) return field.when.in.includes(current);
  if (field.when.not_in) return !field.when.not_in.includes(current);
  return true;
}

/** The fields that show with these values, in order. */
export function shownFields(kind: JobKind, values: FormValues): Field[] {
  const fields = fieldsOf(kind);
  return fields.filter((f) => isShown(f, values, fields));
}

/**
 * The shown required fields left blank (a text trimmed to nothing, an empty json field): the form
 * offers no Start while there are any, and says which.
 */
export function missingFields(kind: JobKind, values: FormValues): Field[] {
  return shownFields(kind, values).filter((f) =>
    f.required && (f.widget === 'text' || f.widget === 'textarea' || f.widget === 'json') &&
    String(valueOf(f, values[f.name])).trim() === ''
  );
}

/**
 * What is wrong with the shown fields' values, by field name (empty: nothing): a json field that
 * does not parse, or is not an object where the schema wants one. The form shows these inline
 * and offers no Start while there are any. (Blank required fields: missingFields.)
 */
export function fieldProblems(kind: JobKind, values: FormValues): Record<string, string> {
  const problems: Record<string, string> = {};
  for (const f of shownFields(kind, values)) {
    if (f.widget !== 'json') continue;
    const text = String(valueOf(f, values[f.name])).trim();
    if (text === '') continue;
    try {
      const parsed = JSON.parse(text);
      const want = kind.input_schema.properties[f.name]?.type;
      if (
        want === 'object' && (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed))
      ) {
        problems[f.name] = `${f.label} must be a JSON object ({ … }).`;
      }
    } catch (err) {
      problems[f.name] = `${f.label} is not valid JSON: ${(err as Error).message}`;
    }
  }
  return problems;
}

/**
 * The request body for the kind's creator: the upload's path in the file field (kinds with a
 * file), then every shown field's value (x-when holds), as the schema types it: ranges as
 * numbers (integers rounded), selects as their option's value, text trimmed, json parsed. Hidden
 * fields are never sent, nor are fields whose x-when does not hold, nor an optional text or json
 * field left blank, nor an optional select left at its "Default" option: the server's defaults
 * apply to them. Throws on a json field that does not
 * parse (fieldProblems says so first).
 */
export function requestBody(
  kind: JobKind,
  values: FormValues,
  inputPath: string | null,
): Record<string, unknown> {
  const body: Record<string, unknown> = {};
  if (kind.file) {
    if (!inputPath) throw new Error(`${kind.label} needs an input file`);
    body[kind.file.field] = inputPath;
  }
  for (const f of shownFields(kind, values)) {
    const v = valueOf(f, values[f.name]);
    if (f.widget === 'json') {
      const text = String(v).trim();
      if (text === '' && !f.required) continue;
      body[f.name] = JSON.parse(text);
    } else if (
      (f.widget === 'text' || f.widget === 'textarea' || f.widget === 'select') && v === '' &&
      !f.required
    ) {
      continue;
    } else {
      body[f.name] = v;
    }
  }
  return body;
}

/** A range's value as its label and aria-valuetext say it (x-format). */
export function formatValue(format: string | undefined, value: number): string {
  const signed = (digits: number) => `${value > 0 ? '+' : ''}${value.toFixed(digits)}`;
  switch (format) {
    case 'signed':
      return signed(2);
    case 'stops':
      return `${signed(1)} stops`;
    case 'percent':
      return `${Math.round(value * 100)}%`;
    case 'lufs':
      return `${value} LUFS`;
    case 'hz':
      return `${value} Hz`;
    case 'px':
      return `${value} px`;
    case 'fixed2':
      return value.toFixed(2);
    default:
      return String(value);
  }
}

// Files ----------------------------------------------------------------------------------------

/** Extensions browsers leave without a media type (or with an odd one), mapped to the bucket's. */
const BY_EXTENSION: Readonly<Record<string, string>> = {
  png: 'image/png',
  jpg: 'image/jpeg',
  jpeg: 'image/jpeg',
  webp: 'image/webp',
  wav: 'audio/wav',
  wave: 'audio/wav',
  mp3: 'audio/mpeg',
  m4a: 'audio/mp4',
  flac: 'audio/flac',
  mp4: 'video/mp4',
  mov: 'video/quicktime',
  webm: 'video/webm',
};

/** The types of the extension map, and the other names browsers give WAV files. */
const KNOWN_TYPES: readonly string[] = [
  ...new Set(Object.values(BY_EXTENSION)),
  'audio/x-wav',
  'audio/wave',
  'audio/vnd.wave',
];

/**
 * The media type to store a file under: the browser's when it is one of `accepted` (a kind's
 * content_types; by default every type this page knows), else the one its extension names,
 * else the browser's as given (and the checks refuse it).
 */
export function mediaTypeOf(
  file: { name: string; type: string },
  accepted: readonly string[] = KNOWN_TYPES,
): string {
  const given = file.type.split(';')[0].trim().toLowerCase();
  if (accepted.includes(given)) return given;
  const ext = file.name.toLowerCase().split('.').pop() ?? '';
  return BY_EXTENSION[ext] ?? given;
}

/** A provider's name as people know it. */
function providerName(provider: string | null): string {
  if (provider === 'replicate') return 'Replicate';
  if (provider === 'openai') return 'OpenAI';
  return provider ?? 'a provider';
}

/**
 * Why the kind cannot take this file, before it is uploaded (the server refuses the same files
 * when the job is created), or null: an empty file; one larger than file.max_bytes; a media type
 * the kind does not take at all; a type only a provider processes, when that provider is not
 * configured.
 */
export function fileProblem(
  kind: JobKind,
  file: { name: string; type: string; size: number },
): string | null {
  const rule = kind.file;
  if (!rule) return null;
  if (file.size === 0) return `${file.name} is empty.`;
  if (file.size > rule.max_bytes) {
    return `${file.name} is ${formatBytes(file.size)}; the limit is ${formatBytes(rule.max_bytes)}.`;
  }
  const type = mediaTypeOf(file, rule.content_types);
  if (!rule.content_types.includes(type)) {
    return `${kind.label} can't take ${type || 'this kind of file'}: use ${rule.in_function.summary}.`;
  }
  if (!rule.in_function.content_types.includes(type) && !rule.provider_configured) {
    return `${kind.label} of ${type} needs ${providerName(rule.provider)}, which this project has not configured: use ${rule.in_function.summary}.`;
  }
  return null;
}

/** What the browser measured of a file before uploading it (lib/probe.ts). */
export interface MediaFacts {
  width?: number;
  height?: number;
  durationSeconds?: number;
  sampleRate?: number;
  channels?: number;
}

/**
 * Why the kind cannot take a file with these measurements, or null: an image above the kind's
 * in-function megapixels, or audio above its seconds or samples, when the provider that takes
 * larger ones is not configured (the server refuses the same files: image_too_large,
 * audio_too_long). A file of a type only a provider takes is fileProblem's business.
 */
export function mediaProblem(
  kind: JobKind,
  file: { name: string; type: string },
  facts: MediaFacts,
): string | null {
  const rule = kind.file;
  if (!rule || rule.provider_configured) return null;
  const type = mediaTypeOf(file, rule.content_types);
  if (!rule.in_function.content_types.includes(type)) return null;
  const limit = rule.in_function;
  const needs = `larger files need ${providerName(rule.provider)}, which this project has not configured`;
  if (limit.max_megapixels !== undefined && facts.width && facts.height) {
    const mp = (facts.width * facts.height) / 1e6;
    if (mp > limit.max_megapixels) {
      return `${file.name} is ${facts.width}×${facts.height} (${mp.toFixed(1)} megapixels); ${kind.label} takes up to ${limit.max_megapixels} megapixels here: ${needs}.`;
    }
  }
  if (facts.durationSeconds !== undefined && Number.isFinite(facts.durationSeconds)) {
    const seconds = facts.durationSeconds;
    if (limit.max_seconds !== undefined && seconds > limit.max_seconds) {
      return `${file.name} is ${formatSeconds(seconds)} long; ${kind.label} takes up to ${formatSeconds(limit.max_seconds)} here: ${needs}.`;
    }
    if (
      limit.max_samples !== undefined && facts.sampleRate && facts.channels &&
      seconds * facts.sampleRate * facts.channels > limit.max_samples
    ) {
      const most = limit.max_samples / (facts.sampleRate * facts.channels);
      return `${file.name} is ${formatSeconds(seconds)} of ${facts.channels}-channel ${facts.sampleRate / 1000} kHz audio; at that rate ${kind.label} takes up to ${formatSeconds(most)} here: ${needs}.`;
    }
  }
  return null;
}

/** "42 s", "1 min 5 s". */
export function formatSeconds(s: number): string {
  if (s < 60) return `${Number.isInteger(s) ? s : s.toFixed(1)} s`;
  const m = Math.floor(s / 60);
  const rest = Math.round(s - m * 60);
  return rest ? `${m} min ${rest} s` : `${m} min`;
}

/**
 * The facts of a WAV file from its first bytes (RIFF/WAVE, its fmt and data chunks): sample
 * rate, channels and duration, or null when the bytes are not a WAV header this can read.
 */
export function wavFacts(bytes: Uint8Array, fileSize: number): MediaFacts | null {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const tag = (at: number) => String.fromCharCode(...bytes.subarray(at, at + 4));
  if (bytes.length < 12 || tag(0) !== 'RIFF' || tag(8) !== 'WAVE') return null;
  let at = 12;
  let rate = 0;
  let channels = 0;
  let blockAlign = 0;
  while (at + 8 <= bytes.length) {
    const id = tag(at);
    const size = view.getUint32(at + 4, true);
    if (id === 'fmt ' && at + 8 + 16 <= bytes.length) {
      channels = view.getUint16(at + 10, true);
      rate = view.getUint32(at + 12, true);
      blockAlign = view.getUint16(at + 20, true);
    } else if (id === 'data') {
      if (!rate || !channels || !blockAlign) return null;
      const dataBytes = Math.min(size, Math.max(0, fileSize - (at + 8)));
      return { sampleRate: rate, channels, durationSeconds: dataBytes / blockAlign / rate };
    }
    at += 8 + size + (size % 2);
  }
  return null;
}

/** The `accept` attribute of the kind's file input: its media types and their extensions. */
export function acceptOf(kind: JobKind): string {
  if (!kind.file) return '';
  const types = kind.file.content_types;
  const exts = Object.entries(BY_EXTENSION)
    .filter(([, t]) => types.includes(t))
    .map(([e]) => `.${e}`);
  return [...types, ...exts].join(',');
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(n < 10 * 1024 ? 1 : 0)} KB`;
  const mb = n / (1024 * 1024);
  return `${Number.isInteger(mb) ? mb : mb.toFixed(1)} MB`;
}
