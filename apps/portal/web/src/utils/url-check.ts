// The registry's URL rules, run in the browser as you type (libs/url-policy, bundled with a
// node:net stand-in), so the page and the registry say the same thing in the same words.
import { AllowList, urlRefusal } from '@hookline/url-policy';

let allow = new AllowList([]);

export function setAllowlist(entries: string[]): void {
  allow = new AllowList(entries);
}

/** The message for the URL field, or undefined when the registry would accept it. */
export function urlProblem(url: string): string | undefined {
  const why = urlRefusal(url.trim() === url ? url : url.trim(), allow);
  return why ? `URL ${why}` : undefined;
}
