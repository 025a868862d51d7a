// Event-type schemas from the registry, compiled once per (name, version) and re-checked every
// catalogTtlMs, so a schema change is picked up within that time without recompiling per event.
import { Metadata, status, type ServiceError } from '@grpc/grpc-js';
import { endpointsV1 } from '@hookline/proto';
import { deadlineIn, notFound, unavailable } from '@hookline/service-kit';
import { compileSchema, type CompiledSchema } from '@hookline/schemas';

/** How long "no such type" is believed (default TTL applies to known types). */
const NEGATIVE_TTL_MS = 1_000;

export interface EventTypeSource {
  getEventType(name: string): Promise<endpointsV1.EventType | undefined>;
}

/** EventTypeSource over the registry's gRPC API; every call has a 2 s deadline. */
export class RegistryEventTypes implements EventTypeSource {
  constructor(private readonly client: endpointsV1.EndpointRegistryServiceClient) {}

  getEventType(name: string): Promise<endpointsV1.EventType | undefined> {
    return new Promise((resolve, reject) => {
      this.client.getEventType({ name }, new Metadata(), { deadline: deadlineIn(2_000) }, (err: ServiceError | null, res?: endpointsV1.GetEventTypeResponse) => {
        if (!err) return resolve(res?.eventType);
        if (err.code === status.NOT_FOUND || err.code === status.INVALID_ARGUMENT) return resolve(undefined);
        reject(unavailable('the event-type catalog (endpoint-registry) is unavailable; retry with backoff', err));
      });
    });
  }
}

export interface CatalogEntry {
  name: string;
  version: string;
  validate: CompiledSchema;
}

export class Catalog {
  private readonly entries = new Map<string, { entry: CatalogEntry | undefined; fetchedAt: number }>();
  private readonly inflight = new Map<string, Promise<CatalogEntry | undefined>>();

  constructor(
    private readonly source: EventTypeSource,
    private readonly ttlMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  /** The type's validator; NOT_FOUND when the catalog has no such type. */
  async get(name: string): Promise<CatalogEntry> {
    const entry = await this.lookup(name);
    if (!entry) throw notFound(`event type ${name} is not in the catalog; create it with CreateEventType first`);
    return entry;
  }

  private lookup(name: string): Promise<CatalogEntry | undefined> {
    const cached = this.entries.get(name);
    // An unknown type is re-checked after at most NEGATIVE_TTL_MS: a publisher that has just
    // created a type must not be told NOT_FOUND (or be dead-lettered) for a whole TTL.
    const ttl = cached?.entry ? this.ttlMs : Math.min(this.ttlMs, NEGATIVE_TTL_MS);
    if (cached && this.now() - cached.fetchedAt < ttl) return Promise.resolve(cached.entry);
    let p = this.inflight.get(name);
    if (!p) {
      p = this.fetch(name, cached?.entry).finally(() => this.inflight.delete(name));
      this.inflight.set(name, p);
    }
    return p;
  }

  private async fetch(name: string, previous: CatalogEntry | undefined): Promise<CatalogEntry | undefined> {
    let type: endpointsV1.EventType | undefined;
    try {
      type = await this.source.getEventType(name);
    } catch (err) {
      // Registry briefly unreachable: a schema we already know is still the best answer.
      if (previous) return previous;
      throw err;
    }
    let entry: CatalogEntry | undefined;
    if (type) {
      entry = previous && previous.version === type.version ? previous : { name, version: type.version, validate: compileSchema(JSON.parse(type.schemaJson)) };
    }
    this.entries.set(name, { entry, fetchedAt: this.now() });
    return entry;
  }
}
