// The local database (a module, no CLI): a private Postgres 15 cluster from Debian's packages with
// pg_cron and pgTAP, stand-ins for pg_net and Vault, the Supabase roles/schemas migrations rely on
// (local/standins/sql/bootstrap.sql), and migrations applied by the real Supabase CLI
// (`supabase db push --remote=<url>`) as the non-superuser postgres.

import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const PG_MAJOR = 15;
const PG_BIN = `/usr/lib/postgresql/${PG_MAJOR}/bin`;
const DEFAULT_PORT = 54322;
const SUPERUSER = 'supabase_admin';
/** OS account that runs initdb/postgres when we are root (Postgres refuses to run as root). */
const DB_OS_USER = 'postgres';

/**
 * npm start's state folder for a checkout (cluster db/, keys.json, Storage, logs), outside the
 * repository so no web server rooted there reaches it: $XDG_STATE_HOME (default ~/.local/state)
 * /spool/<checkout>-<hash of its path>, or /var/lib/spool/... as root (whose home the postgres OS
 * user cannot search). SPOOL_STATE_DIR (environment, not .env) names another (start.test.mjs).
 */
export function stateDirFor(root = ROOT, { env = process.env, asRoot = process.getuid?.() === 0, home = os.homedir() } = {}) {
  if (env.SPOOL_STATE_DIR) return path.resolve(env.SPOOL_STATE_DIR);
  const base = asRoot
    ? '/var/lib'
    : env.XDG_STATE_HOME && path.isAbsolute(env.XDG_STATE_HOME)
    ? env.XDG_STATE_HOME
    : path.join(home, '.local', 'state');
  const resolved = path.resolve(root);
  const hash = createHash('sha256').update(resolved).digest('hex').slice(0, 12);
  const name = path.basename(resolved).replace(/[^A-Za-z0-9._-]/g, '_') || 'root';
  return path.join(base, 'spool', `${name}-${hash}`);
}

export const STATE_DIR = stateDirFor(ROOT);
export const DEFAULT_DIR = path.join(STATE_DIR, 'db');

/** A state folder private to this OS user (0700), or 0711 as root (the postgres OS user passes through). */
export function ensureStateDir(dir) {
  const mode = isRoot ? 0o711 : 0o700;
  fs.mkdirSync(dir, { recursive: true, mode });
  fs.chmodSync(dir, mode);
  return dir;
}
// wal2json: the Realtime stand-in's change capture (standins/realtime-cdc.mjs), as Supabase Realtime.
const PACKAGES = [
  `postgresql-${PG_MAJOR}`, `postgresql-${PG_MAJOR}-cron`, `postgresql-${PG_MAJOR}-pgtap`,
  `postgresql-${PG_MAJOR}-wal2json`, 'libtap-parser-sourcehandler-pgtap-perl',
];

const EXTENSIONS_SRC = path.join(ROOT, 'local', 'standins', 'extensions');
const BOOTSTRAP_SQL = path.join(ROOT, 'local', 'standins', 'sql', 'bootstrap.sql');
const SUPABASE_CLI = path.join(ROOT, 'node_modules', '.bin', 'supabase');
/** Every stand-in extension file carries this marker; we never overwrite a file without it. */
const STAND_IN_MARK = 'spool-stand-in';
const isRoot = process.getuid?.() === 0;

/** An error whose message is meant for the person at the terminal (no stack needed). */
export class PlatformError extends Error {
  name = 'PlatformError';
}

const log = (msg) => console.log(`spool db: ${msg}`);

// --- Connection strings

/** Superuser (no password: 127.0.0.1 is trusted, see PG_HBA): for the platform itself, never for migrations. */
export function superuserUrl(port = DEFAULT_PORT) {
  return `postgresql://${SUPERUSER}@127.0.0.1:${port}/postgres`;
}

/** The `postgres` role, as on Supabase: not a superuser; migrations run as it (password as `supabase start`'s). */
export function postgresUrl(port = DEFAULT_PORT) {
  return `postgresql://postgres:postgres@127.0.0.1:${port}/postgres`;
}

/** The TCP port in environment variable `name` (SPOOL_DB_PORT by default), else `fallback`. */
export function envPort(name = 'SPOOL_DB_PORT', fallback = DEFAULT_PORT) {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const port = Number(raw);
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new PlatformError(`${name} must be a TCP port number, got ${JSON.stringify(raw)}`);
  }
  return port;
}

/** Loads ROOT/.env into process.env (variables already set win), if the file exists. */
export function loadDotEnv() {
  const file = path.join(ROOT, '.env');
  if (!fs.existsSync(file)) return;
  if (typeof process.loadEnvFile !== 'function') {
    throw new PlatformError(`${file} exists but this Node (${process.version}) cannot load it; use Node >= 20.12`);
  }
  process.loadEnvFile(file);
}

// --- Processes

/** Runs a command synchronously; as the postgres OS user if `asDbUser` and we are root. */
function run(cmd, args, { asDbUser = false, cwd, env, inherit = false, allowFail = false } = {}) {
  const [file, argv] = asDbUser && isRoot ? ['runuser', ['-u', DB_OS_USER, '--', cmd, ...args]] : [cmd, args];
  const r = spawnSync(file, argv, {
    cwd,
    env: { ...process.env, ...env },
    encoding: 'utf8',
    stdio: inherit ? 'inherit' : ['ignore', 'pipe', 'pipe'],
  });
  if (r.error) throw r.error;
  if (r.status !== 0 && !allowFail) {
    const out = `${r.stdout ?? ''}${r.stderr ?? ''}`.trim();
    const what = `${path.basename(cmd)} ${args.join(' ')}`;
    throw new PlatformError(`${what} failed (exit ${r.status ?? r.signal})\n${out}`.trim());
  }
  return r;
}

/** Supabase CLI processes still running. */
const children = new Set();

/** Kills the Supabase CLI processes still running (for signal handlers). */
export function killChildren() {
  for (const child of children) child.kill();
}

// --- OS packages and stand-in extensions

/**
 * Installs the Debian `packages` dpkg does not report installed, with apt-get as root; otherwise
 * throws the sudo command to run. Browsers and databases come from Debian only (web.mjs ensureChromium).
 */
export function ensurePackages(packages = PACKAGES) {
  const missing = () => {
    const r = spawnSync('dpkg-query', ['-W', '-f=${Package} ${db:Status-Abbrev}\n', ...packages], { encoding: 'utf8' });
    if (r.error) {
      throw new PlatformError(`dpkg-query not found: the local platform needs Debian's ${packages.join(' ')}`);
    }
    const installed = r.stdout.split('\n').filter((l) => /^\S+ ii/.test(l)).map((l) => l.split(' ')[0]);
    return packages.filter((p) => !installed.includes(p));
  };
  const want = missing();
  if (want.length === 0) return;
  const install = `apt-get install -y --no-install-recommends ${want.join(' ')}`;
  if (!isRoot) {
    const how = `sudo apt-get update && sudo ${install}`;
    throw new PlatformError(`missing OS packages: ${want.join(' ')}. Install them with:\n  ${how}`);
  }
  log(`installing OS packages: ${want.join(' ')}`);
  const env = { DEBIAN_FRONTEND: 'noninteractive' };
  run('apt-get', ['update'], { env, inherit: true });
  run('apt-get', install.split(' ').slice(1), { env, inherit: true });
  const still = missing();
  if (still.length > 0) throw new PlatformError(`apt-get did not install: ${still.join(' ')}`);
}

/**
 * Copies the stand-in extensions (standins/extensions/<name>/*.control|*.sql) into Postgres'
 * extension folder when their bytes differ (as root; else the commands are the error).
 */
export function ensureExtensions() {
  const sharedir = run(path.join(PG_BIN, 'pg_config'), ['--sharedir']).stdout.trim();
  const target = path.join(sharedir, 'extension');
  const plan = [];
  for (const ext of fs.readdirSync(EXTENSIONS_SRC).sort()) {
    const srcDir = path.join(EXTENSIONS_SRC, ext);
    for (const file of fs.readdirSync(srcDir).sort()) {
      if (!/\.(control|sql)$/.test(file)) continue;
      const src = path.join(srcDir, file);
      const dst = path.join(target, file);
      const have = fs.existsSync(dst) ? fs.readFileSync(dst) : null;
      if (have?.equals(fs.readFileSync(src))) continue;
      if (have && !have.includes(STAND_IN_MARK)) {
        throw new PlatformError(
          `${dst} exists and is not Spool's stand-in (is the real ${ext} installed?); refusing to overwrite it`,
        );
      }
      plan.push([src, dst]);
    }
  }
  if (plan.length === 0) return;
  if (!isRoot) {
    const commands = plan.map(([s, d]) => `  sudo install -m 0644 ${s} ${d}`).join('\n');
    throw new PlatformError(`the stand-in extensions must be installed into ${target}, which needs root:\n${commands}`);
  }
  for (const [src, dst] of plan) {
    fs.copyFileSync(src, dst);
    fs.chmodSync(dst, 0o644);
    log(`installed stand-in ${path.relative(ROOT, src)} -> ${dst}`);
  }
}

// --- Cluster

function clusterPaths(dir = DEFAULT_DIR) {
  dir = path.resolve(dir);
  return {
    dir,
    dataDir: path.join(dir, 'data'),
    logFile: path.join(dir, 'postgres.log'),
    bootstrapMarker: path.join(dir, 'bootstrap.sha256'),
  };
}

/** Writes a file the server must read (0600, owned by the postgres OS user when we are root). */
function writeServerFile(file, content) {
  fs.writeFileSync(file, content, { mode: 0o600 });
  fs.chmodSync(file, 0o600);
  if (isRoot) run('chown', [`${DB_OS_USER}:`, file]);
}

/** Creates the cluster folder, owned by the postgres OS user when we are root. */
function prepareDir(dir) {
  fs.mkdirSync(dir, { recursive: true, mode: 0o755 });
  if (!isRoot) return;
  run('chown', [`${DB_OS_USER}:`, dir]);
  fs.chmodSync(dir, 0o755);
  const r = spawnSync('runuser', ['-u', DB_OS_USER, '--', 'test', '-w', dir]);
  if (r.status !== 0) {
    throw new PlatformError(
      `the ${DB_OS_USER} OS user cannot write ${dir}: every parent folder must be searchable by it (chmod o+x), or choose another folder`,
    );
  }
}

// Loopback trusted, Unix sockets peer: no connection from the server's host sends a password
// (there as here, a non-superuser's dblink back fails "password is required"). We listen on
// 127.0.0.1 only, so the scram-sha-256 lines never come into play.
const PG_HBA = `# Spool local cluster (written by local/tools/db.mjs), as the supabase/postgres image's pg_hba.conf.
# TYPE  DATABASE     USER  ADDRESS         METHOD
local   all          all                   peer
host    all          all   127.0.0.1/32    trust
host    all          all   ::1/128         trust
host    all          all   0.0.0.0/0       scram-sha-256
host    all          all   ::/0            scram-sha-256
`;

function initCluster(paths, { fsync }) {
  prepareDir(paths.dir);
  log(`creating a cluster in ${paths.dataDir}`);
  run(path.join(PG_BIN, 'initdb'), [
    '-D', paths.dataDir, '-U', SUPERUSER, '--auth-local=trust', '--auth-host=scram-sha-256',
    '-E', 'UTF8', '--locale=C.UTF-8', '--no-instructions', ...(fsync ? [] : ['--no-sync']),
  ], { asDbUser: true, cwd: paths.dir });
  fs.appendFileSync(
    path.join(paths.dataDir, 'postgresql.conf'),
    `\n# Spool: settings are rewritten on every start by local/tools/db.mjs\ninclude_if_exists = 'spool.conf'\n`,
  );
}

const quoteConf = (s) => `'${String(s).replaceAll("'", "''")}'`;

/**
 * The output plugins this server lets slots use, when it has that setting: Debian's PostgreSQL
 * from 15.20 on (a security update) allows only `output_plugin_libraries` (default pgoutput,
 * test_decoding), and the Realtime stand-in reads its slot with wal2json. Null on a server
 * without the setting (an older 15.x refuses unknown settings, so none is written then).
 */
function outputPluginLibraries() {
  const r = run(path.join(PG_BIN, 'postgres'), ['--describe-config'], { asDbUser: true, allowFail: true });
  const row = (r.stdout ?? '').split('\n').find((l) => l.startsWith('output_plugin_libraries\t'));
  if (!row) return null;
  const defaults = (row.split('\t')[4] ?? '').split(',').map((x) => x.trim()).filter(Boolean);
  return [...new Set([...defaults, 'wal2json'])].join(', ');
}

function writeConfig(paths, { port, fsync }) {
  // A Unix socket path is limited to 107 bytes; without one, clients use TCP (as ours do).
  const socketOk = Buffer.byteLength(path.join(paths.dir, `.s.PGSQL.${port}`)) < 100;
  const lines = [
    '# Spool local cluster: written by local/tools/db.mjs on every start; edit there, not here.',
    `port = ${port}`,
    `listen_addresses = '127.0.0.1'`,
    `unix_socket_directories = ${quoteConf(socketOk ? paths.dir : '')}`,
    'max_connections = 100',
    `shared_preload_libraries = 'pg_cron'`,
    `cron.database_name = 'postgres'`,
    // Jobs run in background workers, so pg_cron needs no password for the job's role.
    'cron.use_background_workers = on',
    'max_worker_processes = 24',
    'cron.max_running_jobs = 8',
    // As on Supabase (logical replication for Realtime).
    'wal_level = logical',
    `password_encryption = 'scram-sha-256'`,
    `timezone = 'UTC'`,
    `log_timezone = 'UTC'`,
    `log_line_prefix = '%m [%p] %q%u@%d '`,
    `fsync = ${fsync ? 'on' : 'off'}`,
    `synchronous_commit = ${fsync ? 'on' : 'off'}`,
    // Logical decoding (the Realtime stand-in) sees a commit only once its WAL is flushed; with
    // asynchronous commits that waits for the WAL writer, so let it flush every 10 ms.
    `wal_writer_delay = ${fsync ? "'200ms'" : "'10ms'"}`,
    `full_page_writes = ${fsync ? 'on' : 'off'}`,
  ];
  const plugins = outputPluginLibraries();
  if (plugins !== null) lines.push(`output_plugin_libraries = ${quoteConf(plugins)}`);
  lines.push('');
  writeServerFile(path.join(paths.dataDir, 'spool.conf'), lines.join('\n'));
  // Rewritten on every start too, so a cluster made by an older local/tools/db.mjs gets the current one.
  writeServerFile(path.join(paths.dataDir, 'pg_hba.conf'), PG_HBA);
}

/** The port the cluster in `dir` runs on, or null if it is not running. */
function runningPort(dir) {
  const paths = clusterPaths(dir);
  if (!fs.existsSync(path.join(paths.dataDir, 'PG_VERSION'))) return null;
  const status = ['status', '-D', paths.dataDir];
  const r = run(path.join(PG_BIN, 'pg_ctl'), status, { asDbUser: true, cwd: paths.dir, allowFail: true });
  if (r.status !== 0) return null;
  return Number(fs.readFileSync(path.join(paths.dataDir, 'postmaster.pid'), 'utf8').split('\n')[3]);
}

/** Listens on 127.0.0.1:port (0: any free one) and closes again; resolves to the port. */
function probePort(port) {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      const bound = server.address().port;
      server.close(() => resolve(bound));
    });
  });
}

/** A TCP port on 127.0.0.1 that was free a moment ago. */
export const freePort = () => probePort(0);

/**
 * Creates (initdb) the cluster in `dir` if needed and starts it on 127.0.0.1:`port`, or reuses it
 * running there. `fsync: false` trades durability for speed (tests).
 * Returns { dir, dataDir, logFile, bootstrapMarker, port, superuserUrl, postgresUrl }.
 */
export async function startCluster({ dir = DEFAULT_DIR, port = DEFAULT_PORT, fsync = true } = {}) {
  const paths = clusterPaths(dir);
  if (!fs.existsSync(path.join(paths.dataDir, 'PG_VERSION'))) initCluster(paths, { fsync });
  const info = { ...paths, port, superuserUrl: superuserUrl(port), postgresUrl: postgresUrl(port) };
  const running = runningPort(paths.dir);
  if (running === port) {
    log(`cluster in ${paths.dataDir} is already running on port ${port}; reusing it`);
    return info;
  }
  if (running !== null) {
    const stop = `${isRoot ? `runuser -u ${DB_OS_USER} -- ` : ''}${PG_BIN}/pg_ctl stop -D ${paths.dataDir}`;
    throw new PlatformError(`the cluster in ${paths.dataDir} runs on port ${running}, not ${port}: ` +
      `set SPOOL_DB_PORT=${running}, or stop it (${stop})`);
  }
  writeConfig(paths, { port, fsync });
  await probePort(port).catch((err) => {
    if (err.code !== 'EADDRINUSE') throw err;
    throw new PlatformError(`port ${port} on 127.0.0.1 is in use; set SPOOL_DB_PORT to another port`);
  });
  const start = ['start', '-D', paths.dataDir, '-l', paths.logFile, '-w', '-t', '60', '-s'];
  const r = run(path.join(PG_BIN, 'pg_ctl'), start, { asDbUser: true, cwd: paths.dir, allowFail: true });
  if (r.status !== 0) {
    const log = fs.existsSync(paths.logFile) ? fs.readFileSync(paths.logFile, 'utf8') : '(no log)\n';
    const last = log.trimEnd().split('\n').slice(-30).join('\n');
    throw new PlatformError(`postgres did not start (pg_ctl exit ${r.status}). ${paths.logFile} ends with:\n${last}`);
  }
  log(`postgres ${PG_MAJOR} is up on 127.0.0.1:${port} (log: ${paths.logFile})`);
  return info;
}

/** Stops the cluster of `dir` (pg_ctl stop -m fast by default). Safe if it is not running. */
export function stopCluster({ dir = DEFAULT_DIR } = {}, { mode = 'fast', quiet = false } = {}) {
  const paths = clusterPaths(dir);
  if (runningPort(paths.dir) === null) return false;
  const stop = ['stop', '-D', paths.dataDir, '-m', mode, '-w', '-t', '60', '-s'];
  run(path.join(PG_BIN, 'pg_ctl'), stop, { asDbUser: true, cwd: paths.dir });
  if (!quiet) log(`stopped the cluster in ${paths.dataDir}`);
  return true;
}

/**
 * A throwaway cluster (npm test, gen:types): a new temp folder `prefix`… on a free port, fsync off,
 * bootstrapped. Returns startCluster's info plus stop(): kills the Supabase CLI, stops the cluster
 * at once and removes the folder (synchronous, so safe from a signal handler; idempotent).
 */
export async function startThrowawayCluster(prefix) {
  ensurePackages();
  ensureExtensions();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  let stopped = false;
  const stop = () => {
    if (stopped) return;
    stopped = true;
    killChildren();
    try {
      stopCluster({ dir }, { mode: 'immediate', quiet: true });
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  };
  try {
    const cluster = await startCluster({ dir, port: await freePort(), fsync: false });
    await bootstrap(cluster);
    return { ...cluster, stop };
  } catch (err) {
    stop();
    throw err;
  }
}

/** Runs fn(client) with a connected pg.Client, then closes it. */
export async function withClient(url, fn) {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

// --- Bootstrap and migrations

function bootstrapHash() {
  return createHash('sha256').update(fs.readFileSync(BOOTSTRAP_SQL)).digest('hex');
}

/**
 * Bootstraps a cluster that never was (no hash recorded); warns about one bootstrapped by an older
 * bootstrap.sql rather than run it again over migrated objects (it would restore revoked privileges).
 */
export function ensureBootstrapped(cluster) {
  const marker = clusterPaths(cluster.dir).bootstrapMarker;
  if (!fs.existsSync(marker)) return bootstrap(cluster);
  if (fs.readFileSync(marker, 'utf8').trim() !== bootstrapHash()) {
    log('local/standins/sql/bootstrap.sql changed since this cluster was bootstrapped; `npm start -- --reset` rebuilds it');
  }
}

/**
 * Runs bootstrap.sql as the superuser with psql in one transaction (an error names its file and
 * line), then records its hash in the cluster folder `dir`, if given.
 */
export function bootstrap({ port = DEFAULT_PORT, dir } = {}) {
  const psql = path.join(PG_BIN, 'psql');
  run(psql, ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '--single-transaction', '-f', BOOTSTRAP_SQL, superuserUrl(port)], {
    env: { PGOPTIONS: '-c client_min_messages=warning' },
  });
  if (dir) fs.writeFileSync(clusterPaths(dir).bootstrapMarker, `${bootstrapHash()}\n`);
  log('bootstrapped Supabase roles, schemas and extensions');
}

/**
 * Runs the pinned Supabase CLI (`supabase <command...> --remote=<postgres url> --workdir <root>
 * ...args`) against `port` as the postgres role, without telemetry or update check, killed after
 * 10 minutes; stderr to the terminal unless captureStderr. Resolves to { code, signal, stdout, stderr }.
 */
export function supabaseCli(command, { port, args = [], captureStderr = false }) {
  if (!fs.existsSync(SUPABASE_CLI)) {
    throw new PlatformError(`${SUPABASE_CLI} is missing: run npm install`);
  }
  const remote = `--remote=${postgresUrl(port)}?sslmode=disable`;
  return new Promise((resolve, reject) => {
    const child = spawn(SUPABASE_CLI, [...command, remote, '--workdir', ROOT, ...args], {
      cwd: ROOT,
      env: {
        ...process.env,
        PGSSLMODE: 'disable',
        SUPABASE_TELEMETRY_DISABLED: '1',
        DO_NOT_TRACK: '1',
        SUPABASE_NO_UPDATE_NOTIFIER: '1',
      },
      stdio: ['ignore', 'pipe', captureStderr ? 'pipe' : 'inherit'],
      timeout: 10 * 60_000,
    });
    children.add(child);
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d) => (stdout += d));
    child.stderr?.setEncoding('utf8').on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code, signal) => {
      children.delete(child);
      resolve({ code: code ?? (signal ? 128 : 1), signal, stdout, stderr });
    });
  });
}

/**
 * Applies supabase/migrations as the postgres role (`supabase db push --yes --output-format json`),
 * progress to the terminal. Resolves to the CLI's JSON result ({ upToDate, migrations: [file
 * names], message, ... }); rejects with its error otherwise.
 */
export async function pushMigrations({ port = DEFAULT_PORT } = {}) {
  const r = await supabaseCli(['db', 'push'], { port, args: ['--yes', '--output-format', 'json'] });
  const jsonLine = r.stdout.trim().split('\n').reverse().find((l) => l.trim().startsWith('{'));
  let result = null;
  try {
    result = jsonLine ? JSON.parse(jsonLine) : null;
  } catch {
    // not JSON: the error below shows stdout
  }
  if (r.code !== 0 || !result || result._tag === 'Error') {
    const e = result?.error;
    const detail = e
      ? [e.code ? `${e.code}: ${e.message}` : e.message, e.suggestion?.trim()].filter(Boolean).join('\n')
      : r.stdout.trim() || `exit ${r.code}`;
    throw new PlatformError(`supabase db push failed:\n${detail}`);
  }
  result.migrations ??= [];
  log(`supabase db push: ${result.message ?? (result.upToDate ? 'up to date' : 'done')}`);
  return result;
}
