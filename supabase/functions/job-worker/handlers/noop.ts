// noop: does nothing, for tests and benchmarks (enabled only with SPOOL_ENABLE_NOOP=true).
// `sleep_ms` holds the job that long (aborted with the job); `fail` fails it on purpose.
import { type Handler, JobError } from '../../_jobs/kind.ts';
import type { NoopInput } from '../../_jobs/kinds/noop.ts';

const handler: Handler<NoopInput> = async (ctx) => {
  const { sleep_ms: sleepMs, fail } = ctx.input;
  if (sleepMs > 0) {
    await new Promise<void>((resolve, reject) => {
      const onAbort = () => {
        clearTimeout(timer);
        reject(new Error('noop aborted'));
      };
      const timer = setTimeout(() => {
        ctx.signal.removeEventListener('abort', onAbort);
        resolve();
      }, sleepMs);
      ctx.signal.addEventListener('abort', onAbort, { once: true });
    });
  }
  if (fail === 'retryable') {
    throw new JobError('noop_failed', 'noop failed on purpose (retryable)', true);
  }
  if (fail === 'permanent') {
    throw new JobError('noop_failed', 'noop failed on purpose (permanent)', false);
  }
  return { output: { files: [] } };
};

export default handler;
