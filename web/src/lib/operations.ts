// The operations a user can start and their settings, mirroring the zod schemas in
// supabase/functions/_shared/job-kinds.ts (names, ranges, defaults, accepted files).
// web/tests/operations.contract.test.ts checks this file against those schemas with Deno, so the
// two cannot drift apart. Plain data and pure functions only: no imports.

export type JobType = 'color-grade' | 'audio-clean' | 'roto' | 'image';

export type FieldValue = string | number | boolean;

interface FieldBase {
  name: string;
  label: string;
  hint?: string;
  /** Shown only when this returns true for the current values (default: always). */
  when?: (values: Record<string, FieldValue>) => boolean;
}
export interface RangeField extends FieldBase {
  kind: 'range';
  min: number;
  max: number;
  step: number;
  default: number;
  /** Formats the value for the label and aria-valuetext. */
  format?: (v: number) => string;
}
export interface SelectField extends FieldBase {
  kind: 'select';
  options: readonly { value: string; label: string }[];
  default: string;
  /** The value is sent as a number (e.g. image count). */
  numeric?: boolean;
}
export interface ColorField extends FieldBase {
  kind: 'color';
  default: string;
}
export interface CheckboxField extends FieldBase {
  kind: 'checkbox';
  default: boolean;
}
export interface TextField extends FieldBase {
  kind: 'text';
  default: string;
  maxLength: number;
  required: boolean;
  placeholder?: string;
}
export type Field = RangeField | SelectField | ColorField | CheckboxField | TextField;

export interface FileRule {
  /** Media types the job type accepts at all (its kind's contentTypes; the inputs bucket's list). */
  contentTypes: readonly string[];
  /** What is processed in the function itself; the rest needs a configured provider. */
  inFunction: string;
  /** Largest input file (the inputs bucket's cap). */
  maxBytes: number;
}

export interface Operation {
  type: JobType;
  label: string;
  summary: string;
  file: FileRule | null;
  fields: readonly Field[];
}

const MiB = 1024 * 1024;
/** The inputs bucket's file size limit (supabase/migrations/*_storage_buckets.sql). */
export const INPUT_MAX_BYTES = 50 * MiB;

export const IMAGE_TYPES = ['image/png', 'image/jpeg'] as const;
const OTHER_IMAGE_TYPES = ['image/webp'];
const WAV_TYPES = ['audio/wav', 'audio/x-wav', 'audio/wave', 'audio/vnd.wave'];
const OTHER_AUDIO_TYPES = ['audio/mpeg', 'audio/mp4', 'audio/flac'];
const VIDEO_TYPES = ['video/mp4', 'video/quicktime', 'video/webm'];

/** Every media type the inputs bucket accepts. */
export const BUCKET_TYPES: readonly string[] = [
  ...IMAGE_TYPES,
  ...OTHER_IMAGE_TYPES,
  ...WAV_TYPES,
  ...OTHER_AUDIO_TYPES,
  ...VIDEO_TYPES,
];

const signed = (v: number, digits = 2) => `${v > 0 ? '+' : ''}${v.toFixed(digits)}`;
const unit = (name: string, label: string, hint?: string): RangeField => ({
  kind: 'range',
  name,
  label,
  hint,
  min: -1,
  max: 1,
  step: 0.05,
  default: 0,
  format: (v) => signed(v),
});

export const OPERATIONS: readonly Operation[] = [
  {
    type: 'color-grade',
    label: 'Colour grade',
    summary: 'A look preset plus exposure, contrast, saturation and white balance.',
    file: {
      contentTypes: [...IMAGE_TYPES, ...OTHER_IMAGE_TYPES, ...VIDEO_TYPES],
      inFunction: 'PNG or JPEG up to 3 megapixels',
      maxBytes: INPUT_MAX_BYTES,
    },
    fields: [
      {
        kind: 'select',
        name: 'preset',
        label: 'Preset',
        default: 'none',
        options: [
          { value: 'none', label: 'None' },
          { value: 'warm', label: 'Warm' },
          { value: 'cool', label: 'Cool' },
          { value: 'noir', label: 'Noir (black & white)' },
          { value: 'teal-orange', label: 'Teal & orange' },
        ],
      },
      {
        kind: 'range',
        name: 'exposure',
        label: 'Exposure',
        min: -3,
        max: 3,
        step: 0.1,
        default: 0,
        format: (v) => `${signed(v, 1)} stops`,
      },
      unit('contrast', 'Contrast'),
      unit('saturation', 'Saturation'),
      unit('temperature', 'Temperature', 'cooler ← → warmer'),
      unit('tint', 'Tint', 'green ← → magenta'),
    ],
  },
  {
    type: 'audio-clean',
    label: 'Clean up audio',
    summary: 'DC removal, high-pass, noise reduction and loudness normalisation.',
    file: {
      contentTypes: [...WAV_TYPES, ...OTHER_AUDIO_TYPES],
      inFunction: 'WAV up to 30 s of 48 kHz stereo',
      maxBytes: INPUT_MAX_BYTES,
    },
    fields: [
      {
        kind: 'range',
        name: 'target_lufs',
        label: 'Target loudness',
        min: -30,
        max: -10,
        step: 1,
        default: -16,
        format: (v) => `${v} LUFS`,
        hint: '-16 for podcasts, -23 for broadcast',
      },
      {
        kind: 'range',
        name: 'noise_reduction',
        label: 'Noise reduction',
        min: 0,
        max: 1,
        step: 0.05,
        default: 0.5,
        format: (v) => `${Math.round(v * 100)}%`,
      },
      {
        kind: 'range',
        name: 'highpass_hz',
        label: 'High-pass filter',
        min: 20,
        max: 300,
        step: 5,
        default: 80,
        format: (v) => `${v} Hz`,
      },
    ],
  },
  {
    type: 'roto',
    label: 'Cut out (roto)',
    summary: 'An alpha matte keyed on a colour (green screen) or on brightness.',
    file: {
      contentTypes: [...IMAGE_TYPES, ...OTHER_IMAGE_TYPES, ...VIDEO_TYPES],
      inFunction: 'PNG or JPEG up to 2 megapixels',
      maxBytes: INPUT_MAX_BYTES,
    },
    fields: [
      {
        kind: 'select',
        name: 'mode',
        label: 'Key on',
        default: 'color',
        options: [
          { value: 'color', label: 'A colour (green/blue screen)' },
          { value: 'luma', label: 'Brightness (dark background)' },
          { value: 'ai', label: 'AI segmentation (needs Replicate)' },
        ],
      },
      {
        kind: 'color',
        name: 'key_color',
        label: 'Key colour',
        default: '#00b140',
        when: (v) => v.mode === 'color',
      },
      {
        kind: 'range',
        name: 'tolerance',
        label: 'Tolerance',
        min: 0,
        max: 1,
        step: 0.01,
        default: 0.3,
        format: (v) => v.toFixed(2),
        when: (v) => v.mode !== 'ai',
      },
      {
        kind: 'range',
        name: 'feather',
        label: 'Feather',
        min: 0,
        max: 50,
        step: 1,
        default: 2,
        format: (v) => `${v} px`,
        when: (v) => v.mode !== 'ai',
      },
      { kind: 'checkbox', name: 'invert', label: 'Invert the matte', default: false },
    ],
  },
  {
    type: 'image',
    label: 'Generate an image',
    summary: 'A picture from a text prompt (OpenAI Images). No upload needed.',
    file: null,
    fields: [
      {
        kind: 'text',
        name: 'prompt',
        label: 'Prompt',
        default: '',
        maxLength: 4000,
        required: true,
        placeholder: 'A lighthouse at dusk, watercolour',
      },
      {
        kind: 'select',
        name: 'size',
        label: 'Size',
        default: '1024x1024',
        options: [
          { value: '1024x1024', label: 'Square (1024×1024)' },
          { value: '1024x1536', label: 'Portrait (1024×1536)' },
          { value: '1536x1024', label: 'Landscape (1536×1024)' },
          { value: 'auto', label: 'Automatic' },
        ],
      },
      {
        kind: 'select',
        name: 'quality',
        label: 'Quality',
        default: 'auto',
        options: [
          { value: 'auto', label: 'Automatic' },
          { value: 'low', label: 'Low (fastest)' },
          { value: 'medium', label: 'Medium' },
          { value: 'high', label: 'High' },
        ],
      },
      {
        kind: 'select',
        name: 'n',
        label: 'How many',
        default: '1',
        numeric: true,
        options: [1, 2, 3, 4].map((n) => ({ value: String(n), label: String(n) })),
      },
    ],
  },
];

export function operationOf(type: string): Operation | undefined {
  return OPERATIONS.find((op) => op.type === type);
}

export function defaultValues(op: Operation): Record<string, FieldValue> {
  return Object.fromEntries(op.fields.map((f) => [f.name, f.default]));
}

/**
 * The request body for the operation's creator: visible fields only (hidden ones keep the
 * server's defaults), selects sent as numbers where numeric, plus input_path for file kinds.
 */
export function requestBody(
  op: Operation,
  values: Record<string, FieldValue>,
  inputPath: string | null,
): Record<string, FieldValue> {
  const body: Record<string, FieldValue> = {};
  if (op.file) {
    if (!inputPath) throw new Error(`${op.label} needs an input file`);
    body.input_path = inputPath;
  }
  for (const f of op.fields) {
    if (f.when && !f.when(values)) continue;
    const v = values[f.name] ?? f.default;
    if (f.kind === 'select' && f.numeric) body[f.name] = Number(v);
    else if (f.kind === 'text') body[f.name] = String(v).trim();
    else body[f.name] = v;
  }
  return body;
}

/** Extensions browsers leave without a media type (or with an odd one), mapped to the bucket's. */
const BY_EXTENSION: Record<string, string> = {
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

/** The media type to store a file under: the browser's when the bucket accepts it, else by name. */
export function mediaTypeOf(file: { name: string; type: string }): string {
  const given = file.type.split(';')[0].trim().toLowerCase();
  if (BUCKET_TYPES.includes(given)) return given;
  const ext = file.name.toLowerCase().split('.').pop() ?? '';
  return BY_EXTENSION[ext] ?? given;
}

/** Why the operation cannot take this file (same limits as the server), or null. */
export function fileProblem(
  op: Operation,
  file: { name: string; type: string; size: number },
): string | null {
  if (!op.file) return null;
  if (file.size === 0) return `${file.name} is empty.`;
  if (file.size > op.file.maxBytes) {
    return `${file.name} is ${formatBytes(file.size)}; the limit is ${formatBytes(op.file.maxBytes)}.`;
  }
  const type = mediaTypeOf(file);
  if (!op.file.contentTypes.includes(type)) {
    return `${op.label} can't take ${type || 'this kind of file'}: use ${op.file.inFunction}.`;
  }
  return null;
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(n < 10 * 1024 ? 1 : 0)} KB`;
  const mb = n / (1024 * 1024);
  return `${Number.isInteger(mb) ? mb : mb.toFixed(1)} MB`;
}

/** The `accept` attribute of a file input for the operation. */
export function acceptOf(op: Operation): string {
  if (!op.file) return '';
  const exts = Object.entries(BY_EXTENSION)
    .filter(([, t]) => op.file!.contentTypes.includes(t))
    .map(([e]) => `.${e}`);
  return [...op.file.contentTypes, ...exts].join(',');
}
