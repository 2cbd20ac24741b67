/** `rollout router`: configuration errors are caught before anything listens; SIGTERM stops it cleanly. */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import path from 'node:path';
import { runRouterFromEnv } from '../../src/router/main';
import { freePort } from '../helpers/ports';
import { waitUntil } from '../helpers/wait';

test.each([
  [{}, /ROUTER_TOKEN is not set/],
  [{ ROUTER_TOKEN: 't', ROUTER_TRAFFIC_PORT: 'eighty' }, /ROUTER_TRAFFIC_PORT must be a port number \(0-65535\), got "eighty"/],
  [{ ROUTER_TOKEN: 't', ROUTER_TRAFFIC_PORT: '0', ROUTER_ADMIN_PORT: '70000' }, /ROUTER_ADMIN_PORT must be a port number/],
  [{ ROUTER_TOKEN: 't', ROUTER_TRAFFIC_PORT: '0', ROUTER_ADMIN_PORT: '0', ROUTER_CLOSE_GRACE_MS: 'soon' }, /ROUTER_CLOSE_GRACE_MS must be a number of milliseconds/],
  [{ ROUTER_TOKEN: 't', ROUTER_TRAFFIC_PORT: '0', ROUTER_ADMIN_PORT: '0', ROUTER_UPSTREAM_TIMEOUT_MS: '5s' }, /ROUTER_UPSTREAM_TIMEOUT_MS must be a number of milliseconds/],
])('%p is refused', async (env, message) => {
  await expect(runRouterFromEnv(env)).rejects.toThrow(message);
});

describe('the CLI command', () => {
  const root = path.resolve(__dirname, '../..');
  const cli = path.join(root, 'bin', 'rollout.js');
  beforeAll(() => {
    execFileSync('npm', ['run', 'build'], { cwd: root, stdio: 'ignore' });
  });

  test('a bad setting: its message and exit 2', () => {
    const env = { ...process.env, ROUTER_TOKEN: '' };
    const r = spawnSync(process.execPath, [cli, 'router'], { cwd: root, env, encoding: 'utf8', timeout: 30_000 });
    expect(r.status).toBe(2);
    expect(r.stderr.trim()).toBe('error: ROUTER_TOKEN is not set: the admin API needs a bearer token');
  });

  test('runs in the foreground, answers on its admin port, stops on SIGTERM with exit 0', async () => {
    const [trafficPort, adminPort] = [await freePort(), await freePort()];
    const env = { ...process.env, ROUTER_TOKEN: 't', ROUTER_TRAFFIC_PORT: String(trafficPort), ROUTER_ADMIN_PORT: String(adminPort) };
    const child = spawn(process.execPath, [cli, 'router'], { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    await waitUntil(() => stdout.includes('router ready'), 'a "router ready" line on stdout');
    expect((await fetch(`http://127.0.0.1:${adminPort}/healthz`)).status).toBe(200);
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(stdout).toContain('"msg":"router stopped"');
    await expect(fetch(`http://127.0.0.1:${adminPort}/healthz`)).rejects.toThrow();
  });
});
