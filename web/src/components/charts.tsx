// Hand-rolled SVG charts for the admin view: line charts over time.
// Each is an <svg role="img"> with a title and a description of its latest values.
// Lines never rely on colour alone: each series has its own dash pattern and marker shape, shown
// in the legend; lines that share values (two series at 0 all hour) are drawn a few pixels apart
// and the legend says which coincide.
import { useId } from 'react';

export interface Series {
  name: string;
  color: string;
  points: { t: number; v: number | null }[];
  /** An SVG stroke-dasharray; by default the series' place in DASHES. */
  dash?: string;
  marker?: Marker;
}

export type Marker = 'circle' | 'square' | 'triangle' | 'diamond';
export const DASHES = ['', '7 4', '2 3', '10 3 2 3'] as const;
export const MARKERS: readonly Marker[] = ['circle', 'square', 'triangle', 'diamond'];
/** Pixels between lines that share values, so each stays visible. */
export const OVERLAP_OFFSET = 3;

function MarkerShape({ shape, x, y, color }: { shape: Marker; x: number; y: number; color: string }) {
  const r = 3.2;
  switch (shape) {
    case 'square':
      return <rect x={x - r} y={y - r} width={2 * r} height={2 * r} fill={color} />;
    case 'triangle':
      return <path d={`M${x},${y - r - 0.8}L${x + r + 0.6},${y + r}L${x - r - 0.6},${y + r}Z`} fill={color} />;
    case 'diamond':
      return <path d={`M${x},${y - r - 1}L${x + r + 1},${y}L${x},${y + r + 1}L${x - r - 1},${y}Z`} fill={color} />;
    default:
      return <circle cx={x} cy={y} r={r} fill={color} />;
  }
}

/**
 * For each series, the names of earlier series it shares a value with at some time (to offset
 * and label it), and whether it coincides with one of them everywhere.
 */
export function overlaps(series: readonly Series[]): { with: string[]; identical: string | null }[] {
  const key = (s: Series) => JSON.stringify(s.points.map((p) => [p.t, p.v]));
  return series.map((s, i) => {
    const values = new Map(s.points.filter((p) => p.v !== null).map((p) => [p.t, p.v]));
    const shared = series.slice(0, i).filter((o) =>
      o.points.some((p) => p.v !== null && values.get(p.t) === p.v)
    );
    const same = series.slice(0, i).find((o) => key(o) === key(s));
    return { with: shared.map((o) => o.name), identical: same?.name ?? null };
  });
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
  const spanLabel = span >= 120 ? `${Math.round(span / 60)} min ago` : span > 0 ? `${span} s ago` : '';
  const shared = overlaps(series);
  // Lines that share values are spread around their true place: 0, +3, -3, +6 ... px.
  const offsetOf = (i: number) => {
    const k = shared.slice(0, i + 1).filter((o) => o.with.length > 0).length;
    if (shared[i].with.length === 0) return 0;
    return (k % 2 === 1 ? -1 : 1) * Math.ceil(k / 2) * OVERLAP_OFFSET;
  };
  const markEvery = Math.max(1, Math.ceil(Math.max(1, ...series.map((s) => s.points.length)) / 10));
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
        <text x={PAD.left} y={H - 6} className="chart__label">{spanLabel}</text>
        <text x={W - PAD.right} y={H - 6} className="chart__label" textAnchor="end">now</text>
        {all.length > 0 && series.map((s, si) => {
          const dy = offsetOf(si);
          const dash = s.dash ?? DASHES[si % DASHES.length];
          const marker = s.marker ?? MARKERS[si % MARKERS.length];
          // Break the line where a value is missing (null).
          const segments: string[] = [];
          let current = '';
          for (const p of s.points) {
            if (p.v === null) {
              if (current) segments.push(current);
              current = '';
              continue;
            }
            current += `${current ? 'L' : 'M'}${x(p.t).toFixed(1)},${(y(p.v) + dy).toFixed(1)}`;
          }
          if (current) segments.push(current);
          const last = [...s.points].reverse().find((p) => p.v !== null);
          // Markers every few points (each series at its own phase), and at the latest value.
          const marks = s.points.filter((p, i) => p.v !== null && ((i + si * 2) % markEvery === 0 || p === last));
          return (
            <g key={s.name} data-series={s.name} data-offset={dy}>
              {segments.map((d, i) => (
                <path key={i} d={d} fill="none" stroke={s.color} strokeWidth={2} strokeDasharray={dash || undefined} vectorEffect="non-scaling-stroke" />
              ))}
              {marks.map((p) => <MarkerShape key={p.t} shape={marker} x={x(p.t)} y={y(p.v!) + dy} color={s.color} />)}
            </g>
          );
        })}
      </svg>
      <Legend
        items={series.map((s, si) => ({
          name: s.name,
          color: s.color,
          dash: s.dash ?? DASHES[si % DASHES.length],
          marker: s.marker ?? MARKERS[si % MARKERS.length],
          note: shared[si].identical
            ? `same values as ${shared[si].identical}, drawn ${Math.abs(offsetOf(si))} px apart`
            : shared[si].with.length > 0
            ? `drawn ${Math.abs(offsetOf(si))} px apart where it meets ${shared[si].with.join(', ')}`
            : undefined,
        }))}
      />
    </figure>
  );
}

interface LegendItem {
  name: string;
  color: string;
  dash?: string;
  marker?: Marker;
  note?: string;
}

function Legend({ items }: { items: LegendItem[] }) {
  return (
    <ul className="legend" data-testid="legend">
      {items.map((i) => (
        <li key={i.name} data-series={i.name}>
          {i.marker
            ? (
              <svg className="legend__line" viewBox="0 0 28 10" aria-hidden="true" focusable="false">
                <line x1={1} x2={27} y1={5} y2={5} stroke={i.color} strokeWidth={2} strokeDasharray={i.dash || undefined} />
                <MarkerShape shape={i.marker} x={14} y={5} color={i.color} />
              </svg>
            )
            : <span className="legend__swatch" style={{ background: i.color }} aria-hidden="true" />}
          {i.name}
          {i.note && <span className="legend__note"> ({i.note})</span>}
        </li>
      ))}
    </ul>
  );
}
