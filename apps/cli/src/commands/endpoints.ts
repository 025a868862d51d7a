import { randomUUID } from 'node:crypto';
import { endpointsV1 } from '@hookline/proto';
import { requireFlag, usageLine, type Command, type Flags } from '../command';
import { UsageError } from '../errors';
import { cell, keyValues, table, time, yesNo, type Out } from '../output';
import { parseDurationSeconds, parseList, parsePositiveInt } from '../parse';

type Subscription = endpointsV1.Subscription;

export function subscriptionText(s: Subscription | undefined): string {
  if (!s?.selection || s.selection.$case === 'allEvents') return 'all events';
  return s.selection.value.names.join(', ') || '(none)';
}

function subscriptionFrom(c: Command, flags: Flags, required: boolean): Subscription | undefined {
  const events = flags.events as string | undefined;
  const all = flags['all-events'] === true;
  if (events !== undefined && all) throw new UsageError('give --events or --all-events, not both', usageLine(c));
  if (events !== undefined) return { selection: { $case: 'eventTypes', value: { names: parseList('events', events) } } };
  if (all) return { selection: { $case: 'allEvents', value: true } };
  if (required) throw new UsageError('give --events TYPE[,TYPE...] or --all-events', usageLine(c));
  return undefined;
}

function printEndpoint(out: Out, e: endpointsV1.Endpoint): void {
  out.line(
    keyValues([
      ['ID', e.id],
      ['URL', e.url],
      ['Description', e.description || '-'],
      ['Enabled', e.enabled ? 'yes' : `no${e.disabledReason ? ` (${e.disabledReason})` : ''}`],
      ['Events', subscriptionText(e.subscription)],
      ['Standard Webhooks', yesNo(e.standardWebhooks)],
      ['Version', e.version],
      ['Created', time(e.createTime)],
      ['Updated', time(e.updateTime)],
    ]),
  );
}

const idArg = ['endpoint-id'];

export const endpointCommands: Command[] = [
  {
    words: ['endpoints', 'create'],
    args: [],
    summary: 'Registers an HTTPS endpoint and prints its signing secret (shown only now and at rotation).',
    options: {
      url: { type: 'string', help: 'public HTTPS URL', required: true },
      description: { type: 'string', help: 'free text' },
      events: { type: 'string', help: 'comma-separated event types to receive (default: all events)' },
      'all-events': { type: 'boolean', help: 'receive every event type, including types created later' },
      'standard-webhooks': { type: 'boolean', help: 'also send webhook-id, webhook-timestamp, webhook-signature' },
      'request-id': { type: 'string', help: 'makes the call safe to repeat (default: a random one, so retries never create two)' },
    },
    async run(ctx, flags) {
      const res = await ctx.client().registry.createEndpoint({
        workspaceId: ctx.workspace(),
        url: requireFlag(this, flags, 'url'),
        description: (flags.description as string | undefined) ?? '',
        subscription: subscriptionFrom(this, flags, false) ?? { selection: { $case: 'allEvents', value: true } },
        standardWebhooks: flags['standard-webhooks'] === true,
        requestId: (flags['request-id'] as string | undefined) ?? randomUUID(),
      });
      if (ctx.config.json) return ctx.out.json(endpointsV1.CreateEndpointResponse.toJSON(res));
      printEndpoint(ctx.out, res.endpoint!);
      ctx.out.line(keyValues([['Secret', res.secret]]));
      ctx.out.note('The secret is shown only now: store it where your receiver reads it.');
    },
  },
  {
    words: ['endpoints', 'list'],
    args: [],
    summary: "Lists the workspace's endpoints, oldest first.",
    options: {
      'page-size': { type: 'string', help: '1-500 (default 50)' },
      'page-token': { type: 'string', help: 'from the previous page' },
    },
    async run(ctx, flags) {
      const res = await ctx.client().registry.listEndpoints({
        workspaceId: ctx.workspace(),
        pageSize: parsePositiveInt('page-size', flags['page-size'] as string | undefined, 500) ?? 0,
        pageToken: (flags['page-token'] as string | undefined) ?? '',
      });
      if (ctx.config.json) return ctx.out.json(endpointsV1.ListEndpointsResponse.toJSON(res));
      if (res.endpoints.length === 0) ctx.out.note(`no endpoints in workspace ${ctx.workspace()}`);
      else
        ctx.out.line(
          table(
            ['ID', 'URL', 'ENABLED', 'EVENTS', 'DESCRIPTION'],
            res.endpoints.map((e) => [e.id, e.url, e.enabled ? 'yes' : `no (${e.disabledReason || 'manual'})`, cell(subscriptionText(e.subscription), 40), cell(e.description, 40)]),
          ),
        );
      if (res.nextPageToken) ctx.out.note(`more: --page-token ${res.nextPageToken}`);
    },
  },
  {
    words: ['endpoints', 'get'],
    args: idArg,
    summary: 'Shows one endpoint (never its secret).',
    options: {},
    async run(ctx, _flags, [endpointId]) {
      const res = await ctx.client().registry.getEndpoint({ workspaceId: ctx.workspace(), endpointId });
      if (ctx.config.json) return ctx.out.json(endpointsV1.GetEndpointResponse.toJSON(res));
      printEndpoint(ctx.out, res.endpoint!);
    },
  },
  {
    words: ['endpoints', 'update'],
    args: idArg,
    summary: 'Changes the URL, description, enabled state or Standard Webhooks headers; only the flags given change.',
    options: {
      url: { type: 'string', help: 'new HTTPS URL' },
      description: { type: 'string', help: 'new description ("" clears it)' },
      enable: { type: 'boolean', help: 'enable the endpoint' },
      disable: { type: 'boolean', help: 'disable the endpoint (it receives nothing; retries are parked)' },
      'standard-webhooks': { type: 'boolean', help: 'turn Standard Webhooks headers on (--no-standard-webhooks: off)' },
    },
    async run(ctx, flags, [endpointId]) {
      const mask: string[] = [];
      if (flags.url !== undefined) mask.push('url');
      if (flags.description !== undefined) mask.push('description');
      if (flags.enable === true && flags.disable === true) throw new UsageError('give --enable or --disable, not both', usageLine(this));
      if (flags.enable === true || flags.disable === true) mask.push('enabled');
      if (flags['standard-webhooks'] !== undefined) mask.push('standard_webhooks');
      if (mask.length === 0) throw new UsageError('nothing to update: give at least one of --url, --description, --enable/--disable, --[no-]standard-webhooks', usageLine(this));
      const res = await ctx.client().registry.updateEndpoint({
        workspaceId: ctx.workspace(),
        endpointId,
        url: (flags.url as string | undefined) ?? '',
        description: (flags.description as string | undefined) ?? '',
        enabled: flags.enable === true,
        standardWebhooks: flags['standard-webhooks'] === true,
        updateMask: mask,
      });
      if (ctx.config.json) return ctx.out.json(endpointsV1.UpdateEndpointResponse.toJSON(res));
      printEndpoint(ctx.out, res.endpoint!);
    },
  },
  {
    words: ['endpoints', 'delete'],
    args: idArg,
    summary: 'Deletes an endpoint; pending deliveries to it are dropped.',
    options: {},
    async run(ctx, _flags, [endpointId]) {
      await ctx.client().registry.deleteEndpoint({ workspaceId: ctx.workspace(), endpointId });
      if (ctx.config.json) return ctx.out.json({ deleted: endpointId });
      ctx.out.line(`deleted ${endpointId}`);
    },
  },
  {
    words: ['endpoints', 'subscribe'],
    args: idArg,
    summary: "Replaces the endpoint's subscription: all events, or a list of catalog types.",
    options: {
      events: { type: 'string', help: 'comma-separated event types' },
      'all-events': { type: 'boolean', help: 'every event type' },
    },
    async run(ctx, flags, [endpointId]) {
      const res = await ctx.client().registry.updateEndpointSubscription({ workspaceId: ctx.workspace(), endpointId, subscription: subscriptionFrom(this, flags, true) });
      if (ctx.config.json) return ctx.out.json(endpointsV1.UpdateEndpointSubscriptionResponse.toJSON(res));
      ctx.out.line(`${res.endpoint!.id} now receives: ${subscriptionText(res.endpoint!.subscription)}`);
    },
  },
  {
    words: ['endpoints', 'rotate-secret'],
    args: idArg,
    summary: 'Issues a new signing secret and prints it (shown only now).',
    options: {
      'old-secret-ttl': { type: 'string', help: 'keep signing with the old secret too for this long (e.g. 1h; default 0: revoked at once; max 7d)' },
    },
    async run(ctx, flags, [endpointId]) {
      const ttl = flags['old-secret-ttl'] as string | undefined;
      const seconds = ttl === undefined ? undefined : parseDurationSeconds('old-secret-ttl', ttl);
      const res = await ctx.client().registry.rotateEndpointSecret({
        workspaceId: ctx.workspace(),
        endpointId,
        ...(seconds !== undefined ? { oldSecretTtl: { seconds: String(seconds), nanos: 0 } } : {}),
      });
      if (ctx.config.json) return ctx.out.json(endpointsV1.RotateEndpointSecretResponse.toJSON(res));
      ctx.out.line(keyValues([['ID', res.endpoint!.id], ['Secret', res.secret]]));
      ctx.out.note(seconds ? `The old secret stays valid for ${ttl}. The new one is shown only now.` : 'The old secret is revoked. The new one is shown only now.');
    },
  },
];
