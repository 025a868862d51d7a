// Opens the session: a one-time link carries its token in the fragment (#token=...), which the
// page trades for the HttpOnly session cookie and removes from the address bar and history at once.
import { useEffect, useState, type ReactNode } from 'react';
import { api, ApiError, type SessionInfo } from '../../api';
import { setAllowlist } from '../../utils/url-check';
import { SessionContext } from '../../utils/session';

// Started once per page load (React may run effects twice in development).
let opening: Promise<SessionInfo> | undefined;

export function SessionGate({ children }: { children: ReactNode }) {
  const [session, setSession] = useState<SessionInfo | null>(null);
  const [problem, setProblem] = useState<string | null>(null);
  useEffect(() => {
    if (!opening) {
      const m = /^#token=([A-Za-z0-9._-]+)$/.exec(location.hash);
      if (m) history.replaceState(null, '', location.pathname + location.search);
      opening = m ? api.openSession(m[1]!) : api.session();
    }
    opening.then(
      (s) => {
        setAllowlist(s.ui.targetAllowlist);
        document.documentElement.dataset.theme = s.ui.theme;
        document.title = `Webhooks · ${s.ui.productName}`;
        setSession(s);
      },
      (e: unknown) => setProblem(e instanceof ApiError && e.status === 401 ? e.message : 'The portal could not start. Try the link again.'),
    );
  }, []);
  if (problem) {
    return (
      <main className="page narrow" id="main">
        <h1>Session ended</h1>
        <p role="alert">{problem.charAt(0).toUpperCase() + problem.slice(1)}.</p>
      </main>
    );
  }
  if (!session) {
    return (
      <main className="page narrow" id="main" aria-busy="true">
        <p role="status">Opening the portal…</p>
      </main>
    );
  }
  return <SessionContext.Provider value={session}>{children}</SessionContext.Provider>;
}
