// Start a job: choose an operation, upload its input (with progress), set it up, start it.
import { type FormEvent, useEffect, useId, useRef, useState } from 'react';
import { type ApiError, createJob, type Job, toApiError } from '../lib/jobs.ts';
import {
  acceptOf,
  defaultValues,
  type FieldValue,
  fileProblem,
  formatBytes,
  type JobType,
  OPERATIONS,
  type Operation,
  requestBody,
} from '../lib/operations.ts';
import { type Upload, uploadInput, UploadError } from '../lib/upload.ts';
import { DropZone } from './DropZone.tsx';
import { Fields } from './Fields.tsx';
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

export function NewJob({ userId, accessToken, onStarted }: Props) {
  const [type, setType] = useState<JobType>('color-grade');
  const op = OPERATIONS.find((o) => o.type === type) as Operation;
  const [values, setValues] = useState<Record<JobType, Record<string, FieldValue>>>(
    () => Object.fromEntries(OPERATIONS.map((o) => [o.type, defaultValues(o)])) as Record<JobType, Record<string, FieldValue>>,
  );
  const [file, setFile] = useState<FileState>({ state: 'none' });
  const [submitting, setSubmitting] = useState(false);
  const [error, setError] = useState<ApiError | null>(null);
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
    const started = uploadInput(f, userId, accessToken, (p) =>
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
    setValues((v) => ({ ...v, [type]: { ...v[type], [name]: value } }));
  };

  const promptMissing = op.type === 'image' && !String(values.image.prompt ?? '').trim();
  const ready = !submitting && !fileMismatch &&
    (op.file ? file.state === 'uploaded' : !promptMissing);

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    if (!ready) return;
    setSubmitting(true);
    setError(null);
    try {
      const inputPath = op.file && file.state === 'uploaded' ? file.path : null;
      const job = await createJob(op.type, requestBody(op, values[type], inputPath), idempotencyKey.current);
      idempotencyKey.current = newKey();
      onStarted(job);
    } catch (err) {
      setError(await toApiError(err));
    } finally {
      setSubmitting(false);
    }
  };

  const fileHint = op.file
    ? `${op.file.inFunction}; files up to ${formatBytes(op.file.maxBytes)} are accepted.`
    : '';

  return (
    <form className="card new-job" onSubmit={submit} aria-labelledby="new-job-title" noValidate>
      <h2 id="new-job-title">Start a job</h2>

      <fieldset className="operations">
        <legend>1. Choose an operation</legend>
        <div className="operations__list">
          {OPERATIONS.map((o) => (
            <div key={o.type} className={`operation${o.type === type ? ' operation--selected' : ''}`}>
              <input
                type="radio"
                id={`${opGroup}-${o.type}`}
                name={opGroup}
                value={o.type}
                checked={o.type === type}
                aria-describedby={`${opGroup}-${o.type}-summary`}
                onChange={() => {
                  setType(o.type);
                  setError(null);
                  idempotencyKey.current = newKey();
                }}
              />
              {/* The label covers the whole card (CSS), so the summary is clickable too. */}
              <label htmlFor={`${opGroup}-${o.type}`} className="operation__label">{o.label}</label>
              <span className="operation__summary" id={`${opGroup}-${o.type}-summary`}>{o.summary}</span>
            </div>
          ))}
        </div>
      </fieldset>

      {op.file && (
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

      <fieldset>
        <legend>{op.file ? '3.' : '2.'} Settings</legend>
        <Fields fields={op.fields} values={values[type]} onChange={setValue} disabled={submitting} />
      </fieldset>

      {error && (
        <p className="error" role="alert" data-testid="start-error">
          {error.friendly}
        </p>
      )}
      <div className="actions">
        <button type="submit" className="button button--primary" disabled={!ready} aria-disabled={!ready}>
          {submitting ? 'Starting…' : `Start: ${op.label.toLowerCase()}`}
        </button>
        {!ready && !submitting && (
          <span className="actions__hint">
            {op.file ? (file.state === 'uploading' ? 'Waiting for the upload…' : 'Upload a file first.') : promptMissing ? 'Write a prompt first.' : ''}
          </span>
        )}
      </div>
    </form>
  );
}
