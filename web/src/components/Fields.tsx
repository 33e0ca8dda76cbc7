// The settings of a job kind, built from its input schema (lib/kinds.ts fieldsOf): every control
// labelled, ranges with their value spelled out, fields shown only while their x-when holds, a
// json field's parse error inline.
import { useId } from 'react';
import {
  type Field,
  type FieldValue,
  formatValue,
  type FormValues,
  isShown,
} from '../lib/kinds.ts';

interface Props {
  fields: readonly Field[];
  values: FormValues;
  onChange: (name: string, value: FieldValue) => void;
  /** What is wrong with a field's value, by name (lib/kinds.ts fieldProblems). */
  problems?: Record<string, string>;
  disabled?: boolean;
}

export function Fields({ fields, values, onChange, problems = {}, disabled }: Props) {
  return (
    <div className="fields">
      {fields.filter((f) => isShown(f, values, fields)).map((f) => (
        <FieldControl
          key={f.name}
          field={f}
          value={values[f.name] ?? f.default}
          problem={problems[f.name]}
          onChange={onChange}
          disabled={disabled}
        />
      ))}
    </div>
  );
}

function FieldControl(
  { field: f, value, problem, onChange, disabled }: {
    field: Field;
    value: FieldValue;
    problem?: string;
    onChange: Props['onChange'];
    disabled?: boolean;
  },
) {
  const id = useId();
  const hintId = `${id}-hint`;
  const problemId = `${id}-problem`;
  const hint = f.hint ? <span className="field__hint" id={hintId}>{f.hint}</span> : null;
  const describedBy = [f.hint ? hintId : null, problem ? problemId : null].filter(Boolean).join(' ') ||
    undefined;
  const problemText = problem
    ? <span className="field__problem error" id={problemId} role="alert">{problem}</span>
    : null;
  const required = f.required ? <span aria-hidden="true"> *</span> : null;
  switch (f.widget) {
    case 'range': {
      const n = Number(value);
      const text = formatValue(f.format, n);
      return (
        <div className="field field--range">
          <div className="field__row">
            <label htmlFor={id}>{f.label}</label>
            <output htmlFor={id} className="field__value">{text}</output>
          </div>
          <input
            id={id}
            type="range"
            name={f.name}
            min={f.min}
            max={f.max}
            step={f.step}
            value={n}
            disabled={disabled}
            aria-valuetext={text}
            aria-describedby={describedBy}
            onChange={(e) => onChange(f.name, Number(e.target.value))}
          />
          {hint}
        </div>
      );
    }
    case 'select':
      return (
        <div className="field">
          <label htmlFor={id}>{f.label}</label>
          <select
            id={id}
            name={f.name}
            value={String(value)}
            disabled={disabled}
            aria-describedby={describedBy}
            onChange={(e) => onChange(f.name, e.target.value)}
          >
            {f.options.map((o) => <option key={String(o.value)} value={String(o.value)}>{o.label}</option>)}
          </select>
          {hint}
        </div>
      );
    case 'color':
      return (
        <div className="field field--color">
          <label htmlFor={id}>{f.label}</label>
          <div className="field__row">
            <input
              id={id}
              type="color"
              name={f.name}
              value={String(value)}
              disabled={disabled}
              aria-describedby={describedBy}
              onChange={(e) => onChange(f.name, e.target.value.toLowerCase())}
            />
            <code aria-hidden="true">{String(value)}</code>
          </div>
          {hint}
        </div>
      );
    case 'checkbox':
      return (
        <div className="field field--checkbox">
          <input
            id={id}
            type="checkbox"
            name={f.name}
            checked={Boolean(value)}
            disabled={disabled}
            aria-describedby={describedBy}
            onChange={(e) => onChange(f.name, e.target.checked)}
          />
          <label htmlFor={id}>{f.label}</label>
          {hint}
        </div>
      );
    case 'text':
      return (
        <div className="field field--text">
          <label htmlFor={id}>{f.label}{required}</label>
          <input
            id={id}
            type="text"
            name={f.name}
            value={String(value)}
            maxLength={f.maxLength}
            required={f.required}
            placeholder={f.placeholder}
            disabled={disabled}
            aria-invalid={problem ? true : undefined}
            aria-describedby={describedBy}
            onChange={(e) => onChange(f.name, e.target.value)}
          />
          {hint}
          {problemText}
        </div>
      );
    case 'textarea':
      return (
        <div className="field field--text">
          <label htmlFor={id}>{f.label}{required}</label>
          <textarea
            id={id}
            name={f.name}
            rows={3}
            value={String(value)}
            maxLength={f.maxLength}
            required={f.required}
            placeholder={f.placeholder}
            disabled={disabled}
            aria-invalid={problem ? true : undefined}
            aria-describedby={describedBy}
            onChange={(e) => onChange(f.name, e.target.value)}
          />
          {hint}
          {problemText}
        </div>
      );
    case 'json':
      return (
        <div className="field field--text field--json">
          <label htmlFor={id}>{f.label}{required}</label>
          <textarea
            id={id}
            name={f.name}
            rows={6}
            value={String(value)}
            spellCheck={false}
            required={f.required}
            disabled={disabled}
            aria-invalid={problem ? true : undefined}
            aria-describedby={describedBy}
            onChange={(e) => onChange(f.name, e.target.value)}
          />
          {hint}
          {problemText}
        </div>
      );
  }
}
