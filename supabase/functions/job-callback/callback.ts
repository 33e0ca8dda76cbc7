// Replicate's webhook, as a pure handler over injected dependencies (index.ts wires the real ones).
//
//   POST /job-callback?provider=replicate     body: the prediction (Replicate's JSON), signed
//
// Answers, in the one error shape for refusals:
//   401 invalid_signature    the Standard Webhooks signature is missing, wrong or older than 5 min
//                            (nothing changes; the job keeps waiting)
//   400 unknown_provider | invalid_json | invalid_body,  413 body_too_large
//   503 provider_not_configured   REPLICATE_WEBHOOK_SECRET is not set (Replicate retries later)
//   200 {"ignored": true, "reason": "not_completed"}       a start/output/logs event
//   200 {"ignored": true, "reason": "unknown_prediction"}  no job waits on this prediction
//   200 {"duplicate": true, "job_id", "status"}            the job is no longer waiting
//   202 {"accepted": true, "job_id"}                      settling: outputs stored, job resumed
//
// An unknown prediction gets 200, not 404: Replicate retries non-2xx deliveries, and a
// prediction we do not know (its job was pruned, or another app shares the endpoint) will never
// become known, so a 404 would only make it retry in vain. A valid signature proves it came from
// Replicate; the body says which prediction; settling happens after the answer (Replicate wants
// one within seconds) and a failure there leaves the job waiting for the next poll.
import { handle, HttpError, json, readCappedBody } from '../_shared/http.ts';
import {
  type Prediction,
  type SettleDeps,
  settlePrediction,
  TERMINAL,
  verifyWebhook,
} from '../_jobs/replicate.ts';

/** Replicate's prediction objects are small; outputs are URLs. */
const MAX_BODY_BYTES = 1024 * 1024;

export interface CallbackDeps {
  /** REPLICATE_WEBHOOK_SECRET ("whsec_..."), or null when not configured. */
  webhookSecret: string | null;
  settle: SettleDeps;
  /** Unix seconds. */
  nowSeconds(): number;
  /** Keeps settling alive after the response (EdgeRuntime.waitUntil). */
  background(work: Promise<unknown>): Promise<void>;
  log(line: Record<string, unknown>): void;
}

function isPrediction(v: unknown): v is Prediction {
  const p = v as Prediction;
  return typeof v === 'object' && v !== null && typeof p.id === 'string' && p.id.length > 0 &&
    p.id.length <= 500 && typeof p.status === 'string';
}

export function createCallbackHandler(deps: CallbackDeps): (req: Request) => Promise<Response> {
  return handle('job-callback', ['POST'], async (req) => {
    const provider = new URL(req.url).searchParams.get('provider') ?? 'replicate';
    if (provider !== 'replicate') {
      throw new HttpError(
        400,
        'unknown_provider',
        `no callbacks are expected from "${provider.slice(0, 50)}"`,
      );
    }
    if (!deps.webhookSecret) {
      throw new HttpError(503, 'provider_not_configured', 'REPLICATE_WEBHOOK_SECRET is not set');
    }
    const body = new TextDecoder().decode(await readCappedBody(req, MAX_BODY_BYTES));
    const check = await verifyWebhook(deps.webhookSecret, req.headers, body, deps.nowSeconds());
    if (!check.ok) {
      deps.log({
        level: 'warn',
        msg: 'webhook refused',
        why: check.why,
        webhook_id: req.headers.get('webhook-id'),
      });
      throw new HttpError(
        401,
        'invalid_signature',
        'the webhook signature is missing, invalid or too old',
      );
    }
    let prediction: unknown;
    try {
      prediction = JSON.parse(body);
    } catch {
      throw new HttpError(400, 'invalid_json', 'the request body is not valid JSON');
    }
    if (!isPrediction(prediction)) {
      throw new HttpError(
        400,
        'invalid_body',
        'the body is not a prediction (id and status are required)',
      );
    }
    if (!TERMINAL.includes(prediction.status)) {
      return json({ ignored: true, reason: 'not_completed' });
    }

    const job = await deps.settle.findJob('replicate', prediction.id);
    if (!job) {
      deps.log({
        level: 'info',
        msg: 'webhook for an unknown prediction',
        prediction_id: prediction.id,
      });
      return json({ ignored: true, reason: 'unknown_prediction' });
    }
    if (job.status !== 'waiting') {
      return json({ duplicate: true, job_id: job.id, status: job.status });
    }

    const settled = prediction;
    const work = settlePrediction(deps.settle, settled).then(
      (result) => {
        if (result.result === 'resumed') {
          deps.log({
            level: result.outcome === 'done' ? 'info' : 'warn',
            msg: 'job',
            job_id: result.job_id,
            type: job.type,
            outcome: result.outcome === 'done'
              ? 'done'
              : result.status === 'pending'
              ? 'retry'
              : 'failed',
            via: 'replicate_webhook',
            prediction_id: settled.id,
          });
        }
      },
      (err) => {
        // The job keeps waiting; the next poll (or the deadline) settles it.
        deps.log({
          level: 'error',
          msg: 'settling the prediction failed',
          job_id: job.id,
          prediction_id: settled.id,
          error: String(err),
        });
      },
    );
    await deps.background(work);
    return json({ accepted: true, job_id: job.id }, 202);
  });
}
