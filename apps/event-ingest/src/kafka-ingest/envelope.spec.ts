import { status } from '@grpc/grpc-js';
import type { KafkaMessage } from 'kafkajs';
import { ServiceError } from '@hookline/service-kit';
import { decodeEnvelope, envelopeField } from './envelope';
import { dlqRecord } from './ingest-consumer';

describe('decodeEnvelope', () => {
  it('reads workspace-id, event-type and the optional idempotency-key from headers, case-insensitively', () => {
    const d = decodeEnvelope({ value: Buffer.from('{"a":1}'), headers: { 'Workspace-Id': 'ws_1', 'event-type': Buffer.from('invoice.paid') } });
    expect(d).toEqual({ ok: true, input: { workspaceId: 'ws_1', eventType: 'invoice.paid', idempotencyKey: '', payload: Buffer.from('{"a":1}') } });
  });

  it('lists every envelope problem at once', () => {
    const d = decodeEnvelope({ value: null, headers: { 'event-type': ['a.b', 'c.d'], 'idempotency-key': Buffer.from([0xff]) } });
    expect(d.ok).toBe(false);
    const err = (d as { error: ServiceError }).error;
    expect(err.code).toBe(status.INVALID_ARGUMENT);
    expect(err.violations).toEqual([
      { field: 'headers.workspace-id', description: 'is required' },
      { field: 'headers.event-type', description: 'must appear once (found 2)' },
      { field: 'headers.idempotency-key', description: 'is not valid UTF-8' },
    ]);
  });

  it('treats a tombstone (null value) as an empty payload, which validation refuses', () => {
    const d = decodeEnvelope({ value: null, headers: { 'workspace-id': 'w', 'event-type': 'a.b' } });
    expect(d.ok && d.input.payload.length).toBe(0);
  });
});

describe('envelopeField', () => {
  it.each([
    ['message.workspace_id', 'headers.workspace-id'],
    ['message.event_type', 'headers.event-type'],
    ['message.idempotency_key', 'headers.idempotency-key'],
    ['message.payload', 'value'],
    ['message.payload/items/0/sku', 'value/items/0/sku'],
  ])('%s → %s', (from, to) => expect(envelopeField(from)).toBe(to));
});

describe('dlqRecord', () => {
  const message = { key: Buffer.from('ws'), value: Buffer.from('{"x":-1}'), headers: { 'workspace-id': Buffer.from('ws'), 'hookline-error-code': Buffer.from('FORGED') }, offset: '41', timestamp: '1700000000000', attributes: 0 } as KafkaMessage;
  const error = new ServiceError(status.INVALID_ARGUMENT, 'payload does not match: message.payload/x must be >= 0', [{ field: 'message.payload/x', description: 'must be >= 0' }]);

  it('keeps the original key, value and headers, and adds the reason and the source', () => {
    const r = dlqRecord('in', 3, message, error);
    expect(r.key).toBe(message.key);
    expect(r.value).toBe(message.value);
    expect(r.headers).toMatchObject({
      'workspace-id': message.headers!['workspace-id'],
      'hookline-error-code': 'INVALID_ARGUMENT',
      'hookline-error-field': 'value/x',
      'hookline-error-message': 'payload does not match: value/x must be >= 0',
      'hookline-error-violations': JSON.stringify([{ field: 'value/x', description: 'must be >= 0' }]),
      'hookline-source-topic': 'in',
      'hookline-source-partition': '3',
      'hookline-source-offset': '41',
      'hookline-source-timestamp': '1700000000000',
    });
  });

  it('truncates a value too large for the DLQ topic, and says so', () => {
    const big = { ...message, value: Buffer.alloc(1_000_000, 0x61) };
    const r = dlqRecord('in', 0, big, error);
    expect((r.value as Buffer).length).toBe(900 * 1024);
    expect(r.headers!['hookline-value-truncated']).toBe('1000000');
  });
});
