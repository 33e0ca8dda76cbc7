// The app shell: anonymous session, navigation, the user's live job list (and its toasts), and
// the views: start a job, one job, my jobs, my schedules, admin.
import { useCallback, useEffect, useRef, useState } from 'react';
import { Admin } from './components/Admin.tsx';
import { History } from './components/History.tsx';
import { JobCard, jobTitle } from './components/JobCard.tsx';
import { NewJob } from './components/NewJob.tsx';
import { PackForm } from './components/PackForm.tsx';
import { Schedules } from './components/Schedules.tsx';
import { Inbox, useInbox } from './components/Inbox.tsx';
import { ToastRegion, useToast } from './components/Toasts.tsx';
import { useHashRoute } from './hooks/useHashRoute.ts';
import { useJobList } from './hooks/useJob.ts';
import { useKinds } from './hooks/useKinds.ts';
import { useSession } from './hooks/useSession.ts';
import { getHealth, type Job } from './lib/jobs.ts';

const CURRENT_KEY = 'spool.currentJob';

/** Admins (app_metadata.spool_admin) see the Admin view once GET /jobs/health answers them. */
function useIsAdmin(flagged: boolean): boolean {
  const [ok, setOk] = useState(false);
  useEffect(() => {
    if (!flagged) return setOk(false);
    let alive = true;
    getHealth().then(() => alive && setOk(true), () => alive && setOk(false));
    return () => {
      alive = false;
    };
  }, [flagged]);
  return ok;
}

export function App() {
  const { session, user, error: sessionError } = useSession();
  const route = useHashRoute();
  const toast = useToast();
  const userId = user?.id ?? null;
  const isAdmin = useIsAdmin(user?.app_metadata?.spool_admin === true);
  const [current, setCurrent] = useState<Job | null>(null);
  const [currentId, setCurrentId] = useState<string | null>(() => sessionStorage.getItem(CURRENT_KEY));
  const main = useRef<HTMLElement>(null);
  // The kinds' labels name jobs in toasts; fetched once signed in (the endpoint wants a user).
  const { kinds } = useKinds(Boolean(user && session));
  const kindsRef = useRef(kinds);
  kindsRef.current = kinds;

  const onEnded = useCallback((job: { id: string; type: string; status: string; error?: Job['error'] }, message?: string) => {
    const label = jobTitle(job, kindsRef.current);
    const title = `${label} ${job.status === 'done' ? 'is done' : job.status === 'failed' ? 'failed' : 'was cancelled'}`;
    const reason = job.status === 'failed' && job.error && typeof job.error.message === 'string' ? job.error.message : undefined;
    toast({
      title,
      body: reason ?? (message && !message.toLowerCase().startsWith(label.toLowerCase()) ? message : undefined),
      tone: job.status === 'done' ? 'success' : job.status === 'failed' ? 'danger' : 'info',
      href: `#/jobs/${job.id}`,
    });
  }, [toast]);

  const inbox = useInbox(userId);
  const inboxRefresh = inbox.refresh;
  const onJobEnded = useCallback((job: Parameters<typeof onEnded>[0], message?: string) => {
    onEnded(job, message);
    void inboxRefresh(); // its notification row came in the same transaction
  }, [onEnded, inboxRefresh]);

  const list = useJobList(userId, onJobEnded);

  // Jobs that ended while the user was away: said once per page load, with the inbox a press away.
  const greeted = useRef(false);
  const openInbox = inbox.setOpen;
  useEffect(() => {
    if (greeted.current || !inbox.loaded) return;
    greeted.current = true;
    if (inbox.unread === 0) return;
    const unread = inbox.items.filter((n) => !n.read_at);
    const names = unread.slice(0, 3).map((n) => n.message).join(' · ');
    toast({
      title: inbox.unread === 1 ? '1 job ended while you were away' : `${inbox.unread} jobs ended while you were away`,
      body: unread.length > 3 ? `${names} · …` : names,
      tone: unread.some((n) => n.status === 'failed') ? 'danger' : 'info',
      action: { label: 'Open the inbox', run: () => openInbox(true) },
    });
  }, [inbox.loaded, inbox.unread, inbox.items, toast, openInbox]);

  // After Start, focus moves to the new job's card (not to <body> when the form re-renders).
  const [focusJob, setFocusJob] = useState<string | null>(null);
  useEffect(() => {
    if (!focusJob) return;
    const card = document.querySelector<HTMLElement>(`[data-job-id="${CSS.escape(focusJob)}"]`);
    if (!card) return; // rendered on the next pass; this effect runs again then
    if (!card.hasAttribute('tabindex')) card.setAttribute('tabindex', '-1');
    card.focus();
    card.scrollIntoView({ block: 'nearest' });
    setFocusJob(null);
  });

  const started = (job: Job) => {
    setCurrent(job);
    setCurrentId(job.id);
    sessionStorage.setItem(CURRENT_KEY, job.id);
    list.apply(job);
    setFocusJob(job.id);
  };

  // Move focus to the new view for keyboard and screen-reader users.
  const first = useRef(true);
  useEffect(() => {
    if (first.current) {
      first.current = false;
      return;
    }
    setFocusJob(null); // a card not shown by then is not one to jump to later
    main.current?.focus();
  }, [route]);

  const nav = [
    { href: '#/', label: 'New job', active: route.name === 'new' },
    { href: '#/jobs', label: 'My jobs', active: route.name === 'history' || route.name === 'job' },
    { href: '#/schedules', label: 'Schedules', active: route.name === 'schedules' },
    ...(isAdmin ? [{ href: '#/admin', label: 'Admin', active: route.name === 'admin' }] : []),
  ];

  return (
    <>
      {/* First focusable on the page. A plain #main would change the hash route (to "Not found"):
          focus moves to <main> instead, where the next Tab goes on. */}
      <a
        className="skip-link"
        href="#main"
        onClick={(e) => {
          e.preventDefault();
          main.current?.focus();
          main.current?.scrollIntoView();
        }}
      >
        Skip to content
      </a>
      <header className="topbar">
        <a className="brand" href="#/" aria-label="Spool, home">
          <svg viewBox="0 0 24 24" aria-hidden="true" focusable="false"><circle cx="12" cy="12" r="10" /><circle cx="12" cy="12" r="4" className="brand__hole" /></svg>
          Spool
        </a>
        <nav aria-label="Main">
          <ul>
            {nav.map((n) => (
              <li key={n.href}>
                <a href={n.href} aria-current={n.active ? 'page' : undefined}>{n.label}</a>
              </li>
            ))}
          </ul>
        </nav>
        <p className="who" data-testid="session">
          {user
            ? (
              <>
                <span className={`dot dot--${list.live}`} aria-hidden="true" />
                <span className="who__text">
                  {user.is_anonymous ? 'Guest' : user.email ?? 'Signed in'} · {user.id.slice(0, 8)}
                  <span className="visually-hidden">
                    {list.live === 'live' ? ', live updates on' : ', checking for updates every 3 seconds'}
                  </span>
                </span>
              </>
            )
            : sessionError ? 'Not signed in' : 'Signing in…'}
        </p>
        {user && session && <Inbox inbox={inbox} kinds={kinds} />}
      </header>
      <ToastRegion />

      <main id="main" ref={main} tabIndex={-1}>
        {sessionError && (
          <div className="card error" role="alert">
            <h2>Could not sign in</h2>
            <p>{sessionError}</p>
            <button type="button" className="button" onClick={() => location.reload()}>Try again</button>
          </div>
        )}
        {!sessionError && (!user || !session) && <p className="muted" aria-busy="true">Signing you in…</p>}
        {user && session && (
          <>
            {route.name === 'new' && (
              <div className="workspace">
                <div className="workspace__main">
                  <NewJob userId={user.id} accessToken={session.access_token} onStarted={started} />
                  <PackForm onStarted={started} />
                </div>
                <div className="workspace__side">
                  {currentId
                    ? <JobCard key={currentId} id={currentId} initial={current} onChange={list.apply} />
                    : (
                      <div className="card placeholder">
                        <h2>Your job</h2>
                        <p className="muted">Start a job and follow it here: live status, progress, a before/after preview and the download.</p>
                      </div>
                    )}
                </div>
              </div>
            )}
            {route.name === 'history' && <History list={list} />}
            {route.name === 'schedules' && <Schedules />}
            {route.name === 'job' && (
              <div className="single">
                <p><a href="#/jobs">← My jobs</a></p>
                <JobCard key={route.id} id={route.id} initial={list.jobs.find((j) => j.id === route.id) ?? null} onChange={list.apply} detailed />
              </div>
            )}
            {route.name === 'admin' && (isAdmin
              ? <Admin userId={userId} />
              : <div className="card"><h2>Admin</h2><p className="muted">This view is for Spool admins.</p></div>)}
            {route.name === 'unknown' && (
              <div className="card"><h2>Not found</h2><p>There is nothing at {route.path}. <a href="#/">Start a job</a>.</p></div>
            )}
          </>
        )}
      </main>
    </>
  );
}
