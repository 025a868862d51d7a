// The attempt log of live deliveries: filters (outcome, event type), pages, a link to each
// attempt's detail, and Retry on failed ones.
import { useId, useState } from 'react';
import { api, type EventType, type Outcome } from '../../api';
import { Pager, usePager } from '../../common/Pager/Pager';
import { EmptyState, ErrorNotice, Loading } from '../../common/States/States';
import { formatDuration, formatTime, statusText } from '../../utils/format';
import { Link } from '../../utils/router';
import { useLoad } from '../../utils/use-load';

export function AttemptLog({ endpointId, eventTypes, readOnly, refreshKey, onRefresh }: { endpointId: string; eventTypes: EventType[]; readOnly: boolean; refreshKey: number; onRefresh: () => void }) {
  const id = useId();
  const [outcome, setOutcome] = useState<Outcome | ''>('');
  const [eventType, setEventType] = useState('');
  const pager = usePager();
  const [retried, setRetried] = useState<Record<string, string>>({});
  // ListAttempts filters by outcome on the server; the event type filter is applied to the page.
  const log = useLoad(() => api.listAttempts(endpointId, { kind: 'live', outcome: outcome || undefined, pageToken: pager.token, pageSize: 20 }), [endpointId, outcome, pager.token, refreshKey]);
  const rows = (log.data?.items ?? []).filter((a) => !eventType || a.eventType === eventType);
  const retry = async (eventId: string) => {
    setRetried((r) => ({ ...r, [eventId]: 'Retrying…' }));
    try {
      await api.retryDelivery(endpointId, eventId);
      setRetried((r) => ({ ...r, [eventId]: 'Retry scheduled' }));
    } catch {
      setRetried((r) => ({ ...r, [eventId]: 'Retry failed' }));
    }
  };
  return (
    <section aria-labelledby={`${id}-h`} className="card">
      <div className="page-head">
        <h2 id={`${id}-h`}>Attempt log</h2>
        <button type="button" onClick={onRefresh}>
          Refresh
        </button>
      </div>
      <div className="filters">
        <div className="field">
          <label htmlFor={`${id}-o`}>Outcome</label>
          <select id={`${id}-o`} value={outcome} onChange={(e) => (setOutcome(e.target.value as Outcome | ''), pager.reset())}>
            <option value="">All outcomes</option>
            <option value="succeeded">Succeeded</option>
            <option value="failed">Failed</option>
          </select>
        </div>
        <div className="field">
          <label htmlFor={`${id}-t`}>Event type</label>
          <select id={`${id}-t`} value={eventType} onChange={(e) => setEventType(e.target.value)}>
            <option value="">All event types</option>
            {eventTypes.map((t) => (
              <option key={t.name} value={t.name}>
                {t.name}
              </option>
            ))}
          </select>
        </div>
      </div>
      <ErrorNotice error={log.error} />
      {log.loading && !log.data ? (
        <Loading label="Loading attempts…" />
      ) : rows.length === 0 ? (
        <EmptyState title="No attempts match" />
      ) : (
        <div className="table-wrap">
          <table aria-label="Attempts">
            <thead>
              <tr>
                <th scope="col">Time</th>
                <th scope="col">Event type</th>
                <th scope="col">Event</th>
                <th scope="col">Attempt</th>
                <th scope="col">Outcome</th>
                <th scope="col">Status</th>
                <th scope="col">Duration</th>
                {!readOnly && <th scope="col">Action</th>}
              </tr>
            </thead>
            <tbody>
              {rows.map((a) => (
                <tr key={a.id}>
                  <td>
                    <Link to={`/attempts/${encodeURIComponent(a.id)}`} aria-label={`Attempt ${a.attemptNumber} of ${a.eventId} at ${formatTime(a.createTime)}`}>
                      {formatTime(a.createTime)}
                    </Link>
                  </td>
                  <td>
                    <code>{a.eventType}</code>
                  </td>
                  <td className="mono small">{a.eventId}</td>
                  <td>{a.attemptNumber}</td>
                  <td>
                    <span className={`pill ${a.outcome === 'succeeded' ? 'ok' : 'bad'}`}>{a.outcome === 'succeeded' ? 'Succeeded' : 'Failed'}</span>
                  </td>
                  <td>{statusText(a.responseStatus, a.error)}</td>
                  <td>{formatDuration(a.durationMs)}</td>
                  {!readOnly && (
                    <td>
                      {a.outcome === 'failed' &&
                        (retried[a.eventId] ? (
                          <span role="status">{retried[a.eventId]}</span>
                        ) : (
                          <button type="button" onClick={() => void retry(a.eventId)} aria-label={`Retry ${a.eventId}`}>
                            Retry
                          </button>
                        ))}
                    </td>
                  )}
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {log.data && <Pager label="Attempt pages" page={pager.page} nextToken={log.data.nextPageToken} onNext={pager.next} onPrevious={pager.previous} />}
    </section>
  );
}
