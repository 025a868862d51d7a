import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import './styles.css';
import { AddEndpoint } from './scenes/AddEndpoint/AddEndpoint';
import { AttemptPage } from './scenes/Attempt/Attempt';
import { EndpointPage } from './scenes/Endpoint/Endpoint';
import { EventTypes } from './scenes/EventTypes/EventTypes';
import { SessionGate } from './scenes/Session/SessionGate';
import { Webhooks } from './scenes/Webhooks/Webhooks';
import { Link, usePath } from './utils/router';
import { useSession } from './utils/session';

function Page() {
  const path = usePath();
  let m: RegExpExecArray | null;
  if (path === '/' || path === '/webhooks') return <Webhooks />;
  if (path === '/endpoints/new') return <AddEndpoint />;
  if ((m = /^\/endpoints\/([^/]+)$/.exec(path))) return <EndpointPage id={decodeURIComponent(m[1]!)} />;
  if ((m = /^\/attempts\/([^/]+)$/.exec(path))) return <AttemptPage id={decodeURIComponent(m[1]!)} />;
  if (path === '/event-types') return <EventTypes />;
  return (
    <>
      <h1>Page not found</h1>
      <p>
        <Link to="/">Back to Webhooks</Link>
      </p>
    </>
  );
}

function Layout() {
  const session = useSession();
  const path = usePath();
  const current = (p: boolean) => (p ? ('page' as const) : undefined);
  return (
    <>
      <a href="#main" className="skip-link">
        Skip to content
      </a>
      <header className="topbar">
        <div className="brand">
          {session.ui.logoUrl ? <img src={session.ui.logoUrl} alt={`${session.ui.productName} logo`} width={28} height={28} /> : <span className="brand-mark" aria-hidden="true" />}
          <span>{session.ui.productName}</span>
        </div>
        <nav aria-label="Portal">
          <Link to="/" aria-current={current(path === '/' || path.startsWith('/endpoints') || path.startsWith('/attempts'))}>
            Webhooks
          </Link>
          <Link to="/event-types" aria-current={current(path === '/event-types')}>
            Event types
          </Link>
        </nav>
        {session.readOnly && <span className="badge">Read-only</span>}
      </header>
      <main className="page" id="main" tabIndex={-1}>
        <Page />
      </main>
    </>
  );
}

createRoot(document.getElementById('root')!).render(
  <StrictMode>
    <SessionGate>
      <Layout />
    </SessionGate>
  </StrictMode>,
);
