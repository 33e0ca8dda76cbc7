// Test harness for the gateway contract tests: a database (the one local/tools/test.mjs passes in
// SPOOL_TEST_DB_PORT, or a throwaway cluster of our own), a gateway on a free port over a temp
// state folder, users in auth.users, their access tokens, and supabase-js clients.

import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { createClient } from '@supabase/supabase-js';
import WebSocket from 'ws';
import {
  bootstrap,
  ensureExtensions,
  ensurePackages,
  freePort,
  pushMigrations,
  ROOT,
  startCluster,
  stopCluster,
  superuserUrl,
} from '../../tools/db.mjs';
import { startGateway } from '../server.mjs';

/**
 * Starts what a suite needs, with the API keys of `keyMode` ('new' | 'legacy'; default SPOOL_KEYS,
 * local/standins/keys.mjs). Returns { url, keys, gateway, admin (pg.Pool as superuser),
 * stateDir, makeUser(), client(token?), serviceClient(), close() }.
 */
export async function startStack({ quiet = !process.env.SPOOL_TEST_VERBOSE, keyMode } = {}) {
  let cluster = null;
  let dbPort = Number(process.env.SPOOL_TEST_DB_PORT || 0);
  let clusterDir = null;
  if (!dbPort) {
    ensurePackages();
    ensureExtensions();
    clusterDir = fs.mkdtempSync(path.join(os.tmpdir(), 'spool-gw-db-'));
    dbPort = await freePort();
    const log = console.log;
    if (quiet) console.log = () => {};
    try {
      cluster = await startCluster({ dir: clusterDir, port: dbPort, fsync: false });
      await bootstrap(cluster);
      await pushMigrations({ port: dbPort });
    } finally {
      console.log = log;
    }
  }
  const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'spool-gw-state-'));
  const port = await freePort();
  const gateway = await startGateway({ root: ROOT, stateDir, port, dbPort, quiet, keyMode });
  const admin = new pg.Pool({ connectionString: superuserUrl(dbPort), max: 2 });
  const url = gateway.url;
  const keys = gateway.keys;

  const clientOptions = {
    auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false },
    // realtime-js needs a WebSocket; Node 20 has none built in.
    realtime: globalThis.WebSocket ? {} : { transport: WebSocket },
  };

  return {
    url,
    keys,
    gateway,
    admin,
    stateDir,
    dbPort,

    /** A new anonymous user in auth.users, a session, and an access token for it, shaped as Supabase Auth's. */
    async makeUser({ expiresIn = 3600 } = {}) {
      const id = crypto.randomUUID();
      await admin.query(
        `insert into auth.users (id, aud, role, email, is_anonymous, created_at, updated_at, raw_app_meta_data, raw_user_meta_data)
         values ($1, 'authenticated', 'authenticated', null, true, now(), now(), '{}', '{}')`,
        [id],
      );
      // The session the token names (Auth refuses a token whose session was signed out).
      const sessionId = crypto.randomUUID();
      await admin.query('insert into auth.sessions (id, user_id) values ($1, $2)', [sessionId, id]);
      const iat = Math.floor(Date.now() / 1000);
      const token = await keys.sign({
        iss: `${url}/auth/v1`,
        sub: id,
        aud: 'authenticated',
        exp: iat + expiresIn,
        iat,
        email: '',
        phone: '',
        app_metadata: {},
        user_metadata: {},
        role: 'authenticated',
        aal: 'aal1',
        amr: [{ method: 'anonymous', timestamp: iat }],
        session_id: sessionId,
        is_anonymous: true,
      });
      return { id, token };
    },

    /** supabase-js with the anon key, acting as the user whose access token is given (if any). */
    client(accessToken) {
      return createClient(url, keys.anonKey, {
        ...clientOptions,
        ...(accessToken ? { accessToken: () => Promise.resolve(accessToken) } : {}),
      });
    },

    /** supabase-js with the service_role key (as the Edge Functions use it). */
    serviceClient() {
      return createClient(url, keys.serviceRoleKey, clientOptions);
    },

    async close() {
      await gateway.close();
      await admin.end();
      fs.rmSync(stateDir, { recursive: true, force: true });
      if (cluster) {
        stopCluster(cluster, { mode: 'immediate', quiet: true });
        fs.rmSync(clusterDir, { recursive: true, force: true });
      }
    },
  };
}
