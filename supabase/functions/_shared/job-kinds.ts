// Job kinds: the one place that says, for each job type, what input it takes (zod schema), what
// input files it accepts and how large, which provider does the work, and which handler runs it.
// Job creators validate against it; job-worker dispatches through it.
//
// Where the work happens:
//   in-function  the handler processes the file inside job-worker (small images, WAV audio)
//   replicate    a Replicate model does it and calls back (job-callback); the job waits meanwhile
//   openai       the OpenAI Images API, called from the handler
// A provider that is not configured is refused when the job is created, never discovered later.
import { z } from './deps.ts';
import type { JobRow } from './clients.ts';

/** The job states, one vocabulary with the SQL enum public.job_status and the UI. */
export const JOB_STATES = ['pending', 'running', 'waiting', 'done', 'failed', 'cancelled'] as const;
export type JobState = (typeof JOB_STATES)[number];
export const TERMINAL_STATES: readonly JobState[] = ['done', 'failed', 'cancelled'];

/** A path in the caller's own folder of the private `inputs` bucket: "<user id>/<name>". */
export const InputPath = z.string().min(3).max(1024)
  .regex(/^[0-9a-f-]{36}\/[^\s\\]+$/i, 'must be "<your user id>/<file name>" in the inputs bucket')
  .refine((p) => !p.split('/').some((s) => s === '..' || s === '.' || s === ''), 'must not contain empty, . or .. segments');

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

export type ColorGradeInput = z.infer<typeof ColorGradeInput>;
export type AudioCleanInput = z.infer<typeof AudioCleanInput>;
export type RotoInput = z.infer<typeof RotoInput>;
export type ImageInput = z.infer<typeof ImageInput>;

export type Provider = 'in-function' | 'replicate' | 'openai';

/** What a creator knows about the input file before enqueueing. */
export interface InputFile {
  path: string;
  size: number;
  contentType: string;
  /** The file's first bytes (enough for PNG/JPEG/WAV headers), for dimension and duration checks. */
  head?: Uint8Array;
}

/** Provider configuration read from the environment by the function that needs it. */
export interface ProviderConfig {
  openai: boolean;
  /** Replicate is configured for this job type (token, webhook secret and model version set). */
  replicate: (type: string) => boolean;
}

/** A refusal of the input file, mapped by creators to a 4xx/503 response. */
export interface Refusal {
  status: 413 | 415 | 422 | 503;
  code: string;
  message: string;
}

export interface Route {
  provider: Provider;
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
  /** Reports progress (0..100) and the current step; also extends the lease. */
  progress(percent: number, step?: string): Promise<void>;
  /** Aborted when the job is cancelled, its lease is lost, or the invocation runs out of time. */
  signal: AbortSignal;
}

/** A handler either finishes with an output or hands the job to a provider that calls back. */
export type HandlerResult =
  | { output: Record<string, unknown> }
  | { await: { provider: 'replicate'; externalId: string; timeoutSeconds?: number } };

export type Handler<I> = (ctx: HandlerContext<I>) => Promise<HandlerResult>;

/** Thrown by handlers: `retryable` decides between retry-with-backoff and failing for good. */
export class JobError extends Error {
  constructor(readonly code: string, message: string, readonly retryable: boolean, readonly details?: unknown) {
    super(message);
    this.name = 'JobError';
  }
}

export interface JobKind<I> {
  type: string;
  schema: z.ZodType<I>;
  /** Input file rules; absent for kinds without an input file (image). */
  file?: {
    maxBytes: number;
    /** Decides where the work happens, or refuses the file. */
    route(file: InputFile, input: I, providers: ProviderConfig): Route | Refusal;
  };
  /** Kinds without a file route here. */
  provider?: Provider;
  maxAttempts: number;
  handler: () => Promise<Handler<I>>;
}
