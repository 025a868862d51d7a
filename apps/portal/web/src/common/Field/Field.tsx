// A labelled form field whose message (from the as-you-type check or from the server) is tied
// to the input with aria-describedby and aria-invalid, so screen readers read it with the field.
import { useId, type InputHTMLAttributes, type Ref, type TextareaHTMLAttributes } from 'react';

interface Common {
  label: string;
  error?: string | undefined;
  hint?: string;
  inputRef?: Ref<HTMLInputElement>;
}

export function TextField({ label, error, hint, multiline, inputRef, ...input }: Common & { multiline?: boolean } & InputHTMLAttributes<HTMLInputElement> & TextareaHTMLAttributes<HTMLTextAreaElement>) {
  const id = useId();
  const described = [hint ? `${id}-hint` : '', error ? `${id}-error` : ''].filter(Boolean).join(' ') || undefined;
  const props = { id, 'aria-invalid': error ? true : undefined, 'aria-describedby': described, ...input };
  return (
    <div className="field">
      <label htmlFor={id}>{label}</label>
      {hint && (
        <p id={`${id}-hint`} className="hint">
          {hint}
        </p>
      )}
      {multiline ? <textarea {...(props as TextareaHTMLAttributes<HTMLTextAreaElement>)} /> : <input ref={inputRef} {...(props as InputHTMLAttributes<HTMLInputElement>)} />}
      {/* Polite, not an alert: the as-you-type message changes with each keystroke. */}
      <p id={`${id}-error`} className="field-error" aria-live="polite">
        {error ?? ''}
      </p>
    </div>
  );
}
