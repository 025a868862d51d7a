import { deliveryV1 } from '@hookline/proto';
import { requireFlag, usageLine, type Command, type Context } from '../command';
import { UsageError } from '../errors';
import { cell, durationMs, keyValues, table, time } from '../output';
import { parseDurationSeconds, parsePositiveInt, parseTime } from '../parse';

const { AttemptKind, AttemptOutcome } = deliveryV1;

const kindText = (k: deliveryV1.AttemptKind) => (k === AttemptKind.ATTEMPT_KIND_TEST ? 'test' : k === AttemptKind.ATTEMPT_KIND_LIVE ? 'live' : '-');
const outcomeText = (o: deliveryV1.AttemptOutcome) => (o === AttemptOutcome.ATTEMPT_OUTCOME_SUCCEEDED ? 'succeeded' : o === AttemptOutcome.ATTEMPT_OUTCOME_FAILED ? 'failed' : '-');
const statusText = (a: deliveryV1.Attempt) => (a.responseStatus ? String(a.responseStatus) : 'none');

/** An attempt as the endpoint's test log shows it: outcome, status, time, then the response body. */
function printAttempt(ctx: Context, a: deliveryV1.Attempt, withRequest: boolean): void {
  ctx.out.line(
    keyValues([
      ['Attempt', a.id],
      ['Endpoint', a.endpointId],
      ['Event', `${a.eventId} (${a.eventType}, ${kindText(a.kind)})`],
      ['Attempt number', String(a.attemptNumber)],
      ['URL', a.url],
      ['Outcome', outcomeText(a.outcome)],
      ['Status', statusText(a)],
      ['Duration', durationMs(a.duration)],
      ['Error', a.error || undefined],
      ['Time', time(a.createTime)],
    ]),
  );
  if (withRequest) {
    ctx.out.line('Request headers:');
    for (const [k, v] of Object.entries(a.requestHeaders).sort()) ctx.out.line(`  ${k}: ${v}`);
  }
  ctx.out.line(`Response body${a.responseBodyTruncated ? ' (truncated)' : ''}:`);
  ctx.out.line(a.responseBody || '(empty)');
}

function kindFilter(text: string | undefined): deliveryV1.AttemptKind {
  if (text === undefined) return AttemptKind.ATTEMPT_KIND_UNSPECIFIED;
  if (text === 'live') return AttemptKind.ATTEMPT_KIND_LIVE;
  if (text === 'test') return AttemptKind.ATTEMPT_KIND_TEST;
  throw new UsageError(`--kind: "${text}" is not live or test`);
}

function outcomeFilter(text: string | undefined): deliveryV1.AttemptOutcome {
  if (text === undefined) return AttemptOutcome.ATTEMPT_OUTCOME_UNSPECIFIED;
  if (text === 'succeeded') return AttemptOutcome.ATTEMPT_OUTCOME_SUCCEEDED;
  if (text === 'failed') return AttemptOutcome.ATTEMPT_OUTCOME_FAILED;
  throw new UsageError(`--outcome: "${text}" is not succeeded or failed`);
}

const stateText = (s: deliveryV1.DeliveryState) => deliveryV1.deliveryStateToJSON(s).replace('DELIVERY_STATE_', '').toLowerCase();

function stateFilter(text: string | undefined): deliveryV1.DeliveryState {
  if (text === undefined) return deliveryV1.DeliveryState.DELIVERY_STATE_UNSPECIFIED;
  if (text === 'pending') return deliveryV1.DeliveryState.DELIVERY_STATE_PENDING;
  if (text === 'succeeded') return deliveryV1.DeliveryState.DELIVERY_STATE_SUCCEEDED;
  if (text === 'failed') return deliveryV1.DeliveryState.DELIVERY_STATE_FAILED;
  throw new UsageError(`--state: "${text}" is not pending, succeeded or failed`);
}

export const deliveryCommands: Command[] = [
  {
    words: ['test-event', 'send'],
    args: ['endpoint-id', 'event-type'],
    summary: "Delivers the event type's example payload to the endpoint now and prints what it answered (as the test log shows it).",
    options: {},
    async run(ctx, _flags, [endpointId, eventType]) {
      ctx.out.note(`sending a test ${eventType} to ${endpointId}…`);
      const res = await ctx.client().delivery.sendTestEvent({ workspaceId: ctx.workspace(), endpointId, eventType });
      if (ctx.config.json) return ctx.out.json(deliveryV1.SendTestEventResponse.toJSON(res));
      printAttempt(ctx, res.attempt!, false);
    },
  },
  {
    words: ['attempts', 'list'],
    args: ['endpoint-id'],
    summary: 'Lists attempts to one endpoint, newest first.',
    options: {
      kind: { type: 'string', help: 'live or test (default both)' },
      outcome: { type: 'string', help: 'succeeded or failed (default both)' },
      event: { type: 'string', help: 'only attempts of this event id' },
      'page-size': { type: 'string', help: '1-500 (default 50)' },
      'page-token': { type: 'string', help: 'from the previous page' },
    },
    async run(ctx, flags, [endpointId]) {
      const res = await ctx.client().delivery.listAttempts({
        workspaceId: ctx.workspace(),
        endpointId,
        kind: kindFilter(flags.kind as string | undefined),
        outcome: outcomeFilter(flags.outcome as string | undefined),
        eventId: (flags.event as string | undefined) ?? '',
        pageSize: parsePositiveInt('page-size', flags['page-size'] as string | undefined, 500) ?? 0,
        pageToken: (flags['page-token'] as string | undefined) ?? '',
      });
      if (ctx.config.json) return ctx.out.json(deliveryV1.ListAttemptsResponse.toJSON(res));
      if (res.attempts.length === 0) ctx.out.note(`no attempts to ${endpointId} match`);
      else
        ctx.out.line(
          table(
            ['ID', 'TIME', 'KIND', 'EVENT', 'TYPE', '#', 'STATUS', 'OUTCOME', 'DURATION', 'ERROR'],
            res.attempts.map((a) => [a.id, time(a.createTime), kindText(a.kind), a.eventId, a.eventType, String(a.attemptNumber), statusText(a), outcomeText(a.outcome), durationMs(a.duration), cell(a.error, 40)]),
          ),
        );
      if (res.nextPageToken) ctx.out.note(`more: --page-token ${res.nextPageToken}`);
    },
  },
  {
    words: ['deliveries', 'list'],
    args: ['endpoint-id'],
    summary: 'Lists deliveries to one endpoint (most recently attempted first) and where each stands.',
    options: {
      state: { type: 'string', help: 'pending, succeeded or failed (default all)' },
      event: { type: 'string', help: 'only the delivery of this event id' },
      'page-size': { type: 'string', help: '1-500 (default 50)' },
      'page-token': { type: 'string', help: 'from the previous page' },
    },
    async run(ctx, flags, [endpointId]) {
      const res = await ctx.client().delivery.listDeliveries({
        workspaceId: ctx.workspace(),
        endpointId,
        state: stateFilter(flags.state as string | undefined),
        eventId: (flags.event as string | undefined) ?? '',
        pageSize: parsePositiveInt('page-size', flags['page-size'] as string | undefined, 500) ?? 0,
        pageToken: (flags['page-token'] as string | undefined) ?? '',
      });
      if (ctx.config.json) return ctx.out.json(deliveryV1.ListDeliveriesResponse.toJSON(res));
      if (res.deliveries.length === 0) ctx.out.note(`no deliveries to ${endpointId} match`);
      else
        ctx.out.line(
          table(
            ['EVENT', 'TYPE', 'STATE', 'ATTEMPTS', 'LAST STATUS', 'LAST ATTEMPT', 'NEXT ATTEMPT'],
            res.deliveries.map((d) => [d.eventId, d.eventType, stateText(d.state), String(d.attemptCount), d.latestResponseStatus ? String(d.latestResponseStatus) : 'none', time(d.latestAttemptTime), time(d.nextAttemptTime)]),
          ),
        );
      if (res.nextPageToken) ctx.out.note(`more: --page-token ${res.nextPageToken}`);
    },
  },
  {
    words: ['attempts', 'get'],
    args: ['attempt-id'],
    summary: 'Shows one attempt: request headers, status, response body, timing.',
    options: {},
    async run(ctx, _flags, [attemptId]) {
      const res = await ctx.client().delivery.getAttempt({ workspaceId: ctx.workspace(), attemptId });
      if (ctx.config.json) return ctx.out.json(deliveryV1.GetAttemptResponse.toJSON(res));
      printAttempt(ctx, res.attempt!, true);
    },
  },
  {
    words: ['attempts', 'retry'],
    args: ['endpoint-id', 'event-id'],
    summary: 'Schedules one more attempt of an event to an endpoint now, whatever its state.',
    options: {},
    async run(ctx, _flags, [endpointId, eventId]) {
      const res = await ctx.client().delivery.retryDelivery({ workspaceId: ctx.workspace(), endpointId, eventId });
      if (ctx.config.json) return ctx.out.json(deliveryV1.RetryDeliveryResponse.toJSON(res));
      const d = res.delivery!;
      ctx.out.line(`delivery of ${d.eventId} to ${d.endpointId} is ${stateText(d.state)} (${d.attemptCount} attempts so far, next ${time(d.nextAttemptTime)})`);
    },
  },
  {
    words: ['recover'],
    args: ['endpoint-id'],
    summary: 'Re-sends every failed delivery to the endpoint of events since a time; --wait follows them until delivered.',
    options: {
      since: { type: 'string', help: 'RFC 3339 time, or a duration ago (2h, 3d); at most 14 days', required: true },
      wait: { type: 'boolean', help: 'poll the attempt log and print progress until every requeued delivery succeeded' },
      'wait-timeout': { type: 'string', help: 'how long --wait waits (default 5m)' },
    },
    async run(ctx, flags, [endpointId]) {
      const now = ctx.now();
      const since = parseTime('since', requireFlag(this, flags, 'since'), now);
      const waitMs = parseDurationSeconds('wait-timeout', (flags['wait-timeout'] as string | undefined) ?? '5m') * 1000;
      if (flags['wait-timeout'] !== undefined && flags.wait !== true) throw new UsageError('--wait-timeout needs --wait', usageLine(this));
      const workspaceId = ctx.workspace();
      ctx.out.note(`recovering failed deliveries to ${endpointId} of events since ${since.toISOString()}…`);
      const client = ctx.client();
      const res = await client.delivery.recoverEndpoint({ workspaceId, endpointId, since });
      const n = res.deliveriesRequeued;
      ctx.out.note(`requeued ${n} failed ${n === 1 ? 'delivery' : 'deliveries'}`);
      let delivered = 0;
      if (flags.wait === true && n > 0) delivered = await follow(ctx, workspaceId, endpointId!, now, n, waitMs);
      if (ctx.config.json) return ctx.out.json(flags.wait === true ? { deliveriesRequeued: n, delivered } : { deliveriesRequeued: n });
      ctx.out.line(flags.wait === true ? `requeued ${n}, delivered ${delivered}` : `requeued ${n}`);
      if (flags.wait === true && delivered < n) throw new WaitIncomplete(`${n - delivered} of ${n} deliveries did not succeed within ${waitMs / 1000} s; see \`hookline attempts list ${endpointId} --kind live\``);
    },
  },
];

/** --wait ended with deliveries still failing: reported like a refusal (exit 1). */
export class WaitIncomplete extends Error {
  override name = 'WaitIncomplete';
}

/**
 * Polls the attempt log for live attempts made since `startedAt` and prints progress on stderr
 * whenever it changes, until `total` distinct events have a successful attempt or time runs out.
 * Returns how many succeeded.
 */
async function follow(ctx: Context, workspaceId: string, endpointId: string, startedAt: Date, total: number, waitMs: number): Promise<number> {
  const end = Date.now() + waitMs;
  let last = '';
  for (;;) {
    const succeeded = new Set<string>();
    let failedAttempts = 0;
    let pageToken = '';
    // Newest first: stop paging at the first attempt older than the recovery.
    pages: for (let page = 0; page < 20; page++) {
      const res = await ctx.client().delivery.listAttempts({ workspaceId, endpointId, kind: AttemptKind.ATTEMPT_KIND_LIVE, pageSize: 500, pageToken });
      for (const a of res.attempts) {
        if (a.createTime && a.createTime < startedAt) break pages;
        if (a.outcome === AttemptOutcome.ATTEMPT_OUTCOME_SUCCEEDED) succeeded.add(a.eventId);
        else failedAttempts++;
      }
      if (!res.nextPageToken) break;
      pageToken = res.nextPageToken;
    }
    const line = `progress: ${Math.min(succeeded.size, total)}/${total} delivered, ${failedAttempts} failed attempts`;
    if (line !== last) ctx.out.note(line);
    last = line;
    if (succeeded.size >= total || Date.now() >= end) return Math.min(succeeded.size, total);
    await new Promise((r) => setTimeout(r, 1_000));
  }
}

