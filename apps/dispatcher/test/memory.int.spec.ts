// Payload bytes held in memory, against the real broker and database: a slow endpoint sent large
// payloads must not pull its whole backlog into the dispatcher's memory (2,304 held tasks of
// 256 KiB payloads would be 576 MiB, beyond the chart's 1 GiB limit once bodies are built).
import { eventually, uniquePrefix } from '@hookline/testing';
import { createEndpoint, outcomeOf, publish, startPlatform, type Platform } from './harness';

jest.setTimeout(90_000);

const MIB = 1024 * 1024;
const EVENTS = 80;
const PAYLOAD = 'x'.repeat(200_000);

describe('payload bytes held in memory', () => {
  const prefix = uniquePrefix('mem');
  let p: Platform;

  beforeAll(async () => {
    p = await startPlatform(prefix, { TARGET_ALLOWLIST: '127.0.0.1/32', MAX_HELD_MB: '1', MAX_IN_FLIGHT_PER_ENDPOINT: '2' });
  });

  afterAll(async () => {
    await p?.stop();
  });

  it('stay within a few chunks of MAX_HELD_MB while a slow endpoint is sent large payloads, and every delivery arrives once', async () => {
    const ws = `ws_${prefix}`;
    p.receiver.behaviour.set('/slow', { status: 200, delayMs: 200 });
    const ep = await createEndpoint(p, ws, p.receiver.url('/slow'));
    const engine = p.dispatcher.engine!;
    let most = 0;
    const sample = setInterval(() => (most = Math.max(most, engine.load.heldBytes)), 5);
    try {
      const ids: string[] = [];
      for (let i = 0; i < EVENTS; i += 10) ids.push(...(await Promise.all(Array.from({ length: 10 }, (_, k) => publish(p, ws, { order_id: `o-${i + k}`, note: PAYLOAD })))));
      await eventually(async () => {
        for (const id of ids) if ((await outcomeOf(p, `${id}|${ep.id}`))?.state !== 'succeeded') return undefined;
        return true;
      }, 80_000, 'every large delivery to succeed');
      expect(new Set(p.receiver.on('/slow').map((r) => String(r.headers['x-webhook-id']))).size).toBe(EVENTS);
    } finally {
      clearInterval(sample);
    }
    // Intake stops taking chunks at 1 MiB; up to 4 partitions' chunks (a 1 MiB fetch each) may
    // pass that check together. Without the bound the endpoint's queue (64) held ~13 MiB.
    expect(most).toBeGreaterThan(0);
    expect(most).toBeLessThanOrEqual(6 * MIB);
    expect(engine.load.heldBytes).toBe(0);
  });
});
