// The one create path every job creator uses: a creator is one line over it,
//
//   Deno.serve(createJobHandler(kind))       (e.g. supabase/functions/roto/index.ts)
//
//   requireUser                          401 unauthorized / invalid_token
//   Idempotency-Key header               400 invalid_idempotency_key
//   JSON object body                     415 unsupported_media_type, 413 body_too_large,
//                                        400 invalid_json / invalid_body
//   the kind's zod schema                400 invalid_body (details: the issues)
//   input file in the caller's folder    403 forbidden_input
//   the file, looked up as the caller    404 input_not_found, 413 file_too_large, 422 empty_file
//   route (where the work happens)       413 image_too_large / audio_too_long,
//                                        422 unsupported_format / unreadable_file /
//                                            truncated_file,
//                                        503 provider_not_configured
//   create_job (secret key, for caller)  409 idempotency_conflict, 429 quota_* (+ Retry-After);
//                                        the route is stored with the job (jobs.route), and the
//                                        type's row in spool.job_types gives attempts and priority
//   202 {"job": <public view>}, Location: /functions/v1/jobs/<id>
//
// Everything before create_job only reads, and create_job is one transaction, so a refused
// request never leaves a row behind. Nor does it leave a file it refused: on a refusal of the
// input file itself (413 file_too_large / image_too_large / audio_too_long, 422) the creator
// removes the file the body named, with the secret key, when it lies in the caller's own folder
// and no other job of theirs reads it (public.count_input_jobs). Other refusals (of the settings,
// or of this attempt: 400, 401, 403, 404, 409, 429, 503) keep it for another try.
import { requireUser } from '../_shared/auth.ts';
import { adminClient, type Db } from '../_shared/clients.ts';
import type { Json } from '../_shared/database.types.ts';
import { EnvReader, readSupabaseEnv, type SupabaseEnv } from '../_shared/env.ts';
import {
  fromApiError,
  handle,
  type Handler,
  HttpError,
  issuesOf,
  json,
  readJsonObject,
} from '../_shared/http.ts';
import { inFolderOf, type InputFile, INPUTS_BUCKET, inspectInput } from '../_shared/input-file.ts';
import { jobLocation, type PublicJob, toPublicJob } from '../_shared/job-view.ts';
import { isRefusal, type JobKind, type Route } from './kind.ts';
import { type ProviderConfig, readProviderConfig } from './providers.ts';
import { routeJob } from './route.ts';

/** Largest JSON body a creator reads (create_job stores at most 64 KiB of input). */
export const MAX_BODY_BYTES = 64 * 1024;

/**
 * Reads the optional Idempotency-Key header: 1 to 200 printable ASCII characters, or 400
 * invalid_idempotency_key. Returns null when absent.
 */
export function readIdempotencyKey(req: Request): string | null {
  const key = req.headers.get('idempotency-key');
  if (key === null) return null;
  if (!/^[\x20-\x7e]{1,200}$/.test(key)) {
    throw new HttpError(
      400,
      'invalid_idempotency_key',
      'Idempotency-Key must be 1 to 200 printable ASCII characters',
    );
  }
  return key;
}

export interface CreateJobOptions {
  /** Where the environment comes from; tests pass their own. Defaults to Deno.env. */
  reader?: EnvReader;
}

/**
 * The Request handler of the creator for `kind`. Reads and checks the environment now (call it
 * at module load, so a misconfigured function fails at once), then serves POST requests.
 */
export function createJobHandler<I>(kind: JobKind<I>, options: CreateJobOptions = {}): Handler {
  if (kind.testOnly) throw new Error(`job type "${kind.type}" has no creator (test only)`);
  const { env, providers, admin } = enqueueDepsFor(kind, options.reader);
  return handle(kind.type, ['POST'], (req) => createJob(req, kind, env, providers, admin));
}

/**
 * What enqueueing jobs of `kind` needs, read from the environment now (every problem named at
 * once: EnvReader.done()): the project's URL and keys, the providers (Replicate only for this
 * kind's model version variable) and the secret-key client.
 */
export function enqueueDepsFor<I>(kind: JobKind<I>, reader = new EnvReader()): EnqueueDeps {
  const env = readSupabaseEnv(reader);
  const providers = readProviderConfig(
    reader,
    kind.replicateVersionVar ? { [kind.type]: kind.replicateVersionVar } : {},
  );
  reader.done();
  return { env, providers, admin: adminClient(env) };
}

async function createJob<I>(
  req: Request,
  kind: JobKind<I>,
  env: SupabaseEnv,
  providers: ProviderConfig,
  admin: Db,
): Promise<Response> {
  const caller = await requireUser(req, env);
  const idempotencyKey = readIdempotencyKey(req);
  const body = await readJsonObject(req, MAX_BODY_BYTES);
  let job;
  try {
    job = await enqueueAs({ env, providers, admin }, kind, {
      userId: caller.userId,
      userJwt: caller.jwt,
      input: body,
      idempotencyKey,
    });
  } catch (err) {
    const path = kind.file ? body[kind.file.field] : undefined;
    if (typeof path === 'string' && err instanceof HttpError && removesInput(err)) {
      await removeRefusedInput(admin, caller.userId, path);
    }
    throw err;
  }
  return json({ job }, 202, { location: jobLocation(job.id) });
}

/**
 * Whether a refusal is of the input file itself (too large, too long, a format or content this
 * project cannot process: 413 and 422 but the request body's own 413 body_too_large), so the
 * file can never be used as it is. Refusals of the settings (400), of a provider the settings
 * ask for (503) or of this attempt (401, 403, 404, 409, 429) keep it: the same upload may be
 * started again with other settings, or later.
 */
export function removesInput(err: HttpError): boolean {
  return err.status === 422 || (err.status === 413 && err.code !== 'body_too_large');
}

/**
 * Removes a refused job's input file: only a path in the user's own folder, only when no job of
 * theirs reads it (an earlier job started with the same upload). A failure to remove is logged,
 * never answered: the refusal is what the caller needs to hear.
 */
export async function removeRefusedInput(
  admin: Db,
  userId: string,
  path: string,
): Promise<boolean> {
  if (!inFolderOf(path, userId) || path.split('/').some((s) => s === '..' || s === '.')) {
    return false;
  }
  try {
    const { data: uses, error } = await admin.rpc('count_input_jobs', {
      p_user_id: userId,
      p_path: path,
    });
    if (error || typeof uses !== 'number' || uses > 0) return false;
    const removed = await admin.storage.from(INPUTS_BUCKET).remove([path]);
    if (removed.error) throw removed.error;
    return (removed.data?.length ?? 0) > 0;
  } catch (err) {
    console.error(JSON.stringify({
      level: 'error',
      msg: "could not remove a refused job's input file",
      path,
      detail: err instanceof Error ? err.message : String(err),
    }));
    return false;
  }
}

/** What enqueueing needs of the platform, read once at load. */
export interface EnqueueDeps {
  env: SupabaseEnv;
  providers: ProviderConfig;
  admin: Db;
}

export interface EnqueueRequest {
  /** The job's owner. */
  userId: string;
  /**
   * The owner's JWT, for kinds with an input file: the file is looked up as the owner (Storage's
   * RLS decides), never with the secret key.
   */
  userJwt?: string | null;
  /** Validated against the kind's schema (defaults filled in). */
  input: unknown;
  idempotencyKey?: string | null;
}

/**
 * Validates, routes and enqueues one job of `kind` for `userId`: the create path of the creators
 * and of enqueue.ts, with the same refusals (HttpError: the one error shape). Returns the job's
 * public view. Everything before create_job only reads, so a refusal leaves no row.
 */
export async function enqueueAs<I>(
  deps: EnqueueDeps,
  kind: JobKind<I>,
  request: EnqueueRequest,
): Promise<PublicJob> {
  const { input, route } = await checkJob(deps, kind, request);
  const { data: job, error } = await deps.admin.rpc('create_job', {
    p_user_id: request.userId,
    p_type: kind.type,
    p_input: input as Json,
    p_cpu_ms: route.cpuMs ?? 0,
    p_route: route.provider,
    ...(request.idempotencyKey ? { p_idempotency_key: request.idempotencyKey } : {}),
  });
  if (error) throw fromApiError(error);
  return toPublicJob(job);
}

/**
 * What a creator checks of a job before anything is written: the input against the kind's
 * schema (400 invalid_body; issue paths under `field` when the input is a field of a larger
 * body), its input file in the owner's folder (403) and as the owner sees it (404/413/422), and
 * where the work happens (413/422/503). Returns the parsed input (defaults filled in) and its
 * route. Only reads.
 */
export async function checkJob<I>(
  deps: Pick<EnqueueDeps, 'env' | 'providers'>,
  kind: JobKind<I>,
  request: Pick<EnqueueRequest, 'userId' | 'userJwt' | 'input'>,
  field: string | null = null,
): Promise<{ input: I; route: Route }> {
  const parsed = kind.schema.safeParse(request.input);
  if (!parsed.success) {
    const issues = issuesOf(parsed.error);
    throw new HttpError(
      400,
      'invalid_body',
      'the request body is invalid',
      field === null
        ? issues
        : issues.map((i) => ({ ...i, path: i.path ? `${field}.${i.path}` : field })),
    );
  }
  const input = parsed.data;

  let file: InputFile | null = null;
  if (kind.file) {
    const path = kind.file.path(input);
    if (!inFolderOf(path, request.userId)) {
      throw new HttpError(
        403,
        'forbidden_input',
        'input_path must be in your own folder: "<your user id>/<file name>"',
      );
    }
    if (!request.userJwt) {
      throw new TypeError(`${kind.type} jobs need the owner's JWT to look their input file up`);
    }
    file = await inspectInput(deps.env, request.userJwt, path, kind.file.maxBytes);
  }

  const route = await routeJob(kind, input, file, deps.providers);
  if (isRefusal(route)) throw new HttpError(route.status, route.code, route.message, route.details);
  return { input, route };
}
