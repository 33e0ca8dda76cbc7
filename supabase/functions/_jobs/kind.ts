// What a job kind is: the descriptor type every kind file exports (kinds/<type>.ts), the contract
// between the worker and a handler, and the job states. One vocabulary with the SQL enum
// public.job_status and the UI.
//
// A kind's descriptor says what input it takes (a zod schema whose fields carry labels and help
// in zod metadata, rendered by the browser: capabilities.ts), what input file it accepts and how
// large, and where the work happens (route). Attempts, priority, running caps, rates, timeouts
// and retention are not here: they are the type's row in spool.job_types (SQL is their one
// source). Its handler is a separate file under job-worker/handlers/, loaded lazily by the worker
// only; a creator imports the descriptor alone, so it never loads a handler, an SDK or a codec.
import type { JobRow } from '../_shared/clients.ts';
import type { z } from '../_shared/deps.ts';
import type { InputFile } from '../_shared/input-file.ts';
import type { ProviderConfig } from './providers.ts';

export type { InputFile } from '../_shared/input-file.ts';

/** The job states, one vocabulary with the SQL enum public.job_status and the UI. */
export const JOB_STATES = ['pending', 'running', 'waiting', 'done', 'failed', 'cancelled'] as const;
export type JobState = (typeof JOB_STATES)[number];
export const TERMINAL_STATES: readonly JobState[] = ['done', 'failed', 'cancelled'];

/** Where the work happens; stored with the job (jobs.route) by its creator. */
export type Provider = 'in-function' | 'replicate' | 'openai';
export const PROVIDERS: readonly Provider[] = ['in-function', 'replicate', 'openai'];

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
  /**
   * The claimed row. In a flow, `job.dependency_outputs` holds the outputs of the jobs this one
   * depends on (in the order they were given to create_flow), filled in when the last was done.
   */
  job: JobRow;
  input: I;
  /** The providers' configuration, read once when job-worker loaded. */
  providers: ProviderConfig;
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
  /**
   * Runs media work holding one of the isolate's media slots (SPOOL_WORKER_MEDIA_CONCURRENCY),
   * waiting for one (step 'queued') when all are taken.
   */
  mediaSlot<T>(work: () => Promise<T>): Promise<T>;
  /**
   * Runs one synchronous media stage (decode, process, encode) and charges its measured time to
   * the isolate's CPU budget at once (job-worker/cpu-budget.ts). `work` must not return a promise.
   */
  cpuStage<T>(work: () => T): T;
  /**
   * Aborted when the job is cancelled, its lease is lost, its attempt reaches its timeout
   * (jobs.timeout_at) or the invocation runs out of time.
   */
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

/** What the browser is told of a kind's input file (capabilities.ts). */
export interface FileFacts {
  /** What the function itself processes, said to a person: "PNG or JPEG up to 3 megapixels". */
  summary: string;
  /** The media types the function itself processes; the rest of `contentTypes` needs a provider. */
  inFunction: readonly string[];
  /** The provider that takes the rest, if any. */
  provider?: 'replicate';
  /**
   * The in-function limits of `inFunction` files, so the browser checks them before uploading:
   * images up to max_megapixels, audio up to max_seconds and max_samples (frames x channels).
   * Files beyond them need `provider`.
   */
  limits?: { max_megapixels?: number; max_seconds?: number; max_samples?: number };
}

export interface JobKind<I> {
  type: string;
  /** Shown to people (the browser's operation list, the admin page). */
  label: string;
  summary: string;
  /** The input. Field labels and help are zod metadata (title, description, x-widget, ...). */
  schema: z.ZodType<I>;
  /** Input file rules; absent for kinds without an input file (image, text, noop). */
  file?: {
    /** The input field that holds the file's path in the `inputs` bucket. */
    field: string;
    /** Largest input file accepted at all (413 file_too_large above it). */
    maxBytes: number;
    /** Media types accepted for some route (also the inputs bucket's list for this kind). */
    contentTypes: readonly string[];
    facts: FileFacts;
    /** Where the input file is, in the `inputs` bucket. */
    path(input: I): string;
    /** Decides where the work happens, or refuses the file. */
    route(file: InputFile, input: I, providers: ProviderConfig): Promise<Route | Refusal>;
  };
  /** Where the work of a kind without a file happens (default in-function). */
  provider?: Provider;
  /** The variable naming this kind's Replicate model version, if Replicate can do its work. */
  replicateVersionVar?: string;
  /** Test/bench-only: no creator, and hidden by kindOf() unless SPOOL_ENABLE_NOOP=true. */
  testOnly?: boolean;
}

/** A job kind of any input type. */
// deno-lint-ignore no-explicit-any
export type AnyJobKind = JobKind<any>;

/** Declares a kind (a typed identity: the descriptor is plain data plus its route). */
export function defineKind<I>(kind: JobKind<I>): JobKind<I> {
  return Object.freeze(kind);
}
