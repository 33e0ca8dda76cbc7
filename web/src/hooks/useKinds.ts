// The job kinds, fetched once per page session (GET /jobs/kinds, lib/kinds.ts fetchKinds) and
// shared by every component that asks: the new-job form builds itself from them, job cards,
// the history and the admin page take the kinds' labels from them. The kinds and the providers
// are fixed for the life of a deployment, so one answer serves the whole session; a failed fetch
// is kept (every user of the hook shows it) until retry() asks again.
import { useCallback, useEffect, useSyncExternalStore } from 'react';
import type { ApiError } from '../lib/api-error.ts';
import { toApiError } from '../lib/api-error.ts';
import { fetchKinds, type JobKind } from '../lib/kinds.ts';
import { supabase } from '../lib/supabase.ts';

export type KindsState =
  | { status: 'idle' | 'loading'; kinds: null; error: null }
  | { status: 'ready'; kinds: JobKind[]; error: null }
  | { status: 'error'; kinds: null; error: ApiError };

let state: KindsState = { status: 'idle', kinds: null, error: null };
const listeners = new Set<() => void>();

function set(next: KindsState) {
  state = next;
  for (const l of listeners) l();
}

function load() {
  if (state.status === 'loading' || state.status === 'ready') return;
  set({ status: 'loading', kinds: null, error: null });
  fetchKinds(supabase).then(
    (kinds) => set({ status: 'ready', kinds, error: null }),
    async (err: unknown) => set({ status: 'error', kinds: null, error: await toApiError(err) }),
  );
}

function subscribe(listener: () => void) {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

/**
 * The kinds and how fetching them went. `enabled` false (no session yet: the endpoint wants the
 * user's token) leaves an idle state idle. `retry()` fetches again after an error.
 */
export function useKinds(enabled = true): KindsState & { retry: () => void } {
  const current = useSyncExternalStore(subscribe, () => state);
  useEffect(() => {
    if (enabled && state.status === 'idle') load();
  }, [enabled]);
  const retry = useCallback(() => {
    if (state.status === 'error') {
      set({ status: 'idle', kinds: null, error: null });
      load();
    }
  }, []);
  return { ...current, retry };
}
