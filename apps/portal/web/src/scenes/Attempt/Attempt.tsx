// Attempt detail: request headers, response status, headers and body, timing, resolved IP.
import { useState } from 'react';
import { api } from '../../api';
import { ErrorNotice, Loading } from '../../common/States/States';
import { formatDuration, formatTime, statusText } from '../../utils/format';
import { Link } from '../../utils/router';
import { useSession } from '../../utils/session';
import { useLoad } from '../../utils/use-load';

function Headers({ title, headers }: { title: string; headers: Record<string, string> }) {
  const entries = Object.entries(headers).sort(([a], [b]) => a.localeCompare(b));
  return (
    <section className="card">
      <h2>{title}</h2>
      {entries.length === 0 ? (
        <p className="muted">None</p>
      ) : (
        <dl className="headers">
          {entries.map(([k, v]) => (
            <div key={k}>
              <dt>{k}</dt>
              <dd className="mono">{v}</dd>
            </div>
          ))}
        </dl>
      )}
    </section>
  );
}

export function AttemptPage({ id }: { id: string }) {
  const session = useSession();
  const { data: a, error } = useLoad(() => api.getAttempt(id), [id]);
  const [retry, setRetry] = useState('');
  if (error) return <ErrorNotice error={error} />;
  if (!a) return <Loading label="Loading the attempt…" rows={6} />;
  return (
    <>
      <p className="crumbs">
        <Link to="/">Webhooks</Link> / <Link to={`/endpoints/${encodeURIComponent(a.endpointId)}`}>Endpoint</Link> / Attempt
      </p>
      <h1>Attempt {a.attemptNumber}</h1>
      <section className="card">
        <dl className="facts">
          <div>
            <dt>Outcome</dt>
            <dd>
              <span className={`pill ${a.outcome === 'succeeded' ? 'ok' : 'bad'}`}>{a.outcome === 'succeeded' ? 'Succeeded' : 'Failed'}</span>
            </dd>
          </div>
          <div>
            <dt>Response status</dt>
            <dd>{statusText(a.responseStatus, a.error)}</dd>
          </div>
          <div>
            <dt>Duration</dt>
            <dd>{formatDuration(a.durationMs)}</dd>
          </div>
          <div>
            <dt>Time</dt>
            <dd>{formatTime(a.createTime)}</dd>
          </div>
          <div>
            <dt>Event type</dt>
            <dd>
              <code>{a.eventType}</code>
            </dd>
          </div>
          <div>
            <dt>Event</dt>
            <dd className="mono">{a.eventId}</dd>
          </div>
          <div>
            <dt>Kind</dt>
            <dd>{a.kind === 'test' ? 'Test' : 'Live'}</dd>
          </div>
          <div>
            <dt>URL</dt>
            <dd className="break">{a.url}</dd>
          </div>
          <div>
            <dt>Resolved IP</dt>
            <dd className="mono">{a.resolvedIp || '—'}</dd>
          </div>
          {a.error && (
            <div>
              <dt>Error</dt>
              <dd>{a.error}</dd>
            </div>
          )}
        </dl>
        {!session.readOnly && a.kind === 'live' && (
          <p>
            <button type="button" onClick={() => api.retryDelivery(a.endpointId, a.eventId).then(() => setRetry('Retry scheduled.'), () => setRetry('The retry could not be scheduled.'))}>
              Retry delivery
            </button>{' '}
            <span role="status">{retry}</span>
          </p>
        )}
      </section>
      <Headers title="Request headers" headers={a.requestHeaders} />
      <Headers title="Response headers" headers={a.responseHeaders} />
      <section className="card">
        <h2>Response body</h2>
        <pre tabIndex={0}>{a.responseBody || '(empty)'}</pre>
        {a.responseBodyTruncated && <p className="hint">Cut at 16 KiB.</p>}
      </section>
    </>
  );
}
