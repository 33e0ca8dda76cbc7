// Start a job: choose a job kind, upload its input (with progress), set it up, start it, or run
// it on a schedule (Repeat: a kind without an upload becomes a schedule through the schedule
// creator instead of one job). The kinds, their settings and their file rules come from the
// server (GET /jobs/kinds, fetched once per session: hooks/useKinds.ts); the form is built from
// them (lib/kinds.ts). A file is checked before it is uploaded: size and type (fileProblem), then
// what the browser measures of it (lib/probe.ts: pixels, duration) against the kind's in-function
// limits (mediaProblem). The choices survive a reload (sessionStorage, FORM_KEY); the file does
// not (a File cannot be stored there), so the form says to choose it again. A refused job's
// upload is removed (the creator does; this removes it too, in case it could not). A 429 counts
// down to its Retry-After; an unreachable API is named and asked again with backoff.
import { type FormEvent, useEffect, useId, useMemo, useRef, useState } from 'react';
import { useKinds } from '../hooks/useKinds.ts';
import { type ApiError, createJob, type Job, toApiError } from '../lib/jobs.ts';
import { probeFile } from '../lib/probe.ts';
import { supabaseUrl } from '../lib/supabase.ts';
import {
  acceptOf,
  defaultValues,
  type FieldValue,
  fieldProblems,
  fieldsOf,
  fileProblem,
  formatBytes,
  formatSeconds,
  type FormValues,
  type JobKind,
  type MediaFacts,
  mediaProblem,
  mediaTypeOf,
  missingFields,
  requestBody,
} from '../lib/kinds.ts';
import { createSchedule } from '../lib/schedules.ts';
import { removeInput, type Upload, uploadInput, UploadError } from '../lib/upload.ts';
import { DropZone } from './DropZone.tsx';
import { Fields } from './Fields.tsx';
import { initialRepeat, Repeat, repeatProblem, type RepeatState } from './Repeat.tsx';
import { useToast } from './Toasts.tsx';
import { ProgressBar } from './ui.tsx';

type FileState =
  | { state: 'none' }
  | { state: 'checking'; name: string; size: number; type: string }
  | { state: 'uploading'; name: string; size: number; type: string; progress: number; facts: MediaFacts }
  | {
    state: 'uploaded';
    name: string;
    size: number;
    type: string;
    path: string;
    previewUrl: string;
    facts: MediaFacts;
  }
  | { state: 'error'; message: string };

/** Where the form's choices are kept across a reload (this tab only): never the file. */
export const FORM_KEY = 'spool.newJobForm';

interface SavedForm {
  type: string;
  values: Record<string, FormValues>;
  repeat: RepeatState;
  /** The name of the file chosen before the reload, to ask for it again. */
  fileName: string | null;
}

function loadForm(): Partial<SavedForm> {
  try {
    const saved = JSON.parse(sessionStorage.getItem(FORM_KEY) ?? 'null');
    return saved && typeof saved === 'object' ? saved : {};
  } catch {
    return {};
  }
}

/** Refusals of the uploaded file itself (as the creators decide: _jobs/create.ts removesInput). */
function refusesUpload(err: ApiError): boolean {
  return err.status === 422 || (err.status === 413 && err.code !== 'body_too_large');
}

/** Seconds until a quota refusal may be retried (its Retry-After), or null. */
function retryAfterOf(err: ApiError | null): number | null {
  if (!err || err.status !== 429) return null;
  const s = err.retryAfter;
  return s !== null && s > 0 ? s : null;
}

/** Counts down to zero, a second at a time, from each new `seconds`; null when idle. */
function useCountdown(seconds: number | null, key: unknown): number | null {
  const [left, setLeft] = useState<number | null>(seconds);
  useEffect(() => {
    setLeft(seconds);
    if (seconds === null) return;
    const until = Date.now() + seconds * 1000;
    const timer = setInterval(() => {
      const rest = Math.max(0, Math.ceil((until - Date.now()) / 1000));
      setLeft(rest);
      if (rest === 0) clearInterval(timer);
    }, 250);
    return () => clearInterval(timer);
  }, [seconds, key]);
  return left;
}

interface Props {
  userId: string;
  accessToken: string;
  onStarted: (job: Job) => void;
}

function newKey(): string {
  return crypto.randomUUID();
}

/** A server message as a sentence: capitalised, with its full stop. */
function sentence(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1) + (/[.!?]$/.test(text) ? '' : '.');
}

/** The form once the kinds are here; until then, their loading or their error. */
export function NewJob(props: Props) {
  const kinds = useKinds();
  const unreachable = kinds.status === 'error' && kinds.error.code === 'network';
  // An unreachable API is asked again by itself: after 2, 4, 8, ... 60 s.
  const tries = useRef(0);
  const [nextTry, setNextTry] = useState<number | null>(null);
  useEffect(() => {
    if (kinds.status === 'ready') tries.current = 0;
    if (!unreachable) {
      setNextTry(null);
      return;
    }
    const wait = Math.min(60, 2 ** ++tries.current);
    setNextTry(wait);
    const timer = setTimeout(kinds.retry, wait * 1000);
    return () => clearTimeout(timer);
  }, [unreachable, kinds.status, kinds.retry]);
  const left = useCountdown(nextTry, kinds.error);
  if (kinds.status === 'ready' && kinds.kinds.length > 0) return <NewJobForm {...props} kinds={kinds.kinds} />;
  return (
    <section className="card new-job" aria-labelledby="new-job-title" aria-busy={kinds.status !== 'error' && kinds.status !== 'ready'}>
      <h2 id="new-job-title">Start a job</h2>
      {kinds.status === 'error'
        ? (
          <>
            <p className="error" role="alert" data-testid="kinds-error">
              {unreachable
                ? `Spool's API at ${supabaseUrl} is unreachable. Check your connection.`
                : kinds.error.friendly}
            </p>
            {unreachable && left !== null && (
              <p className="muted" data-testid="kinds-retry">
                {left > 0 ? `Trying again in ${left} s…` : 'Trying again…'}
              </p>
            )}
            <button type="button" className="button" onClick={kinds.retry}>Try again now</button>
          </>
        )
        : kinds.status === 'ready'
        ? <p className="muted">This project offers no job types yet.</p>
        : <p className="muted" data-testid="kinds-loading">Loading the job types…</p>}
    </section>
  );
}

function NewJobForm({ userId, accessToken, onStarted, kinds }: Props & { kinds: readonly JobKind[] }) {
  // Choices kept from before a reload (this tab), when they still fit the kinds.
  const saved = useMemo(loadForm, []);
  // The first kind this project can run is chosen at first (the server lists colour grade first).
  const [type, setType] = useState(() =>
    kinds.some((k) => k.type === saved.type && k.available)
      ? saved.type!
      : (kinds.find((k) => k.available) ?? kinds[0]).type
  );
  const op = kinds.find((k) => k.type === type) ?? kinds[0];
  const fields = useMemo(() => fieldsOf(op), [op]);
  const [values, setValues] = useState<Record<string, FormValues>>(() =>
    Object.fromEntries(kinds.map((k) => {
      const defaults = defaultValues(k);
      const kept = saved.values?.[k.type] ?? {};
      // Only fields the kind still has, with values of the same type as their defaults.
      const restored = Object.fromEntries(
        Object.entries(kept).filter(([name, v]) => name in defaults && typeof v === typeof defaults[name]),
      );
      return [k.type, { ...defaults, ...restored }];
    }))
  );
  const opValues = values[op.type] ?? defaultValues(op);
  const [file, setFile] = useState<FileState>({ state: 'none' });
  const [submitting, setSubmitting] = useState(false);
  const [error, setError] = useState<ApiError | null>(null);
  const [repeat, setRepeat] = useState<RepeatState>(() =>
    saved.repeat && typeof saved.repeat === 'object' && saved.repeat.recurrence
      ? { ...initialRepeat(), ...saved.repeat }
      : initialRepeat()
  );
  /** The file chosen before a reload, which the reload could not keep. */
  const [lostFile, setLostFile] = useState<string | null>(() =>
    typeof saved.fileName === 'string' ? saved.fileName : null
  );
  const toast = useToast();
  const upload = useRef<Upload | null>(null);
  /** The file being checked, so a check that ends after another choice is dropped. */
  const choice = useRef<object | null>(null);
  /** Uploads a job was started with: never removed by a later refusal. */
  const used = useRef(new Set<string>());
  // One key per intended job: a double click or a retried request returns the same job.
  const idempotencyKey = useRef(newKey());
  const opGroup = useId();
  const startButton = useRef<HTMLButtonElement>(null);

  useEffect(() => () => upload.current?.abort(), []);
  useEffect(() => () => {
    if (file.state === 'uploaded') URL.revokeObjectURL(file.previewUrl);
  }, [file]);

  // The choices, kept for a reload of this tab (not the file: only its name, to ask for it).
  const chosenName = file.state === 'uploaded' || file.state === 'uploading' ? file.name : lostFile;
  useEffect(() => {
    const form: SavedForm = { type, values, repeat, fileName: op.file ? chosenName : null };
    try {
      sessionStorage.setItem(FORM_KEY, JSON.stringify(form));
    } catch {
      // storage full or denied: the form still works, it just does not survive a reload
    }
  }, [type, values, repeat, chosenName, op.file]);

  const fileMismatch = op.file && (file.state === 'uploaded' || file.state === 'uploading')
    ? fileProblem(op, { name: file.name, type: file.type, size: file.size }) ??
      mediaProblem(op, file, file.facts)
    : null;

  const choose = async (f: File) => {
    setError(null);
    setLostFile(null);
    choice.current = null;
    const problem = fileProblem(op, f);
    if (problem) {
      setFile({ state: 'error', message: problem });
      return;
    }
    upload.current?.abort();
    upload.current = null;
    // Stored under the media type the checks above accepted (the inputs bucket checks it again).
    const contentType = mediaTypeOf(f, op.file?.content_types);
    // Measured here first (pixels, duration): a file the kind would refuse is never uploaded.
    const checking = { state: 'checking' as const, name: f.name, size: f.size, type: f.type };
    choice.current = checking;
    setFile(checking);
    const facts = await probeFile(f, contentType);
    const tooBig = mediaProblem(op, { name: f.name, type: f.type }, facts);
    if (choice.current !== checking) return; // another file was chosen meanwhile
    if (tooBig) {
      setFile({ state: 'error', message: tooBig });
      return;
    }
    const started = uploadInput(f, userId, accessToken, contentType, (p) =>
      setFile((s) => (s.state === 'uploading' ? { ...s, progress: p } : s)));
    upload.current = started;
    idempotencyKey.current = newKey();
    setFile({ state: 'uploading', name: f.name, size: f.size, type: f.type, progress: 0, facts });
    started.done.then(
      (path) => {
        if (upload.current !== started) return;
        setFile({
          state: 'uploaded',
          name: f.name,
          size: f.size,
          type: f.type,
          path,
          previewUrl: URL.createObjectURL(f),
          facts,
        });
      },
      (err: unknown) => {
        if (upload.current !== started) return;
        if (err instanceof UploadError && err.code === 'aborted') setFile({ state: 'none' });
        else setFile({ state: 'error', message: err instanceof Error ? err.message : String(err) });
      },
    );
  };

  const setValue = (name: string, value: FieldValue) => {
    idempotencyKey.current = newKey();
    setValues((v) => ({ ...v, [op.type]: { ...(v[op.type] ?? defaultValues(op)), [name]: value } }));
  };

  // A quota refusal (429) counts down to its Retry-After; Start comes back at zero.
  const wait = useCountdown(retryAfterOf(error), error);
  const waiting = wait !== null && wait > 0;
  useEffect(() => {
    if (wait === 0 && error?.status === 429) {
      setError(null);
      startButton.current?.focus();
    }
  }, [wait, error]);

  const missing = missingFields(op, opValues);
  const problems = fieldProblems(op, opValues);
  const invalid = Object.keys(problems).length > 0;
  // A schedule of a kind with an upload is not offered (Repeat says why); the rest of its checks.
  const repeating = repeat.enabled && !op.file;
  const repeatIssue = repeatProblem(op, repeat);
  const ready = !submitting && !waiting && op.available && !fileMismatch && missing.length === 0 &&
    !invalid && (op.file ? file.state === 'uploaded' : true) && !(repeating && repeatIssue);
  const notReady = waiting
    ? `Wait ${wait} s.`
    : op.file && file.state !== 'uploaded'
    ? (file.state === 'uploading'
      ? 'Waiting for the upload…'
      : file.state === 'checking'
      ? 'Checking the file…'
      : 'Upload a file first.')
    : missing.length > 0
    ? `Write ${missing[0].widget === 'json' ? 'the' : 'a'} ${missing[0].label.toLowerCase()} first.`
    : invalid
    ? 'Fix the settings first.'
    : fileMismatch
    ? 'Upload a file first.'
    : repeating && repeatIssue
    ? 'Fix the schedule first.'
    : '';

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    if (!ready) return;
    setSubmitting(true);
    setError(null);
    const inputPath = op.file && file.state === 'uploaded' ? file.path : null;
    try {
      if (repeating) {
        const schedule = await createSchedule(op.type, requestBody(op, opValues, null), repeat.recurrence, repeat.name);
        setRepeat((r) => ({ ...r, enabled: false, name: '' }));
        toast({ title: `Scheduled: ${schedule.name ?? op.label}`, tone: 'success', href: '#/schedules' });
        location.hash = '#/schedules';
        return;
      }
      const body = requestBody(op, opValues, inputPath);
      // The user's own file name goes with the job, for its downloads (lib/upload.ts downloadName).
      if (inputPath && file.state === 'uploaded' && 'input_name' in op.input_schema.properties) {
        body.input_name = file.name.slice(0, 255);
      }
      const job = await createJob(op.type, body, idempotencyKey.current);
      if (inputPath) used.current.add(inputPath);
      idempotencyKey.current = newKey();
      onStarted(job);
    } catch (err) {
      const refused = await toApiError(err);
      setError(refused);
      // The creator removes a refused job's upload; this is the fallback when it could not.
      if (inputPath && refusesUpload(refused) && !used.current.has(inputPath)) {
        void removeInput(inputPath);
        setFile({ state: 'none' });
      }
    } finally {
      setSubmitting(false);
    }
  };

  const fileHint = op.file
    ? `${op.file.in_function.summary}; files up to ${formatBytes(op.file.max_bytes)} are accepted.`
    : '';

  return (
    <form className="card new-job" onSubmit={submit} aria-labelledby="new-job-title" noValidate>
      <h2 id="new-job-title">Start a job</h2>

      <fieldset className="operations">
        <legend>1. Choose an operation</legend>
        <div className="operations__list">
          {kinds.map((o) => (
            <div
              key={o.type}
              className={`operation${o.type === op.type ? ' operation--selected' : ''}${o.available ? '' : ' operation--unavailable'}`}
            >
              <input
                type="radio"
                id={`${opGroup}-${o.type}`}
                name={opGroup}
                value={o.type}
                checked={o.type === op.type}
                aria-describedby={`${opGroup}-${o.type}-summary`}
                onChange={() => {
                  setType(o.type);
                  setError(null);
                  idempotencyKey.current = newKey();
                }}
              />
              {/* The label covers the whole card (CSS), so the summary is clickable too. */}
              <label htmlFor={`${opGroup}-${o.type}`} className="operation__label">{o.label}</label>
              <span className="operation__summary" id={`${opGroup}-${o.type}-summary`}>
                {o.summary}
                {!o.available && <span className="operation__unavailable"> Not available in this project.</span>}
              </span>
            </div>
          ))}
        </div>
      </fieldset>

      {!op.available && (
        <p className="notice" data-testid="unavailable">
          {sentence(op.unavailable?.message ?? `${op.label} is not available in this project`)}
        </p>
      )}

      {op.available && op.file && (
        <fieldset>
          <legend>2. Upload the input</legend>
          <DropZone
            accept={acceptOf(op)}
            disabled={submitting || file.state === 'checking'}
            prompt={file.state === 'uploaded' ? 'Drop another file, or press to choose one' : 'Drop a file here, or press to choose one'}
            hint={fileHint}
            onFile={(f) => void choose(f)}
          />
          <div className="upload-status" aria-live="polite">
            {lostFile && file.state === 'none' && (
              <p className="notice" data-testid="file-lost">
                Your settings are back, but the page could not keep <strong>{lostFile}</strong> across the reload: choose it again.
              </p>
            )}
            {file.state === 'checking' && <p className="muted">Checking {file.name}…</p>}
            {file.state === 'uploading' && (
              <div className="upload-status__row">
                <span>Uploading {file.name} ({formatBytes(file.size)})…</span>
                <ProgressBar value={file.progress * 100} label={`Uploading ${file.name}`} />
                <button type="button" className="button button--quiet" onClick={() => upload.current?.abort()}>
                  Cancel upload
                </button>
              </div>
            )}
            {file.state === 'uploaded' && (
              <div className="upload-status__row upload-status__row--done" data-testid="uploaded">
                {file.type.startsWith('image/') && <img src={file.previewUrl} alt="" className="upload-thumb" />}
                <span>
                  Uploaded <strong>{file.name}</strong> ({formatBytes(file.size)}
                  {file.facts.durationSeconds !== undefined && `, ${formatSeconds(file.facts.durationSeconds)}`}
                  {file.facts.width && file.facts.height ? `, ${file.facts.width}×${file.facts.height}` : ''})
                </span>
              </div>
            )}
            {file.state === 'error' && <p className="error" role="alert">{file.message}</p>}
            {fileMismatch && <p className="error" role="alert">{fileMismatch}</p>}
          </div>
        </fieldset>
      )}

      {op.available && fields.length > 0 && (
        <fieldset>
          <legend>{op.file ? '3.' : '2.'} Settings</legend>
          <Fields fields={fields} values={opValues} problems={problems} onChange={setValue} disabled={submitting} />
        </fieldset>
      )}

      {op.available && <Repeat kind={op} value={repeat} onChange={setRepeat} disabled={submitting} />}

      {error && (
        <p className="error" role="alert" data-testid="start-error">
          {waiting
            ? `${error.friendly.replace(/ Try again in \d+ s\.$/, '')} You can start again in ${wait} s.`
            : error.code === 'network'
            ? `Spool's API at ${supabaseUrl} is unreachable. Check your connection and press Start again.`
            : error.friendly}
        </p>
      )}
      {op.available && (
        <div className="actions">
          <button ref={startButton} type="submit" className="button button--primary" disabled={!ready} aria-disabled={!ready}>
            {repeating
              ? (submitting ? 'Scheduling…' : `Schedule: ${op.label.toLowerCase()}`)
              : submitting
              ? 'Starting…'
              : `Start: ${op.label.toLowerCase()}`}
          </button>
          {!ready && !submitting && <span className="actions__hint">{notReady}</span>}
        </div>
      )}
    </form>
  );
}
