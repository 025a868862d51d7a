import { Writable } from 'node:stream';
import { context, trace, TraceFlags } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { createLogger, unredacted } from './logger';

function capture() {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      lines.push(chunk.toString());
      cb();
    },
  });
  return { lines, log: createLogger('test', 'trace', stream) };
}

describe('logger', () => {
  const SECRET = 'whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LTEyMzQ=';
  const SIG = 'sha256=0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0';
  const STD = 'v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4=';

  it('redacts secrets, signatures and bodies wherever the known paths put them', () => {
    const { lines, log } = capture();
    log.info({ secret: SECRET, secrets: [SECRET], payload: '{"card":"4242"}', body: 'raw body' }, 'top level');
    log.info({ endpoint: { secret: SECRET }, req: { headers: { 'x-signature-256': SIG, 'webhook-signature': STD, authorization: 'Bearer t0ken' } } }, 'nested');
    log.info({ headers: { 'x-signature-256': SIG, 'webhook-signature': STD } }, 'headers');
    log.info({ attempt: { requestHeaders: { 'x-signature-256': SIG, 'webhook-signature': STD } } }, 'attempt');
    const all = lines.join('');
    for (const needle of [SECRET, SIG, SIG.slice(7), STD, STD.slice(3), '4242', 'raw body', 't0ken']) expect(all).not.toContain(needle);
    expect(all).toContain('[redacted]');
  });

  it('logs errors without the documents drivers attach to them (a failed insertMany of attempts)', () => {
    const { lines, log } = capture();
    const bulk = Object.assign(new Error('E11000 duplicate key'), {
      name: 'MongoBulkWriteError',
      code: 11000,
      writeErrors: [{ index: 0, code: 11000, op: { requestHeaders: { 'x-signature-256': SIG }, payload: '{"card":"4242"}' } }],
      insertedDocs: [{ requestHeaders: { 'x-signature-256': SIG } }],
      errorResponse: Object.assign(new Error('pool cleared'), { name: 'MongoPoolClearedError', errorLabels: ['ResetPool'] }),
    });
    log.warn({ err: bulk, deliveryId: 'evt_1|ep_1' }, 'delivery attempt not recorded');
    const all = lines.join('');
    for (const needle of [SIG, SIG.slice(7), '4242']) expect(all).not.toContain(needle);
    const line = JSON.parse(lines[0]!) as { err: { type: string; code: number; message: string; cause: { type: string; errorLabels: string[] } } };
    expect(line.err).toMatchObject({ type: 'MongoBulkWriteError', code: 11000, message: 'E11000 duplicate key', cause: { type: 'MongoPoolClearedError', errorLabels: ['ResetPool'] } });
  });

  it("writes an unredacted child's fields as they are, and still redacts everything else", () => {
    const { lines, log } = capture();
    unredacted(log).info({ eventId: 'evt_1', attempt: 2, outcome: 'retry', reason: 'endpoint answered 503' }, 'delivery attempt');
    log.info({ secret: SECRET }, 'after');
    const [plain, after] = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(plain).toMatchObject({ eventId: 'evt_1', attempt: 2, outcome: 'retry', reason: 'endpoint answered 503', msg: 'delivery attempt', service: 'test' });
    expect(after!.secret).toBe('[redacted]');
  });

  it('adds trace_id and span_id of the active span', () => {
    context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
    const { lines, log } = capture();
    const sc = { traceId: '0af7651916cd43dd8448eb211c80319c', spanId: 'b7ad6b7169203331', traceFlags: TraceFlags.SAMPLED };
    context.with(trace.setSpanContext(context.active(), sc), () => log.info('inside'));
    log.info('outside');
    const [inside, outside] = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(inside).toMatchObject({ trace_id: sc.traceId, span_id: sc.spanId });
    expect(outside!.trace_id).toBeUndefined();
  });
});
