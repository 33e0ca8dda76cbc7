// The demo's core: every job type through Spool's public HTTP API with supabase-js, as the web
// client uses it, against any Spool project: anonymous sign-up, uploads to inputs/<uid>/<name>,
// the creators at /functions/v1/<type> (202 {job}, or a refusal in the one error shape), and the
// jobs API (/functions/v1/jobs) to watch the jobs and sign their outputs, which are downloaded.
// No key but the publishable (anon) key and the user's own session is used.

import fs from 'node:fs';
import path from 'node:path';
import { createClient } from '@supabase/supabase-js';
import WebSocket from 'ws';

const TERMINAL = new Set(['done', 'failed', 'cancelled']); // the SQL enum's terminal states

// The inputs, in docs/samples/ (for trying the web client by hand too); the tests check the
// samples and the outputs against subjectFraction and dcOffset.
const SAMPLES = {
  photo: { name: 'photo.jpg', contentType: 'image/jpeg', about: 'photo-like scene, skin-tone subject, 960x640 JPEG' },
  greenScreen: { name: 'greenscreen.png', contentType: 'image/png', subjectFraction: 0.1413,
    about: 'green screen, a person on 14% of it, 640x480 PNG' },
  voice: { name: 'voice.wav', contentType: 'audio/wav', dcOffset: 0.04,
    about: 'voice-like, hiss, 50 Hz hum, DC offset 0.04, 5 s 24 kHz 16-bit mono WAV' },
};

/** SAMPLES with each file's bytes read from docs/samples/. */
export function loadSamples() {
  const dir = new URL('../../../docs/samples/', import.meta.url);
  const read = (s) => ({ ...s, bytes: fs.readFileSync(new URL(s.name, dir)) });
  return Object.fromEntries(Object.entries(SAMPLES).map(([k, s]) => [k, read(s)]));
}

// One entry per job: `input` names a sample, `body` is the creator's body (input_path is added).
// `expectRefusal`: a documented refusal (image without OPENAI_API_KEY), shown but no failure.
export function demoPlan() {
  return [
    { key: 'grade-noir', type: 'color-grade', label: 'noir', input: 'photo', body: { preset: 'noir', contrast: 0.1 } },
    { key: 'grade-teal-orange', type: 'color-grade', label: 'teal-orange → png', input: 'photo',
      body: { preset: 'teal-orange', contrast: 0.2, output_format: 'png' } },
    { key: 'audio-clean', type: 'audio-clean', label: '-16 LUFS', input: 'voice',
      body: { target_lufs: -16, noise_reduction: 0.8 } },
    { key: 'roto', type: 'roto', label: 'key #00b140', input: 'greenScreen',
      body: { mode: 'color', key_color: '#00b140', tolerance: 0.3, feather: 2 } },
    { key: 'image', type: 'image', label: 'gpt-image 1024²',
      body: { prompt: 'A small paper boat on a calm teal lake at sunrise, soft film look, 35 mm photograph',
        size: '1024x1024', quality: 'low' },
      expectRefusal: { status: 503, code: 'provider_not_configured' } },
  ];
}

const REQUEST_TIMEOUT_MS = 30_000;
const POLL_MS = 200;

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** GET /functions/v1/<name>: its JSON, or an error saying what failed. */
async function get(supabase, name) {
  const { data, error } = await supabase.functions.invoke(name, { method: 'GET', timeout: REQUEST_TIMEOUT_MS });
  if (error) throw new Error(`GET ${name}: ${error.message} ${await error.context?.text?.().catch(() => '')}`);
  return data;
}

/** A creator's answer other than 202 as { status, code, message, details } (Spool's error shape or the gateway's). */
async function refusal(error, response, data) {
  const body = error ? await response?.json().catch(() => null) : data;
  const { code = 'unexpected_response', message, msg, details } = body?.error ?? body ?? {};
  const text = String(message ?? msg ?? error?.message ?? `answered ${response?.status}`);
  return { status: response?.status ?? 0, code: String(code), message: text, details };
}

/**
 * Runs the plan against one project; each entry is its plan entry plus { status, job, error,
 * expected, files, request, downloadError }. status is the job's state, or 'refused' (error: the
 * creator's refusal; expected: it is the plan's expectRefusal). onUpdate(entries) runs on every
 * change. Resolves once every job has ended or at `timeoutMs` (unfinished jobs keep their last
 * state). Outputs go to outDir, the inputs to outDir/inputs/.
 */
export async function runDemoJobs(
  { url, anonKey, media, outDir, plan = demoPlan(), onUpdate = () => {}, timeoutMs = 45_000 },
) {
  const supabase = createClient(url, anonKey, {
    auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false },
    realtime: { transport: WebSocket }, // never connected; realtime-js wants one on Node 20
  });
  const entries = plan.map((p) => ({ ...p, status: 'new', job: null, error: null, expected: false, files: [] }));
  const update = () => onUpdate(entries);

  const { data: auth, error: authError } = await supabase.auth.signInAnonymously();
  if (authError || !auth?.user?.id) throw new Error(`anonymous sign-up: ${authError?.message ?? 'no session'}`);
  const userId = auth.user.id;

  // Upload each input the plan uses, once, in parallel; keep a copy next to the outputs.
  fs.mkdirSync(path.join(outDir, 'inputs'), { recursive: true });
  const uploaded = {};
  await Promise.all([...new Set(plan.map((p) => p.input).filter(Boolean))].map(async (k) => {
    const file = media[k];
    if (!file) throw new Error(`the plan needs the sample "${k}"`);
    fs.writeFileSync(path.join(outDir, 'inputs', file.name), file.bytes);
    uploaded[k] = `${userId}/${file.name}`;
    const options = { contentType: file.contentType };
    const { error } = await supabase.storage.from('inputs').upload(uploaded[k], file.bytes, options);
    if (error) throw new Error(`upload ${uploaded[k]}: ${error.message}`);
  }));

  // Create every job; the creators answer at once (202) and the database rings job-worker.
  await Promise.all(entries.map(async (e) => {
    e.request = e.input ? { input_path: uploaded[e.input], ...e.body } : { ...e.body };
    const options = { body: e.request, timeout: REQUEST_TIMEOUT_MS };
    const { data, error, response } = await supabase.functions.invoke(e.type, options);
    if (!error && response?.status === 202 && data?.job?.id) {
      e.job = data.job;
      e.status = data.job.status;
    } else {
      e.status = 'refused';
      e.error = await refusal(error, response, data);
      e.expected = e.expectRefusal?.status === e.error.status && e.expectRefusal?.code === e.error.code;
    }
    update();
  }));

  // Watch: one list request per tick covers every job (the user is new, so it sees only these).
  const deadline = Date.now() + timeoutMs;
  const finishing = [];
  const open = () => entries.filter((e) => e.job && !TERMINAL.has(e.status));
  let failures = 0;
  while (open().length > 0 && Date.now() < deadline) {
    let jobs;
    try {
      jobs = (await get(supabase, `jobs?limit=${Math.max(20, entries.length)}`)).jobs;
      failures = 0;
    } catch (err) {
      // A hiccup (a function worker restarting, a timeout) is retried; a lasting failure is not.
      if (++failures >= 10) throw err;
      await sleep(POLL_MS * failures);
      continue;
    }
    for (const e of open()) {
      const job = jobs.find((j) => j.id === e.job.id);
      if (!job) continue;
      e.job = job;
      e.status = job.status;
      if (TERMINAL.has(job.status)) {
        finishing.push(finish(supabase, e, outDir).catch((err) => (e.downloadError = err.message)).finally(update));
      }
    }
    update();
    if (open().length > 0) await sleep(POLL_MS);
  }
  await Promise.all(finishing);
  return { userId, entries, timedOut: open().length > 0 };
}

/** A job that ended: its signed output URLs from GET /jobs/<id>, each file downloaded. */
async function finish(supabase, e, outDir) {
  const { job, output_files: files } = await get(supabase, `jobs/${e.job.id}`);
  e.job = job;
  e.status = job.status;
  if (job.status !== 'done') return;
  for (const file of files ?? []) {
    if (!file.url) throw new Error(`no signed URL for ${file.path}`);
    const res = await fetch(file.url, { signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
    if (!res.ok) throw new Error(`download ${file.path}: HTTP ${res.status} ${await res.text()}`);
    const bytes = Buffer.from(await res.arrayBuffer());
    // "grade-noir-photo-graded.jpg": unique per demo job, readable in a file list.
    const local = path.join(outDir, `${e.key}-${path.posix.basename(file.path)}`);
    fs.writeFileSync(local, bytes);
    e.files.push({ ...file, local, bytes: bytes.length });
  }
}

const fmt = (x) => (typeof x === 'number' ? x.toFixed(1) : String(x));

/** The key figures of a finished job's output: its size, and what audio-clean and roto measured. */
export function keyFigures(type, output) {
  const file = output?.files?.[0] ?? {};
  const parts = file.width && file.height ? [`${file.width}x${file.height}`] : [];
  const r = output?.report;
  if (type === 'audio-clean' && r) {
    // The floor rises with the loudness gain: what the noise gate did is the change net of it.
    const noise = r.output_noise_floor_db - r.noise_floor_db - r.gain_db;
    const dc = (r.dc_offset ?? []).map((x) => x.toFixed(4)).join('/');
    parts.push(`${fmt(r.input_lufs)} → ${fmt(r.output_lufs)} LUFS`, `DC ${dc} removed`, `noise ${fmt(noise)} dB`);
    parts.push(`peak ${fmt(r.peak_dbtp)} dBTP`);
  }
  const m = output?.matte;
  if (type === 'roto' && m) {
    const pct = (x) => `${(x * 100).toFixed(1)}%`;
    parts.push(`subject ${pct(m.opaque)}, background ${pct(m.transparent)}, edge ${pct(m.partial)}`);
  }
  return parts.join(' · ');
}

/** True when the demo succeeded: every job done (and downloaded), refusals only as expected. */
export function allGood(entries) {
  return entries.every((e) =>
    e.status === 'refused' ? e.expected : e.status === 'done' && !e.downloadError && e.files.length > 0
  );
}
