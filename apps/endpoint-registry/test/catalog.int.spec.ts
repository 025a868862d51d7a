// The event-type catalog: create (schema + example that must validate), get, list (paged, by name,
// deprecated hidden unless asked), update with a field mask, deprecate.
import { status } from '@grpc/grpc-js';
import { calls, expectCode, expectInvalid, OBJECT_EXAMPLE, OBJECT_SCHEMA, startRegistry, types, type Calls, type RegistryHarness } from './harness';

jest.setTimeout(60_000);

describe('endpoint-registry event-type catalog', () => {
  let h: RegistryHarness;
  let c: Calls;

  beforeAll(async () => {
    h = await startRegistry({ label: 'cat' });
    c = calls(h.client);
  });
  afterAll(async () => {
    await h?.stop();
  });

  const create = (name: string, extra: Partial<{ description: string; schemaJson: string; exampleJson: string }> = {}) =>
    c.createEventType({ name, description: `about ${name}`, schemaJson: OBJECT_SCHEMA, exampleJson: OBJECT_EXAMPLE, ...extra });

  it('creates and gets an event type', async () => {
    const { eventType } = await create('invoice.paid');
    expect(eventType).toMatchObject({ name: 'invoice.paid', description: 'about invoice.paid', schemaJson: OBJECT_SCHEMA, exampleJson: OBJECT_EXAMPLE, deprecated: false, version: '1' });
    expect(eventType!.createTime).toBeInstanceOf(Date);
    const got = await c.getEventType({ name: 'invoice.paid' });
    expect(got.eventType).toEqual(eventType);
  });

  it('accepts draft-07 schemas too', async () => {
    const schema = JSON.stringify({ $schema: 'http://json-schema.org/draft-07/schema#', type: 'object', properties: { n: { type: 'number' } }, required: ['n'] });
    await create('metrics.sampled', { schemaJson: schema, exampleJson: '{"n":1.5}' });
    await expectInvalid(create('metrics.sampled_bad', { schemaJson: schema, exampleJson: '{"n":"x"}' }), 'example_json', /does not match schema_json/);
  });

  it('refuses a duplicate name with ALREADY_EXISTS', async () => {
    await create('customer.created');
    await expectCode(create('customer.created'), status.ALREADY_EXISTS, /customer\.created/);
  });

  it('refuses malformed names', async () => {
    await expectInvalid(create(''), 'name', /required/);
    for (const name of ['Invoice.Paid', 'invoice paid', 'invoice.', '.paid', '1invoice', 'invoice..paid', `a${'.b'.repeat(70)}`]) {
      await expectInvalid(create(name), 'name');
    }
  });

  it('refuses bad schemas and examples, naming the field and the reason', async () => {
    await expectInvalid(create('bad.schema_json', { schemaJson: '{not json' }), 'schema_json', /not valid JSON/);
    await expectInvalid(create('bad.schema_empty', { schemaJson: '' }), 'schema_json', /not valid JSON/);
    await expectInvalid(create('bad.schema_array', { schemaJson: '[]' }), 'schema_json', /JSON object/);
    await expectInvalid(create('bad.schema_type', { schemaJson: '{"type":"nonsense"}' }), 'schema_json', /not a valid JSON Schema/);
    await expectInvalid(create('bad.schema_big', { schemaJson: JSON.stringify({ description: 'x'.repeat(70 * 1024) }) }), 'schema_json', /at most 65536 bytes/);
    await expectInvalid(create('bad.example_json', { exampleJson: '{"id":' }), 'example_json', /not valid JSON/);
    const why = await expectInvalid(create('bad.example', { exampleJson: '{"id":"x","amount":-1,"extra":true}' }), 'example_json', /does not match schema_json/);
    expect(why).toContain('/amount');
    expect(why).toContain('unexpected property "extra"');
    await expectInvalid(create('bad.description', { description: 'd'.repeat(1025) }), 'description', /1024/);
    await expectCode(c.getEventType({ name: 'bad.example' }), status.NOT_FOUND);
  });

  it('answers NOT_FOUND for a missing type and INVALID_ARGUMENT for a malformed name', async () => {
    await expectCode(c.getEventType({ name: 'no.such_type' }), status.NOT_FOUND, /no\.such_type/);
    await expectInvalid(c.getEventType({ name: 'No Such' }), 'name');
    await expectCode(c.updateEventType({ name: 'no.such_type', description: 'x', updateMask: ['description'] }), status.NOT_FOUND);
    await expectCode(c.deprecateEventType({ name: 'no.such_type' }), status.NOT_FOUND);
  });

  it('updates only the masked fields, checking the example against the (new) schema', async () => {
    await create('order.shipped');
    const a = await c.updateEventType({ name: 'order.shipped', description: '', schemaJson: 'ignored: not in the mask', updateMask: ['description'] });
    expect(a.eventType).toMatchObject({ description: '', schemaJson: OBJECT_SCHEMA, version: '2' });

    const stricter = JSON.stringify({ type: 'object', required: ['id', 'amount', 'carrier'], properties: { carrier: { type: 'string' } } });
    // The stored example lacks "carrier": the new schema alone is refused, on example_json.
    await expectInvalid(c.updateEventType({ name: 'order.shipped', schemaJson: stricter, updateMask: ['schema_json'] }), 'example_json', /carrier/);
    const b = await c.updateEventType({
      name: 'order.shipped',
      schemaJson: stricter,
      exampleJson: '{"id":"o1","amount":1,"carrier":"ups"}',
      updateMask: ['schema_json', 'example_json'],
    });
    expect(b.eventType).toMatchObject({ schemaJson: stricter, exampleJson: '{"id":"o1","amount":1,"carrier":"ups"}', version: '3' });

    await expectInvalid(c.updateEventType({ name: 'order.shipped', updateMask: [] }), 'update_mask', /at least one/);
    await expectInvalid(c.updateEventType({ name: 'order.shipped', updateMask: ['deprecated'] }), 'update_mask', /deprecated/);
    await expectInvalid(c.updateEventType({ name: 'order.shipped', exampleJson: 'nope', updateMask: ['example_json'] }), 'example_json', /not valid JSON/);
    expect((await c.getEventType({ name: 'order.shipped' })).eventType!.version).toBe('3');
  });

  it('deprecates idempotently; deprecated types leave the default listing', async () => {
    await create('legacy.event');
    const a = await c.deprecateEventType({ name: 'legacy.event' });
    expect(a.eventType!.deprecated).toBe(true);
    const b = await c.deprecateEventType({ name: 'legacy.event' });
    expect(b.eventType).toEqual(a.eventType);
    expect((await c.getEventType({ name: 'legacy.event' })).eventType!.deprecated).toBe(true);

    const visible = await c.listEventTypes({ pageSize: 500 });
    expect(visible.eventTypes.map((t) => t.name)).not.toContain('legacy.event');
    const all = await c.listEventTypes({ pageSize: 500, includeDeprecated: true });
    expect(all.eventTypes.map((t) => t.name)).toContain('legacy.event');
  });

  it('takes a deprecation back: new subscriptions and the default listing again, idempotently', async () => {
    await create('revived.event');
    const subscribe = () => c.createEndpoint({ workspaceId: 'ws_revive', url: 'https://example.com/hook', subscription: types('revived.event') });
    await c.deprecateEventType({ name: 'revived.event' });
    await expectInvalid(subscribe(), 'subscription.event_types.names', /deprecated/);
    const a = await c.undeprecateEventType({ name: 'revived.event' });
    expect(a.eventType!.deprecated).toBe(false);
    const b = await c.undeprecateEventType({ name: 'revived.event' });
    expect(b.eventType).toEqual(a.eventType);
    expect((await c.listEventTypes({ pageSize: 500 })).eventTypes.map((t) => t.name)).toContain('revived.event');
    const { endpoint } = await subscribe();
    expect(endpoint!.subscription).toEqual(types('revived.event'));
    await expectCode(c.undeprecateEventType({ name: 'no.such_type' }), status.NOT_FOUND);
  });

  it('lists by name in pages, with new types landing in their place', async () => {
    const names = ['page.a', 'page.c', 'page.e', 'page.g', 'page.i'];
    for (const n of names) await create(n);
    const seen: string[] = [];
    let token = '';
    let pages = 0;
    do {
      const page = await c.listEventTypes({ pageSize: 2, pageToken: token });
      expect(page.eventTypes.length).toBeLessThanOrEqual(2);
      seen.push(...page.eventTypes.map((t) => t.name));
      token = page.nextPageToken;
      // A type sorting after the cursor shows up; one sorting before it does not (already passed).
      if (pages === 1) await create('zzz.late');
      pages++;
    } while (token && pages < 50);
    expect(token).toBe('');
    expect(new Set(seen).size).toBe(seen.length);
    expect([...seen].sort()).toEqual(seen);
    for (const n of [...names, 'zzz.late']) expect(seen).toContain(n);
  });

  it('refuses bad page sizes and tokens', async () => {
    await expectInvalid(c.listEventTypes({ pageSize: 501 }), 'page_size');
    await expectInvalid(c.listEventTypes({ pageSize: -5 }), 'page_size');
    await expectInvalid(c.listEventTypes({ pageToken: '%%%' }), 'page_token');
  });
});
