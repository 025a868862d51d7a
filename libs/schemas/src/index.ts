// Shapes every service agrees on: identifiers, event-type names, the JSON Schema dialects the
// catalog accepts, and the body a receiver gets.
import Ajv2020 from 'ajv/dist/2020';
import AjvDraft7 from 'ajv';
import addFormats from 'ajv-formats';
import type { ErrorObject, ValidateFunction } from 'ajv';

/** Workspace ids are the caller's tenant ids: 1-128 of [A-Za-z0-9_.:-]. */
export const WORKSPACE_ID_RE = /^[A-Za-z0-9_.:-]{1,128}$/;
/** Event type names: dotted lower-case segments, e.g. `invoice.paid`, at most 128 characters. */
export const EVENT_TYPE_RE = /^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$/;
export const EVENT_TYPE_MAX = 128;

export function workspaceIdProblem(id: string): string | undefined {
  if (!id) return 'is required';
  if (!WORKSPACE_ID_RE.test(id)) return 'must be 1-128 characters of A-Z a-z 0-9 _ . : -';
  return undefined;
}

export function eventTypeProblem(name: string): string | undefined {
  if (!name) return 'is required';
  if (name.length > EVENT_TYPE_MAX) return `must be at most ${EVENT_TYPE_MAX} characters`;
  if (!EVENT_TYPE_RE.test(name)) return 'must be dotted lower-case words, e.g. "invoice.paid"';
  return undefined;
}

export interface SchemaViolation {
  /** JSON Pointer into the payload, "" for the root. */
  path: string;
  message: string;
}

export type CompiledSchema = (payload: unknown) => SchemaViolation[];

const ajv2020 = addFormats(new Ajv2020({ allErrors: true, strict: false }));
const ajv7 = addFormats(new AjvDraft7({ allErrors: true, strict: false }));

function violations(errors: ErrorObject[] | null | undefined): SchemaViolation[] {
  return (errors ?? []).map((e) => ({
    path: e.instancePath,
    message: e.keyword === 'additionalProperties' ? `unexpected property "${String(e.params.additionalProperty)}"` : (e.message ?? 'is invalid'),
  }));
}

/**
 * Compiles a JSON Schema (2020-12 by default, draft-07 when `$schema` says so). Throws an Error
 * whose message says what is wrong with the schema. Compiling costs 10-20 ms: cache the result.
 */
export function compileSchema(schema: unknown): CompiledSchema {
  if (typeof schema !== 'object' || schema === null || Array.isArray(schema)) throw new Error('must be a JSON object (a JSON Schema)');
  const dialect = (schema as { $schema?: unknown }).$schema;
  const engine = typeof dialect === 'string' && dialect.includes('draft-07') ? ajv7 : ajv2020;
  let validate: ValidateFunction;
  try {
    // Compile without registering: the same $id may be compiled again after an update.
    validate = engine.compile({ ...(schema as object), $id: undefined });
  } catch (err) {
    throw new Error(`is not a valid JSON Schema: ${(err as Error).message}`);
  }
  return (payload) => (validate(payload) ? [] : violations(validate.errors));
}

/** Parses JSON text, returning undefined and a reason instead of throwing. */
export function parseJson(text: string): { ok: true; value: unknown } | { ok: false; reason: string } {
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch (err) {
    return { ok: false, reason: `is not valid JSON (${(err as Error).message})` };
  }
}

/** The body POSTed to endpoints. `data` is the published payload, byte for byte. */
export function webhookBody(e: { id: string; type: string; createdAt: Date; payload: Uint8Array | string }): Buffer {
  const data = typeof e.payload === 'string' ? e.payload : Buffer.from(e.payload).toString('utf8');
  return Buffer.from(`{"id":${JSON.stringify(e.id)},"type":${JSON.stringify(e.type)},"created_at":${JSON.stringify(e.createdAt.toISOString())},"data":${data}}`, 'utf8');
}
