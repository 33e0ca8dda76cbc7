// Creates text jobs: POST /functions/v1/text with the job's input as JSON (the kind: _jobs/kinds/text.ts),
// answered 202 {"job": ...} with the job's Location. Everything else is the shared create path.
import { createJobHandler } from '../_jobs/create.ts';
import kind from '../_jobs/kinds/text.ts';

Deno.serve(createJobHandler(kind));
