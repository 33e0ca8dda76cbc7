// Job kinds: the one place that says, for each job type, what input it takes (zod schema), what
// input files it accepts and how large, which provider does the work, and which handler runs it.
// Job creators validate against it; job-worker dispatches through it.
//
// Where the work happens:
//   in-function  the handler processes the file inside job-worker (small images, WAV audio)
//   replicate    a Replicate model does it and calls back (job-callback); the job waits meanwhile
//   openai       the OpenAI Images API, called from the handler
// A provider that is not configured is refused when the job is created, never discovered later.
//
// KINDS is the registry. A creator (createJobHandler in create-job.ts) and job-worker look kinds up
// with kindOf(), which hides the test/bench-only `noop` kind unless SPOOL_ENABLE_NOOP=true, and
// both decide where the work happens with routeJob(): the creator on the file's head to refuse
// early, the worker on the whole file to pick in-function or Replicate. route() is deterministic
// in (file, input, providers), so both reach the same answer while the configuration is the same.
//
// Image and WAV facts come from the media module's own header parsers (job-worker/media), loaded
// lazily on the first file that needs them: one parser per format in the project, and a creator
// that never sees an image never loads image code.
import { z } from './deps.ts';
import type { JobRow } from './clients.ts';
import type { EnvReader } from './env.ts';

/** The job states, one vocabulary with the SQL enum public.job_status and the UI. */
export const JOB_STATES = ['pending', 'running', 'waiting', 'done', 'failed', 'cancelled'] as const;
export type JobState = (typeof JOB_STATES)[number];
export const TERMINAL_STATES: readonly JobState[] = ['done', 'failed', 'cancelled'];

/**
 * A path in the caller's own folder of the private `inputs` bucket: "<user id>/<name>", with
 * optional subfolders. Characters are limited to ones Storage accepts in keys and that mean
 * nothing special in a URL path (no ?, # or %); empty, `.` and `..` segments are refused (no
 * traversal), and so are leading or trailing spaces in a segment. That the folder
 * is the caller's own is checked by the creator (403 forbidden_input), not here.
 */
export const InputPath = z.string().min(3).max(1024)
  .regex(
    /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\/[\w!$&'()*+,;=:@. \/-]+$/i,
    'must be "<your user id>/<file name>" in the inputs bucket (letters, digits, spaces and _-.!$&\'()*+,;=:@)',
  )
  .refine(
    (p) => !p.split('/').some((s) => s.trim() === '' || s === '..' || s === '.' || s !== s.trim()),
    'must not contain empty, blank-padded, . or .. segments',
  );

const unit = (what: string) => z.number().min(-1).max(1).default(0).describe(what);
const HexColor = z.string().regex(/^#[0-9a-f]{6}$/i, 'must be a colour like #00b140');

export const ColorGradeInput = z.object({
  input_path: InputPath,
  preset: z.enum(['none', 'warm', 'cool', 'noir', 'teal-orange']).default('none'),
  exposure: z.number().min(-3).max(3).default(0).describe('stops'),
  contrast: unit('-1..1'),
  saturation: unit('-1..1'),
  temperature: unit('-1 cool .. 1 warm'),
  tint: unit('-1 green .. 1 magenta'),
  output_format: z.enum(['png', 'jpeg']).optional().describe('defaults to the input format'),
}).strict();

export const AudioCleanInput = z.object({
  input_path: InputPath,
  target_lufs: z.number().min(-30).max(-10).default(-16),
  noise_reduction: z.number().min(0).max(1).default(0.5),
  highpass_hz: z.number().min(20).max(300).default(80),
}).strict();

export const RotoInput = z.object({
  input_path: InputPath,
  mode: z.enum(['color', 'luma', 'ai']).default('color'),
  key_color: HexColor.default('#00b140'),
  tolerance: z.number().min(0).max(1).default(0.3),
  feather: z.number().min(0).max(50).default(2),
  invert: z.boolean().default(false),
}).strict();

export const ImageInput = z.object({
  prompt: z.string().trim().min(1).max(4000),
  size: z.enum(['1024x1024', '1024x1536', '1536x1024', 'auto']).default('1024x1024'),
  quality: z.enum(['low', 'medium', 'high', 'auto']).default('auto'),
  n: z.number().int().min(1).max(4).default(1),
}).strict();

/** Test and benchmark kind: does nothing (optionally for a while, or fails on purpose). */
export const NoopInput = z.object({
  sleep_ms: z.number().int().min(0).max(60_000).default(0),
  fail: z.enum(['never', 'retryable', 'permanent']).default('never'),
}).strict();

export type ColorGradeInput = z.infer<typeof ColorGradeInput>;
export type AudioCleanInput = z.infer<typeof AudioCleanInput>;
export type RotoInput = z.infer<typeof RotoInput>;
export type ImageInput = z.infer<typeof ImageInput>;
export type NoopInput = z.infer<typeof NoopInput>;

export type Provider = 'in-function' | 'replicate' | 'openai';

/** What a creator knows about the input file before enqueueing. */
export interface InputFile {
  path: string;
  size: number;
  /** The media type Storage holds for the object, lowercased, without parameters. */
  contentType: string;
  /**
   * The file's first bytes (INPUT_HEAD_BYTES, or the whole file when smaller), enough for PNG,
   * JPEG and WAV headers. The worker may pass the whole file.
   */
  head?: Uint8Array;
}

/** How many leading bytes of an input file a creator reads to route it. */
export const INPUT_HEAD_BYTES = 256 * 1024;

/** Provider configuration read from the environment (readProviderConfig). */
export interface ProviderConfig {
  /** OPENAI_API_KEY is set. */
  openai: boolean;
  /** Replicate is configured for this job type (token, webhook secret and model version set). */
  replicate: (type: string) => boolean;
  /** The test/bench-only `noop` kind is enabled (SPOOL_ENABLE_NOOP=true). Never in production. */
  noop: boolean;
  /** The credentials, for the code that calls the providers (job-worker, job-callback). */
  openaiApiKey: string | null;
  replicateApiToken: string | null;
  replicateWebhookSecret: string | null;
  /** The Replicate model version for a job type, or null. */
  replicateVersion: (type: string) => string | null;
}

/** The per-type Replicate model version variables. */
export const REPLICATE_VERSION_VARS: Readonly<Record<string, string>> = {
  'roto': 'SPOOL_REPLICATE_ROTO_VERSION',
  'color-grade': 'SPOOL_REPLICATE_COLOR_GRADE_VERSION',
  'audio-clean': 'SPOOL_REPLICATE_AUDIO_CLEAN_VERSION',
};

/**
 * Reads the providers' configuration. A job type is Replicate-configured only when
 * REPLICATE_API_TOKEN, REPLICATE_WEBHOOK_SECRET and its SPOOL_REPLICATE_<TYPE>_VERSION are all
 * set; a partial setup simply leaves it unconfigured (and jobs that need it are refused).
 */
export function readProviderConfig(reader: EnvReader): ProviderConfig {
  const openaiApiKey = reader.optional('OPENAI_API_KEY') || null;
  const replicateApiToken = reader.optional('REPLICATE_API_TOKEN') || null;
  const replicateWebhookSecret = reader.optional('REPLICATE_WEBHOOK_SECRET') || null;
  const versions: Record<string, string> = {};
  for (const [type, name] of Object.entries(REPLICATE_VERSION_VARS)) {
    const version = reader.optional(name);
    if (version) versions[type] = version;
  }
  const replicateVersion = (type: string) =>
    replicateApiToken && replicateWebhookSecret && Object.hasOwn(versions, type)
      ? versions[type]
      : null;
  return {
    openai: openaiApiKey !== null,
    replicate: (type) => replicateVersion(type) !== null,
    noop: reader.flag('SPOOL_ENABLE_NOOP', false),
    openaiApiKey,
    replicateApiToken,
    replicateWebhookSecret,
    replicateVersion,
  };
}

/** A refusal of the input file, mapped by creators to a 4xx/503 response. */
export interface Refusal {
  status: 413 | 415 | 422 | 503;
  code: string;
  message: string;
  details?: Record<string, unknown>;
}

export interface Route {
  provider: Provider;
  /**
   * Estimated CPU of the job's in-function work, ms (jobs.cpu_ms; 0 or absent: negligible, as
   * for work a provider does). job-worker claims a job only while this fits the CPU its isolate
   * has left (job-worker/cpu-budget.ts).
   */
  cpuMs?: number;
}

/**
 * CPU of one media job at its kind's size limits, cold (README "Limits": measured for the
 * largest colour grade, matte and audio clean the function accepts).
 */
export const CPU_AT_LIMITS_MS = 1200;
/** What even a tiny media job costs: decoding set-up, buffers, a cold code path. */
const CPU_FLOOR_MS = 40;

/**
 * The CPU estimate of a media job whose input is `fraction` of its kind's size limit (pixels, or
 * audio samples): the work of decode, process and encode grows with the input, so linearly from
 * CPU_FLOOR_MS to CPU_AT_LIMITS_MS. Unknown size: the limit.
 */
export function cpuEstimateMs(fraction: number): number {
  const f = Number.isFinite(fraction) ? Math.min(1, Math.max(0, fraction)) : 1;
  return Math.ceil(CPU_FLOOR_MS + (CPU_AT_LIMITS_MS - CPU_FLOOR_MS) * f);
}

export function isRefusal(r: Route | Refusal): r is Refusal {
  return 'code' in r;
}

/**
 * One file a job wrote. A finished job's `output` is a JobOutput: `files` lists what it wrote to
 * the private `outputs` bucket, and the jobs API signs a download URL for each. Handlers may add
 * media facts to a file and other top-level keys (e.g. the provider's own metadata).
 */
export interface OutputFile {
  /** Object path inside the `outputs` bucket, without the bucket: "<user id>/<job id>/<name>". */
  path: string;
  content_type: string;
  /** Bytes. */
  size: number;
  width?: number;
  height?: number;
  duration_seconds?: number;
  [key: string]: unknown;
}
export interface JobOutput {
  files: OutputFile[];
  [key: string]: unknown;
}

/** Context the worker gives a handler for one job. */
export interface HandlerContext<I> {
  job: JobRow;
  input: I;
  /** Where outputs go: "<user id>/<job id>/" in the outputs bucket. */
  outputPrefix: string;
  readInput(path: string): Promise<{ bytes: Uint8Array; contentType: string }>;
  /** Writes outputs/<outputPrefix><name>; returns the object path (without the bucket). */
  writeOutput(name: string, bytes: Uint8Array, contentType: string): Promise<string>;
  /**
   * A signed download URL for an input file (default 2 hours), for a provider that fetches the
   * file itself (Replicate).
   */
  inputUrl(path: string, expiresInSeconds?: number): Promise<string>;
  /** Reports progress (0..100) and the current step; also extends the lease. */
  progress(percent: number, step?: string): Promise<void>;
  /** Aborted when the job is cancelled, its lease is lost, or the invocation runs out of time. */
  signal: AbortSignal;
}

/**
 * A handler either finishes with an output or hands the job to a provider that calls back. The
 * output of a job that wrote files is a JobOutput (`files` plus anything else): the jobs API signs
 * a URL for each file it lists.
 */
export type HandlerResult =
  | { output: JobOutput | Record<string, unknown> }
  | { await: { provider: 'replicate'; externalId: string; timeoutSeconds?: number } };

export type Handler<I> = (ctx: HandlerContext<I>) => Promise<HandlerResult>;

/** Thrown by handlers: `retryable` decides between retry-with-backoff and failing for good. */
export class JobError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly retryable: boolean,
    readonly details?: unknown,
  ) {
    super(message);
    this.name = 'JobError';
  }
}

export interface JobKind<I> {
  type: string;
  schema: z.ZodType<I>;
  /** Input file rules; absent for kinds without an input file (image, noop). */
  file?: {
    /** Largest input file accepted at all (413 file_too_large above it). */
    maxBytes: number;
    /** Media types accepted for some route (documentation and a first check). */
    contentTypes: readonly string[];
    /** Where the input file is, in the `inputs` bucket. */
    path(input: I): string;
    /** Decides where the work happens, or refuses the file. */
    route(file: InputFile, input: I, providers: ProviderConfig): Promise<Route | Refusal>;
  };
  /** Kinds without a file route here. */
  provider?: Provider;
  /** Test/bench-only: no creator, and hidden by kindOf() unless SPOOL_ENABLE_NOOP=true. */
  testOnly?: boolean;
  maxAttempts: number;
  handler: () => Promise<Handler<I>>;
}

// Media types ------------------------------------------------------------------------------------

/** Decoded in the function (PNG and JPEG). */
export const IMAGE_TYPES = ['image/png', 'image/jpeg'] as const;
/** Images only a provider decodes. */
export const OTHER_IMAGE_TYPES = ['image/webp'] as const;
export const WAV_TYPES = ['audio/wav', 'audio/x-wav', 'audio/wave', 'audio/vnd.wave'] as const;
/** Compressed audio (mp3, m4a, flac): only a provider decodes it. */
export const OTHER_AUDIO_TYPES = ['audio/mpeg', 'audio/mp4', 'audio/flac'] as const;
export const VIDEO_TYPES = ['video/mp4', 'video/quicktime', 'video/webm'] as const;

const MiB = 1024 * 1024;
/** The inputs bucket's own cap (storage_buckets migration). */
const INPUT_MAX_BYTES = 50 * MiB;

const among = (list: readonly string[], type: string) => list.includes(type);

// Header facts from the media module, loaded on first use --------------------------------------

/** What routing needs to know of an image: the media module's imageInfo and a kind's limit. */
interface ImageProbe {
  info(bytes: Uint8Array, contentType?: string): { format: string; width: number; height: number };
  /** Why a file of `size` bytes with this head is cut short, when the head shows it; else null. */
  truncated(head: Uint8Array, size: number): string | null;
  maxMegapixels: number;
}
interface AudioProbe {
  info(bytes: Uint8Array): {
    durationSeconds: number;
    sampleRate: number;
    channels: number;
    /** The file length the header promises (null for a streamed, unsized data chunk). */
    dataEnd: number | null;
  };
  /** Throws a MediaError ('too_large' or 'unsupported_format') past the in-function limits. */
  check(info: { durationSeconds: number; sampleRate: number; channels: number }): void;
  maxSeconds: number;
  /** frames x channels at most (AUDIO_LIMITS.maxSamples). */
  maxSamples: number;
}

/** In-function image limits per kind: colour grading and matte pulling have their own. */
const imageLimits: Record<string, () => Promise<number>> = {
  'color-grade': () =>
    import('../job-worker/media/grade.ts').then((m) => m.GRADE_LIMITS.maxMegapixels),
  'roto': () => import('../job-worker/media/matte.ts').then((m) => m.MATTE_LIMITS.maxMegapixels),
};

async function loadImageProbe(type: string): Promise<ImageProbe> {
  const [image, maxMegapixels] = await Promise.all([
    import('../job-worker/media/image.ts'),
    imageLimits[type](),
  ]);
  return { info: image.imageInfo, truncated: image.truncatedImage, maxMegapixels };
}

async function loadAudioProbe(): Promise<AudioProbe> {
  const [wav, audio] = await Promise.all([
    import('../job-worker/media/wav.ts'),
    import('../job-worker/media/audio.ts'),
  ]);
  return {
    info: wav.wavInfo,
    check: audio.checkAudioLimits,
    maxSeconds: audio.AUDIO_LIMITS.maxSeconds,
    maxSamples: audio.AUDIO_LIMITS.maxSamples,
  };
}

/** The media module's error code (MediaError.code), if `err` is one. */
function mediaCode(err: unknown): string | null {
  const code = (err as { name?: string; code?: unknown } | null)?.code;
  return (err as Error | null)?.name === 'MediaError' && typeof code === 'string' ? code : null;
}

// Refusals -----------------------------------------------------------------------------------------

function unsupported(type: string, contentType: string, accepted: readonly string[]): Refusal {
  return {
    status: 422,
    code: 'unsupported_format',
    message: `${type} cannot process ${contentType || 'files of unknown type'}`,
    details: { content_type: contentType, accepted },
  };
}

function unreadable(what: string, why: unknown): Refusal {
  return {
    status: 422,
    code: 'unreadable_file',
    message: `the input file is not a readable ${what}`,
    details: { reason: why instanceof Error ? why.message : String(why) },
  };
}

/**
 * A file whose header promises more bytes than it has (an interrupted upload): no route can
 * process it. Checked at create time from the head, and again by the worker on the whole file.
 */
function truncatedFile(file: InputFile, reason: string): Refusal {
  return {
    status: 422,
    code: 'truncated_file',
    message: `the input file is cut short (${reason}): upload it again`,
    details: { size: file.size, reason },
  };
}

function providerNotConfigured(provider: 'replicate' | 'openai', what: string): Refusal {
  const name = provider === 'openai' ? 'OpenAI' : 'Replicate';
  return {
    status: 503,
    code: 'provider_not_configured',
    message: `${what} needs ${name}, which this project has not configured`,
    details: { provider },
  };
}

/** Replicate when it is configured for `type`, otherwise the refusal. */
function replicateOr(type: string, providers: ProviderConfig, otherwise: Refusal): Route | Refusal {
  return providers.replicate(type) ? { provider: 'replicate' } : otherwise;
}

/**
 * PNG/JPEG that fits the kind's in-function limit; larger ones, and images the function cannot
 * decode, go to Replicate when it is configured; otherwise refused.
 */
async function routeImage(
  type: string,
  file: InputFile,
  providers: ProviderConfig,
): Promise<Route | Refusal> {
  const probe = await loadImageProbe(type);
  let info;
  try {
    info = probe.info(file.head ?? new Uint8Array(0), file.contentType);
  } catch (err) {
    if (mediaCode(err) === 'unsupported_format') {
      return replicateOr(type, providers, {
        ...unsupported(type, file.contentType, IMAGE_TYPES),
        message: `the file is not a PNG or JPEG image, whatever its type says (${
          (err as Error).message
        })`,
      });
    }
    // A JPEG's frame header may sit behind more metadata than the head holds: a file that starts
    // like a JPEG is then let through, and the worker routes it again on the whole file.
    const head = file.head ?? new Uint8Array(0);
    const jpegStart = head[0] === 0xff && head[1] === 0xd8 && head[2] === 0xff;
    if (jpegStart && head.length < file.size) {
      return { provider: 'in-function', cpuMs: CPU_AT_LIMITS_MS }; // its size is not known yet
    }
    return unreadable('PNG or JPEG image', err);
  }
  const megapixels = (info.width * info.height) / 1e6;
  if (megapixels <= probe.maxMegapixels) {
    const cut = probe.truncated(file.head ?? new Uint8Array(0), file.size);
    if (cut) return truncatedFile(file, cut);
    return { provider: 'in-function', cpuMs: cpuEstimateMs(megapixels / probe.maxMegapixels) };
  }
  return replicateOr(type, providers, {
    status: 413,
    code: 'image_too_large',
    message: `the image is ${info.width}x${info.height} (${
      megapixels.toFixed(1)
    } MP); at most ${probe.maxMegapixels} MP can be processed here and no provider is configured for larger ones`,
    details: { width: info.width, height: info.height, max_megapixels: probe.maxMegapixels },
  });
}

// The kinds ----------------------------------------------------------------------------------------

const colorGrade: JobKind<ColorGradeInput> = {
  type: 'color-grade',
  schema: ColorGradeInput,
  file: {
    maxBytes: INPUT_MAX_BYTES,
    contentTypes: [...IMAGE_TYPES, ...OTHER_IMAGE_TYPES, ...VIDEO_TYPES],
    path: (input) => input.input_path,
    async route(file, _input, providers) {
      const type = 'color-grade';
      if (among(IMAGE_TYPES, file.contentType)) return await routeImage(type, file, providers);
      if (among(OTHER_IMAGE_TYPES, file.contentType) || among(VIDEO_TYPES, file.contentType)) {
        return replicateOr(type, providers, {
          ...unsupported(type, file.contentType, IMAGE_TYPES),
          message:
            `${file.contentType} needs a provider, and none is configured: send a PNG or JPEG`,
        });
      }
      return unsupported(type, file.contentType, colorGrade.file!.contentTypes);
    },
  },
  maxAttempts: 3,
  handler: () => import('../job-worker/handlers/color-grade.ts').then((m) => m.default),
};

const audioClean: JobKind<AudioCleanInput> = {
  type: 'audio-clean',
  schema: AudioCleanInput,
  file: {
    maxBytes: INPUT_MAX_BYTES,
    contentTypes: [...WAV_TYPES, ...OTHER_AUDIO_TYPES],
    path: (input) => input.input_path,
    async route(file, _input, providers) {
      const type = 'audio-clean';
      if (among(WAV_TYPES, file.contentType)) {
        const probe = await loadAudioProbe();
        let info;
        try {
          info = probe.info(file.head ?? new Uint8Array(0));
        } catch (err) {
          // A WAV variant the function does not decode (8-bit, A-law, ...) is still audio.
          if (mediaCode(err) === 'unsupported_format') {
            return replicateOr(type, providers, {
              ...unsupported(type, file.contentType, WAV_TYPES),
              message: `${(err as Error).message}, and no provider is configured for it`,
            });
          }
          return unreadable('WAV file', err);
        }
        try {
          probe.check(info);
        } catch (err) {
          const why = (err as Error).message;
          if (mediaCode(err) !== 'too_large') {
            return replicateOr(type, providers, {
              ...unsupported(type, file.contentType, WAV_TYPES),
              message: `${why}, and no provider is configured for it`,
            });
          }
          return replicateOr(type, providers, {
            status: 413,
            code: 'audio_too_long',
            message: `${why}: longer audio needs a provider, and none is configured`,
            details: { duration_seconds: info.durationSeconds, max_seconds: probe.maxSeconds },
          });
        }
        if (info.dataEnd !== null && info.dataEnd > file.size) {
          return truncatedFile(
            file,
            `truncated WAV: its data chunk ends at byte ${info.dataEnd}, the file has ${file.size}`,
          );
        }
        const samples = info.durationSeconds * info.sampleRate * info.channels;
        const fraction = Math.max(
          info.durationSeconds / probe.maxSeconds,
          samples / probe.maxSamples,
        );
        return { provider: 'in-function', cpuMs: cpuEstimateMs(fraction) };
      }
      if (among(OTHER_AUDIO_TYPES, file.contentType)) {
        return replicateOr(type, providers, {
          ...unsupported(type, file.contentType, WAV_TYPES),
          message: `${file.contentType} needs a provider, and none is configured: send a WAV file`,
        });
      }
      return unsupported(type, file.contentType, audioClean.file!.contentTypes);
    },
  },
  maxAttempts: 3,
  handler: () => import('../job-worker/handlers/audio-clean.ts').then((m) => m.default),
};

const roto: JobKind<RotoInput> = {
  type: 'roto',
  schema: RotoInput,
  file: {
    maxBytes: INPUT_MAX_BYTES,
    contentTypes: [...IMAGE_TYPES, ...OTHER_IMAGE_TYPES, ...VIDEO_TYPES],
    path: (input) => input.input_path,
    async route(file, input, providers) {
      const type = 'roto';
      const isImage = among(IMAGE_TYPES, file.contentType);
      const isOther = among(OTHER_IMAGE_TYPES, file.contentType) ||
        among(VIDEO_TYPES, file.contentType);
      if (!isImage && !isOther) {
        return unsupported(type, file.contentType, roto.file!.contentTypes);
      }
      if (input.mode === 'ai') {
        return replicateOr(type, providers, providerNotConfigured('replicate', 'roto in ai mode'));
      }
      if (isOther) {
        return replicateOr(
          type,
          providers,
          providerNotConfigured('replicate', `roto of ${file.contentType}`),
        );
      }
      return await routeImage(type, file, providers);
    },
  },
  maxAttempts: 3,
  handler: () => import('../job-worker/handlers/roto.ts').then((m) => m.default),
};

const image: JobKind<ImageInput> = {
  type: 'image',
  schema: ImageInput,
  provider: 'openai',
  // Each attempt costs money at OpenAI: retry once at most.
  maxAttempts: 2,
  handler: () => import('../job-worker/handlers/image.ts').then((m) => m.default),
};

const noop: JobKind<NoopInput> = {
  type: 'noop',
  schema: NoopInput,
  provider: 'in-function',
  testOnly: true,
  maxAttempts: 3,
  handler: () => import('../job-worker/handlers/noop.ts').then((m) => m.default),
};

/** A job kind of any input type. */
// deno-lint-ignore no-explicit-any
export type AnyJobKind = JobKind<any>;

/** Every job kind, by type. Look kinds up with kindOf(), which honours SPOOL_ENABLE_NOOP. */
export const KINDS: Readonly<Record<string, AnyJobKind>> = Object.freeze({
  'color-grade': colorGrade,
  'audio-clean': audioClean,
  'roto': roto,
  'image': image,
  'noop': noop,
});

/** The kind for `type`, or undefined when unknown or disabled (noop without SPOOL_ENABLE_NOOP). */
export function kindOf(
  type: string,
  providers: Pick<ProviderConfig, 'noop'>,
): AnyJobKind | undefined {
  if (!Object.hasOwn(KINDS, type)) return undefined;
  const kind = KINDS[type];
  if (kind.testOnly && !providers.noop) return undefined;
  return kind;
}

/**
 * Where a job's work happens, or why it is refused. Kinds with an input file route on the file;
 * others need their provider configured.
 */
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
  const provider = kind.provider ?? 'in-function';
  if (provider === 'openai' && !providers.openai) {
    return providerNotConfigured('openai', `${kind.type} generation`);
  }
  if (provider === 'replicate' && !providers.replicate(kind.type)) {
    return providerNotConfigured('replicate', kind.type);
  }
  return { provider };
}
