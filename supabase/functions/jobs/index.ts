// The client API: list, get, cancel and retry my jobs; queue health for admins. See api.ts.
import { EnvReader, readSupabaseEnv } from '../_shared/env.ts';
import { jobsHandler } from './api.ts';

const reader = new EnvReader();
const env = readSupabaseEnv(reader);
reader.done();

Deno.serve(jobsHandler(env));
