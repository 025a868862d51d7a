// Webhooks: the workspace's endpoints with URL, description, enabled and health (last attempt
// status, failing since), and the way to Add endpoint.
import { useEffect, useState } from 'react';
import { api, type Attempt, type Endpoint } from '../../api';
import { Pager, usePager } from '../../common/Pager/Pager';
import { EmptyState, ErrorNotice, Loading } from '../../common/States/States';
import { formatTime } from '../../utils/format';
import { Link } from '../../utils/router';
import { useSession } from '../../utils/session';
import { useLoad } from '../../utils/use-load';

interface Health {
  last: Attempt | undefined;
  failingSince: string | null;
}

/** Health from the newest live attempts: the last one, and since when every attempt has failed. */
function useHealth(endpoints: Endpoint[] | undefined): Record<string, Health | 'loading' | 'unknown'> {
  const [health, setHealth] = useState<Record<string, Health | 'loading' | 'unknown'>>({});
  useEffect(() => {
    if (!endpoints) return;
    let live = true;
    for (const e of endpoints) {
      setHealth((h) => ({ ...h, [e.id]: 'loading' }));
      api.listAttempts(e.id, { kind: 'live', pageSize: 50 }).then(
        ({ items }) => {
          let failingSince: string | null = null;
          for (const a of items) {
            if (a.outcome !== 'failed') break;
            failingSince = a.createTime;
          }
          if (live) setHealth((h) => ({ ...h, [e.id]: { last: items[0], failingSince } }));
        },
        () => live && setHealth((h) => ({ ...h, [e.id]: 'unknown' })),
      );
    }
    return () => {
      live = false;
    };
  }, [endpoints]);
  return health;
}

function HealthCell({ h }: { h: Health | 'loading' | 'unknown' | undefined }) {
  if (h === undefined || h === 'loading') return <span className="muted">Checking…</span>;
  if (h === 'unknown') return <span className="muted">Unknown</span>;
  if (!h.last) return <span className="muted">No deliveries yet</span>;
  if (h.last.outcome === 'succeeded') return <span className="pill ok">Healthy · {h.last.responseStatus}</span>;
  return (
    <span className="pill bad">
      Failing since {formatTime(h.failingSince)} · {h.last.responseStatus || 'no response'}
    </span>
  );
}

export function Webhooks() {
  const session = useSession();
  const pager = usePager();
  const { data, error, loading } = useLoad(() => api.listEndpoints(pager.token), [pager.token]);
  const health = useHealth(data?.items);
  return (
    <>
      <div className="page-head">
        <h1>Webhooks</h1>
        {!session.readOnly && (
          <Link to="/endpoints/new" className="button primary">
            Add endpoint
          </Link>
        )}
      </div>
      <p className="lede">Endpoints receive a signed HTTPS POST for each event they subscribe to.</p>
      <ErrorNotice error={error} />
      {loading && !data ? (
        <Loading label="Loading endpoints…" />
      ) : data && data.items.length === 0 && pager.page === 1 ? (
        <EmptyState title="No endpoints yet">
          <p>Add an endpoint to start receiving webhooks.</p>
        </EmptyState>
      ) : data ? (
        <div className="table-wrap">
          <table>
            <caption className="sr-only">Endpoints</caption>
            <thead>
              <tr>
                <th scope="col">URL</th>
                <th scope="col">Description</th>
                <th scope="col">Enabled</th>
                <th scope="col">Health</th>
              </tr>
            </thead>
            <tbody>
              {data.items.map((e) => (
                <tr key={e.id}>
                  <td className="url-cell">
                    <Link to={`/endpoints/${encodeURIComponent(e.id)}`}>{e.url}</Link>
                  </td>
                  <td>{e.description || <span className="muted">—</span>}</td>
                  <td>{e.enabled ? 'Enabled' : `Disabled${e.disabledReason ? ` (${e.disabledReason})` : ''}`}</td>
                  <td>
                    <HealthCell h={health[e.id]} />
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      ) : null}
      {data && <Pager label="Endpoint pages" page={pager.page} nextToken={data.nextPageToken} onNext={pager.next} onPrevious={pager.previous} />}
    </>
  );
}
