// Token pagination (the services page with opaque next_page_token): a stack of tokens seen so far
// gives Previous without the server keeping state.
import { useState } from 'react';

export function usePager() {
  const [stack, setStack] = useState<string[]>(['']);
  return {
    token: stack[stack.length - 1]!,
    page: stack.length,
    next: (t: string) => setStack((s) => [...s, t]),
    previous: () => setStack((s) => (s.length > 1 ? s.slice(0, -1) : s)),
    reset: () => setStack(['']),
  };
}

export function Pager({ label, page, nextToken, onNext, onPrevious }: { label: string; page: number; nextToken: string; onNext: (t: string) => void; onPrevious: () => void }) {
  if (page === 1 && !nextToken) return null;
  return (
    <nav className="pager" aria-label={label}>
      <button type="button" onClick={onPrevious} disabled={page === 1}>
        Previous page
      </button>
      <span>Page {page}</span>
      <button type="button" onClick={() => onNext(nextToken)} disabled={!nextToken}>
        Next page
      </button>
    </nav>
  );
}
