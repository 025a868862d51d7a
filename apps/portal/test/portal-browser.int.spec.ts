/// <reference lib="dom" />
// The product guide's steps in real Chromium against the real stack: create an endpoint that
// points at a local HTTPS receiver, copy the secret from the page, add one event type, send a test
// event and see the receiver's status and body in the test log, publish a real event over gRPC
// and find it in the attempt log, verify X-Signature-256 with the guide's Python snippet and the
// copied secret, rotate and verify the next delivery with the new secret. Bad input through the
// UI, axe-core on every page, screenshots for docs/portal.md.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { eventually, type ReceivedRequest } from '@hookline/testing';
import { axe, launch, layoutShift, openPage, screenshot, type Watched } from './browser';
import { startStack, type Stack } from './harness';

jest.setTimeout(240_000);

const PYTHON_RECEIVER = `
import hashlib, hmac, sys

def verify(secret, payload_body, signature_header):
    # The product guide's receiver code, unmodified:
    expected = hmac.new(secret.encode(), payload_body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(f"sha256={expected}", signature_header)

secret, body_file, signature_header = sys.argv[1], sys.argv[2], sys.argv[3]
with open(body_file, "rb") as f:
    ok = verify(secret, f.read(), signature_header)
print("verified" if ok else "rejected")
`;

describe('portal in a real browser', () => {
  let stack: Stack;
  let browser: Browser;
  const opened: Watched[] = [];

  beforeAll(async () => {
    // Automatic retries far apart, so the Retry button is what makes the second attempt.
    [stack, browser] = await Promise.all([startStack({ dispatcherEnv: { RETRY_SCHEDULE: '10m,10m' } }), launch()]);
    writeFileSync(path.join(stack.pki.dir, 'receiver.py'), PYTHON_RECEIVER);
  });
  afterAll(async () => {
    await browser?.close();
    await stack?.stop();
  });
  afterEach(() => {
    // No page may have hit a CSP violation or a script error.
    for (const w of opened.splice(0)) expect(w.problems).toEqual([]);
  });

  const pythonVerifies = (secret: string, req: ReceivedRequest): boolean => {
    const body = path.join(stack.pki.dir, `body-${randomBytes(4).toString('hex')}.bin`);
    writeFileSync(body, req.body);
    return execFileSync('python3', [path.join(stack.pki.dir, 'receiver.py'), secret, body, req.headers['x-signature-256'] ?? ''], { encoding: 'utf8' }).trim() === 'verified';
  };

  const open = async (workspaceId: string, o: { readOnly?: boolean; colorScheme?: 'light' | 'dark' } = {}): Promise<Watched> => {
    const w = await openPage(browser, o);
    opened.push(w);
    const link = await stack.portalRpc.createPortalSession({ workspaceId, readOnly: o.readOnly ?? false });
    await w.page.goto(link.url);
    await w.page.getByRole('heading', { name: 'Webhooks', level: 1 }).waitFor();
    // The token left the address bar at once.
    expect(w.page.url()).not.toContain('token');
    // No layout shift while the portal opens (Google's "good" is under 0.1).
    expect(await layoutShift(w.page)).toBeLessThan(0.1);
    return w;
  };

  const noSeriousA11yProblems = async (page: Page, name: string) => {
    expect([name, await axe(page)]).toEqual([name, []]);
  };

  it('walks the guide: create, copy the secret, Add events, Send test event, attempt log, verify, Rotate secret', async () => {
    const ws = `ws_guide_${randomBytes(3).toString('hex')}`;
    stack.receiver.behaviour.set('/guide', { status: 200, body: 'thanks from the receiver' });
    const w = await open(ws);
    const { page } = w;
    await page.getByText('No endpoints yet').waitFor();
    await noSeriousA11yProblems(page, 'Webhooks (empty)');
    await screenshot(page, 'webhooks-empty');

    // Integrations → Webhooks → Add endpoint
    await page.getByRole('link', { name: 'Add endpoint' }).click();
    await page.getByRole('heading', { name: 'Add endpoint' }).waitFor();
    await page.getByLabel('URL').fill(stack.receiver.url('/guide'));
    await page.getByLabel('Description').fill('Billing events for the ledger');
    await noSeriousA11yProblems(page, 'Add endpoint');
    await screenshot(page, 'add-endpoint');
    await page.getByRole('button', { name: 'Create' }).click();

    // The secret, shown once, copied from the page with its Copy button.
    await page.getByRole('heading', { name: 'Endpoint created' }).waitFor();
    await page.getByText('It will not be shown again').waitFor();
    const shown = await page.getByRole('textbox', { name: 'Signing secret' }).inputValue();
    await page.getByRole('button', { name: 'Copy' }).click();
    await page.getByRole('button', { name: 'Copied' }).waitFor();
    const secret = await page.evaluate(() => navigator.clipboard.readText());
    expect(secret).toBe(shown);
    expect(secret).toMatch(/^whsec_[A-Za-z0-9+/=]+$/);
    await noSeriousA11yProblems(page, 'Endpoint created');
    await screenshot(page, 'secret-shown-once', [page.getByRole('textbox', { name: 'Signing secret' })]);

    // Open the endpoint; Add events: one type from the catalog, with its schema and example.
    await page.getByRole('link', { name: 'Open endpoint' }).click();
    await page.getByRole('heading', { name: stack.receiver.url('/guide') }).waitFor();
    // Keyboard: the dialog opens from the keyboard, Escape closes it and focus comes back.
    const addEvents = page.getByRole('button', { name: 'Add events' });
    await addEvents.focus();
    await page.keyboard.press('Enter');
    const dialog = page.getByRole('dialog', { name: 'Add events' });
    await dialog.waitFor();
    await page.keyboard.press('Escape');
    await dialog.waitFor({ state: 'hidden' });
    await expect(addEvents.evaluate((el) => el === document.activeElement)).resolves.toBe(true);
    await addEvents.click();
    await dialog.getByRole('radio', { name: 'Chosen event types' }).check();
    await dialog.getByText('An invoice was paid in full.').waitFor();
    await dialog.getByText('JSON Schema and example of invoice.paid').click();
    await dialog.getByText('"invoice_id": "in_example"').waitFor();
    await noSeriousA11yProblems(page, 'Add events dialog');
    await screenshot(page, 'add-events');
    await dialog.getByRole('checkbox', { name: 'invoice.paid' }).check();
    await dialog.getByRole('button', { name: 'Save' }).click();
    await dialog.waitFor({ state: 'hidden' });
    await page.getByRole('list', { name: 'Subscribed event types' }).getByText('invoice.paid').waitFor();
    const ep = (await stack.registry.listEndpoints({ workspaceId: ws })).endpoints;
    expect(ep).toHaveLength(1);
    expect(ep[0]!.subscription?.selection).toEqual({ $case: 'eventTypes', value: { names: ['invoice.paid'] } });

    // Send test event: status and body in the result and in the test log.
    await page.getByLabel('Event type', { exact: true }).first().selectOption('invoice.paid');
    await page.getByRole('button', { name: 'Send', exact: true }).click();
    const result = page.getByLabel('Test result');
    await result.getByText('Status 200').waitFor();
    await result.getByText('thanks from the receiver').waitFor();
    const testLog = page.getByRole('table', { name: 'Test log' });
    await testLog.getByText('thanks from the receiver').waitFor();
    await testLog.getByRole('cell', { name: '200', exact: true }).waitFor();
    const testReq = stack.receiver.on('/guide').at(-1)!;
    expect(testReq.headers['x-webhook-event']).toBe('invoice.paid');
    expect(pythonVerifies(secret, testReq)).toBe(true);

    // A real event over gRPC, found in the attempt log, verified with the copied secret.
    const published = await stack.ingest.publishEvent({ event: { workspaceId: ws, eventType: 'invoice.paid', payload: Buffer.from(JSON.stringify({ invoice_id: 'in_portal_1', amount: 4200 })), idempotencyKey: `k-${randomBytes(4).toString('hex')}` } });
    const live = await eventually(() => stack.receiver.on('/guide').find((r) => r.headers['x-webhook-id'] === published.eventId), 60_000, 'the live delivery');
    expect(pythonVerifies(secret, live)).toBe(true);
    const attempts = page.getByRole('table', { name: 'Attempts' });
    await eventually(async () => {
      await page.getByRole('button', { name: 'Refresh' }).click();
      return (await attempts.getByText(published.eventId).count()) > 0 ? true : undefined;
    }, 30_000, 'the event in the attempt log');
    await noSeriousA11yProblems(page, 'Endpoint');
    await screenshot(page, 'endpoint');

    // Attempt detail.
    await attempts.getByRole('link', { name: new RegExp(`^Attempt 1 of ${published.eventId}`) }).click();
    await page.getByRole('heading', { name: 'Attempt 1' }).waitFor();
    await page.getByText('Resolved IP').waitFor();
    await page.getByText('x-signature-256').waitFor();
    await noSeriousA11yProblems(page, 'Attempt detail');
    await screenshot(page, 'attempt');
    await page.goBack();

    // Rotate secret, immediately; the next delivery verifies with the new secret only.
    await page.getByRole('button', { name: 'Rotate secret' }).click();
    const rot = page.getByRole('dialog', { name: 'Rotate secret' });
    await rot.getByRole('radio', { name: 'Immediately' }).check();
    await noSeriousA11yProblems(page, 'Rotate secret dialog');
    await rot.getByRole('button', { name: 'Rotate' }).click();
    const newSecret = await page.getByRole('textbox', { name: 'New signing secret' }).inputValue();
    expect(newSecret).toMatch(/^whsec_/);
    expect(newSecret).not.toBe(secret);
    const next = await stack.ingest.publishEvent({ event: { workspaceId: ws, eventType: 'invoice.paid', payload: Buffer.from(JSON.stringify({ invoice_id: 'in_portal_2', amount: 1 })), idempotencyKey: `k-${randomBytes(4).toString('hex')}` } });
    const after = await eventually(() => stack.receiver.on('/guide').find((r) => r.headers['x-webhook-id'] === next.eventId), 60_000, 'the delivery after rotation');
    expect(pythonVerifies(newSecret, after)).toBe(true);
    expect(pythonVerifies(secret, after)).toBe(false);

    // Event types catalog.
    await page.getByRole('link', { name: 'Event types' }).click();
    await page.getByRole('heading', { name: 'Event types', level: 1 }).waitFor();
    await page.getByLabel('JSON Schema of invoice.voided').waitFor();
    await noSeriousA11yProblems(page, 'Event types');
    await screenshot(page, 'event-types');

    // Webhooks list with health.
    await page.getByRole('navigation', { name: 'Portal' }).getByRole('link', { name: 'Webhooks' }).click();
    await page.getByRole('link', { name: stack.receiver.url('/guide') }).waitFor();
    await page.getByText(/Healthy · 200/).waitFor();
    await noSeriousA11yProblems(page, 'Webhooks');
    await screenshot(page, 'webhooks');

    // Each secret crossed the wire in exactly one API response, and reached no log.
    await page.waitForTimeout(200);
    expect(w.apiBodies.filter((b) => b.includes(secret))).toHaveLength(1);
    expect(w.apiBodies.filter((b) => b.includes(newSecret))).toHaveLength(1);
    for (const s of stack.services) expect([s.name, s.output().includes(secret), s.output().includes(newSecret)]).toEqual([s.name, false, false]);
    // Nothing kept in web storage.
    expect(await page.evaluate(() => localStorage.length + sessionStorage.length)).toBe(0);
  });

  it('puts bad input on the field and creates nothing twice or half', async () => {
    const ws = `ws_bad_${randomBytes(3).toString('hex')}`;
    const { page } = await open(ws);
    await page.getByRole('link', { name: 'Add endpoint' }).click();
    const url = page.getByLabel('URL');
    const create = page.getByRole('button', { name: 'Create' });

    const expectUrlMessage = async (value: string, message: RegExp) => {
      await url.fill(value);
      await page.getByText(message).waitFor();
      expect(await url.getAttribute('aria-invalid')).toBe('true');
      await create.click();
      await expect(url.evaluate((el) => el === document.activeElement)).resolves.toBe(true);
    };
    await expectUrlMessage('http://example.com/hook', /^URL must use https \(got http\)$/);
    await expectUrlMessage('https://10.0.0.7/hook', /^URL host 10\.0\.0\.7 is not a public address/);
    await expectUrlMessage('https://[fd00::1]/hook', /^URL host fd00::1 is not a public address/);
    await expectUrlMessage(`https://example.com/${'a'.repeat(3000)}`, /^URL is longer than 2048 characters$/);
    await screenshot(page, 'add-endpoint-invalid');
    await noSeriousA11yProblems(page, 'Add endpoint (invalid)');
    expect((await stack.registry.listEndpoints({ workspaceId: ws })).endpoints).toEqual([]);

    // A server-side rule (description length) comes back on its own field.
    await url.fill(stack.receiver.url('/bad'));
    await page.getByLabel('Description').fill('d'.repeat(1100));
    await create.click();
    await page.getByText(/^Description must be at most 1024 characters$/).waitFor();
    expect(await page.getByLabel('Description').getAttribute('aria-invalid')).toBe('true');
    expect((await stack.registry.listEndpoints({ workspaceId: ws })).endpoints).toEqual([]);

    // A double click on Create makes one endpoint.
    await page.getByLabel('Description').fill('double');
    await create.dblclick();
    await page.getByRole('heading', { name: 'Endpoint created' }).waitFor();
    await page.waitForTimeout(500);
    const eps = (await stack.registry.listEndpoints({ workspaceId: ws })).endpoints;
    expect(eps).toHaveLength(1);

    // An empty selection of event types is refused on the field; the subscription is unchanged.
    await page.getByRole('link', { name: 'Open endpoint' }).click();
    await page.getByRole('button', { name: 'Add events' }).click();
    const dialog = page.getByRole('dialog', { name: 'Add events' });
    await dialog.getByRole('radio', { name: 'Chosen event types' }).check();
    await dialog.getByRole('button', { name: 'Save' }).click();
    await dialog.getByText('Choose at least one event type, or All events.').waitFor();
    await noSeriousA11yProblems(page, 'Add events (empty selection)');
    await dialog.getByRole('button', { name: 'Cancel' }).click();
    expect((await stack.registry.getEndpoint({ workspaceId: ws, endpointId: eps[0]!.id })).endpoint!.subscription?.selection).toEqual({ $case: 'allEvents', value: true });

    // Edit with a bad URL: message on the field, endpoint unchanged; then delete with confirmation.
    await page.getByRole('button', { name: 'Edit endpoint' }).click();
    const edit = page.getByRole('dialog', { name: 'Edit endpoint' });
    await edit.getByLabel('URL').fill('https://localhost.localdomain/x');
    await edit.getByText(/^URL host localhost\.localdomain is an internal name$/).waitFor();
    await edit.getByLabel('URL').fill(stack.receiver.url('/bad2'));
    await edit.getByLabel('Description').fill('edited');
    await edit.getByRole('button', { name: 'Save' }).click();
    await page.getByRole('heading', { name: stack.receiver.url('/bad2') }).waitFor();
    await page.getByText('edited', { exact: true }).waitFor();
    // Disable with confirmation, then enable again.
    await page.getByRole('button', { name: 'Disable endpoint' }).click();
    await page.getByRole('dialog', { name: 'Disable endpoint' }).getByRole('button', { name: 'Disable', exact: true }).click();
    await page.getByText('Disabled (manual)').waitFor();
    expect((await stack.registry.getEndpoint({ workspaceId: ws, endpointId: eps[0]!.id })).endpoint).toMatchObject({ enabled: false, url: stack.receiver.url('/bad2'), description: 'edited' });
    await page.getByRole('button', { name: 'Enable endpoint' }).click();
    await page.getByRole('dialog', { name: 'Enable endpoint' }).getByRole('button', { name: 'Enable', exact: true }).click();
    await page.getByRole('button', { name: 'Disable endpoint' }).waitFor();
    expect((await stack.registry.getEndpoint({ workspaceId: ws, endpointId: eps[0]!.id })).endpoint!.enabled).toBe(true);
    await page.getByRole('button', { name: 'Delete endpoint' }).click();
    await page.getByRole('dialog', { name: 'Delete endpoint' }).getByRole('button', { name: 'Delete' }).click();
    await page.getByText('No endpoints yet').waitFor();
    expect((await stack.registry.listEndpoints({ workspaceId: ws })).endpoints).toEqual([]);
    expect(stack.portal.child.exitCode).toBeNull();
  });

  it('retries a failed delivery from the attempt log, and recovers since a time', async () => {
    const ws = `ws_retry_${randomBytes(3).toString('hex')}`;
    stack.receiver.behaviour.set('/flaky', { status: 503, body: 'down for maintenance' });
    const created = await stack.registry.createEndpoint({ workspaceId: ws, url: stack.receiver.url('/flaky'), description: 'flaky receiver' });
    const { page } = await open(ws);
    await page.getByRole('link', { name: stack.receiver.url('/flaky') }).click();
    await page.getByRole('heading', { name: 'Attempt log' }).waitFor();
    const published = await stack.ingest.publishEvent({ event: { workspaceId: ws, eventType: 'invoice.voided', payload: Buffer.from(JSON.stringify({ invoice_id: 'in_flaky' })), idempotencyKey: `k-${randomBytes(4).toString('hex')}` } });
    await eventually(() => stack.receiver.on('/flaky').find((r) => r.headers['x-webhook-id'] === published.eventId), 60_000, 'the first attempt');
    await page.getByLabel('Outcome', { exact: true }).selectOption('failed');
    const attempts = page.getByRole('table', { name: 'Attempts' });
    await eventually(async () => {
      await page.getByRole('button', { name: 'Refresh' }).click();
      return (await attempts.getByText(published.eventId).count()) > 0 ? true : undefined;
    }, 30_000, 'the failed attempt in the log');
    await attempts.getByText('Failed', { exact: true }).first().waitFor();
    await attempts.getByRole('cell', { name: '503', exact: true }).waitFor();
    // The Webhooks list shows the endpoint failing since that attempt.
    await page.getByRole('navigation', { name: 'Portal' }).getByRole('link', { name: 'Webhooks' }).click();
    await page.getByText(/^Failing since .* · 503$/).waitFor();
    await page.getByRole('link', { name: stack.receiver.url('/flaky') }).click();
    await page.getByLabel('Outcome', { exact: true }).selectOption('failed');
    await attempts.getByText(published.eventId).waitFor();

    stack.receiver.behaviour.set('/flaky', { status: 200, body: 'back' });
    await attempts.getByRole('button', { name: `Retry ${published.eventId}` }).click();
    await attempts.getByText('Retry scheduled').waitFor();
    await eventually(() => (stack.receiver.on('/flaky').filter((r) => r.headers['x-webhook-id'] === published.eventId).length >= 2 ? true : undefined), 60_000, 'the retried attempt');
    await page.getByLabel('Outcome', { exact: true }).selectOption('succeeded');
    // Wait for the second attempt's own row: right after the filter changes, the table can still show the failed one.
    const secondAttempt = attempts.getByRole('row').filter({ hasText: published.eventId }).getByRole('cell', { name: '2', exact: true });
    await eventually(async () => {
      await page.getByRole('button', { name: 'Refresh' }).click();
      return (await secondAttempt.count()) > 0 ? true : undefined;
    }, 30_000, 'the successful retry in the log');
    expect(await attempts.getByRole('row').filter({ hasText: published.eventId }).getByRole('cell', { name: '2', exact: true }).count()).toBe(1);

    // Recover: nothing of this endpoint is in the failed state any more, and the page says so.
    await page.getByRole('button', { name: 'Recover' }).click();
    await page.getByText('0 failed deliveries were scheduled again.').waitFor();
    expect(created.endpoint).toBeDefined();
  });

  it('shows a read-only session everything and no way to change it; dark theme passes axe too', async () => {
    const ws = `ws_ro_${randomBytes(3).toString('hex')}`;
    await stack.registry.createEndpoint({ workspaceId: ws, url: stack.receiver.url('/ro'), description: 'read only view' });
    const { page } = await open(ws, { readOnly: true, colorScheme: 'dark' });
    await page.getByText('Read-only').waitFor();
    await page.getByRole('link', { name: stack.receiver.url('/ro') }).click();
    await page.getByRole('heading', { name: 'Attempt log' }).waitFor();
    for (const name of ['Add events', 'Send', 'Rotate secret', 'Delete endpoint', 'Disable endpoint']) expect([name, await page.getByRole('button', { name, exact: true }).count()]).toEqual([name, 0]);
    await noSeriousA11yProblems(page, 'Endpoint (read-only, dark)');
    await screenshot(page, 'endpoint-read-only-dark');
    // Responsive: a phone-sized viewport, same checks.
    await page.setViewportSize({ width: 390, height: 844 });
    await page.getByRole('navigation', { name: 'Portal' }).getByRole('link', { name: 'Webhooks' }).click();
    await page.getByRole('link', { name: stack.receiver.url('/ro') }).waitFor();
    expect(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth + 1)).toBe(true);
    await noSeriousA11yProblems(page, 'Webhooks (phone, dark)');
    await screenshot(page, 'webhooks-phone-dark');
  });

  it('refuses a replayed link in the browser with a readable message', async () => {
    const ws = `ws_replay_${randomBytes(3).toString('hex')}`;
    const link = await stack.portalRpc.createPortalSession({ workspaceId: ws });
    const first = await openPage(browser);
    opened.push(first);
    await first.page.goto(link.url);
    await first.page.getByRole('heading', { name: 'Webhooks', level: 1 }).waitFor();
    const second = await openPage(browser);
    await second.page.goto(link.url);
    await second.page.getByRole('heading', { name: 'Session ended' }).waitFor();
    await second.page.getByText(/already used/).waitFor();
    await noSeriousA11yProblems(second.page, 'Session ended');
    // The checker itself: an unlabelled field on the same page is reported.
    await second.page.evaluate(() => document.body.append(Object.assign(document.createElement('input'), { type: 'text' })));
    expect((await axe(second.page)).join('\n')).toMatch(/critical label/);
    // And the layout-shift probe: content pushed down after load is measured.
    await second.page.evaluate(() => {
      const d = document.createElement('div');
      d.style.height = '300px';
      document.body.prepend(d);
    });
    expect(await layoutShift(second.page)).toBeGreaterThan(0);
    await second.context.close();
  });
});
