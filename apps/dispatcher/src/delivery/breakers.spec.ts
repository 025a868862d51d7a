import { Breakers } from './breakers';
import { supersededIn } from './engine';

describe('Breakers', () => {
  it('opens after the threshold of failures in a row, then allows one probe per interval until a success', () => {
    const b = new Breakers(3, 1_000);
    for (let i = 0; i < 2; i++) b.record('ep', false, 0);
    expect(b.allow('ep', 0)).toBe(true);
    b.record('ep', false, 0); // third failure: open, first probe 1 s later
    expect(b.open).toBe(1);
    expect(b.openForMs('ep', 700)).toBe(700);
    expect(b.openForMs('other', 700)).toBe(0);
    expect(b.allow('ep', 500)).toBe(false);
    expect(b.allow('ep', 1_000)).toBe(true); // the probe
    expect(b.allow('ep', 1_001)).toBe(false); // only one
    b.record('ep', false, 1_050); // the probe failed: still open
    expect(b.allow('ep', 1_500)).toBe(false);
    expect(b.allow('ep', 2_000)).toBe(true);
    b.record('ep', true, 2_050); // the probe succeeded: closed
    expect(b.open).toBe(0);
    expect(b.openForMs('ep', 2_051)).toBe(0);
    expect(b.allow('ep', 2_051)).toBe(true);
    expect(b.allow('ep', 2_052)).toBe(true);
  });

  it('a success resets the count, other endpoints are unaffected, and 0 turns breakers off', () => {
    const b = new Breakers(2, 1_000);
    b.record('a', false, 0);
    b.record('a', true, 0);
    b.record('a', false, 0);
    expect(b.allow('a', 0)).toBe(true);
    b.record('b', false, 0);
    b.record('b', false, 0);
    expect(b.allow('b', 10)).toBe(false);
    expect(b.allow('a', 10)).toBe(true);
    const off = new Breakers(0, 1_000);
    for (let i = 0; i < 100; i++) off.record('c', false, 0);
    expect(off.allow('c', 0)).toBe(true);
  });
});

describe('supersededIn', () => {
  const t = (deliveryId: string, attemptsMade: number) => ({ deliveryId, task: { attemptsMade } });

  it('keeps the latest attempt of each delivery in a chunk', () => {
    const chunk = [t('a', 1), t('b', 1), t('a', 2), t('a', 4), t('a', 3), t('c', 0)];
    const superseded = supersededIn(chunk);
    expect([...superseded]).toEqual([chunk[0], chunk[2], chunk[4]]);
  });

  it('supersedes nothing when every delivery comes once', () => {
    expect(supersededIn([t('a', 1), t('b', 1)]).size).toBe(0);
  });
});
