// Drives the gateway with unmodified public client libraries, as an integration would:
// Segment's @segment/analytics-node (through a proxy that loses the answer to its first
// request, so the library retries a batch the gateway already took) and RudderStack's
// @rudderstack/rudder-sdk-node (which gzips its batches). Only the host and write key are set.
//
// Environment: CRM_GATEWAY (base URL), CRM_WRITE_KEY (an API key with the ingest scope),
// CRM_RUN (a prefix for this run's ids). Prints a JSON summary on stdout; exits 1 on any
// library error.
import http from 'node:http';
import { Analytics } from '@segment/analytics-node';
import RudderAnalytics from '@rudderstack/rudder-sdk-node';

const gateway = process.env.CRM_GATEWAY;
const writeKey = process.env.CRM_WRITE_KEY;
const run = process.env.CRM_RUN;
if (!gateway || !writeKey || !run) {
  console.error('set CRM_GATEWAY, CRM_WRITE_KEY and CRM_RUN');
  process.exit(2);
}

// A proxy in front of the gateway: it forwards every request whole and relays the answer,
// except the first one's, which it replaces with a 503 after the gateway took the batch.
const seen = { requests: 0, injected: 0, statuses: [], retryHeaders: 0, basicAuth: 0 };
const proxy = http.createServer(async (req, res) => {
  const chunks = [];
  for await (const c of req) chunks.push(c);
  const body = Buffer.concat(chunks);
  seen.requests += 1;
  if (req.headers['x-retry-count']) seen.retryHeaders += 1;
  if ((req.headers.authorization || '').startsWith('Basic ')) seen.basicAuth += 1;
  const headers = { ...req.headers };
  delete headers.host;
  delete headers['content-length'];
  const upstream = await fetch(gateway + req.url, { method: req.method, headers, body });
  const text = await upstream.text();
  seen.statuses.push(upstream.status);
  if (seen.requests === 1 && upstream.status === 200) {
    seen.injected += 1;
    res.writeHead(503, { 'content-type': 'text/plain' });
    res.end('answer lost on the way back');
    return;
  }
  res.writeHead(upstream.status, { 'content-type': upstream.headers.get('content-type') || 'application/json' });
  res.end(text);
});
await new Promise((resolve) => proxy.listen(0, '127.0.0.1', resolve));
const proxyUrl = `http://127.0.0.1:${proxy.address().port}`;

const errors = [];
const segment = new Analytics({ writeKey, host: proxyUrl, flushAt: 50, flushInterval: 200, maxRetries: 3 });
segment.on('error', (e) => errors.push(`segment: ${e?.code ?? ''} ${e?.reason ?? e}`));

const ana = `${run}-ana`;
segment.identify({
  userId: ana,
  anonymousId: `${run}-device`,
  traits: { email: `${run}-ana@example.com`, name: 'Ana Ruiz', plan: 'pro' },
});
for (const order of ['o-1', 'o-2', 'o-3']) {
  segment.track({ userId: ana, event: 'Order Completed', properties: { order_id: order, revenue: 42 } });
}
segment.page({ userId: ana, category: 'Docs', name: 'Pricing', properties: { url: 'https://acme.example/pricing' } });
segment.screen({ userId: ana, name: 'Home' });
segment.group({ userId: ana, groupId: `${run}-initech`, traits: { name: 'Initech', plan: 'enterprise', employees: 120 } });
segment.track({ anonymousId: `${run}-visitor`, event: 'Product Viewed', properties: { sku: 'sku-1' } });
segment.alias({ userId: `${run}-bob`, previousId: `${run}-visitor` });
await segment.closeAndFlush({ timeout: 30000 });
proxy.close();

// RudderStack: straight to the gateway, gzip on (its default).
const rudder = new RudderAnalytics(writeKey, { dataPlaneUrl: gateway, flushAt: 20, flushInterval: 200, logLevel: 'error' });
const carla = `${run}-carla`;
rudder.identify({ userId: carla, traits: { email: `${run}-carla@example.com`, name: 'Carla' } });
rudder.track({ userId: carla, event: 'Signed Up', properties: { plan: 'free' } });
try {
  await rudder.flush();
} catch (e) {
  errors.push(`rudderstack: ${e?.message ?? e}`);
}

console.log(JSON.stringify({ segment: seen, errors }));
process.exit(errors.length ? 1 : 0);
