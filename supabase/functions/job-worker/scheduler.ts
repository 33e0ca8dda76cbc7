// Time as the drain loop sees it: one injected scheduler for reading the clock and for every wait
// (idle polls, RPC retry backoff, the heartbeat ticker, the release wait, group-commit deferral).
// Production uses realScheduler (performance.now() and timers); tests use the virtual one in
// tests/support/virtual-scheduler.ts, which moves only when the test advances it.

export interface Scheduler {
  /** Milliseconds on a monotonic clock; only differences are used. */
  now(): number;
  /** Wall-clock milliseconds since the epoch (to compare with timestamps from the database). */
  date(): number;
  /**
   * Resolves after `ms`, or earlier when `wake` settles (either way); never leaves a timer behind.
   * `ms` <= 0 still yields to the event loop (a macrotask, not a microtask).
   */
  sleep(ms: number, wake?: Promise<unknown>): Promise<void>;
  /** Calls `fn` every `ms` until the returned function is called. */
  every(ms: number, fn: () => void): () => void;
}

/** setTimeout's longest delay (2^31 - 1 ms, ~24.8 days): a longer one fires at once. */
const MAX_TIMER_MS = 2 ** 31 - 1;

export const realScheduler: Scheduler = {
  now: () => performance.now(),
  date: () => Date.now(),
  sleep(ms, wake) {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const delay = Math.min(MAX_TIMER_MS, Math.max(0, ms));
    const timeout = new Promise<void>((resolve) => (timer = setTimeout(resolve, delay)));
    const race = wake ? Promise.race([timeout, wake.then(() => {}, () => {})]) : timeout;
    return race.finally(() => clearTimeout(timer));
  },
  every(ms, fn) {
    const timer = setInterval(fn, ms);
    return () => clearInterval(timer);
  },
};
