// Anonymous sign-in on first visit; supabase-js keeps the session in localStorage and refreshes
// it, so a reload (or a later visit) is the same user with the same jobs.
import type { Session, User } from '@supabase/supabase-js';
import { useEffect, useState } from 'react';
import { supabase } from '../lib/supabase.ts';

let signingIn: Promise<Session> | null = null;

/** The current session, signing in anonymously when there is none (once, however many callers). */
export async function ensureSession(): Promise<Session> {
  const { data } = await supabase.auth.getSession();
  if (data.session) return data.session;
  signingIn ??= (async () => {
    try {
      const { data: signed, error } = await supabase.auth.signInAnonymously();
      if (error || !signed.session) {
        throw new Error(
          error?.message
            ? `Could not start a session: ${error.message}`
            : 'Could not start a session.',
        );
      }
      return signed.session;
    } finally {
      signingIn = null;
    }
  })();
  return await signingIn;
}

export interface SessionState {
  session: Session | null;
  /** The user as Auth reports it now (app_metadata included), once checked. */
  user: User | null;
  error: string | null;
}

export function useSession(): SessionState {
  const [state, setState] = useState<SessionState>({ session: null, user: null, error: null });

  useEffect(() => {
    let alive = true;
    const { data: sub } = supabase.auth.onAuthStateChange((_event, session) => {
      if (!alive) return;
      // Token refreshes and sign-outs arrive here; the user object comes from getUser below.
      setState((s) => ({ ...s, session }));
    });
    (async () => {
      try {
        let session = await ensureSession();
        // Ask Auth who this is now: app_metadata (e.g. spool_admin) may have changed since the
        // token was issued, and a stored session may belong to a user that no longer exists.
        let { data, error } = await supabase.auth.getUser();
        if (error && (error.status === 401 || error.status === 403 || error.status === 404)) {
          await supabase.auth.signOut({ scope: 'local' });
          session = await ensureSession();
          ({ data, error } = await supabase.auth.getUser());
        }
        if (!alive) return;
        if (error || !data.user) throw new Error(error?.message ?? 'Could not read the user.');
        setState({ session, user: data.user, error: null });
      } catch (err) {
        if (alive) {
          setState((s) => ({ ...s, error: err instanceof Error ? err.message : String(err) }));
        }
      }
    })();
    return () => {
      alive = false;
      sub.subscription.unsubscribe();
    };
  }, []);

  return state;
}
