// Start a complete pack: one product prompt (and the images' size and quality) becomes six
// product photos and the A+ content text, one flow (POST /functions/v1/pack). The form is the
// image kind's, as GET /jobs/kinds lists it (lib/pack.ts packKindOf): when `image` is not
// available (no OpenAI), the pack is not either, and the form says why instead of offering Start.
import { type FormEvent, useMemo, useRef, useState } from 'react';
import { useKinds } from '../hooks/useKinds.ts';
import { type ApiError, createPack, type Job, toApiError } from '../lib/jobs.ts';
import {
  defaultValues,
  type FieldValue,
  fieldProblems,
  fieldsOf,
  type FormValues,
  missingFields,
  requestBody,
} from '../lib/kinds.ts';
import { packKindOf } from '../lib/pack.ts';
import { Fields } from './Fields.tsx';

/** A server message as a sentence: capitalised, with its full stop. */
function sentence(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1) + (/[.!?]$/.test(text) ? '' : '.');
}

export function PackForm({ onStarted }: { onStarted: (job: Job) => void }) {
  const kinds = useKinds();
  const kind = useMemo(() => (kinds.status === 'ready' ? packKindOf(kinds.kinds) : null), [kinds]);
  if (!kind) return null; // the kinds are loading (NewJob says so), or there is no image kind
  return <PackFormReady kind={kind} onStarted={onStarted} />;
}

function PackFormReady(
  { kind, onStarted }: { kind: NonNullable<ReturnType<typeof packKindOf>>; onStarted: (job: Job) => void },
) {
  const fields = useMemo(() => fieldsOf(kind), [kind]);
  const [values, setValues] = useState<FormValues>(() => defaultValues(kind));
  const [submitting, setSubmitting] = useState(false);
  const [error, setError] = useState<ApiError | null>(null);
  // One key per intended pack: a double click or a retried request returns the same pack.
  const idempotencyKey = useRef(crypto.randomUUID());

  const setValue = (name: string, value: FieldValue) => {
    idempotencyKey.current = crypto.randomUUID();
    setValues((v) => ({ ...v, [name]: value }));
  };
  const missing = missingFields(kind, values);
  const problems = fieldProblems(kind, values);
  const ready = !submitting && kind.available && missing.length === 0 && Object.keys(problems).length === 0;

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    if (!ready) return;
    setSubmitting(true);
    setError(null);
    try {
      const { job } = await createPack(requestBody(kind, values, null), idempotencyKey.current);
      idempotencyKey.current = crypto.randomUUID();
      onStarted(job);
    } catch (err) {
      setError(await toApiError(err));
    } finally {
      setSubmitting(false);
    }
  };

  return (
    <form className="card new-job pack-form" onSubmit={submit} aria-labelledby="pack-form-title" noValidate data-testid="pack-form">
      <h2 id="pack-form-title">{kind.label}</h2>
      <p className="muted">{kind.summary}</p>
      {!kind.available && (
        <p className="notice" data-testid="pack-unavailable">
          {sentence(kind.unavailable?.message ?? 'the complete pack is not available in this project')}
        </p>
      )}
      {kind.available && (
        <>
          <Fields fields={fields} values={values} problems={problems} onChange={setValue} disabled={submitting} />
          {error && <p className="error" role="alert" data-testid="pack-error">{error.friendly}</p>}
          <div className="actions">
            <button type="submit" className="button button--primary" disabled={!ready} aria-disabled={!ready}>
              {submitting ? 'Starting…' : 'Start: complete pack'}
            </button>
            {!ready && !submitting && missing.length > 0 && (
              <span className="actions__hint">Describe the product first.</span>
            )}
          </div>
        </>
      )}
    </form>
  );
}
