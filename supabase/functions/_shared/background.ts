// Work that outlives the response. On Supabase (and the local Edge Runtime) EdgeRuntime.waitUntil
// keeps the instance alive until the promise settles, within the wall clock. Without it (unit
// tests, plain Deno) the work is awaited before the response is sent.

interface EdgeRuntimeLike {
  waitUntil(promise: Promise<unknown>): unknown;
}

/** Keeps `work` alive after the response: EdgeRuntime.waitUntil, or awaiting it without one. */
export async function inBackground(work: Promise<unknown>): Promise<void> {
  const runtime = (globalThis as { EdgeRuntime?: EdgeRuntimeLike }).EdgeRuntime;
  if (runtime && typeof runtime.waitUntil === 'function') {
    runtime.waitUntil(work);
    return;
  }
  await work;
}
