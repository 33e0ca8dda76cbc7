// A throwaway Spool database for the bench, made with the local platform (local/tools/db.mjs) the
// same way `npm start` makes its own: same Postgres settings (fsync on), same bootstrap, same
// `supabase db push` of supabase/migrations. It lives in a fresh temporary folder on a free port
// and is deleted afterwards, so a bench never touches the developer's `npm start` cluster.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as db from '../local/tools/db.mjs';

/**
 * Starts the cluster and applies the migrations. Returns { adminUrl, claimerUrl, port, dir, stop }.
 * `stop()` stops the cluster and removes its folder (idempotent; safe from a signal handler).
 */
export async function startBenchDatabase({ log = console.log, fsync = true } = {}) {
  db.ensurePackages();
  db.ensureExtensions();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'spool-bench-'));
  let stopped = false;
  const stop = () => {
    if (stopped) return;
    stopped = true;
    try {
      db.stopCluster({ dir }, { mode: 'fast', quiet: true });
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  };
  try {
    const port = await db.freePort();
    log(`starting a throwaway cluster in ${dir} on port ${port} (fsync ${fsync ? 'on' : 'off'}, as npm start)`);
    await db.startCluster({ dir, port, fsync });
    await db.bootstrap({ port, dir });
    await db.pushMigrations({ port });
    return { adminUrl: db.superuserUrl(port), claimerUrl: db.postgresUrl(port), port, dir, stop };
  } catch (err) {
    stop();
    throw err;
  }
}

export const PlatformError = db.PlatformError;
