// The isolate's media slots (job-worker/media-slots.ts): at most `size` media jobs process at
// once across the invocations of one isolate; a waiter reports 'queued' and gives its place up
// when aborted.
import assert from 'node:assert/strict';
import { MediaSlots } from '../job-worker/media-slots.ts';

Deno.test('no more than `size` jobs hold a media slot at once; each waiter gets one in turn', async () => {
  const slots = new MediaSlots(2);
  let running = 0;
  let most = 0;
  const queued: number[] = [];
  const gates = Array.from({ length: 5 }, () => Promise.withResolvers<void>());
  const jobs = gates.map((gate, i) =>
    slots.run(new AbortController().signal, () => {
      queued.push(i);
      return Promise.resolve();
    }, async () => {
      running++;
      most = Math.max(most, running);
      await gate.promise;
      running--;
      return i;
    })
  );
  for (const gate of gates) {
    await Promise.resolve();
    gate.resolve();
  }
  assert.deepEqual(await Promise.all(jobs), [0, 1, 2, 3, 4]);
  assert.equal(most, 2);
  assert.deepEqual(queued, [2, 3, 4], 'the jobs past the second waited, and said so');
});

Deno.test('a job aborted while waiting for a slot leaves the queue and never runs', async () => {
  const slots = new MediaSlots(1);
  const hold = Promise.withResolvers<void>();
  const first = slots.run(
    new AbortController().signal,
    () => Promise.resolve(),
    () => hold.promise,
  );
  const abort = new AbortController();
  let ran = false;
  const second = slots.run(abort.signal, () => Promise.resolve(), () => {
    ran = true;
    return Promise.resolve();
  });
  await Promise.resolve();
  abort.abort('cancelled');
  await assert.rejects(second, /aborted while queued/);
  hold.resolve();
  await first;
  const third = await slots.run(
    new AbortController().signal,
    () => Promise.resolve(),
    () => Promise.resolve('ran'),
  );
  assert.equal(third, 'ran', 'the slot was handed on, not lost');
  assert.equal(ran, false);
});
