// Enqueue from another Edge Function: the one small helper an app's own function imports to start
// a Spool job on a user's behalf, with exactly the creators' validation, routing, quotas and
// idempotency (the create path in create.ts), and the same refusals (HttpError, which `handle`
// answers in the one error shape).
//
//   import { createEnqueuer } from '../_jobs/enqueue.ts';
//   import text from '../_jobs/kinds/text.ts';
//   const spool = createEnqueuer(text);               // at load: reads and checks the env
//   const job = await spool.enqueue({ userId, input: { prompt } });
//
// Kinds with an input file also need the owner's JWT (`userJwt`): the file is looked up as the
// owner, so Storage's RLS decides whose files a job may read. The secret key stays on the server.
import type { EnvReader } from '../_shared/env.ts';
import type { PublicJob } from '../_shared/job-view.ts';
import { enqueueAs, enqueueDepsFor, type EnqueueRequest } from './create.ts';
import type { JobKind } from './kind.ts';

export interface Enqueuer {
  /** Enqueues one job of the kind; resolves to its public view, or throws HttpError. */
  enqueue(request: EnqueueRequest): Promise<PublicJob>;
}

/** An enqueuer for `kind`, with the environment read (and checked) now. */
export function createEnqueuer<I>(
  kind: JobKind<I>,
  options: { reader?: EnvReader } = {},
): Enqueuer {
  const deps = enqueueDepsFor(kind, options.reader);
  return { enqueue: (request) => enqueueAs(deps, kind, request) };
}
