// A fake OpenAI API for the test stacks (npm test's, web/tests'): the functions' OPENAI_BASE_URL,
// so the image and text kinds and the pack run end to end without the network or a real key.
//
//   POST /v1/images/generations   200: `n` small solid-colour PNGs as b64_json
//   POST /v1/chat/completions     200: an assistant message whose content is JSON satisfying the
//                                 request's response_format.json_schema.schema (text.ts sends one)
//   anything else                 404 in OpenAI's error shape
//
// Tests that need OpenAI to fail or be absent do that themselves, never through this fake.
import http from 'node:http';
import { encode as encodePng } from 'fast-png';

/** A small PNG of one colour (fast-png, which the product decodes with). */
function solidPng(width, height, rgb) {
  const data = Uint8Array.from({ length: width * height * 3 }, (_, i) => rgb[i % 3]);
  return Buffer.from(encodePng({ width, height, channels: 3, data }));
}

const COLOURS = [[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0]];

/**
 * A value that satisfies a JSON Schema of the subset strict structured outputs allow (object,
 * array, string, number, integer, boolean, null, enum, const, anyOf, nullable type lists).
 */
function sampleOf(schema) {
  if (!schema || typeof schema !== 'object') return '…';
  if ('const' in schema) return schema.const;
  if (Array.isArray(schema.enum) && schema.enum.length > 0) return schema.enum[0];
  if (Array.isArray(schema.anyOf) && schema.anyOf.length > 0) return sampleOf(schema.anyOf[0]);
  const type = Array.isArray(schema.type) ? schema.type.find((t) => t !== 'null') ?? 'null' : schema.type;
  switch (type) {
    case 'object': {
      const out = {};
      const props = schema.properties ?? {};
      for (const name of schema.required ?? Object.keys(props)) out[name] = sampleOf(props[name]);
      return out;
    }
    case 'array': {
      // minItems items (at least one, so a rendered list has something in it, unless maxItems is 0).
      const length = Math.min(Math.max(schema.minItems ?? 0, 1), schema.maxItems ?? Infinity);
      return Array.from({ length }, () => sampleOf(schema.items));
    }
    case 'integer':
    case 'number':
      return schema.minimum ?? (schema.exclusiveMinimum !== undefined ? schema.exclusiveMinimum + 1 : 1);
    case 'boolean':
      return true;
    case 'null':
      return null;
    default: // string
      return '…'.repeat(Math.max(schema.minLength ?? 1, 1));
  }
}

/** Starts the fake on a free loopback port. Resolves to { url, close() }. */
export async function startFakeOpenAI() {
  let seq = 0;
  const server = http.createServer((req, res) => {
    const parts = [];
    req.on('data', (c) => parts.push(c));
    req.on('end', () => {
      let body = null;
      try {
        body = JSON.parse(Buffer.concat(parts).toString('utf8'));
      } catch {
        // not JSON: answered as if empty
      }
      const path = new URL(req.url, 'http://x').pathname;
      const json = (status, value) => {
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(JSON.stringify(value));
      };
      if (req.method === 'POST' && path === '/v1/images/generations') {
        const n = Number.isInteger(body?.n) && body.n > 0 ? body.n : 1;
        const first = seq++;
        return json(200, {
          data: Array.from({ length: n }, (_, i) => ({
            b64_json: solidPng(32, 32, COLOURS[(first + i) % COLOURS.length]).toString('base64'),
          })),
          usage: { total_tokens: 100, input_tokens: 10, output_tokens: 90 },
        });
      }
      if (req.method === 'POST' && path === '/v1/chat/completions') {
        const content = JSON.stringify(sampleOf(body?.response_format?.json_schema?.schema));
        return json(200, {
          model: body?.model ?? 'fake',
          choices: [{ index: 0, message: { role: 'assistant', content, refusal: null }, finish_reason: 'stop' }],
          usage: { prompt_tokens: 12, completion_tokens: 34, total_tokens: 46 },
        });
      }
      return json(404, { error: { message: `fake OpenAI: no route ${req.method} ${path}` } });
    });
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    close: () => new Promise((resolve) => server.close(resolve).closeAllConnections()),
  };
}
