// job-worker: woken by the database's doorbell (pg_net), by pg_cron's sweep, or by a worker that
// ran out of time, with the secret key. Answers 202 at once and drains the queue in the background:
// see run.ts for the loop and config.ts for its settings. Also polls Replicate for waiting jobs
// whose callback is overdue (poll.ts).
import { adminClient } from '../_shared/clients.ts';
import { EnvReader, readSupabaseEnv } from '../_shared/env.ts';
import { REPLICATE_VERSION_VARS } from '../_jobs/kinds/index.ts';
import { rpcOf, settleDepsOf, storageOf } from '../_jobs/platform.ts';
import { readProviderConfig } from '../_jobs/providers.ts';
import { createWorkerHandler } from './app.ts';
import { readWorkerEnv } from './config.ts';
import { runnableKind } from './kinds.ts';
import { MediaSlots } from './media-slots.ts';
import { pollReplicate, PollThrottle } from './poll.ts';
import { drain } from './run.ts';
import { log, ringerOf } from './wiring.ts';

const reader = new EnvReader();
const env = readSupabaseEnv(reader);
const settings = readWorkerEnv(reader);
const providers = readProviderConfig(reader, REPLICATE_VERSION_VARS, env.url);
reader.done();
const mediaSlots = new MediaSlots(settings.worker.mediaConcurrency);

const db = adminClient(env);
const rpc = rpcOf(db);
const storage = storageOf(db);
const polls = new PollThrottle();

// The runtime is about to stop this instance: stop claiming and hand over what runs.
const shutdown = new AbortController();
addEventListener('beforeunload', () => shutdown.abort('beforeunload'));

// The Edge Runtime's wall clock runs per instance from its first request, across all the
// invocations it serves: each drain works within what is left of it (run.ts, "Time").
let isolateStartedAt: number | null = null;

Deno.serve(createWorkerHandler({
  env,
  start(workerId, reason) {
    isolateStartedAt ??= performance.now(); // realScheduler's clock, which drain uses here
    const work: Promise<unknown>[] = [
      drain({
        rpc,
        storage,
        kindOf: (type) => runnableKind(type, providers),
        providers,
        mediaSlots,
        config: settings.worker,
        workerId,
        ring: ringerOf(env, workerId),
        log,
        signal: shutdown.signal,
        isolateStartedAt,
      }, reason),
    ];
    const token = providers.replicateApiToken;
    const poll = polls.maybe(() =>
      pollReplicate({
        rpc,
        settle: settleDepsOf(db, log),
        api: token ? { apiBase: providers.replicateApiBase, token } : null,
        log,
      })
    );
    if (poll) work.push(poll);
    return Promise.all(work);
  },
}));
