// The isolate's media slots: at most `size` media jobs process at once, across every invocation
// the isolate serves (job-worker/index.ts makes one, sized by SPOOL_WORKER_MEDIA_CONCURRENCY).
// A job waiting for a slot reports step 'queued' and gives up its place when it is aborted.
export class MediaSlots {
  private inUse = 0;
  private readonly waiters: (() => void)[] = [];

  constructor(readonly size: number) {}

  async run<T>(
    signal: AbortSignal,
    queued: () => Promise<void>,
    work: () => Promise<T>,
  ): Promise<T> {
    if (this.inUse >= this.size) {
      await queued();
      await new Promise<void>((resolve, reject) => {
        const waiter = () => {
          signal.removeEventListener('abort', onAbort);
          resolve();
        };
        const onAbort = () => {
          const i = this.waiters.indexOf(waiter);
          if (i >= 0) this.waiters.splice(i, 1);
          reject(new Error('aborted while queued'));
        };
        signal.addEventListener('abort', onAbort, { once: true });
        this.waiters.push(waiter);
      });
    } else {
      this.inUse++;
    }
    try {
      return await work();
    } finally {
      const next = this.waiters.shift();
      if (next) next(); // hand the slot over
      else this.inUse--;
    }
  }
}
