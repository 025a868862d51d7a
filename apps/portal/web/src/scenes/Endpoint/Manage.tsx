// Enable/disable, edit (URL, Description) and delete, each confirmed; server messages land on
// the field they concern.
import { useState, type FormEvent } from 'react';
import { api, ApiError, type Endpoint } from '../../api';
import { Dialog } from '../../common/Dialog/Dialog';
import { TextField } from '../../common/Field/Field';
import { ErrorNotice } from '../../common/States/States';
import { navigate } from '../../utils/router';
import { urlProblem } from '../../utils/url-check';

export function Manage({ endpoint, onChange }: { endpoint: Endpoint; onChange: (e: Endpoint) => void }) {
  const [dialog, setDialog] = useState<'none' | 'edit' | 'delete' | 'toggle'>('none');
  const [url, setUrl] = useState(endpoint.url);
  const [description, setDescription] = useState(endpoint.description);
  const [fieldErrors, setFieldErrors] = useState<{ url?: string | undefined; description?: string | undefined }>({});
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const close = () => (setDialog('none'), setError(null), setFieldErrors({}));

  const run = async (what: () => Promise<void>) => {
    if (busy) return;
    setBusy(true);
    setError(null);
    try {
      await what();
    } catch (err) {
      if (err instanceof ApiError && (err.fieldMessage('url') || err.fieldMessage('description'))) {
        setFieldErrors({ url: err.fieldMessage('url') && `URL ${err.fieldMessage('url')}`, description: err.fieldMessage('description') && `Description ${err.fieldMessage('description')}` });
      } else setError(err);
    } finally {
      setBusy(false);
    }
  };
  const save = (e: FormEvent) => {
    e.preventDefault();
    if (urlProblem(url)) return setFieldErrors({ url: urlProblem(url) });
    void run(async () => {
      onChange(await api.updateEndpoint(endpoint.id, { url, description }));
      close();
    });
  };
  const urlError = fieldErrors.url ?? urlProblem(url);

  return (
    <div className="manage">
      <button type="button" onClick={() => setDialog('toggle')}>
        {endpoint.enabled ? 'Disable endpoint' : 'Enable endpoint'}
      </button>
      <button type="button" onClick={() => (setUrl(endpoint.url), setDescription(endpoint.description), setDialog('edit'))}>
        Edit endpoint
      </button>
      <button type="button" className="danger" onClick={() => setDialog('delete')}>
        Delete endpoint
      </button>

      <Dialog title={endpoint.enabled ? 'Disable endpoint' : 'Enable endpoint'} open={dialog === 'toggle'} onClose={close}>
        <p>{endpoint.enabled ? 'A disabled endpoint receives nothing; deliveries to it are held until it is enabled again.' : 'The endpoint will receive its events again.'}</p>
        <ErrorNotice error={error} />
        <div className="actions">
          <button type="button" className="primary" disabled={busy} onClick={() => void run(async () => (onChange(await api.updateEndpoint(endpoint.id, { enabled: !endpoint.enabled })), close()))}>
            {endpoint.enabled ? 'Disable' : 'Enable'}
          </button>
          <button type="button" onClick={close}>
            Cancel
          </button>
        </div>
      </Dialog>

      <Dialog title="Edit endpoint" open={dialog === 'edit'} onClose={close}>
        <form onSubmit={save} noValidate className="form">
          <TextField label="URL" type="url" value={url} error={urlError} onChange={(e) => (setUrl(e.target.value), setFieldErrors((f) => ({ ...f, url: undefined })))} />
          <TextField label="Description" multiline rows={3} value={description} error={fieldErrors.description} onChange={(e) => (setDescription(e.target.value), setFieldErrors((f) => ({ ...f, description: undefined })))} />
          <ErrorNotice error={error} />
          <div className="actions">
            <button type="submit" className="primary" disabled={busy}>
              Save
            </button>
            <button type="button" onClick={close}>
              Cancel
            </button>
          </div>
        </form>
      </Dialog>

      <Dialog title="Delete endpoint" open={dialog === 'delete'} onClose={close}>
        <p>
          Delete <strong className="break">{endpoint.url}</strong>? It stops receiving events at once and its pending deliveries are dropped. This cannot be undone.
        </p>
        <ErrorNotice error={error} />
        <div className="actions">
          <button type="button" className="primary danger" disabled={busy} onClick={() => void run(async () => (await api.deleteEndpoint(endpoint.id), navigate('/')))}>
            Delete
          </button>
          <button type="button" onClick={close}>
            Cancel
          </button>
        </div>
      </Dialog>
    </div>
  );
}
