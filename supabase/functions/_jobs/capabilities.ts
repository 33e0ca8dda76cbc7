// What the browser learns of the job kinds (GET /functions/v1/jobs/kinds): for each kind a
// person may start, its label and summary, whether this project can run it (its provider is
// configured), its input as JSON Schema (zod's, with the fields' labels, help and widgets from the
// schema's metadata), and the rules of its input file. The web client builds its forms and checks
// files against this before uploading, so nothing about a kind is written twice.
import { z } from '../_shared/deps.ts';
import type { AnyJobKind } from './kind.ts';
import type { ProviderConfig } from './providers.ts';
import { providerRefusal } from './route.ts';

export interface KindCapabilities {
  type: string;
  label: string;
  summary: string;
  available: boolean;
  unavailable: { code: string; message: string } | null;
  input_schema: Record<string, unknown>;
  file: null | {
    field: string;
    content_types: readonly string[];
    in_function: {
      content_types: readonly string[];
      summary: string;
      max_megapixels?: number;
      max_seconds?: number;
      max_samples?: number;
    };
    provider: 'replicate' | null;
    provider_configured: boolean;
    max_bytes: number;
  };
}

/** The JSON Schema of a kind's input, as a request body (defaults optional, metadata kept). */
export function inputSchemaOf(kind: AnyJobKind): Record<string, unknown> {
  const schema = z.toJSONSchema(kind.schema, { io: 'input', unrepresentable: 'any' }) as Record<
    string,
    unknown
  >;
  delete schema.$schema;
  return schema;
}

/** The capabilities of the kinds a person may start (test-only kinds are left out). */
export function capabilitiesOf(
  kinds: readonly AnyJobKind[],
  providers: ProviderConfig,
): KindCapabilities[] {
  return kinds.filter((k) => !k.testOnly).map((kind) => {
    const refusal = providerRefusal(kind, providers);
    const file = kind.file;
    return {
      type: kind.type,
      label: kind.label,
      summary: kind.summary,
      available: refusal === null,
      unavailable: refusal ? { code: refusal.code, message: refusal.message } : null,
      input_schema: inputSchemaOf(kind),
      file: file
        ? {
          field: file.field,
          content_types: file.contentTypes,
          in_function: {
            content_types: file.facts.inFunction,
            summary: file.facts.summary,
            ...file.facts.limits,
          },
          provider: file.facts.provider ?? null,
          provider_configured: file.facts.provider ? providers.replicate(kind.type) : false,
          max_bytes: file.maxBytes,
        }
        : null,
    };
  });
}
