// Creates roto jobs: POST /functions/v1/roto with the job's input as JSON (see _shared/job-kinds.ts),
// answered 202 {"job": ...} with the job's Location. Everything else is the shared create path.
import { createJobHandler } from '../_shared/create-job.ts';

Deno.serve(createJobHandler('roto'));
