// The client API: list, get, cancel and retry my jobs; the job kinds; queue health for admins.
// See api.ts.
import { REPLICATE_VERSION_VARS } from '../_jobs/kinds/index.ts';
import { readProviderConfig } from '../_jobs/providers.ts';
import { EnvReader, readSupabaseEnv } from '../_shared/env.ts';
import { jobsHandler } from './api.ts';

const reader = new EnvReader();
const env = readSupabaseEnv(reader);
const providers = readProviderConfig(reader, REPLICATE_VERSION_VARS, env.url);
reader.done();

Deno.serve(jobsHandler(env, providers));
