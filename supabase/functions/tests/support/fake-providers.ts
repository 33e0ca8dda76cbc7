// Fake OpenAI and Replicate HTTP APIs on a loopback port, so the real SDK and the real fetch code
// run against them (tests point OPENAI_BASE_URL and REPLICATE_API_BASE here).
//
//   POST /openai/v1/images/generations       answers from a script of responses, then 200 images
//   POST /openai/v1/chat/completions         answers from a script, then chatAnswer(request body)
//   POST /replicate/v1/predictions           records the request, answers a new prediction
//   GET  /replicate/v1/predictions/{id}      the prediction as the test last set it
//   GET  /files/{name}                       output files a prediction points at
import { encodePng } from '../../_jobs/media/image.ts';

export interface Recorded {
  method: string;
  path: string;
  headers: Headers;
  body: unknown;
}

export interface ScriptedResponse {
  status: number;
  body?: unknown;
  headers?: Record<string, string>;
}

export interface FakePrediction {
  id: string;
  status: string;
  version?: string;
  input?: Record<string, unknown>;
  output?: unknown;
  error?: unknown;
  webhook?: string;
  [key: string]: unknown;
}

/** A small PNG of one colour. */
export function solidPng(width: number, height: number, rgb: [number, number, number]): Uint8Array {
  const data = new Uint8ClampedArray(width * height * 4);
  for (let i = 0; i < data.length; i += 4) data.set([...rgb, 255], i);
  return encodePng({ width, height, data });
}

function b64(bytes: Uint8Array): string {
  let s = '';
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s);
}

export class FakeProviders {
  readonly requests: Recorded[] = [];
  /** Responses for the next image generations, in order; afterwards each call succeeds. */
  openaiScript: ScriptedResponse[] = [];
  /** Responses for the next chat completions, in order; afterwards each answers chatAnswer. */
  chatScript: ScriptedResponse[] = [];
  /** The assistant message content a chat completion answers (default: {"text": "..."}). */
  chatAnswer: (body: Record<string, unknown>) => string = (body) => {
    const messages = body.messages as { role: string; content: string }[];
    return JSON.stringify({ text: `an answer to: ${messages.at(-1)?.content}` });
  };
  readonly predictions = new Map<string, FakePrediction>();
  readonly files = new Map<string, { bytes: Uint8Array; contentType: string }>();
  /** Responses for the next prediction creations, in order; afterwards each succeeds. */
  replicateScript: ScriptedResponse[] = [];
  private server: Deno.HttpServer<Deno.NetAddr>;
  private seq = 0;
  readonly url: string;

  constructor() {
    this.server = Deno.serve(
      { hostname: '127.0.0.1', port: 0, onListen: () => {} },
      (req) => this.handle(req),
    );
    this.url = `http://127.0.0.1:${this.server.addr.port}`;
  }

  get openaiBase(): string {
    return `${this.url}/openai/v1`;
  }
  get replicateBase(): string {
    return `${this.url}/replicate/v1`;
  }

  requestsTo(method: string, prefix: string): Recorded[] {
    return this.requests.filter((r) => r.method === method && r.path.startsWith(prefix));
  }

  /** Serves `bytes` at /files/{name}; returns its URL. */
  addFile(name: string, bytes: Uint8Array, contentType: string): string {
    this.files.set(name, { bytes, contentType });
    return `${this.url}/files/${name}`;
  }

  async close(): Promise<void> {
    await this.server.shutdown();
  }

  private async handle(req: Request): Promise<Response> {
    const url = new URL(req.url);
    const text = req.method === 'GET' ? '' : await req.text();
    let body: unknown = text;
    try {
      body = text ? JSON.parse(text) : null;
    } catch {
      // keep the text
    }
    this.requests.push({ method: req.method, path: url.pathname, headers: req.headers, body });
    const json = (status: number, value: unknown, headers: Record<string, string> = {}) =>
      new Response(JSON.stringify(value), {
        status,
        headers: { 'content-type': 'application/json', ...headers },
      });

    if (req.method === 'POST' && url.pathname === '/openai/v1/images/generations') {
      const scripted = this.openaiScript.shift();
      if (scripted && scripted.status !== 200) {
        // retry-after-ms keeps the SDK's own retry quick.
        return json(scripted.status, scripted.body ?? { error: { message: 'scripted failure' } }, {
          'retry-after-ms': '10',
          ...scripted.headers,
        });
      }
      const { n = 1 } = body as { n?: number };
      const colours: [number, number, number][] = [[255, 0, 0], [0, 255, 0], [0, 0, 255], [
        255,
        255,
        0,
      ]];
      return json(200, {
        created: Math.floor(Date.now() / 1000),
        data: Array.from(
          { length: n },
          (_, i) => ({ b64_json: b64(solidPng(32, 32, colours[i % 4])) }),
        ),
        usage: { total_tokens: 100, input_tokens: 10, output_tokens: 90 },
      });
    }

    if (req.method === 'POST' && url.pathname === '/openai/v1/chat/completions') {
      const scripted = this.chatScript.shift();
      if (scripted && scripted.status !== 200) {
        return json(scripted.status, scripted.body ?? { error: { message: 'scripted failure' } }, {
          'retry-after-ms': '10',
          ...scripted.headers,
        });
      }
      const request = body as Record<string, unknown>;
      return json(
        200,
        scripted?.body ?? {
          id: `chatcmpl-${++this.seq}`,
          object: 'chat.completion',
          created: Math.floor(Date.now() / 1000),
          model: request.model,
          choices: [{
            index: 0,
            message: { role: 'assistant', content: this.chatAnswer(request), refusal: null },
            finish_reason: 'stop',
          }],
          usage: { prompt_tokens: 12, completion_tokens: 34, total_tokens: 46 },
        },
      );
    }

    if (req.method === 'POST' && url.pathname === '/replicate/v1/predictions') {
      const scripted = this.replicateScript.shift();
      if (scripted && scripted.status >= 300) {
        return json(scripted.status, scripted.body ?? { detail: 'scripted failure' });
      }
      const params = body as { version: string; input: Record<string, unknown>; webhook?: string };
      const prediction: FakePrediction = {
        id: `pred-${++this.seq}-${crypto.randomUUID().slice(0, 8)}`,
        status: 'starting',
        version: params.version,
        input: params.input,
        webhook: params.webhook,
        output: null,
        error: null,
        created_at: new Date().toISOString(),
      };
      this.predictions.set(prediction.id, prediction);
      return json(201, prediction);
    }

    const get = /^\/replicate\/v1\/predictions\/([^/]+)$/.exec(url.pathname);
    if (req.method === 'GET' && get) {
      const prediction = this.predictions.get(decodeURIComponent(get[1]));
      return prediction ? json(200, prediction) : json(404, { detail: 'Not found.' });
    }

    const file = /^\/files\/([^/]+)$/.exec(url.pathname);
    if (req.method === 'GET' && file) {
      const f = this.files.get(file[1]);
      if (!f) return new Response('not found', { status: 404 });
      return new Response(f.bytes.slice(), { headers: { 'content-type': f.contentType } });
    }
    return json(404, { error: { message: `fake: no route ${req.method} ${url.pathname}` } });
  }
}
