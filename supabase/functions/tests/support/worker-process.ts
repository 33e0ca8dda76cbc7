// One job-worker invocation as a process of its own, for tests that kill a worker mid-job:
//   deno run -A worker-process.ts     (env: the stack's SUPABASE_* plus SPOOL_WORKER_* settings)
// Prints "claimed <job id>" lines as it leases jobs, and exits when the drain ends.
import { adminClient } from '../../_shared/clients.ts';
import { EnvReader, readSupabaseEnv } from '../../_shared/env.ts';
import { kindOf, readProviderConfig } from '../../_shared/job-kinds.ts';
import { readWorkerEnv } from '../../job-worker/config.ts';
import { drain } from '../../job-worker/run.ts';
import { rpcOf, storageOf } from '../../job-worker/wiring.ts';

const reader = new EnvReader();
const env = readSupabaseEnv(reader);
const settings = readWorkerEnv(reader);
const providers = readProviderConfig(reader);
reader.done();

const db = adminClient(env);
await drain({
  rpc: rpcOf(db),
  storage: storageOf(db),
  clock: performance,
  kindOf: (type) => kindOf(type, providers),
  config: settings.worker,
  workerId: Deno.env.get('SPOOL_TEST_WORKER_ID') ?? 'jw-process',
  ring: () => Promise.resolve(),
  log: (line) => console.log(JSON.stringify(line)),
}, 'test');
