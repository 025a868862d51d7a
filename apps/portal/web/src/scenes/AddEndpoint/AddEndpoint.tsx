// Add endpoint: URL (checked as you type with the registry's own rules and words) and
// Description; Create; then the secret, shown once.
import { useRef, useState, type FormEvent } from 'react';
import { api, ApiError, type Endpoint } from '../../api';
import { TextField } from '../../common/Field/Field';
import { SecretReveal } from '../../common/SecretReveal/SecretReveal';
import { ErrorNotice } from '../../common/States/States';
import { newRequestId } from '../../utils/format';
import { Link } from '../../utils/router';
import { urlProblem } from '../../utils/url-check';

export function AddEndpoint() {
  const [url, setUrl] = useState('');
  const [description, setDescription] = useState('');
  const [touched, setTouched] = useState(false);
  const [serverErrors, setServerErrors] = useState<{ url?: string; description?: string }>({});
  const [formError, setFormError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const [created, setCreated] = useState<{ endpoint: Endpoint; secret: string } | null>(null);
  // One id per filled-in form: a double click or a retry returns the same endpoint and secret.
  const requestId = useRef(newRequestId());
  const urlRef = useRef<HTMLInputElement>(null);
  const inFlight = useRef(false);

  const localUrlError = touched || url ? urlProblem(url) : undefined;
  const urlError = serverErrors.url ?? localUrlError;

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setTouched(true);
    if (inFlight.current) return;
    if (urlProblem(url)) {
      urlRef.current?.focus();
      return;
    }
    inFlight.current = true;
    setBusy(true);
    setFormError(null);
    try {
      setCreated(await api.createEndpoint({ url, description, requestId: requestId.current }));
    } catch (err) {
      if (err instanceof ApiError && err.fields.length > 0) {
        setServerErrors({ url: err.fieldMessage('url') && `URL ${err.fieldMessage('url')}`, description: err.fieldMessage('description') && `Description ${err.fieldMessage('description')}` });
        if (!err.fieldMessage('url') && !err.fieldMessage('description')) setFormError(err);
        else if (err.fieldMessage('url')) urlRef.current?.focus();
      } else setFormError(err);
    } finally {
      inFlight.current = false;
      setBusy(false);
    }
  };

  if (created) {
    return (
      <>
        <h1>Endpoint created</h1>
        <p>
          Deliveries to <strong className="break">{created.endpoint.url}</strong> are signed with this secret: check the <code>X-Signature-256</code> header of every request with it.
        </p>
        <SecretReveal secret={created.secret} />
        <p>
          <Link to={`/endpoints/${encodeURIComponent(created.endpoint.id)}`} className="button primary">
            Open endpoint
          </Link>
        </p>
      </>
    );
  }

  return (
    <>
      <p className="crumbs">
        <Link to="/">Webhooks</Link> / Add endpoint
      </p>
      <h1>Add endpoint</h1>
      <form onSubmit={submit} noValidate className="form">
        <TextField
          inputRef={urlRef}
          label="URL"
          name="url"
          type="url"
          inputMode="url"
          autoComplete="off"
          placeholder="https://example.com/webhooks"
          hint="A public HTTPS URL that answers 2xx within 10 seconds."
          value={url}
          error={urlError}
          onChange={(e) => {
            setUrl(e.target.value);
            setServerErrors((s) => ({ ...s, url: undefined }));
            requestId.current = newRequestId();
          }}
          onBlur={() => setTouched(true)}
          required
        />
        <TextField
          label="Description"
          name="description"
          multiline
          rows={3}
          hint="Optional. What this endpoint is for."
          value={description}
          error={serverErrors.description}
          onChange={(e) => {
            setDescription(e.target.value);
            setServerErrors((s) => ({ ...s, description: undefined }));
            requestId.current = newRequestId();
          }}
        />
        <ErrorNotice error={formError} />
        <div className="actions">
          <button type="submit" className="primary" disabled={busy} aria-disabled={busy}>
            {busy ? 'Creating…' : 'Create'}
          </button>
          <Link to="/" className="button">
            Cancel
          </Link>
        </div>
      </form>
    </>
  );
}
