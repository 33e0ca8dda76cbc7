// The demo's core: every job type through Spool's public HTTP API with supabase-js, as the web
// client uses it, against any Spool project (the local stack or a hosted one): anonymous sign-up,
// uploads into the user's own folder of the private `inputs` bucket (inputs/<uid>/<name>), the
// job creators at /functions/v1/<type> (202 {job}, or a refusal in the one error shape), and the
// jobs API (/functions/v1/jobs) to watch the jobs and get signed URLs of their outputs, which are
// then downloaded. No key but the publishable (anon) key and the user's own session is used.
//
//   import { runDemoJobs, demoPlan } from './local/tools/demo/jobs.mjs';
//   const result = await runDemoJobs({ url, anonKey, media, outDir, onUpdate });

import fs from 'node:fs';
import path from 'node:path';
import { createClient } from '@supabase/supabase-js';
import WebSocket from 'ws';

/** Job states that never change again (the SQL enum's terminal states). */
export const TERMINAL = new Set(['done', 'failed', 'cancelled']);

/**
 * What the demo runs: one entry per job. `input` names a file of makeSampleMedia(); `body` is the
 * creator's JSON body (input_path is added). `expectRefusal` marks a job the project may refuse
 * for a documented reason (image without OPENAI_API_KEY): shown, and not counted as a failure.
 */
export function demoPlan() {
  return [
    {
      key: 'grade-noir',
      type: 'color-grade',
      label: 'noir → jpeg',
      input: 'photo',
      body: { preset: 'noir', contrast: 0.1, output_format: 'jpeg' },
    },
    {
      key: 'grade-teal-orange',
      type: 'color-grade',
      label: 'teal-orange',
      input: 'photo',
      body: { preset: 'teal-orange', contrast: 0.2 },
    },
    {
      key: 'audio-clean',
      type: 'audio-clean',
      label: '-16 LUFS',
      input: 'voice',
      body: { target_lufs: -16, noise_reduction: 0.8 },
    },
    {
      key: 'roto',
      type: 'roto',
      label: 'key #00b140',
      input: 'greenScreen',
      body: { mode: 'color', key_color: '#00b140', tolerance: 0.3, feather: 2 },
    },
    {
      key: 'image',
      type: 'image',
      label: 'gpt-image 1024²',
      body: {
        prompt: 'A small paper boat on a calm teal lake at sunrise, soft film look, 35 mm photograph',
        size: '1024x1024',
        quality: 'low',
      },
      // Without OPENAI_API_KEY the creator refuses it: 503 provider_not_configured.
      expectRefusal: { status: 503, code: 'provider_not_configured' },
    },
  ];
}

/** Each request's time limit. */
const REQUEST_TIMEOUT_MS = 30_000;
/** How often the demo lists the jobs while some are unfinished. */
const POLL_MS = 200;

/** A body read as JSON when it is JSON, else as text (null when empty). */
async function readBody(res) {
  const text = await res.text();
  try {
    return text ? JSON.parse(text) : null;
  } catch {
    return text;
  }
}

/**
 * A browser-like client of one Spool project: supabase-js with the publishable (anon) key, as
 * the web client uses it. Calls return their data or throw, saying what failed.
 */
function projectClient(url, anonKey) {
  const supabase = createClient(url, anonKey, {
    auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false },
    realtime: { transport: WebSocket }, // never connected; realtime-js wants one on Node 20
  });
  const get = async (what, name) => {
    const { data, error } = await supabase.functions.invoke(name, { method: 'GET', timeout: REQUEST_TIMEOUT_MS });
    if (error) throw new Error(`${what}: ${error.message} ${JSON.stringify(await error.context?.json?.().catch(() => null))}`);
    return data;
  };
  return {
    /** An anonymous user and their session; returns the user's id. */
    async signInAnonymously() {
      const { data, error } = await supabase.auth.signInAnonymously();
      if (error || !data?.user?.id) throw new Error(`anonymous sign-up: ${error?.message ?? 'no session in the answer'}`);
      return data.user.id;
    },
    /** Uploads into `inputs` at objectPath (the user's own folder). */
    async upload(objectPath, bytes, contentType) {
      const { error } = await supabase.storage.from('inputs').upload(objectPath, bytes, { contentType, cacheControl: '3600' });
      if (error) throw new Error(`upload ${objectPath}: ${error.message}`);
    },
    /**
     * POST /functions/v1/<type>: { status: 202, job } or, for anything else, { status, error } with
     * the error shape's { code, message, details } (or the gateway's own { code, message }).
     */
    async createJob(type, body) {
      const { data, error, response } = await supabase.functions.invoke(type, { body, timeout: REQUEST_TIMEOUT_MS });
      if (!error && response?.status === 202 && data?.job?.id) return { status: 202, job: data.job };
      const answer = error && response ? await readBody(response) : data;
      const err = answer?.error ?? answer ?? {};
      return {
        status: response?.status ?? 0,
        error: {
          code: String(err.code ?? 'unexpected_response'),
          message: String(err.message ?? err.msg ?? error?.message ?? JSON.stringify(answer)),
          details: err.details,
        },
      };
    },
    /** GET /functions/v1/jobs: the user's jobs, newest first. */
    listJobs: async (limit) => (await get('list jobs', `jobs?limit=${limit}`)).jobs,
    /** GET /functions/v1/jobs/<id>: { job, output_url, output_files } (signed when done). */
    getJob: (id) => get('get job', `jobs/${id}`),
  };
}

/** Downloads a signed URL (no headers needed: the token is in the URL). */
async function download(url) {
  const res = await fetch(url, { signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
  if (!res.ok) throw new Error(`download: HTTP ${res.status}: ${JSON.stringify(await readBody(res))}`);
  return new Uint8Array(await res.arrayBuffer());
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** The key figures of a finished job's output, for the summary. */
function reportFigures(type, output) {
  const file = output?.files?.[0] ?? {};
  const figures = {};
  if (file.width && file.height) figures.size = `${file.width}x${file.height}`;
  if (type === 'audio-clean') {
    const r = output?.report ?? {};
    figures.loudness = `${fmt(r.input_lufs)} → ${fmt(r.output_lufs)} LUFS`;
    figures.dc = (r.dc_offset ?? []).map((x) => x.toFixed(4)).join('/');
    // The floor rises with the loudness gain: what the noise gate did is the change net of it.
    const net = r.output_noise_floor_db - r.noise_floor_db - r.gain_db;
    figures.noise = `noise ${fmt(net)} dB`;
    figures.peak = `${fmt(r.peak_dbtp)} dBTP`;
  }
  if (type === 'roto') {
    const m = output?.matte ?? {};
    const pct = (x) => `${(x * 100).toFixed(1)}%`;
    if (m.opaque !== undefined) {
      figures.matte = `subject ${pct(m.opaque)}, background ${pct(m.transparent)}, edge ${pct(m.partial)}`;
    }
  }
  return figures;
}

const fmt = (x) => (typeof x === 'number' ? x.toFixed(1) : String(x));

/**
 * Runs the plan against one project. Each entry of the result:
 *   { key, type, label, body, status, job, error, refused, expected, files, figures,
 *     createdAtMs, endedAtMs }
 * where status is the job's state, or 'refused' when the creator said no. onUpdate(entries) is
 * called whenever something changes (and at least every POLL_MS while jobs are unfinished).
 * Resolves when every job has ended, or when `timeoutMs` passes (unfinished jobs keep their last
 * state). Outputs and inputs are written under outDir (inputs/ for the generated files).
 */
export async function runDemoJobs({
  url,
  anonKey,
  media,
  outDir,
  plan = demoPlan(),
  onUpdate = () => {},
  timeoutMs = 45_000,
}) {
  const client = projectClient(url, anonKey);
  const entries = plan.map((p) => ({
    ...p,
    status: 'new',
    job: null,
    error: null,
    refused: false,
    expected: false,
    files: [],
    figures: {},
    createdAtMs: null,
    endedAtMs: null,
  }));
  const update = () => onUpdate(entries);

  const userId = await client.signInAnonymously();

  // Upload each input the plan uses, once, in parallel; keep a copy next to the outputs.
  fs.mkdirSync(path.join(outDir, 'inputs'), { recursive: true });
  const used = [...new Set(plan.map((p) => p.input).filter(Boolean))];
  const uploaded = {};
  await Promise.all(used.map(async (k) => {
    const file = media[k];
    if (!file) throw new Error(`the plan needs media "${k}", which was not generated`);
    fs.writeFileSync(path.join(outDir, 'inputs', file.name), file.bytes);
    uploaded[k] = `${userId}/${file.name}`;
    await client.upload(uploaded[k], file.bytes, file.contentType);
  }));

  // Create every job; the creators answer at once (202) and the database rings job-worker.
  await Promise.all(entries.map(async (e) => {
    const body = e.input ? { input_path: uploaded[e.input], ...e.body } : { ...e.body };
    e.requestBody = body;
    e.createdAtMs = Date.now();
    const answer = await client.createJob(e.type, body);
    if (answer.status === 202) {
      e.job = answer.job;
      e.status = answer.job.status;
    } else {
      e.status = 'refused';
      e.refused = true;
      e.error = { status: answer.status, ...answer.error };
      e.expected = !!e.expectRefusal && e.expectRefusal.status === answer.status &&
        e.expectRefusal.code === answer.error.code;
      e.endedAtMs = Date.now();
    }
    update();
  }));

  // Watch: one list request per tick covers every job (the user is new, so it sees only these).
  const deadline = Date.now() + timeoutMs;
  const fetched = new Set();
  const finishing = [];
  const open = () => entries.filter((e) => e.job && !TERMINAL.has(e.status));
  let failures = 0;
  while (open().length > 0 && Date.now() < deadline) {
    let jobs;
    try {
      jobs = await client.listJobs(Math.max(20, entries.length));
      failures = 0;
    } catch (err) {
      // A hiccup (a function worker restarting, a timeout) is retried; a lasting failure is not.
      if (++failures >= 10) throw err;
      await sleep(POLL_MS * failures);
      continue;
    }
    const byId = new Map(jobs.map((j) => [j.id, j]));
    for (const e of entries) {
      const job = e.job && byId.get(e.job.id);
      if (!job) continue;
      e.job = job;
      e.status = job.status;
      if (TERMINAL.has(job.status) && !fetched.has(job.id)) {
        fetched.add(job.id);
        e.endedAtMs = Date.now();
        finishing.push(finish(client, e, outDir).catch((err) => {
          e.downloadError = err.message;
        }).finally(update));
      }
    }
    update();
    if (open().length > 0) await sleep(POLL_MS);
  }
  await Promise.all(finishing);
  update();
  return { userId, entries, timedOut: open().length > 0 };
}

/** A job that ended: its signed output URLs from GET /jobs/<id>, each file downloaded. */
async function finish(client, e, outDir) {
  const { job, output_files: files } = await client.getJob(e.job.id);
  e.job = job;
  e.status = job.status;
  if (job.status !== 'done') return;
  e.figures = reportFigures(job.type, job.output);
  for (const file of files ?? []) {
    if (!file.url) {
      e.downloadError = `no signed URL for ${file.path}`;
      continue;
    }
    const bytes = await download(file.url);
    // "grade-noir-photo-graded.jpg": unique per demo job, readable in a file list.
    const local = path.join(outDir, `${e.key}-${path.posix.basename(file.path)}`);
    fs.writeFileSync(local, bytes);
    e.files.push({ ...file, local, bytes: bytes.length });
  }
}

/** True when the demo succeeded: every job done (and downloaded), refusals only as expected. */
export function allGood(entries) {
  return entries.every((e) =>
    e.refused ? e.expected : e.status === 'done' && !e.downloadError && e.files.length > 0
  );
}
