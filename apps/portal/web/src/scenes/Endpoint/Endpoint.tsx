// Endpoint detail: what it receives (Add events), Send test event with its test log, deliveries
// over time, the attempt log, recovery, Rotate secret, and enable/disable/edit/delete.
import { useId, useState } from 'react';
import { api, type Endpoint } from '../../api';
import { DeliveriesChart } from '../../common/DeliveriesChart/DeliveriesChart';
import { ErrorNotice, Loading } from '../../common/States/States';
import { formatTime } from '../../utils/format';
import { Link } from '../../utils/router';
import { useSession } from '../../utils/session';
import { useLoad } from '../../utils/use-load';
import { AddEventsDialog } from './AddEventsDialog';
import { AttemptLog } from './AttemptLog';
import { Manage } from './Manage';
import { Recover } from './Recover';
import { RotateSecret } from './RotateSecret';
import { TestEvent } from './TestEvent';

export function EndpointPage({ id }: { id: string }) {
  const session = useSession();
  const hid = useId();
  const [override, setOverride] = useState<Endpoint | null>(null);
  const [addEvents, setAddEvents] = useState(false);
  const [refreshKey, setRefreshKey] = useState(0);
  const ep = useLoad(() => api.getEndpoint(id), [id]);
  const types = useLoad(() => api.listEventTypes(), []);
  const chart = useLoad(() => api.listAttempts(id, { kind: 'live', pageSize: 200 }), [id, refreshKey]);
  const endpoint = override ?? ep.data;

  if (ep.error) {
    return (
      <>
        <h1>Endpoint not found</h1>
        <ErrorNotice error={ep.error} />
        <p>
          <Link to="/">Back to Webhooks</Link>
        </p>
      </>
    );
  }
  if (!endpoint) return <Loading label="Loading the endpoint…" rows={6} />;
  const eventTypes = types.data ?? [];
  const sub = endpoint.subscription;
  return (
    <>
      <p className="crumbs">
        <Link to="/">Webhooks</Link> / Endpoint
      </p>
      <div className="page-head">
        <h1 className="break">{endpoint.url}</h1>
        <span className={`pill ${endpoint.enabled ? 'ok' : 'bad'}`}>{endpoint.enabled ? 'Enabled' : `Disabled${endpoint.disabledReason ? ` (${endpoint.disabledReason})` : ''}`}</span>
      </div>
      <p>{endpoint.description || <span className="muted">No description</span>}</p>
      <p className="muted small">
        Created {formatTime(endpoint.createTime)} · <span className="mono">{endpoint.id}</span>
      </p>
      {!session.readOnly && <Manage endpoint={endpoint} onChange={setOverride} />}

      <section aria-labelledby={`${hid}-ev`} className="card">
        <div className="page-head">
          <h2 id={`${hid}-ev`}>Events</h2>
          {!session.readOnly && (
            <button type="button" className="primary" onClick={() => setAddEvents(true)}>
              Add events
            </button>
          )}
        </div>
        {'allEvents' in sub ? (
          <p>Receives all events.</p>
        ) : (
          <ul className="tags" aria-label="Subscribed event types">
            {sub.eventTypes.map((t) => (
              <li key={t}>
                <code>{t}</code>
              </li>
            ))}
          </ul>
        )}
      </section>
      {addEvents && (
        <AddEventsDialog
          endpoint={endpoint}
          eventTypes={eventTypes}
          open={addEvents}
          onClose={() => setAddEvents(false)}
          onSaved={(e) => {
            setOverride(e);
            setAddEvents(false);
          }}
        />
      )}

      <TestEvent endpointId={endpoint.id} eventTypes={eventTypes} readOnly={session.readOnly} />

      <section className="card" aria-label="Deliveries chart">
        {chart.data ? <DeliveriesChart attempts={chart.data.items} /> : <Loading label="Loading the chart…" rows={4} />}
      </section>

      <AttemptLog endpointId={endpoint.id} eventTypes={eventTypes} readOnly={session.readOnly} refreshKey={refreshKey} onRefresh={() => setRefreshKey((k) => k + 1)} />

      {!session.readOnly && (
        <>
          <Recover endpointId={endpoint.id} onDone={() => setRefreshKey((k) => k + 1)} />
          <section className="card" aria-labelledby={`${hid}-sec`}>
            <h2 id={`${hid}-sec`}>Signing secret</h2>
            <p>
              Every request carries <code>X-Signature-256: sha256=&lt;hex&gt;</code>, an HMAC-SHA256 of the body keyed with the secret.
            </p>
            <RotateSecret endpointId={endpoint.id} />
          </section>
        </>
      )}
    </>
  );
}
