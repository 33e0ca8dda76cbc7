// Hand-rolled SVG charts for the admin view: a line chart over time and horizontal stacked bars.
// Each is an <svg role="img"> with a title and a description of its latest values.
import { useId } from 'react';

export interface Series {
  name: string;
  color: string;
  points: { t: number; v: number | null }[];
}

const W = 480;
const H = 180;
const PAD = { top: 12, right: 12, bottom: 24, left: 40 };

function niceMax(v: number): number {
  if (v <= 0) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  const m = v / p;
  return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * p;
}

export function LineChart(
  { title, series, unit = '', description }: { title: string; series: Series[]; unit?: string; description: string },
) {
  const id = useId();
  const all = series.flatMap((s) => s.points);
  const ts = all.map((p) => p.t);
  const t0 = Math.min(...ts);
  const t1 = Math.max(...ts);
  const max = niceMax(Math.max(0, ...all.map((p) => p.v ?? 0)));
  const x = (t: number) => PAD.left + (t1 > t0 ? ((t - t0) / (t1 - t0)) * (W - PAD.left - PAD.right) : 0);
  const y = (v: number) => PAD.top + (1 - v / max) * (H - PAD.top - PAD.bottom);
  const ticks = [0, max / 2, max];
  const span = t1 > t0 ? Math.round((t1 - t0) / 1000) : 0;
  return (
    <figure className="chart">
      <figcaption className="chart__title" id={`${id}-t`}>{title}</figcaption>
      <svg viewBox={`0 0 ${W} ${H}`} role="img" aria-labelledby={`${id}-t ${id}-d`} preserveAspectRatio="none">
        <desc id={`${id}-d`}>{description}</desc>
        {ticks.map((v) => (
          <g key={v}>
            <line x1={PAD.left} x2={W - PAD.right} y1={y(v)} y2={y(v)} className="chart__grid" />
            <text x={PAD.left - 6} y={y(v) + 4} className="chart__label" textAnchor="end">
              {Number.isInteger(v) ? v : v.toFixed(1)}{unit}
            </text>
          </g>
        ))}
        <text x={PAD.left} y={H - 6} className="chart__label">{span > 0 ? `${span} s ago` : ''}</text>
        <text x={W - PAD.right} y={H - 6} className="chart__label" textAnchor="end">now</text>
        {all.length > 0 && series.map((s) => {
          // Break the line where a value is missing (null).
          const segments: string[] = [];
          let current = '';
          for (const p of s.points) {
            if (p.v === null) {
              if (current) segments.push(current);
              current = '';
              continue;
            }
            current += `${current ? 'L' : 'M'}${x(p.t).toFixed(1)},${y(p.v).toFixed(1)}`;
          }
          if (current) segments.push(current);
          const last = [...s.points].reverse().find((p) => p.v !== null);
          return (
            <g key={s.name}>
              {segments.map((d, i) => (
                <path key={i} d={d} fill="none" stroke={s.color} strokeWidth={2} vectorEffect="non-scaling-stroke" />
              ))}
              {last && <circle cx={x(last.t)} cy={y(last.v!)} r={3} fill={s.color} />}
            </g>
          );
        })}
      </svg>
      <Legend items={series.map((s) => ({ name: s.name, color: s.color }))} />
    </figure>
  );
}

export interface BarRow {
  label: string;
  parts: { name: string; value: number; color: string }[];
}

export function StackedBars(
  { title, rows, description, empty }: { title: string; rows: BarRow[]; description: string; empty: string },
) {
  const id = useId();
  const max = niceMax(Math.max(0, ...rows.map((r) => r.parts.reduce((a, p) => a + p.value, 0))));
  const rowH = 26;
  const labelW = 110;
  const height = Math.max(1, rows.length) * rowH + 24;
  const x = (v: number) => (v / max) * (W - labelW - PAD.right);
  const names = [...new Map(rows.flatMap((r) => r.parts).map((p) => [p.name, p.color])).entries()];
  return (
    <figure className="chart">
      <figcaption className="chart__title" id={`${id}-t`}>{title}</figcaption>
      {rows.length === 0
        ? <p className="muted chart__empty">{empty}</p>
        : (
          <svg viewBox={`0 0 ${W} ${height}`} role="img" aria-labelledby={`${id}-t ${id}-d`}>
            <desc id={`${id}-d`}>{description}</desc>
            {rows.map((r, i) => {
              let at = labelW;
              const total = r.parts.reduce((a, p) => a + p.value, 0);
              return (
                <g key={r.label} transform={`translate(0 ${i * rowH + 4})`}>
                  <text x={labelW - 8} y={rowH / 2 + 2} className="chart__label" textAnchor="end">{r.label}</text>
                  {r.parts.filter((p) => p.value > 0).map((p) => {
                    const w = Math.max(1, x(p.value));
                    const rect = <rect key={p.name} x={at} y={3} width={w} height={rowH - 8} fill={p.color} rx={2} />;
                    at += w;
                    return rect;
                  })}
                  <text x={at + 6} y={rowH / 2 + 2} className="chart__label">{total}</text>
                </g>
              );
            })}
            <line x1={labelW} x2={labelW} y1={0} y2={height - 20} className="chart__grid" />
            <text x={labelW} y={height - 4} className="chart__label">0</text>
            <text x={W - PAD.right} y={height - 4} className="chart__label" textAnchor="end">{max}</text>
          </svg>
        )}
      {rows.length > 0 && <Legend items={names.map(([name, color]) => ({ name, color }))} />}
    </figure>
  );
}

function Legend({ items }: { items: { name: string; color: string }[] }) {
  return (
    <ul className="legend" aria-hidden="true">
      {items.map((i) => (
        <li key={i.name}>
          <span className="legend__swatch" style={{ background: i.color }} />
          {i.name}
        </li>
      ))}
    </ul>
  );
}
