import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import { App } from './App.tsx';
import { ToastProvider } from './components/Toasts.tsx';
import { configProblem } from './lib/supabase.ts';
import './styles.css';

const root = createRoot(document.getElementById('root')!);

if (configProblem) {
  root.render(
    <main className="config-error" role="alert">
      <h1>Spool is not configured</h1>
      <p>{configProblem}</p>
    </main>,
  );
} else {
  root.render(
    <StrictMode>
      <ToastProvider>
        <App />
      </ToastProvider>
    </StrictMode>,
  );
}
