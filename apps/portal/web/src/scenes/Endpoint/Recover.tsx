// Recover failed deliveries since a time: every failed delivery of events created since then is
// sent again. The call answers when all are scheduled; the page shows progress until then.
import { useId, useState, type FormEvent } from 'react';
import { api, ApiError } from '../../api';
import { ErrorNotice } from '../../common/States/States';

const local = (d: Date) => new Date(d.getTime() - d.getTimezoneOffset() * 60_000).toISOString().slice(0, 16);

export function Recover({ endpointId, onDone }: { endpointId: string; onDone: () => void }) {
  const id = useId();
  const [since, setSince] = useState(local(new Date(Date.now() - 24 * 3600_000)));
  const [state, setState] = useState<{ kind: 'idle' } | { kind: 'running' } | { kind: 'done'; n: number }>({ kind: 'idle' });
  const [error, setError] = useState<unknown>(null);
  const [fieldError, setFieldError] = useState<string | undefined>();
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    if (state.kind === 'running') return;
    const d = new Date(since);
    if (Number.isNaN(d.getTime())) return setFieldError('Enter a date and time.');
    setState({ kind: 'running' });
    setError(null);
    setFieldError(undefined);
    try {
      const r = await api.recover(endpointId, d);
      setState({ kind: 'done', n: r.deliveriesRequeued });
      onDone();
    } catch (err) {
      setState({ kind: 'idle' });
      if (err instanceof ApiError && err.fieldMessage('since')) setFieldError(`Since ${err.fieldMessage('since')}`);
      else setError(err);
    }
  };
  return (
    <section aria-labelledby={`${id}-h`} className="card">
      <h2 id={`${id}-h`}>Recover failed deliveries</h2>
      <form onSubmit={submit} className="inline-form">
        <div className="field">
          <label htmlFor={`${id}-since`}>Since</label>
          <input id={`${id}-since`} type="datetime-local" value={since} onChange={(e) => setSince(e.target.value)} aria-describedby={`${id}-err`} aria-invalid={fieldError ? true : undefined} />
          <p id={`${id}-err`} className="field-error">
            {fieldError ?? ''}
          </p>
        </div>
        <button type="submit" disabled={state.kind === 'running'}>
          Recover
        </button>
      </form>
      <div role="status" aria-live="polite">
        {state.kind === 'running' && <progress aria-label="Recovering deliveries" />}
        {state.kind === 'done' && <p>{state.n === 1 ? '1 failed delivery was scheduled again.' : `${state.n} failed deliveries were scheduled again.`}</p>}
      </div>
      <ErrorNotice error={error} />
    </section>
  );
}
