// The new-job form's "Repeat" option: run the job on a schedule instead of once. A cron
// expression or an interval, a time zone, an optional name, and the next 3 runs previewed by
// preview_schedule (the server's own reading of the expression, so what is shown is what will
// run). Kinds with an input file cannot repeat: each run would process the same upload again, so
// the form says so instead of offering it.
import { useEffect, useId, useState } from 'react';
import type { ApiError } from '../lib/api-error.ts';
import type { JobKind } from '../lib/kinds.ts';
import {
  browserTimeZone,
  formatSlot,
  previewSchedule,
  type Recurrence,
  recurrenceProblem,
} from '../lib/schedules.ts';

export interface RepeatState {
  enabled: boolean;
  name: string;
  recurrence: Recurrence;
}

export function initialRepeat(): RepeatState {
  return {
    enabled: false,
    name: '',
    recurrence: { mode: 'cron', cron: '0 9 * * *', count: 1, unit: 'days', timezone: browserTimeZone() },
  };
}

/** Why the form cannot be submitted as a schedule now, or null (also when not repeating). */
export function repeatProblem(kind: JobKind, repeat: RepeatState): string | null {
  if (!repeat.enabled) return null;
  if (kind.file) return 'Jobs with an upload cannot repeat.';
  return recurrenceProblem(repeat.recurrence);
}

type Preview =
  | { state: 'idle' | 'loading' }
  | { state: 'ready'; slots: string[] }
  | { state: 'error'; message: string };

/** How long the preview waits after the last keystroke before asking the server. */
const PREVIEW_DELAY_MS = 300;

interface Props {
  kind: JobKind;
  value: RepeatState;
  onChange: (next: RepeatState) => void;
  disabled?: boolean;
}

export function Repeat({ kind, value, onChange, disabled }: Props) {
  const id = useId();
  const r = value.recurrence;
  const set = (patch: Partial<Recurrence>) => onChange({ ...value, recurrence: { ...r, ...patch } });
  const [preview, setPreview] = useState<Preview>({ state: 'idle' });
  const local = value.enabled && !kind.file ? recurrenceProblem(r) : null;

  useEffect(() => {
    if (!value.enabled || kind.file || local) {
      setPreview({ state: 'idle' });
      return;
    }
    let alive = true;
    setPreview({ state: 'loading' });
    const timer = setTimeout(() => {
      previewSchedule(r, { count: 3 }).then(
        (slots) => alive && setPreview({ state: 'ready', slots }),
        (err: ApiError) => alive && setPreview({ state: 'error', message: err.friendly }),
      );
    }, PREVIEW_DELAY_MS);
    return () => {
      alive = false;
      clearTimeout(timer);
    };
  }, [value.enabled, kind.file, local, r.mode, r.cron, r.count, r.unit, r.timezone]);

  if (kind.file) {
    return (
      <fieldset className="repeat">
        <legend>Repeat</legend>
        <div className="field field--checkbox">
          <input id={`${id}-on`} type="checkbox" checked={false} disabled aria-describedby={`${id}-why`} />
          <label htmlFor={`${id}-on`}>Run on a schedule</label>
        </div>
        <p className="field__hint" id={`${id}-why`} data-testid="repeat-unavailable">
          {kind.label} works on an upload, and every run would process the same file again: schedules are for job types
          without an upload, like generating an image or text from a prompt.
        </p>
      </fieldset>
    );
  }

  const problem = local ?? (preview.state === 'error' ? preview.message : null);
  return (
    <fieldset className="repeat">
      <legend>Repeat</legend>
      <div className="field field--checkbox">
        <input
          id={`${id}-on`}
          type="checkbox"
          checked={value.enabled}
          disabled={disabled}
          onChange={(e) => onChange({ ...value, enabled: e.target.checked })}
        />
        <label htmlFor={`${id}-on`}>Run on a schedule</label>
      </div>
      {value.enabled && (
        <>
          <div className="fields">
            <div className="field">
              <label htmlFor={`${id}-mode`}>Repeat by</label>
              <select
                id={`${id}-mode`}
                value={r.mode}
                disabled={disabled}
                onChange={(e) => set({ mode: e.target.value as Recurrence['mode'] })}
              >
                <option value="cron">A cron expression</option>
                <option value="every">A fixed interval</option>
              </select>
            </div>
            {r.mode === 'cron'
              ? (
                <div className="field">
                  <label htmlFor={`${id}-cron`}>Cron expression</label>
                  <input
                    id={`${id}-cron`}
                    type="text"
                    value={r.cron}
                    disabled={disabled}
                    spellCheck={false}
                    autoComplete="off"
                    aria-describedby={`${id}-cron-hint${problem ? ` ${id}-problem` : ''}`}
                    onChange={(e) => set({ cron: e.target.value })}
                  />
                  <span className="field__hint" id={`${id}-cron-hint`}>
                    minute hour day month weekday: 0 9 * * * is every day at 9:00, 0 9 * * 1-5 on weekdays
                  </span>
                </div>
              )
              : (
                <div className="field">
                  <label htmlFor={`${id}-count`}>Every</label>
                  <div className="field__row">
                    <input
                      id={`${id}-count`}
                      type="number"
                      min={1}
                      step={1}
                      value={Number.isFinite(r.count) ? r.count : ''}
                      disabled={disabled}
                      aria-describedby={problem ? `${id}-problem` : undefined}
                      onChange={(e) => set({ count: e.target.value === '' ? NaN : Number(e.target.value) })}
                    />
                    <select
                      aria-label="Unit"
                      value={r.unit}
                      disabled={disabled}
                      onChange={(e) => set({ unit: e.target.value as Recurrence['unit'] })}
                    >
                      <option value="minutes">minutes</option>
                      <option value="hours">hours</option>
                      <option value="days">days</option>
                    </select>
                  </div>
                </div>
              )}
            <div className="field">
              <label htmlFor={`${id}-tz`}>Time zone</label>
              <input
                id={`${id}-tz`}
                type="text"
                value={r.timezone}
                disabled={disabled}
                spellCheck={false}
                autoComplete="off"
                aria-describedby={`${id}-tz-hint`}
                onChange={(e) => set({ timezone: e.target.value })}
              />
              <span className="field__hint" id={`${id}-tz-hint`}>
                {r.mode === 'cron' ? 'the clock the cron expression reads, like UTC or Europe/Paris' : 'used to show the times'}
              </span>
            </div>
            <div className="field">
              <label htmlFor={`${id}-name`}>Name (optional)</label>
              <input
                id={`${id}-name`}
                type="text"
                maxLength={100}
                value={value.name}
                disabled={disabled}
                placeholder="Morning picture"
                onChange={(e) => onChange({ ...value, name: e.target.value })}
              />
            </div>
          </div>
          <div className="upload-status" aria-live="polite" data-testid="repeat-preview">
            {problem && <p className="error" id={`${id}-problem`} role="alert">{problem}</p>}
            {!problem && preview.state === 'loading' && <p className="muted">Working out the next runs…</p>}
            {!problem && preview.state === 'ready' && (
              <>
                <p className="muted">Next runs:</p>
                <ol data-testid="repeat-slots">
                  {preview.slots.map((s) => (
                    <li key={s}>
                      <time dateTime={s}>{formatSlot(s, r.timezone.trim())}</time>
                    </li>
                  ))}
                </ol>
              </>
            )}
          </div>
        </>
      )}
    </fieldset>
  );
}
