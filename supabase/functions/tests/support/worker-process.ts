// One job-worker invocation as a process of its own, for tests that kill a worker mid-job:
//   deno run -A worker-process.ts
// Environment: the stack's (SUPABASE_*, SPOOL_TEST_SUPERUSER_URL, ...; see api-stack.ts), the
// SPOOL_WORKER_* settings, SPOOL_TEST_WORKER_ID, and SPOOL_TEST_OWN_JOBS: the comma-separated ids
// of the test's own jobs, the only ones it claims (as of OWN_TIME; see own-jobs.ts).
// Prints the drain's JSON log lines, and exits when the drain ends.
import { adminClient } from '../../_shared/clients.ts';
import { EnvReader, readSupabaseEnv } from '../../_shared/env.ts';
import { REPLICATE_VERSION_VARS } from '../../_jobs/kinds/index.ts';
import { readProviderConfig } from '../../_jobs/providers.ts';
import { runnableKind } from '../../job-worker/kinds.ts';
import { readWorkerEnv } from '../../job-worker/config.ts';
import { drain } from '../../job-worker/run.ts';
import { rpcOf, storageOf } from '../../_jobs/platform.ts';
import { ownRpc } from './own-jobs.ts';

const reader = new EnvReader();
const env = readSupabaseEnv(reader);
const settings = readWorkerEnv(reader);
const providers = readProviderConfig(reader, REPLICATE_VERSION_VARS, env.url);
const own = reader.required('SPOOL_TEST_OWN_JOBS').split(',').map((id) => id.trim());
reader.done();

const db = adminClient(env);
await drain({
  rpc: ownRpc(rpcOf(db), own),
  storage: storageOf(db),
  kindOf: (type) => runnableKind(type, providers),
  providers,
  config: settings.worker,
  workerId: Deno.env.get('SPOOL_TEST_WORKER_ID') ?? 'jw-process',
  ring: () => Promise.resolve(),
  log: (line) => console.log(JSON.stringify(line)),
}, 'test');
