// The schedule creator: POST /functions/v1/schedules makes a recurring job for the signed-in user,
// its input checked as the kind's creator checks it. See api.ts.
import { REPLICATE_VERSION_VARS } from '../_jobs/kinds/index.ts';
import { readProviderConfig } from '../_jobs/providers.ts';
import { EnvReader, readSupabaseEnv } from '../_shared/env.ts';
import { schedulesHandler } from './api.ts';

const reader = new EnvReader();
const env = readSupabaseEnv(reader);
const providers = readProviderConfig(reader, REPLICATE_VERSION_VARS, env.url);
reader.done();

Deno.serve(schedulesHandler(env, providers));
