// The settings of an operation, from its field list (lib/operations.ts): every control labelled,
// ranges with their value spelled out.
import { useId } from 'react';
import type { Field, FieldValue } from '../lib/operations.ts';

interface Props {
  fields: readonly Field[];
  values: Record<string, FieldValue>;
  onChange: (name: string, value: FieldValue) => void;
  disabled?: boolean;
}

export function Fields({ fields, values, onChange, disabled }: Props) {
  return (
    <div className="fields">
      {fields.filter((f) => !f.when || f.when(values)).map((f) => (
        <FieldControl key={f.name} field={f} value={values[f.name] ?? f.default} onChange={onChange} disabled={disabled} />
      ))}
    </div>
  );
}

function FieldControl(
  { field: f, value, onChange, disabled }: {
    field: Field;
    value: FieldValue;
    onChange: Props['onChange'];
    disabled?: boolean;
  },
) {
  const id = useId();
  const hintId = `${id}-hint`;
  const hint = f.hint ? <span className="field__hint" id={hintId}>{f.hint}</span> : null;
  const describedBy = f.hint ? hintId : undefined;
  switch (f.kind) {
    case 'range': {
      const n = Number(value);
      const text = f.format ? f.format(n) : String(n);
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
            {f.options.map((o) => <option key={o.value} value={o.value}>{o.label}</option>)}
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
              onChange={(e) => onChange(f.name, e.target.value.toLowerCase())}
            />
            <code aria-hidden="true">{String(value)}</code>
          </div>
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
            onChange={(e) => onChange(f.name, e.target.checked)}
          />
          <label htmlFor={id}>{f.label}</label>
        </div>
      );
    case 'text':
      return (
        <div className="field field--text">
          <label htmlFor={id}>{f.label}{f.required && <span aria-hidden="true"> *</span>}</label>
          <textarea
            id={id}
            name={f.name}
            rows={3}
            value={String(value)}
            maxLength={f.maxLength}
            required={f.required}
            placeholder={f.placeholder}
            disabled={disabled}
            aria-describedby={describedBy}
            onChange={(e) => onChange(f.name, e.target.value)}
          />
          {hint}
        </div>
      );
  }
}
