// Start a job: choose a job kind, upload its input (with progress), set it up, start it, or run
// it on a schedule (Repeat: a kind without an upload becomes a schedule through the schedule
// creator instead of one job). The kinds, their settings and their file rules come from the
// server (GET /jobs/kinds, fetched once per session: hooks/useKinds.ts); the form is built from
// them (lib/kinds.ts).
import { type FormEvent, useEffect, useId, useMemo, useRef, useState } from 'react';
import { useKinds } from '../hooks/useKinds.ts';
import { type ApiError, createJob, type Job, toApiError } from '../lib/jobs.ts';
import {
  acceptOf,
  defaultValues,
  type FieldValue,
  fieldProblems,
  fieldsOf,
  fileProblem,
  formatBytes,
  type FormValues,
  type JobKind,
  mediaTypeOf,
  missingFields,
  requestBody,
} from '../lib/kinds.ts';
import { createSchedule } from '../lib/schedules.ts';
import { type Upload, uploadInput, UploadError } from '../lib/upload.ts';
import { DropZone } from './DropZone.tsx';
import { Fields } from './Fields.tsx';
import { initialRepeat, Repeat, repeatProblem, type RepeatState } from './Repeat.tsx';
import { useToast } from './Toasts.tsx';
import { ProgressBar } from './ui.tsx';

type FileState =
  | { state: 'none' }
  | { state: 'uploading'; name: string; size: number; type: string; progress: number }
  | { state: 'uploaded'; name: string; size: number; type: string; path: string; previewUrl: string }
  | { state: 'error'; message: string };

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
  if (kinds.status === 'ready' && kinds.kinds.length > 0) return <NewJobForm {...props} kinds={kinds.kinds} />;
  return (
    <section className="card new-job" aria-labelledby="new-job-title" aria-busy={kinds.status !== 'error' && kinds.status !== 'ready'}>
      <h2 id="new-job-title">Start a job</h2>
      {kinds.status === 'error'
        ? (
          <>
            <p className="error" role="alert" data-testid="kinds-error">{kinds.error.friendly}</p>
            <button type="button" className="button" onClick={kinds.retry}>Try again</button>
          </>
        )
        : kinds.status === 'ready'
        ? <p className="muted">This project offers no job types yet.</p>
        : <p className="muted" data-testid="kinds-loading">Loading the job types…</p>}
    </section>
  );
}

function NewJobForm({ userId, accessToken, onStarted, kinds }: Props & { kinds: readonly JobKind[] }) {
  // The first kind this project can run is chosen at first (the server lists colour grade first).
  const [type, setType] = useState(() => (kinds.find((k) => k.available) ?? kinds[0]).type);
  const op = kinds.find((k) => k.type === type) ?? kinds[0];
  const fields = useMemo(() => fieldsOf(op), [op]);
  const [values, setValues] = useState<Record<string, FormValues>>(
    () => Object.fromEntries(kinds.map((k) => [k.type, defaultValues(k)])),
  );
  const opValues = values[op.type] ?? defaultValues(op);
  const [file, setFile] = useState<FileState>({ state: 'none' });
  const [submitting, setSubmitting] = useState(false);
  const [error, setError] = useState<ApiError | null>(null);
  const [repeat, setRepeat] = useState<RepeatState>(initialRepeat);
  const toast = useToast();
  const upload = useRef<Upload | null>(null);
  // One key per intended job: a double click or a retried request returns the same job.
  const idempotencyKey = useRef(newKey());
  const opGroup = useId();

  useEffect(() => () => upload.current?.abort(), []);
  useEffect(() => () => {
    if (file.state === 'uploaded') URL.revokeObjectURL(file.previewUrl);
  }, [file]);

  const fileMismatch = op.file && (file.state === 'uploaded' || file.state === 'uploading')
    ? fileProblem(op, { name: file.name, type: file.type, size: file.size })
    : null;

  const choose = (f: File) => {
    setError(null);
    const problem = fileProblem(op, f);
    if (problem) {
      setFile({ state: 'error', message: problem });
      return;
    }
    upload.current?.abort();
    // Stored under the media type the checks above accepted (the inputs bucket checks it again).
    const contentType = mediaTypeOf(f, op.file?.content_types);
    const started = uploadInput(f, userId, accessToken, contentType, (p) =>
      setFile((s) => (s.state === 'uploading' ? { ...s, progress: p } : s)));
    upload.current = started;
    idempotencyKey.current = newKey();
    setFile({ state: 'uploading', name: f.name, size: f.size, type: f.type, progress: 0 });
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

  const missing = missingFields(op, opValues);
  const problems = fieldProblems(op, opValues);
  const invalid = Object.keys(problems).length > 0;
  // A schedule of a kind with an upload is not offered (Repeat says why); the rest of its checks.
  const repeating = repeat.enabled && !op.file;
  const repeatIssue = repeatProblem(op, repeat);
  const ready = !submitting && op.available && !fileMismatch && missing.length === 0 && !invalid &&
    (op.file ? file.state === 'uploaded' : true) && !(repeating && repeatIssue);
  const notReady = op.file && file.state !== 'uploaded'
    ? (file.state === 'uploading' ? 'Waiting for the upload…' : 'Upload a file first.')
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
    try {
      if (repeating) {
        const schedule = await createSchedule(op.type, requestBody(op, opValues, null), repeat.recurrence, repeat.name);
        setRepeat((r) => ({ ...r, enabled: false, name: '' }));
        toast({ title: `Scheduled: ${schedule.name ?? op.label}`, tone: 'success', href: '#/schedules' });
        location.hash = '#/schedules';
        return;
      }
      const inputPath = op.file && file.state === 'uploaded' ? file.path : null;
      const job = await createJob(op.type, requestBody(op, opValues, inputPath), idempotencyKey.current);
      idempotencyKey.current = newKey();
      onStarted(job);
    } catch (err) {
      setError(await toApiError(err));
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
            disabled={submitting}
            prompt={file.state === 'uploaded' ? 'Drop another file, or press to choose one' : 'Drop a file here, or press to choose one'}
            hint={fileHint}
            onFile={choose}
          />
          <div className="upload-status" aria-live="polite">
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
                  Uploaded <strong>{file.name}</strong> ({formatBytes(file.size)})
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
          {error.friendly}
        </p>
      )}
      {op.available && (
        <div className="actions">
          <button type="submit" className="button button--primary" disabled={!ready} aria-disabled={!ready}>
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
