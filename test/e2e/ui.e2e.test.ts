/**
 * The Temporal UI tells the story, checked in a real browser: `rollout dev` with its Web UI (its
 * dev server registers the rollout search attributes), real replicas, the real CLI, and headless
 * Chromium (Debian's `chromium`, driven by playwright-core). First the visibility API: a canary's
 * rollout found by `RolloutService`, `RolloutPhase`, `RolloutCanaryPercent` and `RolloutOutcome`
 * as it moves. Then the browser: the list filtered by `RolloutService="<name>"`, a rollout's
 * summary, its activities' summaries and its search attributes. Screenshots go to
 * test/artifacts/ (git-ignored). The UI is a client-side app: the test waits for elements and
 * text, never for network idle, and only loopback requests leave the browser.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Connection, Client } from '@temporalio/client';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { modelServerSpec, ROOT, rolloutCli, startStack, writeSpec, type RunningStack } from '../helpers/dev-stack';
import { freePort } from '../helpers/ports';
import { waitUntil } from '../helpers/wait';

const CHROMIUM = '/usr/bin/chromium';
const ARTIFACTS = path.join(ROOT, 'test', 'artifacts');
const SERVICE = 'ui-chat';

let stack: RunningStack;
let uiUrl: string;
let client: Client;
let connection: Connection;
let specDir: string;

beforeAll(async () => {
  specDir = fs.mkdtempSync(path.join(os.tmpdir(), 'rollout-ui-specs-'));
  const uiPort = await freePort();
  stack = await startStack([], { uiPort });
  uiUrl = `http://127.0.0.1:${uiPort}`;
  connection = await Connection.connect({ address: stack.temporalAddress });
  client = new Client({ connection, namespace: 'default' });
}, 240_000);

afterAll(async () => {
  await connection?.close();
  await stack?.stop();
}, 60_000);

async function listIds(query: string): Promise<string[]> {
  const ids: string[] = [];
  for await (const w of client.workflow.list({ query })) ids.push(w.workflowId);
  return ids.sort();
}

/** Waits until the visibility query lists exactly `ids` (visibility is eventually consistent). */
async function expectListed(query: string, ids: string[]): Promise<void> {
  let found: string[] = [];
  await waitUntil(async () => JSON.stringify((found = await listIds(query))) === JSON.stringify([...ids].sort()), `${query} to list ${ids.join(', ')} (lists ${found.join(', ')})`, 90_000, 500).catch(() => undefined);
  expect({ query, found }).toEqual({ query, found: [...ids].sort() });
}

const canarySpec = (version: string) =>
  modelServerSpec({ name: SERVICE, version, replicas: 2, strategy: 'canary', timeout: '10m', rolloutYaml: ['steps:', '  - weight: 50', '  - pause: {}', '  - weight: 100'] });

test('the visibility API finds a canary rollout by its phase and canary percent as it moves, then by its outcome', async () => {
  const r1 = await rolloutCli(stack, ['deploy', writeSpec(specDir, 'v1.yaml', canarySpec('v1')), '--wait']);
  expect(r1.code).toBe(0);
  // v2 holds at {pause: {}} with half the traffic.
  const r2 = await rolloutCli(stack, ['deploy', writeSpec(specDir, 'v2.yaml', canarySpec('v2'))]);
  expect(r2.code).toBe(0);
  await expectListed(`RolloutService="${SERVICE}" AND RolloutPhase="rolling_out" AND RolloutCanaryPercent=50`, [`rollout-${SERVICE}-v2`]);
  expect((await rolloutCli(stack, ['pause', SERVICE])).code).toBe(0);
  await expectListed(`RolloutService="${SERVICE}" AND RolloutPhase="paused"`, [`rollout-${SERVICE}-v2`]);
  expect((await rolloutCli(stack, ['promote', SERVICE])).code).toBe(0);
  await expectListed(`RolloutService="${SERVICE}" AND RolloutOutcome="succeeded"`, [`rollout-${SERVICE}-v1`, `rollout-${SERVICE}-v2`]);
  await expectListed(`RolloutService="${SERVICE}" AND RolloutVersion=2 AND RolloutStrategy="canary" AND RolloutCanaryPercent=100`, [`rollout-${SERVICE}-v2`]);

  // v3 rolled back by hand while held.
  expect((await rolloutCli(stack, ['deploy', writeSpec(specDir, 'v3.yaml', canarySpec('v3'))])).code).toBe(0);
  await expectListed(`RolloutService="${SERVICE}" AND RolloutVersion=3 AND RolloutCanaryPercent=50`, [`rollout-${SERVICE}-v3`]);
  expect((await rolloutCli(stack, ['rollback', SERVICE, '--reason', 'ui test'])).code).toBe(0);
  await expectListed(`RolloutService="${SERVICE}" AND RolloutOutcome="rolled_back"`, [`rollout-${SERVICE}-v3`]);
  // The service itself carries RolloutService: the filter shows it with its rollouts.
  await expectListed(`RolloutService="${SERVICE}"`, [`service-${SERVICE}`, `rollout-${SERVICE}-v1`, `rollout-${SERVICE}-v2`, `rollout-${SERVICE}-v3`]);
}, 600_000);

describe('in the browser', () => {
  let context: BrowserContext;
  let page: Page;
  let userDataDir: string;

  beforeAll(async () => {
    if (!fs.existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: scripts/setup.js installs Debian's chromium (apt-get install -y chromium)`);
    fs.mkdirSync(ARTIFACTS, { recursive: true });
    userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'rollout-ui-chromium-'));
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM,
      headless: true,
      viewport: { width: 1440, height: 1000 },
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    // Loopback only: anything else the app asks for (a font, a feed) is refused here, never sent.
    await context.route('**/*', (route) => (['127.0.0.1', 'localhost', '[::1]'].includes(new URL(route.request().url()).hostname) ? route.continue() : route.abort()));
    context.setDefaultTimeout(90_000);
    page = context.pages()[0] ?? (await context.newPage());
  }, 120_000);

  afterAll(async () => {
    await context?.close();
    if (userDataDir) fs.rmSync(userDataDir, { recursive: true, force: true });
  });

  // Runs in the page (this project compiles without the DOM library, hence the cast).
  const bodyHas = (text: string) =>
    page.waitForFunction((t) => (globalThis as unknown as { document: { body: { innerText: string } } }).document.body.innerText.includes(t), text, { timeout: 90_000 });
  const shot = (name: string) => page.screenshot({ path: path.join(ARTIFACTS, `ui-${name}.png`), fullPage: true });

  test('the list filtered by RolloutService shows the service and its rollouts; a rollout shows its summary, its activities and its search attributes', async () => {
    const rollout = `rollout-${SERVICE}-v2`;
    // The list, filtered as a user would: reloaded until the visibility records are all there.
    const listUrl = `${uiUrl}/namespaces/default/workflows?query=${encodeURIComponent(`RolloutService="${SERVICE}"`)}`;
    const rows = page.locator('[data-testid="workflows-summary-configurable-table-row"]');
    await waitUntil(
      async () => {
        await page.goto(listUrl);
        // An empty list has no row: go round again.
        const shown = await rows.first().waitFor({ timeout: 30_000 }).then(() => true, () => false);
        return shown && (await rows.count()) >= 4;
      },
      'the filtered list to show the service and its three rollouts',
      180_000,
      1000,
    );
    const listed = (await rows.allInnerTexts()).join('\n');
    for (const id of [`service-${SERVICE}`, `rollout-${SERVICE}-v1`, rollout, `rollout-${SERVICE}-v3`]) expect(listed).toContain(id);
    expect(listed).not.toContain('service-llm');
    await shot('list-filtered');

    // The rollout's page (its latest run), its summary under User Metadata (rendered in a frame).
    await page.goto(`${uiUrl}/namespaces/default/workflows/${rollout}`);
    await page.locator('[data-testid="user-metadata-tab"]').click();
    const summary = `${SERVICE}: v1 → v2 (canary, 2 replica(s))`;
    await waitUntil(async () => (await Promise.all(page.frames().map((f) => f.innerText('body').catch(() => '')))).some((t) => t.includes(summary)), `the summary "${summary}"`, 90_000, 500);
    await shot('rollout-summary');

    // Its event history: the activities say what they did (batched steps: a start, which may
    // carry the retirement of old replicas, or a retirement alone).
    await page.locator('[data-testid="history-tab"]').click();
    await page.locator('[data-testid="event-summary-row"]').first().waitFor();
    for (const text of [`start ${SERVICE}-v2-r`, 'traffic: v1 50%, v2 50%', 'traffic: v2 100%', 'retir', `${SERVICE}-v1-r`]) await bodyHas(text);
    await shot('rollout-history');

    // Its search attributes, with their final values.
    await page.locator('[data-testid="search-attributes-tab"]').click();
    for (const text of [`"RolloutService": "${SERVICE}"`, '"RolloutVersion": 2', '"RolloutStrategy": "canary"', '"RolloutPhase": "succeeded"', '"RolloutCanaryPercent": 100', '"RolloutOutcome": "succeeded"']) await bodyHas(text);
    await shot('rollout-search-attributes');
  }, 600_000);
});
