/**
 * The Temporal UI link that `deploy` and `status` print: only when a UI answers (a headless
 * `rollout dev` runs none), or as TEMPORAL_UI_URL says.
 */
import http from 'node:http';
import { servingUiUrl, temporalTarget, workflowUiLink } from '../../src/cli/connection';
import { freePort } from '../helpers/ports';

/** A Temporal address whose UI port (gRPC port + 1000, as the dev server does) is `uiPort`. */
const targetFor = (uiPort: number) => temporalTarget({}, { TEMPORAL_ADDRESS: `127.0.0.1:${uiPort - 1000}`, TEMPORAL_NAMESPACE: 'ns' });

test('a UI answering at the port + 1000: its link', async () => {
  const port = await freePort();
  const server = http.createServer((_req, res) => res.end('<html>temporal ui</html>'));
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  try {
    const ui = await servingUiUrl(targetFor(port), {});
    expect(ui).toBe(`http://127.0.0.1:${port}`);
    expect(workflowUiLink(ui!, targetFor(port), 'rollout-llm-v2')).toBe(`http://127.0.0.1:${port}/namespaces/ns/workflows/rollout-llm-v2`);
  } finally {
    await new Promise((resolve) => server.close(resolve));
  }
});

test('nothing listening there (rollout dev --headless): no link', async () => {
  const port = await freePort();
  expect(await servingUiUrl(targetFor(port), {})).toBeUndefined();
});

test('TEMPORAL_UI_URL is taken as given, without a probe', async () => {
  const port = await freePort();
  expect(await servingUiUrl(targetFor(port), { TEMPORAL_UI_URL: 'https://temporal.example.com/' })).toBe('https://temporal.example.com');
});
