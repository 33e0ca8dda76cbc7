// Before/after previews: a compare slider for images (over a checkerboard for roto mattes, whose
// transparency is the point), two players for audio, a grid for generated images.
import { useEffect, useState } from 'react';
import { noResultCaption } from '../lib/job-states.ts';
import type { Job, JobDetail, OutputFile } from '../lib/jobs.ts';
import { signedInputUrl } from '../lib/upload.ts';

function inputPathOf(job: Job): string | null {
  const p = job.input?.input_path;
  return typeof p === 'string' ? p : null;
}

/** A signed URL of the job's input file (for the "before" side). */
function useInputUrl(job: Job): string | null {
  const path = inputPathOf(job);
  const [url, setUrl] = useState<string | null>(null);
  useEffect(() => {
    let alive = true;
    setUrl(null);
    if (path) void signedInputUrl(path).then((u) => alive && setUrl(u));
    return () => {
      alive = false;
    };
  }, [path]);
  return url;
}

export function CompareSlider(
  { before, after, width, height, matte = false }: {
    before: string;
    after: string;
    width?: number;
    height?: number;
    matte?: boolean;
  },
) {
  const [pos, setPos] = useState(50);
  const ratio = width && height ? `${width} / ${height}` : undefined;
  return (
    <div className={`compare${matte ? ' compare--matte' : ''}`} style={{ aspectRatio: ratio }} data-testid="compare">
      <img className="compare__img" src={before} alt="Before: the input image" />
      <div className="compare__after" style={{ clipPath: `inset(0 0 0 ${pos}%)` }}>
        <img className="compare__img" src={after} alt={matte ? 'After: the cut-out with its alpha matte' : 'After: the result'} />
      </div>
      <div className="compare__divider" style={{ left: `${pos}%` }} aria-hidden="true" />
      <span className="compare__tag compare__tag--before" aria-hidden="true">Before</span>
      <span className="compare__tag compare__tag--after" aria-hidden="true">After</span>
      <input
        className="compare__range"
        type="range"
        min={0}
        max={100}
        step={1}
        value={pos}
        onChange={(e) => setPos(Number(e.target.value))}
        aria-label="Divider between before (left) and after (right)"
        aria-valuetext={`${pos}% before, ${100 - pos}% after`}
      />
    </div>
  );
}

function isImage(f: OutputFile) {
  return f.content_type.startsWith('image/');
}

export function Preview({ job, detail }: { job: Job; detail: JobDetail | null }) {
  const before = useInputUrl(job);
  const files = job.status === 'done' ? detail?.output_files ?? [] : [];
  const first = files[0];

  if (job.type === 'image') {
    if (files.length === 0) return null;
    const prompt = String(job.input?.prompt ?? '');
    return (
      <div className="outputs-grid">
        {files.filter((f) => f.url && isImage(f)).map((f, i) => (
          <img key={f.path} src={f.url!} alt={`Generated image ${i + 1} of ${files.length}: ${prompt}`} />
        ))}
      </div>
    );
  }

  if (job.type === 'audio-clean') {
    const report = (job.output as { report?: Record<string, unknown> } | null)?.report;
    return (
      <div className="audio-compare">
        <figure>
          <figcaption>Before</figcaption>
          {before ? <audio controls preload="metadata" src={before} /> : <p className="muted">Loading…</p>}
        </figure>
        <figure>
          <figcaption>After</figcaption>
          {first?.url
            ? <audio controls preload="metadata" src={first.url} data-testid="after-audio" />
            : <p className="muted" data-testid="after-caption">{noResultCaption(job.status)}</p>}
        </figure>
        {report && typeof report.input_lufs === 'number' && typeof report.output_lufs === 'number' && (
          <p className="muted audio-report">
            Loudness {report.input_lufs.toFixed(1)} → {report.output_lufs.toFixed(1)} LUFS
            {typeof report.gain_db === 'number' && `, gain ${report.gain_db.toFixed(1)} dB`}
          </p>
        )}
      </div>
    );
  }

  // color-grade and roto: images (a provider may return other media; those are downloads only).
  const matte = job.type === 'roto';
  if (before && first?.url && isImage(first)) {
    return <CompareSlider before={before} after={first.url} width={first.width} height={first.height} matte={matte} />;
  }
  if (before && !inputPathOf(job)?.match(/\.(mp4|mov|webm)$/i)) {
    return (
      <figure className="single-preview">
        <img src={before} alt="The input image" />
        <figcaption>
          {job.status === 'done'
            ? 'Before'
            : job.status === 'failed'
            ? `Input. ${noResultCaption(job.status)}`
            : job.status === 'cancelled'
            ? 'Input' // the card says it was cancelled with no result

            : 'Input; the result appears here when it is done.'}
        </figcaption>
      </figure>
    );
  }
  return null;
}
