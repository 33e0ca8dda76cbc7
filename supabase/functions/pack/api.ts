// The pack creator: POST /functions/v1/pack {"prompt", "size"?, "quality"?} as a signed-in user,
// with an optional Idempotency-Key. Checks as a creator does (401, 400 invalid_body, 503 when
// OpenAI is not configured: every child needs it), then creates the whole flow in one call
// (create_flow: the parent and its seven children, quotas counted over all eight, all or
// nothing). Answers 202 {"job": <the parent>, "children": [<the seven, in order>]} with the
// parent's Location. See _jobs/pack.ts for what a pack is.
import { enqueueDepsFor, MAX_BODY_BYTES, readIdempotencyKey } from '../_jobs/create.ts';
import image from '../_jobs/kinds/image.ts';
import text from '../_jobs/kinds/text.ts';
import { PACK_VIEWS, packChildren, PackInput } from '../_jobs/pack.ts';
import { providerRefusal } from '../_jobs/route.ts';
import { requireUser } from '../_shared/auth.ts';
import type { Json } from '../_shared/database.types.ts';
import type { EnvReader } from '../_shared/env.ts';
import {
  fromApiError,
  handle,
  type Handler,
  HttpError,
  issuesOf,
  json,
  readJsonObject,
} from '../_shared/http.ts';
import { jobLocation, toPublicJob } from '../_shared/job-view.ts';

/** The pack creator's Request handler; reads and checks the environment now. */
export function packHandler(options: { reader?: EnvReader } = {}): Handler {
  const deps = enqueueDepsFor(image, options.reader);
  return handle('pack', ['POST'], async (req) => {
    const caller = await requireUser(req, deps.env);
    const idempotencyKey = readIdempotencyKey(req);
    const body = await readJsonObject(req, MAX_BODY_BYTES);
    const parsed = PackInput.safeParse(body);
    if (!parsed.success) {
      throw new HttpError(
        400,
        'invalid_body',
        'the request body is invalid',
        issuesOf(parsed.error),
      );
    }
    const refusal = providerRefusal(image, deps.providers) ?? providerRefusal(text, deps.providers);
    if (refusal) {
      throw new HttpError(refusal.status, refusal.code, refusal.message, refusal.details);
    }
    const { data, error } = await deps.admin.rpc('create_flow', {
      p_user_id: caller.userId,
      p_type: 'pack',
      p_input: { ...parsed.data, views: PACK_VIEWS.map((v) => v.view) } as Json,
      p_children: packChildren(parsed.data) as unknown as Json,
      p_policy: 'partial',
      ...(idempotencyKey !== null ? { p_idempotency_key: idempotencyKey } : {}),
    });
    if (error) throw fromApiError(error);
    const [parent, ...children] = (data ?? []) as Parameters<typeof toPublicJob>[0][];
    return json(
      { job: toPublicJob(parent), children: children.map(toPublicJob) },
      202,
      { location: jobLocation(parent.id) },
    );
  });
}
