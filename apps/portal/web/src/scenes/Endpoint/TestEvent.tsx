// Send test event: pick a type, Send, see the endpoint's status, body and answer time, and the
// test log of earlier test sends.
import { useId, useState, type FormEvent } from 'react';
import { api, type Attempt, type EventType } from '../../api';
import { EmptyState, ErrorNotice, Loading } from '../../common/States/States';
import { formatDuration, formatTime, statusText } from '../../utils/format';
import { Link } from '../../utils/router';
import { useLoad } from '../../utils/use-load';

export function TestEvent({ endpointId, eventTypes, readOnly }: { endpointId: string; eventTypes: EventType[]; readOnly: boolean }) {
  const id = useId();
  const [type, setType] = useState('');
  const [busy, setBusy] = useState(false);
  const [result, setResult] = useState<Attempt | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [fieldError, setFieldError] = useState<string | undefined>();
  const log = useLoad(() => api.listAttempts(endpointId, { kind: 'test', pageSize: 10 }), [endpointId]);
  const selected = type || eventTypes[0]?.name || '';

  const send = async (e: FormEvent) => {
    e.preventDefault();
    if (busy) return;
    if (!selected) {
      setFieldError('Choose an event type.');
      return;
    }
    setBusy(true);
    setError(null);
    setResult(null);
    try {
      setResult(await api.sendTestEvent(endpointId, selected));
      log.reload();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };

  return (
    <section aria-labelledby={`${id}-h`} className="card">
      <h2 id={`${id}-h`}>Send test event</h2>
      {!readOnly && (
        <form onSubmit={send} className="inline-form">
          <div className="field">
            <label htmlFor={`${id}-type`}>Event type</label>
            <select id={`${id}-type`} value={selected} onChange={(e) => (setType(e.target.value), setFieldError(undefined))} aria-describedby={`${id}-err`}>
              {eventTypes.map((t) => (
                <option key={t.name} value={t.name}>
                  {t.name}
                </option>
              ))}
            </select>
            <p id={`${id}-err`} className="field-error">
              {fieldError ?? ''}
            </p>
          </div>
          <button type="submit" className="primary" disabled={busy}>
            {busy ? 'Sending…' : 'Send'}
          </button>
        </form>
      )}
      <ErrorNotice error={error} />
      <div role="status" aria-live="polite">
        {result && (
          <div className={`result ${result.outcome === 'succeeded' ? 'ok' : 'bad'}`} role="group" aria-label="Test result">
            <p>
              <strong>{result.outcome === 'succeeded' ? 'Delivered' : 'Failed'}</strong> · Status <span>{statusText(result.responseStatus, result.error)}</span> · {formatDuration(result.durationMs)}
            </p>
            {result.error && <p>{result.error}</p>}
            <h3>Response body</h3>
            <pre tabIndex={0}>{result.responseBody || '(empty)'}</pre>
          </div>
        )}
      </div>
      <h3>Test log</h3>
      {log.loading && !log.data ? (
        <Loading label="Loading the test log…" rows={2} />
      ) : log.data && log.data.items.length === 0 ? (
        <EmptyState title="No test events sent yet" />
      ) : log.data ? (
        <div className="table-wrap">
          <table aria-label="Test log">
            <thead>
              <tr>
                <th scope="col">Time</th>
                <th scope="col">Event type</th>
                <th scope="col">Status</th>
                <th scope="col">Response body</th>
                <th scope="col">Duration</th>
              </tr>
            </thead>
            <tbody>
              {log.data.items.map((a) => (
                <tr key={a.id}>
                  <td>
                    <Link to={`/attempts/${encodeURIComponent(a.id)}`}>{formatTime(a.createTime)}</Link>
                  </td>
                  <td>
                    <code>{a.eventType}</code>
                  </td>
                  <td>{statusText(a.responseStatus, a.error)}</td>
                  <td className="body-cell">{a.responseBody.slice(0, 120) || (a.error ? a.error : '(empty)')}</td>
                  <td>{formatDuration(a.durationMs)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      ) : (
        <ErrorNotice error={log.error} />
      )}
    </section>
  );
}
