// What the media handlers share: fetching the input file and the route it was given, handing a
// job over to Replicate, the context's media slot and CPU charging, and mapping media errors.
// No module state and no environment: everything comes with the handler's context.
import { mediaType } from '../_shared/http.ts';
import {
  type HandlerContext,
  type HandlerResult,
  isRefusal,
  JobError,
  type Provider,
  PROVIDERS,
  type Route,
} from '../_jobs/kind.ts';
import { KINDS_BY_TYPE } from '../_jobs/kinds/index.ts';
import { MediaError } from '../_jobs/media/errors.ts';
import { createPrediction } from '../_jobs/replicate.ts';
import { routeJob } from '../_jobs/route.ts';

/**
 * Runs a media handler's work in one of the isolate's media slots: decoding and processing media
 * is synchronous CPU work on the function's one thread, and each job holds its input, the decoded
 * pixels or samples and the encoded output in memory (256 MB per function on Supabase), so only
 * SPOOL_WORKER_MEDIA_CONCURRENCY (default 2) run at once (the worker's slots, ctx.mediaSlot).
 */
export function withMediaSlot<T>(ctx: HandlerContext<unknown>, work: () => Promise<T>): Promise<T> {
  return ctx.mediaSlot(work);
}

/**
 * Runs one synchronous media stage (decode, process, encode) and charges its measured time to
 * this isolate's CPU budget at once, against the job's reservation (made when the drain claimed
 * it). Invocations sharing the isolate see the charge immediately.
 */
export function cpuStage<T>(ctx: HandlerContext<unknown>, work: () => T): T {
  return ctx.cpuStage(work);
}

// Input ------------------------------------------------------------------------------------------

export interface FetchedInput {
  bytes: Uint8Array;
  contentType: string;
  route: Route;
}

/**
 * Downloads the job's input file. The route is the one its creator decided and stored with the
 * job (jobs.route); a job created without one (from SQL, or before routes were stored) is routed
 * here once, on the whole file, with the rules the creator applies (routeJob). A refusal (e.g.
 * too large and no provider configured for larger files) is a permanent failure with its code.
 */
export async function fetchInput(
  ctx: HandlerContext<{ input_path: string }>,
  type: string,
): Promise<FetchedInput> {
  await ctx.progress(5, 'downloading');
  const path = ctx.input.input_path;
  const { bytes, contentType: rawType } = await ctx.readInput(path);
  const contentType = mediaType(rawType) || 'application/octet-stream';
  const stored = ctx.job.route;
  if (stored && (PROVIDERS as readonly string[]).includes(stored)) {
    return { bytes, contentType, route: { provider: stored as Provider } };
  }
  const route = await routeJob(KINDS_BY_TYPE[type], ctx.input, {
    path,
    size: bytes.length,
    contentType,
    head: bytes,
  }, ctx.providers);
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
  const config = ctx.providers;
  const version = config.replicateVersion(type);
  if (!version || !config.replicateApiToken || !config.replicateCallbackUrl) {
    throw new JobError(
      'provider_not_configured',
      `${type} needs Replicate for this file, which is not configured`,
      false,
    );
  }
  await ctx.progress(10, 'handing over to Replicate');
  const url = await ctx.inputUrl(ctx.input.input_path, 2 * 3600);
  const prediction = await createPrediction(
    { apiBase: config.replicateApiBase, token: config.replicateApiToken },
    { version, input: { [fileField]: url, ...params }, webhook: config.replicateCallbackUrl },
  );
  return {
    await: {
      provider: 'replicate',
      externalId: prediction.id,
      timeoutSeconds: config.replicateTimeoutSeconds,
    },
  };
}
