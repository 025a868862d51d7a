/// <reference lib="dom" />
// Real Chromium (Debian's `chromium` package; scripts/test.sh installs it when missing) driven by
// playwright-core, with axe-core run inside the page. No browser download, no CSP bypass: the
// pages are tested under the portal's own Content-Security-Policy, and any CSP violation fails.
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { chromium, type Browser, type BrowserContext, type Locator, type Page } from 'playwright-core';
import { REPO_ROOT } from '@hookline/testing';

export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const AXE = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');
export const SCREENSHOT_DIR = path.resolve(REPO_ROOT, process.env.PORTAL_SCREENSHOT_DIR ?? '.local/screenshots/portal');

export async function launch(): Promise<Browser> {
  if (!existsSync(CHROMIUM)) throw new Error(`no Chromium at ${CHROMIUM}: apt-get install -y chromium (scripts/test.sh does this), or set CHROMIUM_PATH`);
  const args = process.getuid?.() === 0 ? ['--no-sandbox'] : [];
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args });
}

export interface Watched {
  context: BrowserContext;
  page: Page;
  /** Console errors and CSP violations seen so far. */
  problems: string[];
  /** Bodies of every /api response, in order. */
  apiBodies: string[];
}

export async function openPage(browser: Browser, opts: { colorScheme?: 'light' | 'dark' } = {}): Promise<Watched> {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, permissions: ['clipboard-read', 'clipboard-write'], colorScheme: opts.colorScheme ?? 'light' });
  const page = await context.newPage();
  const problems: string[] = [];
  const apiBodies: string[] = [];
  page.on('console', (m) => {
    const t = m.text();
    // 4xx answers the test provokes on purpose show up as "Failed to load resource"; CSP never may.
    if (/Content Security Policy|Refused to/i.test(t) || (m.type() === 'error' && !/Failed to load resource/.test(t))) problems.push(t);
  });
  page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
  page.on('response', (r) => {
    if (new URL(r.url()).pathname.startsWith('/api/')) void r.text().then((t) => apiBodies.push(t), () => undefined);
  });
  return { context, page, problems, apiBodies };
}

/** Runs axe-core on the page as it is; returns serious and critical violations, summarised. */
export async function axe(page: Page): Promise<string[]> {
  await page.evaluate(AXE);
  const result = (await page.evaluate(() =>
    (window as unknown as { axe: { run: (ctx: Document, o: object) => Promise<unknown> } }).axe.run(document, { resultTypes: ['violations'] }),
  )) as { violations: { id: string; impact: string; help: string; nodes: { target: string[] }[] }[] };
  return result.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical').map((v) => `${v.impact} ${v.id}: ${v.help} (${v.nodes.map((n) => n.target.join(' ')).join(', ')})`);
}

/** A full-page screenshot for docs/portal.md; `mask` paints over what must not end up in an image (secrets). */
export async function screenshot(page: Page, name: string, mask: Locator[] = []): Promise<void> {
  mkdirSync(SCREENSHOT_DIR, { recursive: true });
  await page.screenshot({ path: path.join(SCREENSHOT_DIR, `${name}.png`), fullPage: true, mask, maskColor: '#d5d5dd' });
}

/** Cumulative layout shift since the page loaded (Chromium's layout-shift entries, input excluded). */
export async function layoutShift(page: Page): Promise<number> {
  return page.evaluate(
    () =>
      new Promise<number>((resolve) => {
        let sum = 0;
        new PerformanceObserver((list) => {
          for (const e of list.getEntries() as unknown as { value: number; hadRecentInput: boolean }[]) if (!e.hadRecentInput) sum += e.value;
          resolve(sum);
        }).observe({ type: 'layout-shift', buffered: true });
        setTimeout(() => resolve(sum), 500);
      }),
  );
}
