// EventIngestService handlers over the shared Ingestor.
import type { eventsV1 } from '@hookline/proto';
import { invalidField, type AsyncService } from '@hookline/service-kit';
import { MAX_BATCH, type Ingestor, type ItemOutcome } from '../ingestor';

export function ingestService(ingestor: Ingestor): AsyncService<eventsV1.EventIngestServiceServer> {
  const single = (e: eventsV1.EventInput | undefined): eventsV1.EventInput => {
    if (!e) throw invalidField('event', 'is required');
    return e;
  };
  const toAccepted = (o: Extract<ItemOutcome, { ok: true }>): eventsV1.PublishEventResponse => ({ eventId: o.eventId, duplicate: o.duplicate, createTime: o.createdAt });

  return {
    async publishEvent(req) {
      const [outcome] = await ingestor.publish([single(req.event)], () => 'event');
      if (!outcome!.ok) throw outcome!.error;
      return toAccepted(outcome!);
    },

    async publishEvents(req) {
      if (req.events.length === 0) throw invalidField('events', 'must contain at least one event');
      if (req.events.length > MAX_BATCH) throw invalidField('events', `must contain at most ${MAX_BATCH} events (got ${req.events.length}); split the batch`);
      const outcomes = await ingestor.publish(req.events, (i) => `events[${i}]`);
      return {
        results: outcomes.map((o) =>
          o.ok
            ? { outcome: { $case: 'accepted', value: toAccepted(o) } }
            : { outcome: { $case: 'error', value: { code: o.error.code, message: o.error.message, fieldViolations: [...o.error.violations] } } },
        ),
      };
    },

    async validateEvent(req) {
      await ingestor.validate(single(req.event));
      return {};
    },
  };
}
