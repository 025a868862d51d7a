// The signing secret, shown once: after creation and after each rotation. It lives only in this
// component's props (React state of the page), never in storage, and disappears when the page does.
import { useId, useState } from 'react';

export function SecretReveal({ secret, title = 'Signing secret' }: { secret: string; title?: string }) {
  const id = useId();
  const [copied, setCopied] = useState<'no' | 'yes' | 'failed'>('no');
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(secret);
      setCopied('yes');
    } catch {
      setCopied('failed');
    }
  };
  return (
    <section className="secret" aria-labelledby={`${id}-h`}>
      <h2 id={`${id}-h`}>{title}</h2>
      <p className="warning" role="note">
        Copy this secret now and keep it safe. It will not be shown again.
      </p>
      <div className="secret-row">
        <label htmlFor={id} className="sr-only">
          {title}
        </label>
        <input id={id} className="secret-value" readOnly value={secret} spellCheck={false} onFocus={(e) => e.currentTarget.select()} />
        <button type="button" onClick={copy}>
          {copied === 'yes' ? 'Copied' : 'Copy'}
        </button>
      </div>
      <p role="status" className="hint">
        {copied === 'yes' ? 'Secret copied to the clipboard.' : copied === 'failed' ? 'Copying failed: select the secret and copy it yourself.' : ''}
      </p>
    </section>
  );
}
