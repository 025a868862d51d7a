// Event types: the catalog, each type with its description, JSON Schema and example.
import { api } from '../../api';
import { EmptyState, ErrorNotice, Loading } from '../../common/States/States';
import { useLoad } from '../../utils/use-load';
import { pretty } from '../Endpoint/AddEventsDialog';

export function EventTypes() {
  const { data, error } = useLoad(() => api.listEventTypes(), []);
  return (
    <>
      <h1>Event types</h1>
      <p className="lede">Every event an endpoint can receive, with the JSON Schema its payload follows and an example.</p>
      <ErrorNotice error={error} />
      {!data && !error ? (
        <Loading label="Loading event types…" />
      ) : data && data.length === 0 ? (
        <EmptyState title="No event types yet" />
      ) : (
        data?.map((t) => (
          <section key={t.name} className="card" aria-labelledby={`type-${t.name}`}>
            <h2 id={`type-${t.name}`}>
              <code>{t.name}</code> {t.deprecated && <span className="badge">Deprecated</span>}
            </h2>
            <p>{t.description}</p>
            <div className="two-col">
              <div>
                <h3>JSON Schema</h3>
                <pre tabIndex={0} aria-label={`JSON Schema of ${t.name}`}>{pretty(t.schemaJson)}</pre>
              </div>
              <div>
                <h3>Example</h3>
                <pre tabIndex={0} aria-label={`Example of ${t.name}`}>{pretty(t.exampleJson)}</pre>
              </div>
            </div>
          </section>
        ))
      )}
    </>
  );
}
