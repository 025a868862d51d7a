// Registration-time URL rules for webhook targets: libs/url-policy's urlRefusal, plus the host
// spellings it does not normalise. The dispatcher re-checks every resolved address at connect time.
import { urlRefusal, type AllowList } from '@hookline/url-policy';

// Names that always mean "this machine" or "this site" although they look fully qualified.
const LOCAL_SUFFIXES = [/^localhost\.localdomain$/i, /\.localdomain$/i];

/**
 * Why `raw` must not be registered as a target (a description for the `url` field), or undefined.
 *
 * A DNS name with a trailing dot is the same name without it: `https://localhost./` and
 * `https://printer.local./` reach the same hosts as their dot-less forms, so the name rules are
 * applied to the host with its trailing dots removed (urlRefusal matches them literally).
 */
export function targetUrlRefusal(raw: string, allow: AllowList): string | undefined {
  const why = urlRefusal(raw, allow);
  if (why) return why;
  const host = new URL(raw).hostname; // urlRefusal has parsed it already
  if (allow.hasHost(host)) return undefined;
  const bare = host.replace(/\.+$/, '');
  if (bare !== host) {
    if (bare === '') return `host ${host} is not a fully qualified public name`;
    if (allow.hasHost(bare)) return undefined;
    const again = urlRefusal(`https://${bare}/`, allow);
    if (again) return again.replace(`host ${bare} `, `host ${host} `);
  }
  if (LOCAL_SUFFIXES.some((re) => re.test(bare))) return `host ${host} is an internal name`;
  return undefined;
}
