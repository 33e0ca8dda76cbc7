// Toasts: short messages when a job ends, read out by screen readers through one polite
// aria-live region that exists from the first render (regions added later are often missed).
// Identical toasts (same title, text and tone) collapse into one that says how many: "… ×3".
// ToastRegion is where they show: App puts it after the header, so the skip link stays the first
// thing to focus. Wide screens float them at the bottom right; narrow ones (styles.css) keep them
// in the page's flow under the header, so a toast never covers a button (the Download).
import { createContext, type ReactNode, useCallback, useContext, useEffect, useRef, useState } from 'react';

export interface Toast {
  id: number;
  title: string;
  body?: string;
  tone: 'success' | 'danger' | 'info';
  /** Optional link, e.g. to the job. */
  href?: string;
  /** The link's text (default "View job"). */
  linkLabel?: string;
  /** Optional button, e.g. "Open the inbox". */
  action?: { label: string; run: () => void };
  /** How many identical toasts this one stands for. */
  count: number;
}

export type ToastInput = Omit<Toast, 'id' | 'count'>;
type Push = (toast: ToastInput) => void;

interface ToastStore {
  push: Push;
  toasts: Toast[];
  dismiss: (id: number) => void;
}

const ToastContext = createContext<ToastStore>({ push: () => {}, toasts: [], dismiss: () => {} });

export const useToast = (): Push => useContext(ToastContext).push;

let seq = 0;

const sameToast = (a: ToastInput, b: ToastInput) =>
  a.title === b.title && (a.body ?? '') === (b.body ?? '') && a.tone === b.tone;

/** How long a toast stays; a collapsed one starts over on each repeat. */
const lifetime = (tone: Toast['tone']) => (tone === 'danger' ? 12000 : 8000);

export function ToastProvider({ children }: { children: ReactNode }) {
  const [toasts, setToasts] = useState<Toast[]>([]);
  const timers = useRef(new Map<number, ReturnType<typeof setTimeout>>());
  const current = useRef<Toast[]>([]);
  current.current = toasts;

  const dismiss = useCallback((id: number) => {
    setToasts((list) => list.filter((t) => t.id !== id));
    clearTimeout(timers.current.get(id));
    timers.current.delete(id);
  }, []);

  const arm = useCallback((id: number, tone: Toast['tone']) => {
    clearTimeout(timers.current.get(id));
    timers.current.set(id, setTimeout(() => dismiss(id), lifetime(tone)));
  }, [dismiss]);

  const push = useCallback<Push>((toast) => {
    const same = current.current.find((t) => sameToast(t, toast));
    if (same) {
      // One toast "… ×n": the link goes to the list when the repeats are of different jobs.
      const href = same.href === toast.href ? same.href : '#/jobs';
      const linkLabel = same.href === toast.href ? same.linkLabel : 'See the list';
      const next = { ...same, href, linkLabel, count: same.count + 1 };
      current.current = current.current.map((t) => (t.id === same.id ? next : t));
      setToasts((list) => list.map((t) => (t.id === same.id ? { ...t, href, linkLabel, count: t.count + 1 } : t)));
      arm(same.id, same.tone);
      return;
    }
    const id = ++seq;
    const added = { ...toast, id, count: 1 };
    current.current = [...current.current.slice(-3), added];
    setToasts((list) => {
      const dropped = list.slice(0, Math.max(0, list.length - 3));
      for (const t of dropped) {
        clearTimeout(timers.current.get(t.id));
        timers.current.delete(t.id);
      }
      return [...list.slice(-3), added];
    });
    arm(id, toast.tone);
  }, [arm]);

  useEffect(() => () => timers.current.forEach(clearTimeout), []);

  return <ToastContext.Provider value={{ push, toasts, dismiss }}>{children}</ToastContext.Provider>;
}

/** The toasts, in one polite live region (rendered from the first paint, empty or not). */
export function ToastRegion() {
  const { toasts, dismiss } = useContext(ToastContext);
  return (
    <div className="toasts" role="status" aria-live="polite" aria-relevant="additions text" data-testid="toasts">
      {toasts.map((t) => (
        <div key={t.id} className={`toast toast--${t.tone}`} data-testid="toast">
          {/* First in the toast (shown last, styles.css): a toast's first button dismisses it. */}
          <button
            type="button"
            className="icon-button toast__dismiss"
            onClick={() => dismiss(t.id)}
            aria-label={`Dismiss: ${t.title}`}
          >
            ×
          </button>
          <div className="toast__text">
            <strong>
              {t.title}
              {t.count > 1 && <span className="toast__count" data-testid="toast-count"> ×{t.count}</span>}
            </strong>
            {t.body && <span>{t.body}</span>}
            {t.href && <a href={t.href}>{t.linkLabel ?? 'View job'}</a>}
            {t.action && (
              <button
                type="button"
                className="link-button"
                onClick={() => {
                  t.action!.run();
                  dismiss(t.id);
                }}
              >
                {t.action.label}
              </button>
            )}
          </div>
        </div>
      ))}
    </div>
  );
}
