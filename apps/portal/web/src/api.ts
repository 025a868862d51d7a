// The one typed module that talks to the portal server. Pages call these functions; they never
// build URLs, set headers or parse error bodies themselves. Nothing here is ever written to
// localStorage or sessionStorage: the session lives in an HttpOnly cookie, the CSRF token in memory.

export interface FieldError {
  field: string;
  description: string;
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly fields: FieldError[],
  ) {
    super(message);
  }
  /** The message for one request field (proto name, e.g. `url`), if the server named it. */
  fieldMessage(field: string): string | undefined {
    return this.fields.find((f) => f.field === field || f.field.startsWith(`${field}.`) || f.field.startsWith(`${field}[`))?.description;
  }
}

export type Subscription = { allEvents: true } | { eventTypes: string[] };

export interface Endpoint {
  id: string;
  url: string;
  description: string;
  enabled: boolean;
  disabledReason: string;
  subscription: Subscription;
  createTime: string | null;
  updateTime: string | null;
}

export interface EventType {
  name: string;
  description: string;
  schemaJson: string;
  exampleJson: string;
  deprecated: boolean;
}

export type Outcome = 'succeeded' | 'failed';
export interface Attempt {
  id: string;
  endpointId: string;
  eventId: string;
  eventType: string;
  kind: 'live' | 'test' | 'unspecified';
  outcome: Outcome | 'unspecified';
  attemptNumber: number;
  url: string;
  resolvedIp: string;
  requestHeaders: Record<string, string>;
  responseStatus: number;
  responseHeaders: Record<string, string>;
  responseBody: string;
  responseBodyTruncated: boolean;
  durationMs: number | null;
  error: string;
  createTime: string | null;
}

export interface SessionInfo {
  workspaceId: string;
  readOnly: boolean;
  expireTime: string;
  csrfToken: string;
  ui: { productName: string; logoUrl: string | null; theme: 'light' | 'dark' | 'auto'; targetAllowlist: string[] };
}

export interface Page<T> {
  items: T[];
  nextPageToken: string;
}

let csrfToken = '';

async function call<T>(method: string, path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { accept: 'application/json' };
  if (method !== 'GET') headers['x-csrf-token'] = csrfToken;
  if (body !== undefined) headers['content-type'] = 'application/json';
  let res: Response;
  try {
    res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), credentials: 'same-origin', cache: 'no-store' });
  } catch {
    throw new ApiError(0, 'network', 'The portal could not be reached. Check your connection and try again.', []);
  }
  const data = (await res.json().catch(() => ({}))) as { error?: { code?: string; message?: string; fields?: FieldError[] } };
  if (!res.ok) {
    const e = data.error ?? {};
    throw new ApiError(res.status, e.code ?? 'unknown', e.message ?? `The request failed (HTTP ${res.status}).`, e.fields ?? []);
  }
  return data as T;
}

const q = (params: Record<string, string | number | undefined>) => {
  const s = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== '') s.set(k, String(v));
  const t = s.toString();
  return t ? `?${t}` : '';
};
const seg = encodeURIComponent;

function remember(s: SessionInfo): SessionInfo {
  csrfToken = s.csrfToken;
  return s;
}

export const api = {
  /** Trades the one-time link's token for the session cookie. */
  openSession: (token: string) => call<SessionInfo>('POST', '/api/session', { token }).then(remember),
  session: () => call<SessionInfo>('GET', '/api/session').then(remember),

  listEndpoints: (pageToken = '', pageSize = 20) =>
    call<{ endpoints: Endpoint[]; nextPageToken: string }>('GET', `/api/endpoints${q({ pageToken, pageSize })}`).then((r): Page<Endpoint> => ({ items: r.endpoints, nextPageToken: r.nextPageToken })),
  getEndpoint: (id: string) => call<{ endpoint: Endpoint }>('GET', `/api/endpoints/${seg(id)}`).then((r) => r.endpoint),
  createEndpoint: (input: { url: string; description: string; requestId: string }) => call<{ endpoint: Endpoint; secret: string }>('POST', '/api/endpoints', input),
  updateEndpoint: (id: string, change: Partial<Pick<Endpoint, 'url' | 'description' | 'enabled'>>) => call<{ endpoint: Endpoint }>('PATCH', `/api/endpoints/${seg(id)}`, change).then((r) => r.endpoint),
  deleteEndpoint: (id: string) => call<object>('DELETE', `/api/endpoints/${seg(id)}`),
  setSubscription: (id: string, subscription: Subscription) => call<{ endpoint: Endpoint }>('PUT', `/api/endpoints/${seg(id)}/subscription`, { subscription }).then((r) => r.endpoint),
  rotateSecret: (id: string, gracePeriodSeconds: number) => call<{ endpoint: Endpoint; secret: string }>('POST', `/api/endpoints/${seg(id)}/rotate-secret`, { gracePeriodSeconds }),
  listEventTypes: () => call<{ eventTypes: EventType[] }>('GET', '/api/event-types?pageSize=500').then((r) => r.eventTypes),

  sendTestEvent: (id: string, eventType: string) => call<{ attempt: Attempt }>('POST', `/api/endpoints/${seg(id)}/test`, { eventType }).then((r) => r.attempt),
  listAttempts: (id: string, filter: { kind?: 'live' | 'test'; outcome?: Outcome; eventId?: string; pageToken?: string; pageSize?: number } = {}) =>
    call<{ attempts: Attempt[]; nextPageToken: string }>('GET', `/api/endpoints/${seg(id)}/attempts${q(filter)}`).then((r): Page<Attempt> => ({ items: r.attempts, nextPageToken: r.nextPageToken })),
  getAttempt: (attemptId: string) => call<{ attempt: Attempt }>('GET', `/api/attempts/${seg(attemptId)}`).then((r) => r.attempt),
  retryDelivery: (id: string, eventId: string) => call<{ delivery: { state: string } }>('POST', `/api/endpoints/${seg(id)}/deliveries/${seg(eventId)}/retry`),
  recover: (id: string, since: Date) => call<{ deliveriesRequeued: number }>('POST', `/api/endpoints/${seg(id)}/recover`, { since: since.toISOString() }),
};
