// Creates image jobs: POST /functions/v1/image with the job's input as JSON (the kind: _jobs/kinds/image.ts),
// answered 202 {"job": ...} with the job's Location. Everything else is the shared create path.
import { createJobHandler } from '../_jobs/create.ts';
import kind from '../_jobs/kinds/image.ts';

Deno.serve(createJobHandler(kind));
