/**
 * How the real CLI (bin/rollout.js) connects, against real servers on loopback: the Temporal dev
 * server (plaintext, with a second namespace), and for TLS a stand-in (test/helpers/tls-stand-in.ts:
 * Node's HTTP/2 over TLS with a throwaway CA, answering every call UNAUTHENTICATED or
 * PERMISSION_DENIED), since the dev server has no TLS options. The connection comes from the global
 * flags, a TOML profile (by --profile and by TEMPORAL_PROFILE) and the TEMPORAL_* variables; a
 * server that cannot be reached, a failed TLS handshake and refused credentials are each exit 3
 * with one line saying which.
 */
import { Client } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { runCli } from '../helpers/dev-stack';
import { freePort } from '../helpers/ports';
import { waitUntil } from '../helpers/wait';
import { createLocalEnv } from '../helpers/temporal-env';
import { makeCertificates, startGrpcStandIn, type Certificates, type GrpcStandIn } from '../helpers/tls-stand-in';

const root = path.resolve(__dirname, '../..');
const NS = 'ns-flags';

let env: TestWorkflowEnvironment;
let dir: string;
let temporal: string;
let closed: string;
let certs: Certificates;
let unauthenticated: GrpcStandIn;
let denied: GrpcStandIn;

beforeAll(async () => {
  execFileSync('npm', ['run', 'build'], { cwd: root, stdio: 'ignore' });
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rollout-connection-'));
  env = await createLocalEnv(['--namespace', NS]);
  temporal = env.address;
  closed = `127.0.0.1:${await freePort()}`; // nothing listens there
  // A service workflow that exists only in NS, terminated: `status` there says so; in "default" there is none.
  const inNs = new Client({ connection: env.connection, namespace: NS });
  const handle = await inNs.workflow.start('serviceWorkflow', { taskQueue: 'no-worker-here', workflowId: 'service-llm', args: [{ name: 'llm' }] });
  await handle.terminate('test fixture');
  certs = makeCertificates(path.join(dir, 'certs'));
  unauthenticated = await startGrpcStandIn(certs, 16, 'Request unauthorized.');
  denied = await startGrpcStandIn(certs, 7, 'Request unauthorized: namespace ns.acct.');
}, 180_000);

afterAll(async () => {
  await unauthenticated?.close();
  await denied?.close();
  await env?.teardown();
  fs.rmSync(dir, { recursive: true, force: true });
});

/** The environment without any setting of ours (and a HOME with no Temporal config file), plus `extra`. */
function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const base: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!/^(TEMPORAL_|ROUTER_|ROLLOUT_|XDG_CONFIG_HOME$)/.test(k)) base[k] = v;
  return { ...base, HOME: path.join(dir, 'home'), ...extra };
}

/** Runs the CLI to its end, asynchronously (the TLS stand-in answers from this process); `lines`: stderr's. */
async function rollout(args: string[], extra: Record<string, string> = {}, timeoutMs = 90_000) {
  const r = await runCli(args, cleanEnv(extra), timeoutMs);
  return { ...r, lines: r.stderr.trimEnd().split('\n') };
}

const TERMINATED = /^error: service llm is not running \(its workflow is TERMINATED\)$/;
const NO_SERVICE = /^error: no service named "llm"/;
const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

function writeProfiles(name: string, text: string): string {
  const file = path.join(dir, name);
  fs.writeFileSync(file, text);
  return file;
}

describe('flags on top of the environment', () => {
  test('--address and --namespace, before or after the command, override TEMPORAL_ADDRESS and TEMPORAL_NAMESPACE', async () => {
    const variables = { TEMPORAL_ADDRESS: closed, TEMPORAL_NAMESPACE: 'default' };
    for (const args of [
      ['--address', temporal, '--namespace', NS, 'status', 'llm'],
      ['status', 'llm', '--address', temporal, '-n', NS],
    ]) {
      const r = await rollout(args, variables);
      expect({ code: r.code, lines: r.lines }).toEqual({ code: 1, lines: [expect.stringMatching(TERMINATED)] });
    }
    // The same server, the default namespace: the namespace really was passed to the client.
    const r = await rollout(['--address', temporal, 'status', 'llm'], variables);
    expect({ code: r.code, lines: r.lines }).toEqual({ code: 1, lines: [expect.stringMatching(NO_SERVICE)] });
  });

  test('a namespace the server does not have: exit 2, naming it', async () => {
    const r = await rollout(['--address', temporal, '--namespace', 'no-such-ns', 'status', 'llm']);
    expect({ code: r.code, lines: r.lines }).toEqual({ code: 2, lines: ['error: Temporal has no namespace "no-such-ns": check --namespace, TEMPORAL_NAMESPACE or the profile\'s namespace'] });
  });
});

describe('a TOML profile', () => {
  let file: string;
  beforeAll(() => {
    file = writeProfiles('temporal.toml', `[profile.default]\naddress = "${closed}"\n\n[profile.dev]\naddress = "${temporal}"\nnamespace = "${NS}"\n`);
  });

  test('selected by --profile (with --config-file or TEMPORAL_CONFIG_FILE)', async () => {
    for (const [args, extra] of [
      [['--config-file', file, '--profile', 'dev', 'status', 'llm'], {}],
      [['--profile', 'dev', 'status', 'llm'], { TEMPORAL_CONFIG_FILE: file }],
    ] as const) {
      const r = await rollout([...args], extra);
      expect({ code: r.code, lines: r.lines }).toEqual({ code: 1, lines: [expect.stringMatching(TERMINATED)] });
    }
  });

  test('selected by TEMPORAL_PROFILE; found at ~/.config/temporalio/temporal.toml by default', async () => {
    const home = path.join(dir, 'home-with-config');
    fs.mkdirSync(path.join(home, '.config', 'temporalio'), { recursive: true });
    fs.copyFileSync(file, path.join(home, '.config', 'temporalio', 'temporal.toml'));
    const r = await rollout(['status', 'llm'], { HOME: home, TEMPORAL_PROFILE: 'dev' });
    expect({ code: r.code, lines: r.lines }).toEqual({ code: 1, lines: [expect.stringMatching(TERMINATED)] });
  });

  test('variables over the profile, flags over both', async () => {
    const overNs = await rollout(['status', 'llm'], { TEMPORAL_CONFIG_FILE: file, TEMPORAL_PROFILE: 'dev', TEMPORAL_NAMESPACE: 'default' });
    expect({ code: overNs.code, lines: overNs.lines }).toEqual({ code: 1, lines: [expect.stringMatching(NO_SERVICE)] });
    const overAddress = await rollout(['status', 'llm'], { TEMPORAL_CONFIG_FILE: file, TEMPORAL_ADDRESS: temporal });
    expect({ code: overAddress.code, lines: overAddress.lines }).toEqual({ code: 1, lines: [expect.stringMatching(NO_SERVICE)] });
    const flag = await rollout(['--address', closed, 'status', 'llm'], { TEMPORAL_CONFIG_FILE: file, TEMPORAL_PROFILE: 'dev' });
    expect(flag.code).toBe(3);
  });

  test('the default profile pointing at a closed port: exit 3, unreachable, one line', async () => {
    const r = await rollout(['status', 'llm'], { TEMPORAL_CONFIG_FILE: file });
    expect({ code: r.code, lines: r.lines }).toEqual({ code: 3, lines: [expect.stringMatching(new RegExp(`^error: cannot reach Temporal at ${escape(closed)} \\(ECONNREFUSED\\); start the embedded stack`))] });
  });

  test('rollout worker reads the same profile: its namespace missing on the server is exit 2, named by the profile', async () => {
    const wrongNs = writeProfiles('worker.toml', `[profile.w]\naddress = "${temporal}"\nnamespace = "not-on-this-server"\n`);
    const workerEnv = { ROUTER_ADMIN_URL: 'http://127.0.0.1:1', ROUTER_PUBLIC_URL: 'http://127.0.0.1:2', ROUTER_TOKEN: 'x', ROLLOUT_STATE_DIR: path.join(dir, 'worker-state'), TEMPORAL_CONFIG_FILE: wrongNs };
    const r = await rollout(['--profile', 'w', 'worker'], workerEnv);
    expect({ code: r.code, lines: r.lines }).toEqual({
      code: 2,
      lines: [`error: profile "w" of ${wrongNs} (namespace): Temporal at ${temporal} has no namespace "not-on-this-server"`],
    });
  });

  test('a bad profile file or an unknown profile: exit 2 with the file and what is wrong, nothing contacted', async () => {
    const bad = writeProfiles('bad.toml', '[profile.dev\naddress = "x"\n');
    const r = await rollout(['status', 'llm'], { TEMPORAL_CONFIG_FILE: bad });
    expect({ code: r.code, stdout: r.stdout, lines: r.lines }).toEqual({ code: 2, stdout: '', lines: [expect.stringMatching(new RegExp(`^error: TEMPORAL_CONFIG_FILE ${escape(bad)}: not valid TOML at line 1, column \\d+: `))] });
    const unknown = await rollout(['--profile', 'prod', 'deploy', 'examples/llm-service.yaml'], { TEMPORAL_CONFIG_FILE: file });
    expect({ code: unknown.code, lines: unknown.lines }).toEqual({ code: 2, lines: [`error: --profile: no profile "prod" in ${file} (it has "default", "dev")`] });
  });
});

describe('TLS and credentials: exit 3, one line saying which', () => {
  test('TEMPORAL_TLS=1 against the plaintext dev server: the handshake fails, and the line says the server does not speak TLS', async () => {
    const r = await rollout(['status', 'llm'], { TEMPORAL_ADDRESS: temporal, TEMPORAL_TLS: '1' });
    expect({ code: r.code, lines: r.lines }).toEqual({
      code: 3,
      lines: [`error: TLS handshake with Temporal at ${temporal} failed: the server does not speak TLS (ERR_SSL_WRONG_VERSION_NUMBER) (address from TEMPORAL_ADDRESS; TLS from TEMPORAL_TLS=1)`],
    });
  });

  test('an API key against the plaintext dev server turns TLS on (as envconfig does): the same failure, said why', async () => {
    const r = await rollout(['--address', temporal, 'status', 'llm'], { TEMPORAL_API_KEY: 'some-key' });
    expect(r.code).toBe(3);
    expect(r.lines).toEqual([expect.stringMatching(/^error: TLS handshake with .* failed: the server does not speak TLS .*TLS on because an API key is set; API key from TEMPORAL_API_KEY\)$/)]);
  });

  test('a server CA that does not match the server certificate: the handshake fails, the line says the certificate is not trusted', async () => {
    const before = unauthenticated.authorizations.length;
    const r = await rollout(['--address', unauthenticated.address, 'status', 'llm'], { TEMPORAL_TLS_SERVER_CA_CERT_PATH: certs.otherCaFile });
    expect(r.code).toBe(3);
    expect(r.lines).toEqual([expect.stringMatching(new RegExp(`^error: TLS handshake with Temporal at ${escape(unauthenticated.address)} failed: the server's certificate is not trusted: .* \\([A-Z_]+\\): set its CA with TEMPORAL_TLS_SERVER_CA_CERT_PATH`))]);
    expect(unauthenticated.authorizations.length).toBe(before); // no call got through
  });

  test('the right CA and a refused API key (UNAUTHENTICATED): the line says the credentials were refused, and the key was sent', async () => {
    const r = await rollout(['--address', unauthenticated.address, 'status', 'llm'], { TEMPORAL_TLS_SERVER_CA_CERT_PATH: certs.caFile, TEMPORAL_API_KEY: 'wrong-key' });
    expect({ code: r.code, lines: r.lines }).toEqual({
      code: 3,
      lines: [
        `error: Temporal at ${unauthenticated.address} refused the credentials for namespace "default" (UNAUTHENTICATED: Request unauthorized.); sent the API key from TEMPORAL_API_KEY: check TEMPORAL_API_KEY or the profile's api_key (or its client certificate)`,
      ],
    });
    expect(unauthenticated.authorizations).toContain('Bearer wrong-key');
  });

  test('the same from a Cloud-like profile (api_key and tls.server_ca_cert_path in the file), PERMISSION_DENIED', async () => {
    const cloud = writeProfiles('cloud.toml', `[profile.cloud]\naddress = "${denied.address}"\nnamespace = "ns.acct"\napi_key = "key-in-file"\n[profile.cloud.tls]\nserver_ca_cert_path = "${certs.caFile}"\n`);
    const r = await rollout(['--profile', 'cloud', 'status', 'llm'], { TEMPORAL_CONFIG_FILE: cloud });
    expect({ code: r.code, lines: r.lines }).toEqual({
      code: 3,
      lines: [expect.stringMatching(new RegExp(`^error: Temporal at ${escape(denied.address)} refused the credentials for namespace "ns\\.acct" \\(PERMISSION_DENIED: Request unauthorized: namespace ns\\.acct\\.\\); sent the API key from profile "cloud" of ${escape(cloud)} \\(api_key\\)`))],
    });
    expect(denied.authorizations).toContain('Bearer key-in-file');
  });

  test('rollout worker: a TLS failure and refused credentials are exit 3 too, in one line', async () => {
    const workerEnv = { ROUTER_ADMIN_URL: 'http://127.0.0.1:1', ROUTER_PUBLIC_URL: 'http://127.0.0.1:2', ROUTER_TOKEN: 'x', ROLLOUT_STATE_DIR: path.join(dir, 'worker-state') };
    const tls = await rollout(['worker'], { ...workerEnv, TEMPORAL_ADDRESS: temporal, TEMPORAL_TLS: 'true' });
    expect({ code: tls.code, lines: tls.lines }).toEqual({ code: 3, lines: [expect.stringMatching(/^error: TLS handshake with Temporal at .* failed: the server does not speak TLS/)] });
    const key = await rollout(['--address', unauthenticated.address, 'worker'], { ...workerEnv, TEMPORAL_TLS_SERVER_CA_CERT_PATH: certs.caFile, TEMPORAL_API_KEY: 'worker-key' });
    expect({ code: key.code, lines: key.lines }).toEqual({ code: 3, lines: [expect.stringMatching(/^error: Temporal at .* refused the credentials for namespace "default" \(UNAUTHENTICATED: Request unauthorized\.\); sent the API key from TEMPORAL_API_KEY/)] });
  });

  test('rollout plan connects optionally: a TLS failure is said on stderr and the plan is made offline (exit 0)', async () => {
    const r = await rollout(['plan', 'examples/llm-service.yaml', '-o', 'json'], { TEMPORAL_ADDRESS: temporal, TEMPORAL_TLS: '1' });
    expect(r.code).toBe(0);
    expect(r.lines).toEqual([expect.stringMatching(/^TLS handshake with Temporal at .* failed: the server does not speak TLS .*: planning from \d+ READY replica\(s\) of a previous version$/)]);
    expect(JSON.parse(r.stdout)).toMatchObject({ service: 'llm', mode: 'rollout' });
  });

  test('a port nothing listens on, with TLS on: unreachable (not a TLS failure), exit 3', async () => {
    const r = await rollout(['--address', closed, 'status', 'llm'], { TEMPORAL_TLS: '1' });
    expect({ code: r.code, lines: r.lines }).toEqual({ code: 3, lines: [expect.stringMatching(new RegExp(`^error: cannot reach Temporal at ${escape(closed)} \\(ECONNREFUSED\\)`))] });
  });
});

describe('a first deploy while `rollout gc` cleans up after the service', () => {
  test('is refused (exit 1) and starts nothing; once the gc has ended it goes ahead', async () => {
    // A gc-<service> that no worker picks up stays RUNNING: the window in which gc may still terminate leftovers.
    const client = new Client({ connection: env.connection });
    const gc = await client.workflow.start('gcWorkflow', { taskQueue: 'no-worker-here', workflowId: 'gc-llm', args: [{ service: 'llm', dryRun: false }] });
    try {
      const r = await rollout(['--address', temporal, 'deploy', 'examples/llm-service.yaml']);
      expect({ code: r.code, lines: r.lines }).toEqual({
        code: 1,
        lines: ['error: deploy of llm refused: `rollout gc llm` is cleaning up its leftovers (workflow gc-llm); deploy again when it has finished'],
      });
      await expect(client.workflow.getHandle('service-llm').describe()).rejects.toThrow(/not found/i);
    } finally {
      await gc.terminate('test over');
    }
    // No gc running: the deploy gets past the check and starts the service workflow (no worker runs it here, so the CLI waits: ended by the test).
    const deploy = spawn(process.execPath, [path.join(root, 'bin/rollout.js'), '--address', temporal, 'deploy', 'examples/llm-service.yaml'], { cwd: root, env: cleanEnv(), stdio: 'ignore' });
    try {
      await waitUntil(async () => (await client.workflow.getHandle('service-llm').describe().catch(() => undefined))?.status.name === 'RUNNING', 'service-llm started', 60_000, 200);
    } finally {
      deploy.kill('SIGKILL');
    }
    await client.workflow.getHandle('service-llm').terminate('test over');
  });
});
