import { UsageError } from './errors';
import { parseDurationSeconds, parseList, parseSavedRequest, parseTime } from './parse';
import { table } from './output';

describe('flag parsing', () => {
  it('reads durations and refuses anything else', () => {
    expect(parseDurationSeconds('t', '90')).toBe(90);
    expect(parseDurationSeconds('t', '15m')).toBe(900);
    expect(parseDurationSeconds('t', '1h30m')).toBe(5_400);
    expect(parseDurationSeconds('t', '7d')).toBe(604_800);
    for (const bad of ['', 'soon', '5 m', '1h x', '-5s', '1.5h']) expect(() => parseDurationSeconds('t', bad)).toThrow(UsageError);
  });

  it('reads times as RFC 3339 or a duration ago', () => {
    const now = new Date('2026-01-31T12:00:00Z');
    expect(parseTime('since', '2h', now).toISOString()).toBe('2026-01-31T10:00:00.000Z');
    expect(parseTime('since', '2026-01-30T00:00:00Z', now).toISOString()).toBe('2026-01-30T00:00:00.000Z');
    expect(() => parseTime('since', '2026-13-45', now)).toThrow(/not a valid time/);
    expect(() => parseTime('since', 'yesterday', now)).toThrow(UsageError);
  });

  it('reads lists without empty items', () => {
    expect(parseList('events', 'a.b, c.d')).toEqual(['a.b', 'c.d']);
    expect(() => parseList('events', 'a,,b')).toThrow(/empty item/);
  });

  it('splits a saved request into headers and the exact body bytes', () => {
    const body = Buffer.from('{"a":"\r\n\r\nstill body"}\n');
    const crlf = Buffer.concat([Buffer.from('POST /hook HTTP/1.1\r\nX-Signature-256: sha256=ab\r\nwebhook-signature: v1,x\r\nWebhook-Signature: v1,y\r\n\r\n'), body]);
    expect(parseSavedRequest(crlf)).toEqual({ headers: { 'x-signature-256': 'sha256=ab', 'webhook-signature': 'v1,x v1,y' }, body });
    const lf = Buffer.concat([Buffer.from('x-signature-256: sha256=cd\n\n'), body]);
    expect(parseSavedRequest(lf)).toEqual({ headers: { 'x-signature-256': 'sha256=cd' }, body });
    expect(() => parseSavedRequest(Buffer.from('x-signature-256: sha256=cd\n'))).toThrow(/no empty line/);
  });
});

describe('tables', () => {
  it('aligns columns to the widest cell', () => {
    expect(table(['ID', 'URL'], [['ep_1', 'https://a'], ['ep_22', 'https://bb']])).toBe('ID     URL\nep_1   https://a\nep_22  https://bb');
  });
});
