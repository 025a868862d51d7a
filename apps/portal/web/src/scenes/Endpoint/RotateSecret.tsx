// Rotate secret: confirm, choose immediately (the secret is compromised) or a grace period during
// which both secrets sign, then the new secret is shown once.
import { useState, type FormEvent } from 'react';
import { api } from '../../api';
import { Dialog } from '../../common/Dialog/Dialog';
import { SecretReveal } from '../../common/SecretReveal/SecretReveal';
import { ErrorNotice } from '../../common/States/States';

const GRACE = [
  { label: '1 hour', seconds: 3600 },
  { label: '24 hours', seconds: 86_400 },
  { label: '7 days', seconds: 7 * 86_400 },
];

export function RotateSecret({ endpointId }: { endpointId: string }) {
  const [open, setOpen] = useState(false);
  const [when, setWhen] = useState<'now' | 'grace'>('now');
  const [grace, setGrace] = useState(3600);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [secret, setSecret] = useState<string | null>(null);
  const rotate = async (e: FormEvent) => {
    e.preventDefault();
    if (busy) return;
    setBusy(true);
    setError(null);
    try {
      const r = await api.rotateSecret(endpointId, when === 'now' ? 0 : grace);
      setSecret(r.secret);
      setOpen(false);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  return (
    <>
      <button type="button" onClick={() => (setOpen(true), setSecret(null))}>
        Rotate secret
      </button>
      {secret && <SecretReveal secret={secret} title="New signing secret" />}
      <Dialog title="Rotate secret" open={open} onClose={() => setOpen(false)}>
        <form onSubmit={rotate} className="form">
          <p>A new secret replaces the current one. Receivers must switch to it to keep verifying deliveries.</p>
          <fieldset>
            <legend>When should the current secret stop working?</legend>
            <label className="choice">
              <input type="radio" name="when" checked={when === 'now'} onChange={() => setWhen('now')} /> Immediately
            </label>
            <label className="choice">
              <input type="radio" name="when" checked={when === 'grace'} onChange={() => setWhen('grace')} /> After a grace period
            </label>
            {when === 'grace' && (
              <div className="field">
                <label htmlFor="grace-period">Grace period</label>
                <select id="grace-period" value={grace} onChange={(e) => setGrace(Number(e.target.value))}>
                  {GRACE.map((g) => (
                    <option key={g.seconds} value={g.seconds}>
                      {g.label}
                    </option>
                  ))}
                </select>
              </div>
            )}
          </fieldset>
          <ErrorNotice error={error} />
          <div className="actions">
            <button type="submit" className="primary danger" disabled={busy}>
              {busy ? 'Rotating…' : 'Rotate'}
            </button>
            <button type="button" onClick={() => setOpen(false)}>
              Cancel
            </button>
          </div>
        </form>
      </Dialog>
    </>
  );
}
