// What the media handlers share: provider configuration, fetching and routing the input file,
// handing a job over to Replicate, a bound on concurrent media work, charging media CPU to the
// isolate's budget (cpu-budget.ts), and mapping media errors.
import { EnvReader } from '../_shared/env.ts';
import {
  type HandlerContext,
  type HandlerResult,
  isRefusal,
  JobError,
  KINDS,
  type ProviderConfig,
  readProviderConfig,
  type Route,
  routeJob,
} from '../_shared/job-kinds.ts';
import { mediaType } from '../_shared/http.ts';
import { createPrediction, replicateApiBase } from '../_shared/replicate.ts';
import { isolateCpu } from './cpu-budget.ts';
import { MediaError } from './media/errors.ts';

let cachedProviders: ProviderConfig | undefined;

/** Provider configuration from the environment, read once. */
export function providers(): ProviderConfig {
  if (!cachedProviders) {
    const reader = new EnvReader();
    cachedProviders = readProviderConfig(reader);
    reader.done();
  }
  return cachedProviders;
}

/** Forgets the cached provider configuration (tests change the environment). */
export function resetProviders(): void {
  cachedProviders = undefined;
}

/** How long a Replicate job may wait for its callback before rescue_jobs retries it. */
function replicateTimeoutSeconds(): number {
  const raw = Number(Deno.env.get('SPOOL_REPLICATE_TIMEOUT_SECONDS') ?? '');
  return Number.isInteger(raw) && raw >= 10 && raw <= 86_400 ? raw : 3600;
}

// Bounded media work -------------------------------------------------------------------------------

/**
 * Decoding and processing media is synchronous CPU work on the function's one thread, and each
 * job holds its input, the decoded pixels or samples and the encoded output in memory (256 MB per
 * function on Supabase). Running more than a couple at once buys nothing and risks memory, so
 * media handlers take one of SPOOL_WORKER_MEDIA_CONCURRENCY slots (default 2) for their whole
 * run, while I/O-bound kinds (image, noop) run at the worker's full concurrency.
 */
const mediaSlots = (() => {
  const raw = Number(Deno.env.get('SPOOL_WORKER_MEDIA_CONCURRENCY') ?? '');
  return Number.isInteger(raw) && raw >= 1 && raw <= 64 ? raw : 2;
})();
let mediaInUse = 0;
const mediaWaiters: (() => void)[] = [];

export async function withMediaSlot<T>(
  ctx: HandlerContext<unknown>,
  work: () => Promise<T>,
): Promise<T> {
  if (mediaInUse >= mediaSlots) {
    await ctx.progress(0, 'queued');
    await new Promise<void>((resolve, reject) => {
      const waiter = () => {
        ctx.signal.removeEventListener('abort', onAbort);
        resolve();
      };
      const onAbort = () => {
        const i = mediaWaiters.indexOf(waiter);
        if (i >= 0) mediaWaiters.splice(i, 1);
        reject(new Error('aborted while queued'));
      };
      ctx.signal.addEventListener('abort', onAbort, { once: true });
      mediaWaiters.push(waiter);
    });
  } else {
    mediaInUse++;
  }
  try {
    return await work();
  } finally {
    const next = mediaWaiters.shift();
    if (next) next(); // hand the slot over
    else mediaInUse--;
  }
}

/**
 * Runs one synchronous media stage (decode, process, encode) and charges its measured time to
 * this isolate's CPU budget at once, against the job's reservation (made when the drain claimed
 * it). Invocations sharing the isolate see the charge immediately.
 */
export function cpuStage<T>(ctx: HandlerContext<unknown>, work: () => T): T {
  return isolateCpu.charge(ctx.job.id, work);
}

// Input ------------------------------------------------------------------------------------------

export interface FetchedInput {
  bytes: Uint8Array;
  contentType: string;
  route: Route;
}

/**
 * Downloads the job's input file and decides, on the whole file, where the work happens, with the
 * same rules the creator applied (routeJob). A refusal (e.g. too large and no provider configured
 * for larger files) is a permanent failure with the refusal's code.
 */
export async function fetchInput(
  ctx: HandlerContext<{ input_path: string }>,
  type: string,
): Promise<FetchedInput> {
  await ctx.progress(5, 'downloading');
  const path = ctx.input.input_path;
  const { bytes, contentType: rawType } = await ctx.readInput(path);
  const contentType = mediaType(rawType) || 'application/octet-stream';
  const route = await routeJob(KINDS[type], ctx.input, {
    path,
    size: bytes.length,
    contentType,
    head: bytes,
  }, providers());
  if (isRefusal(route)) throw new JobError(route.code, route.message, false, route.details);
  return { bytes, contentType, route };
}

/** The input file's name without folders and extension, safe for an output name. */
export function stem(path: string): string {
  const name = path.split('/').pop() ?? 'output';
  const base = name.replace(/\.[^.]*$/, '').replace(/[^\w.-]+/g, '_').slice(0, 80);
  return base || 'output';
}

/** Maps a MediaError to a permanent JobError with its code; rethrows anything else. */
export function mediaFailure(err: unknown): never {
  if (err instanceof MediaError) throw new JobError(err.code, err.message, false, err.details);
  throw err;
}

// Replicate hand-over ----------------------------------------------------------------------------------

/** The webhook Replicate calls: job-callback, on this project's public URL. */
export function callbackUrl(): string {
  const base = (Deno.env.get('SUPABASE_URL') ?? '').replace(/\/+$/, '');
  return `${base}/functions/v1/job-callback?provider=replicate`;
}

/**
 * Hands the job to the Replicate model configured for its type: the model gets a signed URL of
 * the input file (valid 2 hours) under `fileField`, plus `params`, and calls job-callback when it
 * completes. The job then waits (await_job) until the callback or a poll settles it.
 */
export async function handOff(
  ctx: HandlerContext<{ input_path: string }>,
  type: string,
  fileField: string,
  params: Record<string, unknown>,
): Promise<HandlerResult> {
  const config = providers();
  const version = config.replicateVersion(type);
  if (!version || !config.replicateApiToken) {
    throw new JobError(
      'provider_not_configured',
      `${type} needs Replicate for this file, which is not configured`,
      false,
    );
  }
  await ctx.progress(10, 'handing over to Replicate');
  const url = await ctx.inputUrl(ctx.input.input_path, 2 * 3600);
  const prediction = await createPrediction(
    { apiBase: replicateApiBase(), token: config.replicateApiToken },
    { version, input: { [fileField]: url, ...params }, webhook: callbackUrl() },
  );
  return {
    await: {
      provider: 'replicate',
      externalId: prediction.id,
      timeoutSeconds: replicateTimeoutSeconds(),
    },
  };
}
