/**
 * docker-compose.yml without a Docker engine: valid against the compose-spec JSON schema (the one
 * `docker compose` itself validates with: compose-go's, draft 2020-12), as written and once its
 * variables are resolved from .env.example; and consistent with the code — the search attributes
 * its admin job creates are those the workflows define, every variable it gives the worker and the
 * router is one they read (found in their source), the worker accepts its environment, its
 * commands exist in the CLI, the Dockerfile copies files that exist and puts the router where the
 * code looks for it, and the ports agree. test/cluster runs the same services on the real thing.
 */
import Ajv2020 from 'ajv/dist/2020';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { buildProgram } from '../../src/cli/main';
import { ROUTER_BINARY_DEFAULT } from '../../src/router/binary';
import { workerConfigFromEnv } from '../../src/worker';
import { OPERATOR_TYPE_NAME, ROLLOUT_SEARCH_ATTRIBUTES } from '../../src/workflows/search-attributes';
import {
  exampleEnv,
  interpolate,
  InterpolationError,
  parseDotEnv,
  readCompose,
  readComposeRaw,
  ROOT,
  serviceCommand,
  serviceEnv,
  TEST_SECRETS,
  type ComposeFile,
} from '../helpers/compose-file';
import { envReadsOf, rustEnvReadsIn, rustRequiredIn } from '../helpers/source-env-reads';

/** compose-go's schema, from the Go module proxy (cached in GOMODCACHE after the first time). */
const COMPOSE_GO = 'github.com/compose-spec/compose-go/v2@v2.16.2';

function composeSpecSchema(): object {
  const out = execFileSync('go', ['mod', 'download', '-json', COMPOSE_GO], { cwd: os.tmpdir(), encoding: 'utf8', timeout: 300_000 });
  const { Dir } = JSON.parse(out) as { Dir: string };
  return JSON.parse(fs.readFileSync(path.join(Dir, 'schema', 'compose-spec.json'), 'utf8')) as object;
}

const resolved = (): ComposeFile => readCompose(exampleEnv(TEST_SECRETS));

describe('docker-compose.yml', () => {
  let validate: ReturnType<Ajv2020['compile']>;
  beforeAll(() => {
    const ajv = new Ajv2020({ allErrors: true, strict: false, allowUnionTypes: true });
    validate = ajv.compile(composeSpecSchema());
  }, 300_000);

  const errorsOf = (doc: unknown) => (validate(doc) ? [] : (validate.errors ?? []).map((e) => `${e.instancePath} ${e.message} ${JSON.stringify(e.params)}`));

  test.each([
    ['docker-compose.yml as written', () => readComposeRaw()],
    ['docker-compose.yml resolved from .env.example', () => resolved()],
    ['docker-compose.gpu.yml', () => readComposeRaw(path.join(ROOT, 'docker-compose.gpu.yml'))],
  ])('%s is valid against the compose-spec schema', (_what, load) => {
    expect(errorsOf(load())).toEqual([]);
  });

  test('the schema check can fail: an unknown service key and a bad depends_on condition are refused', () => {
    const unknownKey = resolved();
    unknownKey.services.worker.restart_policy = 'always';
    expect(errorsOf(unknownKey)).toEqual([expect.stringMatching(/^\/services\/worker must NOT have unevaluated properties .*restart_policy/)]);
    const badCondition = resolved();
    (badCondition.services.worker.depends_on as Record<string, { condition: string }>).router.condition = 'service_ready';
    expect(errorsOf(badCondition)).toContainEqual(expect.stringMatching(/^\/services\/worker\/depends_on\/router\/condition must be equal to one of the allowed values/));
  });

  test('no secret is inline: each comes from .env through ${VAR:?}, and .env.example leaves it empty', () => {
    const raw = readComposeRaw();
    const example = parseDotEnv(fs.readFileSync(path.join(ROOT, '.env.example'), 'utf8'));
    const secretish = /PASSWORD|PWD|TOKEN|SECRET|API_KEY/;
    const seen: string[] = [];
    for (const [name, service] of Object.entries(raw.services)) {
      for (const [key, value] of Object.entries(serviceEnv(service))) {
        if (!secretish.test(key) || key.endsWith('_FILE')) continue;
        seen.push(`${name}.${key}`);
        const ref = /^\$\{([A-Z_]+):\?[^}]+\}$/.exec(value);
        expect({ key: `${name}.${key}`, ref: ref?.[1] }).toEqual({ key: `${name}.${key}`, ref: expect.any(String) });
        expect(example[ref![1]]).toBe('');
      }
    }
    expect(seen).toEqual(expect.arrayContaining(['postgresql.POSTGRES_PASSWORD', 'temporal.POSTGRES_PWD']));
    // The router and the worker get the router's token as a file (a compose secret), never in their environment;
    // compose still refuses to start without it (an extension field that requires it).
    for (const name of ['router', 'worker']) {
      expect(serviceEnv(raw.services[name]).ROUTER_TOKEN).toBeUndefined();
      expect(serviceEnv(raw.services[name]).ROUTER_TOKEN_FILE).toBe('/run/secrets/router_token');
      expect(raw.services[name].secrets).toEqual(['router_token']);
    }
    expect((raw as unknown as Record<string, unknown>)['x-required-secrets']).toEqual({ ROUTER_TOKEN: expect.stringMatching(/^\$\{ROUTER_TOKEN:\?[^}]+\}$/) });
    expect(raw.secrets?.router_token).toEqual({ environment: 'ROUTER_TOKEN' });
    // Without the secrets, compose stops with their names (what ${VAR:?} does).
    expect(() => readCompose(exampleEnv())).toThrow(/required variable POSTGRES_PASSWORD is missing/);
    expect(() => readCompose(exampleEnv({ POSTGRES_PASSWORD: 'x' }))).toThrow(/required variable ROUTER_TOKEN is missing/);
    expect(fs.readFileSync(path.join(ROOT, '.gitignore'), 'utf8').split('\n')).toContain('.env');
  });

  test('the interpolation follows compose: defaults, required, $$', () => {
    expect(interpolate('${A:-x}/${B-y}/${C:+z}/$$HOME/$A', { A: '', B: '', C: 'c' })).toBe('x//z/$HOME/');
    expect(() => interpolate('${A:?set A}', {})).toThrow(InterpolationError);
    expect(interpolate('${A?set A}', { A: '' })).toBe('');
  });

  test('every image is pinned to a version; worker and router are built from the repo', () => {
    const raw = readComposeRaw();
    for (const [name, service] of Object.entries(raw.services)) {
      expect({ name, image: service.image }).toEqual({ name, image: expect.stringMatching(/^[a-z0-9./-]+:\d+\.\d+(\.\d+)?[-a-z0-9.]*$/) });
    }
    for (const name of ['worker', 'router']) {
      expect(raw.services[name].build).toBe('.');
      expect(fs.existsSync(path.join(ROOT, 'Dockerfile'))).toBe(true);
    }
  });

  test('depends_on always has a condition; services waited on as healthy have a healthcheck, one-shot jobs are waited on to complete', () => {
    const raw = readComposeRaw();
    const oneShot = Object.entries(raw.services).filter(([, s]) => /^on-failure/.test(s.restart ?? '')).map(([n]) => n);
    expect(oneShot.sort()).toEqual(['temporal-schema', 'temporal-setup']);
    let edges = 0;
    for (const [name, service] of Object.entries(raw.services)) {
      const deps = service.depends_on ?? {};
      expect({ name, list: Array.isArray(deps) }).toEqual({ name, list: false });
      for (const [dep, { condition }] of Object.entries(deps as Record<string, { condition?: string }>)) {
        edges++;
        expect(Object.keys(raw.services)).toContain(dep);
        if (oneShot.includes(dep)) expect({ name, dep, condition }).toEqual({ name, dep, condition: 'service_completed_successfully' });
        else {
          expect({ name, dep, condition }).toEqual({ name, dep, condition: 'service_healthy' });
          expect(raw.services[dep].healthcheck?.test).toBeDefined();
        }
      }
    }
    expect(edges).toBeGreaterThanOrEqual(6);
    for (const name of ['postgresql', 'temporal', 'router', 'worker']) expect(raw.services[name].healthcheck?.test).toBeDefined();
  });

  test('the admin job creates exactly the search attributes the workflows define, with the same types', () => {
    const raw = readComposeRaw();
    const setup = raw.services['temporal-setup'];
    expect(serviceCommand(setup)).toEqual(['/scripts/temporal-setup.sh']);
    expect(setup.volumes).toContain('./deploy/compose:/scripts:ro');
    const script = fs.readFileSync(path.join(ROOT, 'deploy', 'compose', 'temporal-setup.sh'), 'utf8');
    const line = /^SEARCH_ATTRIBUTES="([^"]*)"$/m.exec(script);
    expect(line).not.toBeNull();
    const inScript = line![1].split(/\s+/).map((pair) => pair.split('='));
    const inCode = ROLLOUT_SEARCH_ATTRIBUTES.map((key) => [key.name, OPERATOR_TYPE_NAME[key.type]]);
    expect(inScript).toEqual(inCode);
    // And the script creates each one with that list (not another).
    expect(script).toMatch(/for pair in \$SEARCH_ATTRIBUTES; do/);
    expect(script).toMatch(/retry create_attribute "\$name" "\$type"/);
    expect(script).toMatch(/search-attribute create -n "\$NAMESPACE" --name "\$1" --type "\$2"/);
    expect(script).toMatch(/namespace create -n "\$NAMESPACE"/);
    expect(serviceEnv(setup).TEMPORAL_NAMESPACE).toBe('default');
  });

  test('the schema job uses the schema of the server release the compose file runs', () => {
    const raw = readComposeRaw();
    const version = (image?: string) => image?.split(':')[1];
    expect(version(raw.services['temporal-schema'].image)).toBe(version(raw.services.temporal.image));
    expect(version(raw.services['temporal-setup'].image)).toBe(version(raw.services.temporal.image));
    expect(serviceCommand(raw.services['temporal-schema'])).toEqual(['/scripts/temporal-schema.sh']);
    const script = fs.readFileSync(path.join(ROOT, 'deploy', 'compose', 'temporal-schema.sh'), 'utf8');
    for (const dir of ['temporal/versioned', 'visibility/versioned']) expect(script).toContain(dir);
    // The cluster script builds the same release from source.
    const cluster = fs.readFileSync(path.join(ROOT, 'scripts', 'cluster.js'), 'utf8');
    expect(cluster).toContain(`TEMPORAL_SERVER_VERSION = '${version(raw.services.temporal.image)}'`);
  });

  describe('the worker and the router get only variables their code reads, and what it requires', () => {
    const workerReads = envReadsOf(path.join(ROOT, 'src', 'worker.ts'), ['@temporalio/envconfig']);
    const routerRust = fs.readdirSync(path.join(ROOT, 'native', 'router', 'src')).map((f) => fs.readFileSync(path.join(ROOT, 'native', 'router', 'src', f), 'utf8')).join('\n');
    const routerReads = new Set([...rustEnvReadsIn(routerRust), ...envReadsOf(path.join(ROOT, 'src', 'router', 'main.ts'))]);

    test('the scan finds what the code is known to read (it is not blind)', () => {
      expect([...workerReads]).toEqual(expect.arrayContaining(['ROUTER_ADMIN_URL', 'ROUTER_PUBLIC_URL', 'ROUTER_TOKEN_FILE', 'ROLLOUT_STATE_DIR', 'ROLLOUT_GPUS', 'ROLLOUT_AWS_CONFIG', 'TEMPORAL_ADDRESS', 'TEMPORAL_NAMESPACE', 'TEMPORAL_API_KEY']));
      expect([...routerReads]).toEqual(expect.arrayContaining(['ROUTER_TOKEN', 'ROUTER_HOST', 'ROUTER_TRAFFIC_PORT', 'ROUTER_ADMIN_PORT', 'ROUTER_STATE_PATH']));
      expect(workerReads.has('ROUTER_TRAFFIC_PORT')).toBe(false);
      expect(routerReads.has('ROLLOUT_STATE_DIR')).toBe(false);
    });

    test('every variable compose gives them is one they read', () => {
      const raw = readComposeRaw();
      expect(Object.keys(serviceEnv(raw.services.worker)).filter((n) => !workerReads.has(n))).toEqual([]);
      expect(Object.keys(serviceEnv(raw.services.router)).filter((n) => !routerReads.has(n))).toEqual([]);
      // `rollout router` passes only ROUTER_* on to the binary.
      expect(Object.keys(serviceEnv(raw.services.router)).filter((n) => !n.startsWith('ROUTER_'))).toEqual([]);
    });

    test('the router gets every variable its binary requires', () => {
      const required = [...rustRequiredIn(routerRust)];
      expect(required).toContain('ROUTER_TOKEN');
      const env = serviceEnv(resolved().services.router);
      // ROUTER_TOKEN may come as ROUTER_TOKEN_FILE: `rollout router` reads the file and hands the token to the binary.
      for (const name of required) {
        const given = name === 'ROUTER_TOKEN' && env[name] === undefined ? 'ROUTER_TOKEN_FILE' : name;
        expect({ name: given, value: env[given] }).toEqual({ name: given, value: expect.stringMatching(/.+/) });
      }
    });

    test("the worker accepts compose's environment (container paths mapped to a temp dir), and refuses it without each required setting", () => {
      const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'h4-compose-env-'));
      try {
        const compose = resolved();
        const env = serviceEnv(compose.services.worker);
        // The compose secret is mounted at /run/secrets/<name>; the state dir is a volume.
        expect(env.ROUTER_TOKEN_FILE).toBe('/run/secrets/router_token');
        const tokenFile = path.join(tmp, 'router_token');
        fs.writeFileSync(tokenFile, TEST_SECRETS.ROUTER_TOKEN);
        const local = { ...env, ROUTER_TOKEN_FILE: tokenFile, ROLLOUT_STATE_DIR: path.join(tmp, 'state') };
        const config = workerConfigFromEnv(local);
        expect(config.routerToken).toBe(TEST_SECRETS.ROUTER_TOKEN);
        expect(config.namespace).toBe('default');
        expect(config.temporalAddress).toBe('temporal:7233');
        expect(config.routerAdminUrl).toBe('http://127.0.0.1:8081');
        expect(config.aws).toBeUndefined();
        let refused = 0;
        // (Not ROLLOUT_STATE_DIR: without it the worker would make .rollout in the working directory.)
        for (const name of Object.keys(local).filter((n) => n !== 'ROLLOUT_STATE_DIR')) {
          const without = { ...local, [name]: undefined };
          try {
            workerConfigFromEnv(without);
          } catch (err) {
            refused++;
            expect((err as Error).message).toContain(name.startsWith('ROUTER_TOKEN') ? 'ROUTER_TOKEN' : name);
          }
        }
        // ROUTER_ADMIN_URL, ROUTER_PUBLIC_URL and the token are required; the rest have defaults.
        expect(refused).toBe(3);
      } finally {
        fs.rmSync(tmp, { recursive: true, force: true });
      }
    });
  });

  test("the commands compose runs exist in the CLI, and the image's entrypoint is the CLI", () => {
    const commands = buildProgram().commands.map((c) => c.name());
    const raw = readComposeRaw();
    for (const name of ['worker', 'router']) {
      const [command, ...args] = serviceCommand(raw.services[name]);
      expect(commands).toContain(command);
      expect(args).toEqual([]);
    }
    const dockerfile = fs.readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8');
    expect(dockerfile).toMatch(/^ENTRYPOINT \["node", "\/app\/bin\/rollout\.js"\]$/m);
  });

  test("the Dockerfile copies files that exist (and .dockerignore keeps), and puts the router where src/router/binary.ts looks", () => {
    const dockerfile = fs.readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8');
    const ignored = fs.readFileSync(path.join(ROOT, '.dockerignore'), 'utf8').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
    const copies = [...dockerfile.matchAll(/^COPY (?!--from)(.+)$/gm)].map((m) => m[1].trim().split(/\s+/));
    expect(copies.length).toBeGreaterThanOrEqual(8);
    for (const parts of copies) {
      const sources = parts.slice(0, -1);
      for (const source of sources) {
        expect({ source, exists: fs.existsSync(path.join(ROOT, source)) }).toEqual({ source, exists: true });
        expect({ source, ignored: ignored.some((i) => source === i || source.startsWith(`${i}/`)) }).toEqual({ source, ignored: false });
      }
    }
    // The runtime stage's package root is /app: the router binary goes where routerBinary() looks.
    const expected = path.relative(path.resolve(ROUTER_BINARY_DEFAULT, '..', '..', '..', '..', '..'), ROUTER_BINARY_DEFAULT);
    expect(expected).toBe('native/router/target/release/rollout-router');
    expect(dockerfile).toContain(`COPY --from=router /src/native/router/target/release/rollout-router ./${expected}`);
    expect(dockerfile).toMatch(/^WORKDIR \/app$/m);
    // The healthcheck the worker service runs is in the image.
    expect(readComposeRaw().services.worker.healthcheck?.test).toEqual(['CMD', 'node', '/app/deploy/compose/worker-healthcheck.js']);
    expect(dockerfile).toContain('COPY deploy/compose/worker-healthcheck.js ./deploy/compose/worker-healthcheck.js');
  });

  test('the ports agree: router, its admin API, Temporal, the UI', () => {
    const compose = resolved();
    const { router, worker, temporal } = compose.services;
    const routerEnv = serviceEnv(router);
    const workerEnv = serviceEnv(worker);
    // The router's traffic port is the container port published on the host.
    expect(router.ports).toEqual([`127.0.0.1:8080:${routerEnv.ROUTER_TRAFFIC_PORT}`, `127.0.0.1:9464:${workerEnv.ROLLOUT_METRICS_PORT}`]);
    // The worker's metrics listen on every interface of the shared namespace, so that the published port reaches them.
    expect(workerEnv.ROLLOUT_METRICS_HOST).toBe('0.0.0.0');
    // The worker shares the router's network namespace and reaches its admin API on loopback.
    expect(worker.network_mode).toBe('service:router');
    expect(new URL(workerEnv.ROUTER_ADMIN_URL).port).toBe(routerEnv.ROUTER_ADMIN_PORT);
    expect(new URL(workerEnv.ROUTER_ADMIN_URL).hostname).toBe(routerEnv.ROUTER_ADMIN_HOST);
    expect(String(router.healthcheck?.test)).toContain(`http://127.0.0.1:${routerEnv.ROUTER_ADMIN_PORT}/healthz`);
    expect(new URL(workerEnv.ROUTER_PUBLIC_URL).port).toBe(router.ports?.[0].toString().split(':')[1]);
    // Temporal's frontend: 7233 (the server's default FRONTEND_GRPC_PORT), the port clients use.
    expect(serviceEnv(temporal).FRONTEND_GRPC_PORT).toBeUndefined();
    expect(temporal.ports).toEqual(['127.0.0.1:7233:7233']);
    expect(temporal.healthcheck?.test).toEqual(['CMD', 'nc', '-z', 'localhost', '7233']);
    for (const name of ['worker', 'temporal-setup', 'temporal-ui']) expect(serviceEnv(compose.services[name]).TEMPORAL_ADDRESS).toBe('temporal:7233');
    // The UI listens on 8080 in its container; CORS names the host port it is published on.
    expect(compose.services['temporal-ui'].ports).toEqual(['127.0.0.1:8233:8080']);
    expect(serviceEnv(compose.services['temporal-ui']).TEMPORAL_CORS_ORIGINS).toBe('http://localhost:8233');
  });
});
