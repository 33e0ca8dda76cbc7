// The inbox: a header button with the unread count, opening a panel of the user's notifications
// (newest first: what ended, when, a link to the job), each marked read on its own or all at
// once (lib/notifications.ts). useInbox owns the state; App refreshes it whenever a job of the
// user ends (the jobs channel of hooks/useJob.ts delivers those, and their notifications rows)
// and when the tab becomes visible again. Escape or a click outside closes the panel and focus
// returns to the button.
import { useCallback, useEffect, useId, useRef, useState } from 'react';
import { kindLabel } from '../lib/kinds.ts';
import type { JobKind } from '../lib/kinds.ts';
import { countUnread, listNotifications, markRead, type Notification } from '../lib/notifications.ts';
import { Time } from './ui.tsx';

export interface InboxHandle {
  items: Notification[];
  unread: number;
  /** False until the first load answered. */
  loaded: boolean;
  error: string | null;
  open: boolean;
  setOpen: (open: boolean) => void;
  refresh: () => Promise<void>;
  markRead: (ids: string[] | null) => Promise<void>;
}

/** The inbox of `userId` (null: signed out, nothing loads). */
export function useInbox(userId: string | null): InboxHandle {
  const [items, setItems] = useState<Notification[]>([]);
  const [unread, setUnread] = useState(0);
  const [loaded, setLoaded] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [open, setOpen] = useState(false);
  const seq = useRef(0);

  const refresh = useCallback(async () => {
    if (!userId) return;
    const mine = ++seq.current;
    try {
      const [list, count] = await Promise.all([listNotifications(), countUnread()]);
      if (mine !== seq.current) return; // a later refresh answers instead
      setItems(list);
      setUnread(count);
      setError(null);
      setLoaded(true);
    } catch (err) {
      if (mine === seq.current) setError(err instanceof Error ? err.message : String(err));
    }
  }, [userId]);

  useEffect(() => {
    setItems([]);
    setUnread(0);
    setLoaded(false);
    if (!userId) return;
    void refresh();
    const onVisible = () => {
      if (!document.hidden) void refresh();
    };
    document.addEventListener('visibilitychange', onVisible);
    return () => document.removeEventListener('visibilitychange', onVisible);
  }, [userId, refresh]);

  const mark = useCallback(async (ids: string[] | null) => {
    // Shown read at once; the refresh after the call is the truth.
    const now = new Date().toISOString();
    setItems((list) => list.map((n) => (!n.read_at && (!ids || ids.includes(n.id)) ? { ...n, read_at: now } : n)));
    setUnread((u) => (ids ? Math.max(0, u - ids.length) : 0));
    try {
      await markRead(ids);
    } catch (err) {
      setError(err instanceof Error ? err.message : String(err));
    }
    await refresh();
  }, [refresh]);

  return { items, unread, loaded, error, open, setOpen, refresh, markRead: mark };
}

const TONE: Record<string, string> = { done: 'success', failed: 'danger', cancelled: 'neutral' };

export function Inbox({ inbox, kinds }: { inbox: InboxHandle; kinds: readonly JobKind[] | null }) {
  const { items, unread, open, setOpen } = inbox;
  const panelId = useId();
  const titleId = useId();
  const button = useRef<HTMLButtonElement>(null);
  const panel = useRef<HTMLDivElement>(null);
  const wasOpen = useRef(false);
  /** Whether closing returns focus to the button (not after following a link: the view takes it). */
  const refocus = useRef(true);

  useEffect(() => {
    if (open) {
      void inbox.refresh();
      panel.current?.focus();
    } else if (wasOpen.current && refocus.current) {
      button.current?.focus();
    }
    refocus.current = true;
    wasOpen.current = open;
    // Only opening and closing matter here.
  }, [open]);

  useEffect(() => {
    if (!open) return;
    const onKey = (e: KeyboardEvent) => {
      if (e.key === 'Escape') setOpen(false);
    };
    const onPointer = (e: PointerEvent) => {
      const t = e.target as Node;
      if (!panel.current?.contains(t) && !button.current?.contains(t)) {
        refocus.current = false;
        setOpen(false);
      }
    };
    document.addEventListener('keydown', onKey);
    document.addEventListener('pointerdown', onPointer);
    return () => {
      document.removeEventListener('keydown', onKey);
      document.removeEventListener('pointerdown', onPointer);
    };
  }, [open, setOpen]);

  return (
    <div className="inbox">
      <button
        ref={button}
        type="button"
        className="inbox__button"
        aria-expanded={open}
        aria-controls={panelId}
        onClick={() => setOpen(!open)}
        data-testid="inbox-button"
      >
        <svg viewBox="0 0 24 24" aria-hidden="true" focusable="false">
          <path d="M6 9a6 6 0 0 1 12 0c0 5 2 6.5 2 6.5H4S6 14 6 9m4 10a2 2 0 0 0 4 0" />
        </svg>
        Inbox
        <span className="visually-hidden">,</span>
        {unread > 0
          ? (
            <>
              <span className="inbox__count" data-testid="inbox-count">{unread > 99 ? '99+' : unread}</span>
              <span className="visually-hidden">unread</span>
            </>
          )
          : <span className="visually-hidden">nothing unread</span>}
      </button>
      {open && (
        <div
          ref={panel}
          id={panelId}
          className="inbox__panel"
          role="region"
          aria-labelledby={titleId}
          tabIndex={-1}
          data-testid="inbox"
        >
          <div className="inbox__head">
            <h2 id={titleId}>Inbox</h2>
            <button
              type="button"
              className="button button--quiet"
              disabled={unread === 0}
              onClick={() => void inbox.markRead(null)}
              data-testid="inbox-mark-all"
            >
              Mark all read
            </button>
          </div>
          {inbox.error && <p className="error" role="alert">{inbox.error}</p>}
          {!inbox.loaded && !inbox.error && <p className="muted">Loading…</p>}
          {inbox.loaded && items.length === 0 && <p className="muted">Nothing yet: when a job of yours ends, it shows here.</p>}
          {items.length > 0 && (
            <ul className="inbox__list">
              {items.map((n) => (
                <li
                  key={n.id}
                  className={`inbox__item inbox__item--${TONE[n.status] ?? 'neutral'}${n.read_at ? '' : ' inbox__item--unread'}`}
                  data-testid="inbox-item"
                  data-unread={n.read_at ? undefined : 'true'}
                >
                  <a
                    href={`#/jobs/${n.job_id}`}
                    className="inbox__link"
                    onClick={() => {
                      if (!n.read_at) void inbox.markRead([n.id]);
                      refocus.current = false;
                      setOpen(false);
                    }}
                  >
                    <span className="inbox__message">
                      {!n.read_at && <span className="visually-hidden">Unread: </span>}
                      {n.message || `${kindLabel(kinds, n.job_type)} ${n.status}`}
                    </span>
                    <span className="inbox__when"><Time iso={n.created_at} /></span>
                  </a>
                  {!n.read_at && (
                    <button
                      type="button"
                      className="button button--quiet inbox__mark"
                      onClick={() => void inbox.markRead([n.id])}
                      aria-label={`Mark read: ${n.message}`}
                    >
                      Mark read
                    </button>
                  )}
                </li>
              ))}
            </ul>
          )}
          {unread > items.filter((n) => !n.read_at).length && (
            <p className="muted inbox__more">
              {unread - items.filter((n) => !n.read_at).length} older unread not listed; “Mark all read” marks them too.
            </p>
          )}
        </div>
      )}
    </div>
  );
}
