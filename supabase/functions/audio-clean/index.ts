// Creates audio-clean jobs: POST /functions/v1/audio-clean with the job's input as JSON (the kind: _jobs/kinds/audio-clean.ts),
// answered 202 {"job": ...} with the job's Location. Everything else is the shared create path.
import { createJobHandler } from '../_jobs/create.ts';
import kind from '../_jobs/kinds/audio-clean.ts';

Deno.serve(createJobHandler(kind));
