// A drop zone that is also a button: drag a file onto it, or focus it and press Enter or Space
// (or click) to choose one. The file input itself is hidden but labelled, and sits beside the
// button, not inside it (no interactive control nested in another).
import { type DragEvent, type KeyboardEvent, useId, useRef, useState } from 'react';

interface Props {
  accept: string;
  disabled?: boolean;
  /** What the zone says, e.g. "Drop a PNG or JPEG here". */
  prompt: string;
  hint: string;
  onFile: (file: File) => void;
}

export function DropZone({ accept, disabled = false, prompt, hint, onFile }: Props) {
  const input = useRef<HTMLInputElement>(null);
  const [over, setOver] = useState(false);
  const hintId = useId();

  const open = () => {
    if (!disabled) input.current?.click();
  };
  const onKeyDown = (e: KeyboardEvent) => {
    if (e.key === 'Enter' || e.key === ' ') {
      e.preventDefault();
      open();
    }
  };
  const onDrop = (e: DragEvent) => {
    e.preventDefault();
    setOver(false);
    if (disabled) return;
    const file = e.dataTransfer.files[0];
    if (file) onFile(file);
  };

  return (
    <div className="dropzone-wrap">
      <div
        className={`dropzone${over ? ' dropzone--over' : ''}${disabled ? ' dropzone--disabled' : ''}`}
        role="button"
        tabIndex={disabled ? -1 : 0}
        aria-disabled={disabled}
        aria-describedby={hintId}
        onClick={open}
        onKeyDown={onKeyDown}
        onDragEnter={(e) => {
          e.preventDefault();
          setOver(true);
        }}
        onDragOver={(e) => {
          e.preventDefault();
          e.dataTransfer.dropEffect = disabled ? 'none' : 'copy';
        }}
        onDragLeave={(e) => {
          if (!e.currentTarget.contains(e.relatedTarget as Node | null)) setOver(false);
        }}
        onDrop={onDrop}
        data-testid="dropzone"
      >
        <svg className="dropzone__icon" viewBox="0 0 24 24" aria-hidden="true" focusable="false">
          <path d="M12 16V4m0 0-4 4m4-4 4 4M4 16v3a1 1 0 0 0 1 1h14a1 1 0 0 0 1-1v-3" />
        </svg>
        <span className="dropzone__prompt">{prompt}</span>
        <span className="dropzone__hint" id={hintId}>{hint}</span>
      </div>
      <input
        ref={input}
        type="file"
        accept={accept}
        className="visually-hidden"
        tabIndex={-1}
        aria-label="Choose a file to upload"
        onChange={(e) => {
          const file = e.target.files?.[0];
          e.target.value = '';
          if (file) onFile(file);
        }}
        data-testid="file-input"
      />
    </div>
  );
}
