// The envelope of a record on the ingest topic (docs/kafka-ingest.md):
//   key      anything (the workspace id is a good choice: one workspace stays in order)
//   value    the event's JSON payload, UTF-8, exactly the bytes receivers get as `data`
//   headers  workspace-id (required), event-type (required), idempotency-key (optional)
// Header names match case-insensitively; each may appear once.
import type { IHeaders, KafkaMessage } from 'kafkajs';
import type { eventsV1 } from '@hookline/proto';
import { invalidArgument, type FieldViolation, type ServiceError } from '@hookline/service-kit';

export const HEADER_WORKSPACE_ID = 'workspace-id';
export const HEADER_EVENT_TYPE = 'event-type';
export const HEADER_IDEMPOTENCY_KEY = 'idempotency-key';

/** Field prefix the Ingestor uses for Kafka items; rewritten to envelope names below. */
export const KAFKA_FIELD_PREFIX = 'message';

export type Decoded = { ok: true; input: eventsV1.EventInput } | { ok: false; error: ServiceError };

const utf8 = new TextDecoder('utf-8', { fatal: true });

export function decodeEnvelope(message: Pick<KafkaMessage, 'value' | 'headers'>): Decoded {
  const problems: FieldViolation[] = [];
  const header = (name: string, required: boolean): string => {
    const values = headerValues(message.headers, name);
    if (values.length === 0) {
      if (required) problems.push({ field: `headers.${name}`, description: 'is required' });
      return '';
    }
    if (values.length > 1) {
      problems.push({ field: `headers.${name}`, description: `must appear once (found ${values.length})` });
      return '';
    }
    try {
      return utf8.decode(values[0]!);
    } catch {
      problems.push({ field: `headers.${name}`, description: 'is not valid UTF-8' });
      return '';
    }
  };
  const workspaceId = header(HEADER_WORKSPACE_ID, true);
  const eventType = header(HEADER_EVENT_TYPE, true);
  const idempotencyKey = header(HEADER_IDEMPOTENCY_KEY, false);
  if (problems.length > 0) return { ok: false, error: invalidArgument(problems) };
  return { ok: true, input: { workspaceId, eventType, idempotencyKey, payload: message.value ?? Buffer.alloc(0) } };
}

/** The Ingestor's field names (message.workspace_id, message.payload/amount) in envelope terms. */
export function envelopeField(field: string): string {
  const rest = field.startsWith(`${KAFKA_FIELD_PREFIX}.`) ? field.slice(KAFKA_FIELD_PREFIX.length + 1) : field;
  if (rest === 'workspace_id') return `headers.${HEADER_WORKSPACE_ID}`;
  if (rest === 'event_type') return `headers.${HEADER_EVENT_TYPE}`;
  if (rest === 'idempotency_key') return `headers.${HEADER_IDEMPOTENCY_KEY}`;
  if (rest.startsWith('payload')) return `value${rest.slice('payload'.length)}`;
  return rest;
}

function headerValues(headers: IHeaders | undefined, name: string): Buffer[] {
  const out: Buffer[] = [];
  for (const [k, v] of Object.entries(headers ?? {})) {
    if (k.toLowerCase() !== name || v === undefined) continue;
    for (const one of Array.isArray(v) ? v : [v]) out.push(Buffer.isBuffer(one) ? one : Buffer.from(one, 'utf8'));
  }
  return out;
}
