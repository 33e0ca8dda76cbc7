// The schedule creator: a signed-in user's recurring job. One route (the path after /functions/v1):
//
//   POST /schedules   {type, input, cron | every, timezone?, name?, catch_up?, start_at?}
//
//   requireUser                          401 unauthorized / invalid_token
//   JSON object body                     415 unsupported_media_type, 413 body_too_large,
//                                        400 invalid_json / invalid_body (the envelope's issues)
//   type                                 400 unknown_type (test-only kinds included: they have
//                                        no creator, so no schedule either)
//   input, by the kind's zod schema      400 invalid_body (details: the issues, paths under
//                                        "input."), exactly as the kind's creator refuses it
//   input file in the caller's folder    403 forbidden_input; then the file as the caller sees it
//                                        and its route, as a creator: 404 input_not_found,
//                                        413/422 for a file no route takes
//   a kind without a file                503 provider_not_configured (providerRefusal)
//   create_schedule (secret key)         400 invalid_argument (bad cron, every, zone, name),
//                                        429 quota_schedules (+ Retry-After)
//   201 {"schedule": <the row>}
//
// Why a function and not an RPC: a schedule's input becomes the input of every job it creates,
// so it must pass what a creator checks before it reaches SQL; create_schedule is service_role
// only for that reason, and this function calls it with the PARSED input (defaults filled in),
// for the caller's user id. Listing, pausing, resuming, deleting and previewing are the
// browser's own calls under RLS (public.schedules SELECT, pause_/resume_/delete_/
// preview_schedule as authenticated): no function needed.
//
// The checks only read; create_schedule is one transaction, so a refused request writes nothing.
import { checkJob } from '../_jobs/create.ts';
import { kindOf } from '../_jobs/kinds/index.ts';
import type { ProviderConfig } from '../_jobs/providers.ts';
import { requireUser } from '../_shared/auth.ts';
import { adminClient, type Db } from '../_shared/clients.ts';
import type { Database, Json } from '../_shared/database.types.ts';
import { z } from '../_shared/deps.ts';
import type { SupabaseEnv } from '../_shared/env.ts';
import {
  fromApiError,
  handle,
  type Handler,
  HttpError,
  issuesOf,
  json,
  readJsonObject,
} from '../_shared/http.ts';

export type Schedule = Database['public']['Tables']['schedules']['Row'];

/** The input (64 KiB, as create_schedule stores at most) and the envelope around it. */
export const MAX_BODY_BYTES = 64 * 1024 + 4096;

/**
 * An interval as people write one: "15 minutes", "1 day", "2 hours 30 minutes" (units second,
 * minute, hour, day, week; singular, plural or short). Months and years are not allowed: their
 * length varies (create_schedule says to use cron). Anything else would reach Postgres' interval
 * parser, whose refusal is no Spool error (a 500), so it is refused here.
 */
const EVERY_TEXT =
  /^\s*(?:\d{1,7}\s*(?:s|secs?|seconds?|m|mins?|minutes?|h|hrs?|hours?|d|days?|w|weeks?)\s*)+$/i;

/**
 * Seconds as interval text in days, hours, minutes and seconds (86400 -> "1 days"), so that the
 * stored interval reads as people would write it ("1 day", not "24:00:00").
 */
export function intervalText(seconds: number): string {
  const parts: string[] = [];
  let rest = seconds;
  for (const [unit, size] of [['days', 86400], ['hours', 3600], ['minutes', 60]] as const) {
    const n = Math.floor(rest / size);
    if (n > 0) parts.push(`${n} ${unit}`);
    rest -= n * size;
  }
  if (rest > 0 || parts.length === 0) parts.push(`${rest} seconds`);
  return parts.join(' ');
}

/** The request body, apart from `input` (which the kind's schema reads). */
export const ScheduleBody = z.object({
  type: z.string().min(1).max(63),
  input: z.record(z.string(), z.unknown()).default({}),
  cron: z.string().trim().min(1).max(200).optional(),
  every: z.union([
    z.string().regex(EVERY_TEXT, 'like "15 minutes", "2 hours" or "1 day" (no months or years)'),
    z.number().int().min(60).max(366 * 86400).describe('seconds'),
  ]).optional(),
  timezone: z.string().trim().min(1).max(64).default('UTC'),
  name: z.string().trim().min(1).max(100).optional(),
  catch_up: z.enum(['latest', 'all']).default('latest'),
  start_at: z.iso.datetime({ offset: true }).optional(),
}).strict().superRefine((body, ctx) => {
  if ((body.cron === undefined) === (body.every === undefined)) {
    ctx.addIssue({
      code: 'custom',
      path: ['cron'],
      message: 'give either cron (like "0 9 * * *") or every (like "15 minutes"), not both',
    });
  }
});
export type ScheduleBody = z.infer<typeof ScheduleBody>;

/** What creating needs of the platform, read once at load. */
export interface ScheduleDeps {
  env: SupabaseEnv;
  providers: ProviderConfig;
  admin: Db;
}

/**
 * Checks a schedule request as the kind's creator checks a job and creates it for `userId`;
 * returns the row. `userJwt` looks an input file up as its owner (Storage's RLS decides).
 * Throws HttpError (the one error shape) for every refusal.
 */
export async function createScheduleAs(
  deps: ScheduleDeps,
  caller: { userId: string; jwt: string },
  raw: unknown,
): Promise<Schedule> {
  const envelope = ScheduleBody.safeParse(raw);
  if (!envelope.success) {
    throw new HttpError(
      400,
      'invalid_body',
      'the request body is invalid',
      issuesOf(envelope.error),
    );
  }
  const body = envelope.data;

  const kind = kindOf(body.type, deps.providers);
  if (!kind || kind.testOnly) {
    throw new HttpError(400, 'unknown_type', `there is no job type "${body.type}" to schedule`, {
      type: body.type,
    });
  }

  // As the kind's creator checks a job (the file is read again by every run; checked once here).
  const { input } = await checkJob(
    deps,
    kind,
    { userId: caller.userId, userJwt: caller.jwt, input: body.input },
    'input',
  );

  const { data, error } = await deps.admin.rpc('create_schedule', {
    p_user_id: caller.userId,
    p_type: kind.type,
    p_input: input as Json,
    ...(body.cron !== undefined ? { p_cron: body.cron } : {}),
    ...(body.every !== undefined
      ? { p_every: typeof body.every === 'number' ? intervalText(body.every) : body.every.trim() }
      : {}),
    p_timezone: body.timezone,
    p_catch_up: body.catch_up,
    ...(body.name !== undefined ? { p_name: body.name } : {}),
    ...(body.start_at !== undefined ? { p_start_at: body.start_at } : {}),
  });
  if (error) throw fromApiError(error);
  return data as Schedule;
}

/** The schedules function's Request handler. */
export function schedulesHandler(env: SupabaseEnv, providers: ProviderConfig): Handler {
  const deps: ScheduleDeps = { env, providers, admin: adminClient(env) };
  return handle('schedules', ['POST'], async (req) => {
    const { pathname } = new URL(req.url);
    if (!/^(?:\/functions\/v1)?\/schedules\/?$/.test(pathname)) {
      throw new HttpError(404, 'not_found', `no such endpoint: ${pathname}`);
    }
    const caller = await requireUser(req, env);
    const body = await readJsonObject(req, MAX_BODY_BYTES);
    const schedule = await createScheduleAs(deps, caller, body);
    return json({ schedule }, 201);
  });
}
