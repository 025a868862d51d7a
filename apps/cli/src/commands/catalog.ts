import { endpointsV1, eventsV1 } from '@hookline/proto';
import { requireFlag, type Command } from '../command';
import { UsageError } from '../errors';
import { cell, keyValues, table, time, yesNo } from '../output';
import { parsePositiveInt, readInput } from '../parse';

function printEventType(out: { line(t?: string): void }, t: endpointsV1.EventType): void {
  const pretty = (json: string) => {
    try {
      return JSON.stringify(JSON.parse(json), null, 2);
    } catch {
      return json;
    }
  };
  out.line(keyValues([['Name', t.name], ['Description', t.description || '-'], ['Deprecated', yesNo(t.deprecated)], ['Version', t.version], ['Created', time(t.createTime)], ['Updated', time(t.updateTime)]]));
  out.line('Schema:');
  out.line(pretty(t.schemaJson));
  out.line('Example:');
  out.line(pretty(t.exampleJson));
}

/** `--data` / `--schema` / `--example` text as UTF-8, from inline, @file or - (stdin). */
const textInput = (flag: string, value: string, readStdin: () => Buffer) => readInput(flag, value, readStdin).toString('utf8');

export const catalogCommands: Command[] = [
  {
    words: ['event-types', 'create'],
    args: ['name'],
    summary: 'Adds an event type to the catalog. The example must validate against the schema.',
    options: {
      schema: { type: 'string', help: 'JSON Schema: inline JSON, @file, or - for stdin', required: true },
      example: { type: 'string', help: 'example payload: inline JSON, @file, or - for stdin', required: true },
      description: { type: 'string', help: 'free text' },
    },
    async run(ctx, flags, [name]) {
      if (flags.schema === '-' && flags.example === '-') throw new UsageError('only one of --schema and --example can read stdin');
      const res = await ctx.client().registry.createEventType({
        name,
        description: (flags.description as string | undefined) ?? '',
        schemaJson: textInput('schema', requireFlag(this, flags, 'schema'), ctx.readStdin),
        exampleJson: textInput('example', requireFlag(this, flags, 'example'), ctx.readStdin),
      });
      if (ctx.config.json) return ctx.out.json(endpointsV1.CreateEventTypeResponse.toJSON(res));
      ctx.out.line(`created event type ${res.eventType!.name} (version ${res.eventType!.version})`);
    },
  },
  {
    words: ['event-types', 'list'],
    args: [],
    summary: 'Lists the event-type catalog by name.',
    options: {
      'include-deprecated': { type: 'boolean', help: 'also list deprecated types' },
      'page-size': { type: 'string', help: '1-500 (default 100)' },
      'page-token': { type: 'string', help: 'from the previous page' },
    },
    async run(ctx, flags) {
      const res = await ctx.client().registry.listEventTypes({
        includeDeprecated: flags['include-deprecated'] === true,
        pageSize: parsePositiveInt('page-size', flags['page-size'] as string | undefined, 500) ?? 0,
        pageToken: (flags['page-token'] as string | undefined) ?? '',
      });
      if (ctx.config.json) return ctx.out.json(endpointsV1.ListEventTypesResponse.toJSON(res));
      if (res.eventTypes.length === 0) ctx.out.note('the catalog is empty');
      else ctx.out.line(table(['NAME', 'VERSION', 'DEPRECATED', 'DESCRIPTION'], res.eventTypes.map((t) => [t.name, t.version, yesNo(t.deprecated), cell(t.description)])));
      if (res.nextPageToken) ctx.out.note(`more: --page-token ${res.nextPageToken}`);
    },
  },
  {
    words: ['event-types', 'get'],
    args: ['name'],
    summary: 'Shows one event type with its schema and example.',
    options: {},
    async run(ctx, _flags, [name]) {
      const res = await ctx.client().registry.getEventType({ name });
      if (ctx.config.json) return ctx.out.json(endpointsV1.GetEventTypeResponse.toJSON(res));
      printEventType(ctx.out, res.eventType!);
    },
  },
  {
    words: ['events', 'publish'],
    args: ['event-type'],
    summary: 'Publishes one event to the workspace. The payload is sent byte for byte.',
    options: {
      data: { type: 'string', help: 'JSON payload: inline, @file, or - for stdin', required: true },
      'idempotency-key': { type: 'string', help: 'the same key within 24 h is accepted once; also makes the call safe to retry' },
    },
    async run(ctx, flags, [eventType]) {
      const key = (flags['idempotency-key'] as string | undefined) ?? '';
      const res = await ctx.client().ingest.publishEvent({
        event: { workspaceId: ctx.workspace(), eventType, payload: readInput('data', requireFlag(this, flags, 'data'), ctx.readStdin), idempotencyKey: key },
      });
      if (ctx.config.json) return ctx.out.json(eventsV1.PublishEventResponse.toJSON(res));
      ctx.out.line(res.duplicate ? `duplicate: ${res.eventId} (idempotency key seen before; nothing new published)` : `published ${res.eventId}`);
    },
  },
  {
    words: ['events', 'validate'],
    args: ['event-type'],
    summary: 'Checks an event as publish would (type exists, payload matches its schema, size); publishes nothing.',
    options: {
      data: { type: 'string', help: 'JSON payload: inline, @file, or - for stdin', required: true },
    },
    async run(ctx, flags, [eventType]) {
      await ctx.client().ingest.validateEvent({
        event: { workspaceId: ctx.workspace(), eventType, payload: readInput('data', requireFlag(this, flags, 'data'), ctx.readStdin) },
      });
      if (ctx.config.json) return ctx.out.json({ valid: true });
      ctx.out.line(`valid: the payload matches ${eventType}`);
    },
  },
];
