// Display helpers shared by the pages.
export function formatTime(iso: string | null | undefined): string {
  if (!iso) return '—';
  const d = new Date(iso);
  return d.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'medium' });
}

export function formatDuration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) return '—';
  return ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(2)} s`;
}

export function statusText(status: number, error: string): string {
  return status > 0 ? String(status) : error ? 'No response' : '—';
}

/** One id per form, so a repeated submit (double click, retry after a timeout) creates one endpoint. */
export function newRequestId(): string {
  return crypto.randomUUID();
}
