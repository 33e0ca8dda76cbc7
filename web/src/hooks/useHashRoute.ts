// Hash routes (#/, #/jobs, #/jobs/<id>, #/schedules, #/admin): any static host serves them, no rewrites.
import { useEffect, useState } from 'react';

export type Route =
  | { name: 'new' }
  | { name: 'history' }
  | { name: 'job'; id: string }
  | { name: 'schedules' }
  | { name: 'admin' }
  | { name: 'unknown'; path: string };

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function parseRoute(hash: string): Route {
  const path = hash.replace(/^#/, '') || '/';
  if (path === '/' ) return { name: 'new' };
  if (path === '/jobs') return { name: 'history' };
  if (path === '/schedules') return { name: 'schedules' };
  if (path === '/admin') return { name: 'admin' };
  const m = /^\/jobs\/([^/]+)$/.exec(path);
  if (m && UUID.test(m[1])) return { name: 'job', id: m[1].toLowerCase() };
  return { name: 'unknown', path };
}

export function useHashRoute(): Route {
  const [route, setRoute] = useState(() => parseRoute(location.hash));
  useEffect(() => {
    const onChange = () => setRoute(parseRoute(location.hash));
    window.addEventListener('hashchange', onChange);
    return () => window.removeEventListener('hashchange', onChange);
  }, []);
  return route;
}
