// A virtual clock for the drain loop (job-worker/scheduler.ts): time moves only when the test says
// so, so a test states "after 50 ms exactly 4 claims were made" and it holds on any machine, busy
// or not. Timers fire in order of due time (then of creation); between two timers every promise
// chain that waits only on other promises (the fake queue, the fake handlers) runs to its end.
//
//   advance(ms)       move the clock by ms, firing every timer due on the way
//   run(promise)      move the clock timer by timer until the promise settles; returns its value
//   until(predicate)  move the clock timer by timer until the predicate holds
//
// run and until fail (instead of hanging) when nothing is scheduled and the awaited state has
// not come: that is a deadlock, not slowness.
import type { Scheduler } from '../../job-worker/scheduler.ts';

interface Timer {
  at: number;
  seq: number;
  fire(): void;
  /** Repeats every this many ms (every()). */
  interval?: number;
}

/** One real macrotask: every microtask queued so far, and those they queue, runs first. */
const macrotask = () => new Promise<void>((resolve) => setTimeout(resolve, 0));

export class VirtualScheduler implements Scheduler {
  private t = 0;
  private seq = 0;
  private timers: Timer[] = [];

  /** `epoch`: what date() reads at virtual time 0. */
  constructor(private readonly epoch = Date.UTC(2026, 0, 1)) {}

  now(): number {
    return this.t;
  }

  date(): number {
    return this.epoch + this.t;
  }

  sleep(ms: number, wake?: Promise<unknown>): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = this.add(this.t + Math.max(0, ms), () => resolve());
      wake?.then(() => {}, () => {}).then(() => {
        this.remove(timer);
        resolve();
      });
    });
  }

  every(ms: number, fn: () => void): () => void {
    const interval = Math.max(1, ms);
    const timer = this.add(this.t + interval, fn, interval);
    return () => this.remove(timer);
  }

  /** Timers not yet fired (a finished drain leaves none). */
  get pending(): number {
    return this.timers.length;
  }

  /** Runs every promise chain that is not waiting for a timer. */
  async settle(): Promise<void> {
    await macrotask();
    await macrotask();
  }

  /** Moves the clock forward by `ms`, firing the timers due on the way, in order. */
  async advance(ms: number): Promise<void> {
    const target = this.t + ms;
    while (true) {
      await this.settle();
      const next = this.next();
      if (!next || next.at > target) break;
      this.fire(next);
    }
    this.t = target;
    await this.settle();
  }

  /** Moves the clock timer by timer until `promise` settles (at most `limitMs` of virtual time). */
  async run<T>(promise: Promise<T>, limitMs = 3_600_000): Promise<T> {
    let settled = false;
    promise.then(() => (settled = true), () => (settled = true));
    await this.until(() => settled, limitMs, 'the promise');
    return promise;
  }

  /** Moves the clock timer by timer until `predicate()` holds (at most `limitMs` of virtual time). */
  async until(
    predicate: () => boolean,
    limitMs = 3_600_000,
    what = 'the awaited state',
  ): Promise<void> {
    const limit = this.t + limitMs;
    while (true) {
      await this.settle();
      if (predicate()) return;
      const next = this.next();
      if (!next) {
        throw new Error(
          `deadlock at t=${this.t} ms: nothing is scheduled and ${what} has not come`,
        );
      }
      if (next.at > limit) {
        throw new Error(`${what} did not come within ${limitMs} ms of virtual time`);
      }
      this.fire(next);
    }
  }

  private add(at: number, fire: () => void, interval?: number): Timer {
    const timer: Timer = { at, seq: this.seq++, fire, interval };
    this.timers.push(timer);
    return timer;
  }

  private remove(timer: Timer) {
    const i = this.timers.indexOf(timer);
    if (i >= 0) this.timers.splice(i, 1);
  }

  private next(): Timer | undefined {
    let best: Timer | undefined;
    for (const t of this.timers) {
      if (!best || t.at < best.at || (t.at === best.at && t.seq < best.seq)) best = t;
    }
    return best;
  }

  private fire(timer: Timer) {
    this.t = Math.max(this.t, timer.at);
    this.remove(timer);
    if (timer.interval !== undefined) {
      timer.at += timer.interval;
      timer.seq = this.seq++;
      this.timers.push(timer);
    }
    timer.fire();
  }
}
