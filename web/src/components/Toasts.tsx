// Toasts: short messages when a job ends, read out by screen readers through one polite
// aria-live region that exists from the first render (regions added later are often missed).
import { createContext, type ReactNode, useCallback, useContext, useEffect, useRef, useState } from 'react';

export interface Toast {
  id: number;
  title: string;
  body?: string;
  tone: 'success' | 'danger' | 'info';
  /** Optional link, e.g. to the job. */
  href?: string;
}

type Push = (toast: Omit<Toast, 'id'>) => void;

const ToastContext = createContext<Push>(() => {});

export const useToast = () => useContext(ToastContext);

let seq = 0;

export function ToastProvider({ children }: { children: ReactNode }) {
  const [toasts, setToasts] = useState<Toast[]>([]);
  const timers = useRef(new Map<number, ReturnType<typeof setTimeout>>());

  const dismiss = useCallback((id: number) => {
    setToasts((list) => list.filter((t) => t.id !== id));
    clearTimeout(timers.current.get(id));
    timers.current.delete(id);
  }, []);

  const push = useCallback<Push>((toast) => {
    const id = ++seq;
    setToasts((list) => [...list.slice(-3), { ...toast, id }]);
    timers.current.set(id, setTimeout(() => dismiss(id), toast.tone === 'danger' ? 12000 : 8000));
  }, [dismiss]);

  useEffect(() => () => timers.current.forEach(clearTimeout), []);

  return (
    <ToastContext.Provider value={push}>
      {children}
      <div className="toasts" role="status" aria-live="polite" aria-relevant="additions text">
        {toasts.map((t) => (
          <div key={t.id} className={`toast toast--${t.tone}`} data-testid="toast">
            <div className="toast__text">
              <strong>{t.title}</strong>
              {t.body && <span>{t.body}</span>}
              {t.href && <a href={t.href}>View job</a>}
            </div>
            <button
              type="button"
              className="icon-button"
              onClick={() => dismiss(t.id)}
              aria-label={`Dismiss: ${t.title}`}
            >
              ×
            </button>
          </div>
        ))}
      </div>
    </ToastContext.Provider>
  );
}
