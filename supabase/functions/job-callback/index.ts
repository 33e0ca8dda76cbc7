// job-callback: Replicate's webhook (verify_jwt off: it is authenticated by its signature). See
// callback.ts for what it answers; settling stores the prediction's outputs and resumes the job.
import { inBackground } from '../_shared/background.ts';
import { adminClient } from '../_shared/clients.ts';
import { EnvReader, readSupabaseEnv } from '../_shared/env.ts';
import { jsonLog, settleDepsOf } from '../_jobs/platform.ts';
import { readProviderConfig } from '../_jobs/providers.ts';
import { createCallbackHandler } from './callback.ts';

const reader = new EnvReader();
const env = readSupabaseEnv(reader);
const providers = readProviderConfig(reader, {});
reader.done();

const log = jsonLog('job-callback');

Deno.serve(createCallbackHandler({
  webhookSecret: providers.replicateWebhookSecret,
  settle: settleDepsOf(adminClient(env), log),
  nowSeconds: () => Math.floor(Date.now() / 1000),
  background: inBackground,
  log,
}));
