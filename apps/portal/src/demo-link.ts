// `npm start` prints a ready one-time portal link with this: it asks the portal's PortalService
// for a session for a demo workspace, and puts one event type in an empty catalog so the pages
// have something to show. Usage: node apps/portal/dist/demo-link.js <portal grpc> <registry grpc> [workspace]
import { createPortalClient, createRegistryClient } from '@hookline/client';

async function main(): Promise<void> {
  const [portalAddress = '127.0.0.1:50054', registryAddress = '127.0.0.1:50051', workspaceId = 'demo'] = process.argv.slice(2);
  const registry = createRegistryClient({ address: registryAddress });
  const portal = createPortalClient({ address: portalAddress });
  try {
    const { eventTypes } = await registry.listEventTypes({ pageSize: 1 });
    if (eventTypes.length === 0) {
      await registry.createEventType({
        name: 'invoice.paid',
        description: 'An invoice was paid in full.',
        schemaJson: JSON.stringify({ type: 'object', required: ['invoice_id', 'amount'], properties: { invoice_id: { type: 'string' }, amount: { type: 'integer', minimum: 0 } } }),
        exampleJson: JSON.stringify({ invoice_id: 'in_example', amount: 100 }),
      });
    }
    const link = await portal.createPortalSession({ workspaceId });
    process.stdout.write(`${link.url}\n`);
  } finally {
    registry.close();
    portal.close();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`demo-link: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
