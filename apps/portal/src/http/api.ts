// The portal's JSON API. Each handler is one gRPC call through libs/client (registry or
// dispatcher) with the workspace taken from the session; it only reshapes JSON to protobuf and
// back. The session routes (exchange, read) are the only ones that touch no backend.
import type { DeliveryClient, RegistryClient } from '@hookline/client';
import type { deliveryV1, endpointsV1 } from '@hookline/proto';
import type { PortalConfig } from '../config';
import { badRequest, unauthenticated } from '../errors';
import type { LinkRedemptions } from '../sessions/link-store';
import type { TokenSigner } from '../sessions/tokens';
import type { RequestContext, Route, Session } from './server';
import { sessionCookie } from './security';

export interface ApiDeps {
  registry: Pick<RegistryClient, 'listEndpoints' | 'getEndpoint' | 'createEndpoint' | 'updateEndpoint' | 'deleteEndpoint' | 'updateEndpointSubscription' | 'rotateEndpointSecret' | 'listEventTypes'>;
  delivery: Pick<DeliveryClient, 'sendTestEvent' | 'listAttempts' | 'getAttempt' | 'retryDelivery' | 'recoverEndpoint'>;
  signer: TokenSigner;
  links: LinkRedemptions;
  config: Pick<PortalConfig, 'targetAllowlist' | 'productName' | 'logoUrl' | 'theme'>;
  now?: () => number;
}

// ---- request field readers: wrong types become a message on the field, never a crash ----
function str(body: Record<string, unknown>, field: string, { optional = false, max = 4096 } = {}): string {
  const v = body[field];
  if (v === undefined || v === null) {
    if (optional) return '';
    throw badRequest(field, 'is required');
  }
  if (typeof v !== 'string') throw badRequest(field, 'must be a string');
  if (v.length > max) throw badRequest(field, `is longer than ${max} characters`);
  return v;
}

function int(query: URLSearchParams, name: string, fallback: number, min: number, max: number): number {
  const raw = query.get(name);
  if (raw === null || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) throw badRequest(name, `must be a whole number between ${min} and ${max}`);
  return n;
}

function subscriptionFrom(v: unknown, field = 'subscription'): endpointsV1.Subscription {
  if (typeof v !== 'object' || v === null) throw badRequest(field, 'must be {"allEvents": true} or {"eventTypes": [...]}');
  const s = v as { allEvents?: unknown; eventTypes?: unknown };
  if (s.allEvents === true) return { selection: { $case: 'allEvents', value: true } };
  if (Array.isArray(s.eventTypes) && s.eventTypes.every((t) => typeof t === 'string')) {
    return { selection: { $case: 'eventTypes', value: { names: s.eventTypes as string[] } } };
  }
  throw badRequest(field, 'must be {"allEvents": true} or {"eventTypes": [...]}');
}

const iso = (d: Date | undefined) => d?.toISOString() ?? null;
const ms = (d: { seconds: string; nanos: number } | undefined) => (d ? Number(d.seconds) * 1000 + Math.round(d.nanos / 1e6) : null);

// ---- protobuf → JSON for the browser ----
export function endpointJson(e: endpointsV1.Endpoint | undefined) {
  if (!e) return null;
  const sel = e.subscription?.selection;
  return {
    id: e.id,
    url: e.url,
    description: e.description,
    enabled: e.enabled,
    disabledReason: e.disabledReason,
    subscription: sel?.$case === 'eventTypes' ? { eventTypes: sel.value.names } : { allEvents: true },
    createTime: iso(e.createTime),
    updateTime: iso(e.updateTime),
  };
}

const KIND = ['unspecified', 'live', 'test'] as const;
const OUTCOME = ['unspecified', 'succeeded', 'failed'] as const;

export function attemptJson(a: deliveryV1.Attempt | undefined) {
  if (!a) return null;
  return {
    id: a.id,
    endpointId: a.endpointId,
    eventId: a.eventId,
    eventType: a.eventType,
    kind: (KIND as readonly string[])[a.kind] ?? 'unspecified',
    outcome: (OUTCOME as readonly string[])[a.outcome] ?? 'unspecified',
    attemptNumber: a.attemptNumber,
    url: a.url,
    resolvedIp: a.resolvedIp,
    requestHeaders: a.requestHeaders,
    responseStatus: a.responseStatus,
    responseHeaders: a.responseHeaders,
    responseBody: a.responseBody,
    responseBodyTruncated: a.responseBodyTruncated,
    durationMs: ms(a.duration),
    error: a.error,
    createTime: iso(a.createTime),
  };
}

function eventTypeJson(t: endpointsV1.EventType) {
  return { name: t.name, description: t.description, schemaJson: t.schemaJson, exampleJson: t.exampleJson, deprecated: t.deprecated };
}

export function apiRoutes(deps: ApiDeps): Route[] {
  const { registry, delivery, signer, links } = deps;
  const now = deps.now ?? Date.now;
  const sessionInfo = (s: Session) => ({
    workspaceId: s.claims.ws,
    readOnly: s.claims.ro,
    expireTime: new Date(s.claims.exp).toISOString(),
    csrfToken: signer.csrfToken(s.claims, s.kid),
    ui: { productName: deps.config.productName, logoUrl: deps.config.logoUrl ?? null, theme: deps.config.theme, targetAllowlist: deps.config.targetAllowlist },
  });
  const ep = (c: RequestContext) => ({ workspaceId: c.workspaceId, endpointId: c.params.endpointId! });

  return [
    // The one-time link's token (from the URL fragment) for a session cookie. Refusals say why in
    // general terms only; the token itself is never echoed or logged.
    {
      method: 'POST',
      pattern: '/api/session',
      needsSession: false,
      async handler(c) {
        const token = str(c.body, 'token', { max: 2048 });
        const v = signer.verifyLink(token);
        if (!v.ok) throw unauthenticated(v.reason === 'expired' ? 'this portal link has expired: ask for a new one' : 'this portal link is not valid: ask for a new one');
        if (!(await links.redeem(v.claims.jti, v.claims.ws, new Date(v.claims.exp)))) throw unauthenticated('this portal link was already used: ask for a new one');
        const { cookie, claims } = signer.issueSession(v.claims);
        c.setCookie(sessionCookie(cookie, (claims.exp - now()) / 1000));
        return sessionInfo({ claims, kid: v.kid });
      },
    },
    { method: 'GET', pattern: '/api/session', handler: async (c) => sessionInfo(c.session) },

    // endpoint-registry
    {
      method: 'GET',
      pattern: '/api/endpoints',
      async handler(c) {
        const r = await registry.listEndpoints({ workspaceId: c.workspaceId, pageSize: int(c.query, 'pageSize', 20, 1, 100), pageToken: c.query.get('pageToken') ?? '' });
        return { endpoints: r.endpoints.map(endpointJson), nextPageToken: r.nextPageToken };
      },
    },
    {
      method: 'POST',
      pattern: '/api/endpoints',
      async handler(c) {
        const r = await registry.createEndpoint({
          workspaceId: c.workspaceId,
          url: str(c.body, 'url', { max: 8192 }),
          description: str(c.body, 'description', { optional: true, max: 8192 }),
          // The browser makes one id per form; a double submit gets the same endpoint and secret back.
          requestId: str(c.body, 'requestId', { max: 128 }),
          ...(c.body.subscription === undefined ? {} : { subscription: subscriptionFrom(c.body.subscription) }),
        });
        return { endpoint: endpointJson(r.endpoint), secret: r.secret };
      },
    },
    { method: 'GET', pattern: '/api/endpoints/:endpointId', handler: async (c) => ({ endpoint: endpointJson((await registry.getEndpoint(ep(c))).endpoint) }) },
    {
      method: 'PATCH',
      pattern: '/api/endpoints/:endpointId',
      async handler(c) {
        const paths: string[] = [];
        const req: Parameters<typeof registry.updateEndpoint>[0] = { ...ep(c) };
        if ('url' in c.body) (paths.push('url'), (req.url = str(c.body, 'url', { max: 8192 })));
        if ('description' in c.body) (paths.push('description'), (req.description = str(c.body, 'description', { optional: true, max: 8192 })));
        if ('enabled' in c.body) {
          if (typeof c.body.enabled !== 'boolean') throw badRequest('enabled', 'must be true or false');
          paths.push('enabled');
          req.enabled = c.body.enabled;
        }
        if (paths.length === 0) throw badRequest('body', 'change at least one of url, description, enabled');
        req.updateMask = paths;
        return { endpoint: endpointJson((await registry.updateEndpoint(req)).endpoint) };
      },
    },
    { method: 'DELETE', pattern: '/api/endpoints/:endpointId', handler: async (c) => (await registry.deleteEndpoint(ep(c)), {}) },
    {
      method: 'PUT',
      pattern: '/api/endpoints/:endpointId/subscription',
      handler: async (c) => ({ endpoint: endpointJson((await registry.updateEndpointSubscription({ ...ep(c), subscription: subscriptionFrom(c.body.subscription) })).endpoint) }),
    },
    {
      method: 'POST',
      pattern: '/api/endpoints/:endpointId/rotate-secret',
      async handler(c) {
        const grace = c.body.gracePeriodSeconds ?? 0;
        if (typeof grace !== 'number' || !Number.isInteger(grace) || grace < 0) throw badRequest('old_secret_ttl', 'must be a whole number of seconds, 0 or more');
        const r = await registry.rotateEndpointSecret({ ...ep(c), oldSecretTtl: { seconds: String(grace), nanos: 0 } });
        return { endpoint: endpointJson(r.endpoint), secret: r.secret };
      },
    },
    {
      method: 'GET',
      pattern: '/api/event-types',
      async handler(c) {
        const r = await registry.listEventTypes({ pageSize: int(c.query, 'pageSize', 100, 1, 500), pageToken: c.query.get('pageToken') ?? '' });
        return { eventTypes: r.eventTypes.map(eventTypeJson), nextPageToken: r.nextPageToken };
      },
    },

    // dispatcher (DeliveryService)
    {
      method: 'POST',
      pattern: '/api/endpoints/:endpointId/test',
      handler: async (c) => ({ attempt: attemptJson((await delivery.sendTestEvent({ ...ep(c), eventType: str(c.body, 'eventType', { max: 256 }) })).attempt) }),
    },
    {
      method: 'GET',
      pattern: '/api/endpoints/:endpointId/attempts',
      async handler(c) {
        const kind = KIND.indexOf((c.query.get('kind') ?? 'unspecified') as (typeof KIND)[number]);
        const outcome = OUTCOME.indexOf((c.query.get('outcome') ?? 'unspecified') as (typeof OUTCOME)[number]);
        if (kind < 0) throw badRequest('kind', 'must be live, test or unspecified');
        if (outcome < 0) throw badRequest('outcome', 'must be succeeded, failed or unspecified');
        const r = await delivery.listAttempts({
          ...ep(c),
          kind,
          outcome,
          eventId: c.query.get('eventId') ?? '',
          pageSize: int(c.query, 'pageSize', 20, 1, 500),
          pageToken: c.query.get('pageToken') ?? '',
        });
        return { attempts: r.attempts.map(attemptJson), nextPageToken: r.nextPageToken };
      },
    },
    { method: 'GET', pattern: '/api/attempts/:attemptId', handler: async (c) => ({ attempt: attemptJson((await delivery.getAttempt({ workspaceId: c.workspaceId, attemptId: c.params.attemptId! })).attempt) }) },
    {
      method: 'POST',
      pattern: '/api/endpoints/:endpointId/deliveries/:eventId/retry',
      async handler(c) {
        const d = (await delivery.retryDelivery({ ...ep(c), eventId: c.params.eventId! })).delivery;
        return { delivery: d ? { eventId: d.eventId, state: ['unspecified', 'pending', 'succeeded', 'failed'][d.state] ?? 'unspecified', attemptCount: d.attemptCount } : null };
      },
    },
    {
      method: 'POST',
      pattern: '/api/endpoints/:endpointId/recover',
      async handler(c) {
        const raw = str(c.body, 'since', { max: 64 });
        const since = new Date(raw);
        if (Number.isNaN(since.getTime())) throw badRequest('since', 'is not a date and time');
        return { deliveriesRequeued: (await delivery.recoverEndpoint({ ...ep(c), since })).deliveriesRequeued };
      },
    },
  ];
}
