// Add events: all events, or chosen types from the catalog, each with its description, JSON
// Schema and example. An empty choice is refused on the field before anything is sent.
import { useId, useState, type FormEvent } from 'react';
import { api, ApiError, type Endpoint, type EventType } from '../../api';
import { Dialog } from '../../common/Dialog/Dialog';
import { ErrorNotice } from '../../common/States/States';

export function AddEventsDialog({ endpoint, eventTypes, open, onClose, onSaved }: { endpoint: Endpoint; eventTypes: EventType[]; open: boolean; onClose: () => void; onSaved: (e: Endpoint) => void }) {
  const id = useId();
  const initial = 'eventTypes' in endpoint.subscription ? endpoint.subscription.eventTypes : [];
  const [mode, setMode] = useState<'all' | 'chosen'>('allEvents' in endpoint.subscription ? 'all' : 'chosen');
  const [chosen, setChosen] = useState<Set<string>>(new Set(initial));
  const [fieldError, setFieldError] = useState<string | undefined>();
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);

  const save = async (e: FormEvent) => {
    e.preventDefault();
    if (busy) return;
    if (mode === 'chosen' && chosen.size === 0) {
      setFieldError('Choose at least one event type, or All events.');
      return;
    }
    setBusy(true);
    setError(null);
    try {
      onSaved(await api.setSubscription(endpoint.id, mode === 'all' ? { allEvents: true } : { eventTypes: [...chosen] }));
    } catch (err) {
      if (err instanceof ApiError && err.fieldMessage('subscription')) setFieldError(err.fieldMessage('subscription'));
      else setError(err);
    } finally {
      setBusy(false);
    }
  };
  const toggle = (name: string) => {
    setFieldError(undefined);
    setChosen((s) => {
      const n = new Set(s);
      if (n.has(name)) n.delete(name);
      else n.add(name);
      return n;
    });
  };

  return (
    <Dialog title="Add events" open={open} onClose={onClose}>
      <form onSubmit={save} className="form">
        <fieldset aria-describedby={`${id}-err`}>
          <legend>Which events should this endpoint receive?</legend>
          <label className="choice">
            <input type="radio" name="mode" checked={mode === 'all'} onChange={() => (setMode('all'), setFieldError(undefined))} /> All events
          </label>
          <label className="choice">
            <input type="radio" name="mode" checked={mode === 'chosen'} onChange={() => setMode('chosen')} /> Chosen event types
          </label>
        </fieldset>
        {mode === 'chosen' && (
          <fieldset className="types" aria-describedby={`${id}-err`} aria-invalid={fieldError ? true : undefined}>
            <legend>Event types</legend>
            {eventTypes.length === 0 && <p className="muted">The catalog has no event types yet.</p>}
            {eventTypes.map((t) => (
              <div key={t.name} className="type-choice">
                <label className="choice">
                  <input type="checkbox" checked={chosen.has(t.name)} onChange={() => toggle(t.name)} disabled={t.deprecated && !chosen.has(t.name)} /> <code>{t.name}</code>
                  {t.deprecated && <span className="badge">Deprecated</span>}
                </label>
                <p className="hint">{t.description}</p>
                <details>
                  <summary>JSON Schema and example of {t.name}</summary>
                  <h3>JSON Schema</h3>
                  <pre tabIndex={0}>{pretty(t.schemaJson)}</pre>
                  <h3>Example</h3>
                  <pre tabIndex={0}>{pretty(t.exampleJson)}</pre>
                </details>
              </div>
            ))}
          </fieldset>
        )}
        <p id={`${id}-err`} className="field-error" role={fieldError ? 'alert' : undefined}>
          {fieldError ?? ''}
        </p>
        <ErrorNotice error={error} />
        <div className="actions">
          <button type="submit" className="primary" disabled={busy}>
            {busy ? 'Saving…' : 'Save'}
          </button>
          <button type="button" onClick={onClose}>
            Cancel
          </button>
        </div>
      </form>
    </Dialog>
  );
}

export function pretty(json: string): string {
  try {
    return JSON.stringify(JSON.parse(json), null, 2);
  } catch {
    return json;
  }
}
