/** The spec: defaults, and a clear error with the field path for every kind of bad input. */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseDurationMs, formatDuration } from '../../src/spec/duration';
import { parseSpec, formatIssues } from '../../src/spec/load';
import { parseAccelerators } from '../../src/spec/accelerators';
import { specChanges } from '../../src/spec/diff';

const minimal = 'name: llm\nrun: serve --port $PORT\n';

describe('parseSpec', () => {
  test('a minimal spec gets every default', () => {
    expect(parseSpec(minimal)).toEqual({
      ok: true,
      spec: {
        name: 'llm',
        replicas: 1,
        run: 'serve --port $PORT',
        env: {},
        resources: { provider: 'local' },
        readiness_probe: { path: '/health', initial_delay_seconds: 1200, period_seconds: 5, timeout_seconds: 5, failure_threshold: 3 },
        rollout: { strategy: 'rolling', max_surge: 1, max_unavailable: 0, timeout: '120m' },
      },
    });
  });

  test('the example specs are valid', async () => {
    const { loadSpecFile } = await import('../../src/spec/load');
    for (const file of ['examples/llm-service.yaml', 'examples/llm-service-v2.yaml', 'examples/llm-service-canary.yaml']) {
      const r = await loadSpecFile(file);
      expect(r.ok).toBe(true);
    }
  });

  test('readiness_probe as a bare path; env numbers and booleans become strings', () => {
    const r = parseSpec(`${minimal}readiness_probe: /ready\nenv: {A: 1, B: true, C: x}\n`);
    expect(r.ok && r.spec.readiness_probe.path).toBe('/ready');
    expect(r.ok && r.spec.env).toEqual({ A: '1', B: 'true', C: 'x' });
  });

  test('percent quantities and accelerators are accepted', () => {
    const r = parseSpec(`${minimal}replicas: 4\nresources: {accelerators: "A100:2"}\nrollout: {max_surge: "25%", max_unavailable: "25%", strategy: blue_green, timeout: 1h30m}\n`);
    expect(r.ok).toBe(true);
  });

  test.each([
    ['name: Bad_Name\nrun: x\n', 'name', /lowercase letters.*got "Bad_Name"/],
    ['run: x\n', 'name', /expected a service name, got nothing/],
    ['name: a\n', 'run', /shell command/],
    ['name: a\nrun: x\nreplicas: 0\n', 'replicas', /whole number from 1 to 1000, got 0/],
    ['name: a\nrun: x\nreplicas: 1.5\n', 'replicas', /whole number from 1 to 1000, got 1.5/],
    ['name: a\nrun: x\nreplica: 2\n', 'replica', /unknown field/],
    ['name: a\nrun: x\nrollout: {max_sruge: 1}\n', 'rollout.max_sruge', /unknown field/],
    ['name: a\nrun: x\nresources: {provider: gcp}\n', 'resources.provider', /"local" or "aws", got "gcp"/],
    ['name: a\nrun: x\nresources: {accelerators: "A100:x"}\n', 'resources.accelerators', /NAME\[:COUNT\]/],
    ['name: a\nrun: x\nreadiness_probe: {path: health}\n', 'readiness_probe.path', /starting with "\/"/],
    ['name: a\nrun: x\nreadiness_probe: {period_seconds: 0}\n', 'readiness_probe.period_seconds', /> 0 and at most 3600, got 0/],
    ['name: a\nrun: x\nrollout: {strategy: sideways}\n', 'rollout.strategy', /"rolling", "blue_green" or "canary", got "sideways"/],
    ['name: a\nrun: x\nrollout: {max_surge: abc}\n', 'rollout.max_surge', /count .* or a percent string like "25%" .*got "abc"/],
    ['name: a\nrun: x\nrollout: {max_surge: -1}\n', 'rollout.max_surge', /got -1/],
    ['name: a\nrun: x\nrollout: {timeout: soon}\n', 'rollout.timeout', /duration like/],
    ['name: a\nrun: x\nrollout: {max_surge: 0, max_unavailable: 0}\n', 'rollout', /cannot|never make progress/],
    ['name: a\nrun: x\nrollout: {max_surge: 0, max_unavailable: "10%"}\n', 'rollout', /resolve to 0 for 1 replica/],
    ['name: a\nrun: x\nenv: {A: [1]}\n', 'env.A', /string, number or boolean/],
    ['name: a\nrun: x\nrollout: {strategy: canary, steps: [{weight: 150}]}\n', 'rollout.steps.0.weight', /whole percent from 1 to 100, got 150/],
    ['name: a\nrun: x\nrollout: {strategy: canary, steps: [{weight: 10}, {pause: soon}]}\n', 'rollout.steps.1.pause.duration', /duration like/],
    ['name: a\nrun: x\nrollout: {strategy: canary, steps: [{wait: 1}]}\n', 'rollout.steps.0', /a step \{weight: 1–100\} or \{pause: "10m"\} or \{pause: \{\}\}, got \{"wait":1\}/],
    ['name: a\nrun: x\nrollout: {strategy: canary, steps: []}\n', 'rollout.steps', /at least one step/],
    ['name: a\nrun: x\nrollout: {steps: [{weight: 10}]}\n', 'rollout.steps', /steps need strategy: canary \(strategy is rolling\)/],
    ['name: a\nrun: x\nreplicas: 4\nrollout: {strategy: canary, max_surge_percent: 20}\n', 'rollout.max_surge_percent', /20% of 4 replica\(s\) is less than one replica: expected at least 25/],
    ['name: a\nrun: x\nreplicas: 4\nrollout: {strategy: canary, max_surge_percent: 101}\n', 'rollout.max_surge_percent', /whole percent from 1 to 100/],
    ['name: a\nrun: x\nreplicas: 4\nrollout: {strategy: blue_green, max_surge_percent: 50}\n', 'rollout.max_surge_percent', /rolling or canary/],
    ['name: a\nrun: x\nrollout: {strategy: canary, max_surge: 0, max_unavailable: 1}\n', 'rollout.max_surge', /canary .* max_surge ≥ 1/],
    ['name: a\nrun: x\nrollout: {strategy: canary, analysis: {interval: 30s}}\n', 'rollout.analysis', /at least one threshold/],
    ['name: a\nrun: x\nrollout: {strategy: canary, analysis: {max_error_rate: 5}}\n', 'rollout.analysis.max_error_rate', /fraction from 0 to 1, like 0.05, got 5/],
    ['name: a\nrun: x\nrollout: {strategy: canary, analysis: {max_p99_latency_ms: 0}}\n', 'rollout.analysis.max_p99_latency_ms', /milliseconds > 0/],
    ['name: a\nrun: x\nrollout: {strategy: canary, analysis: {max_error_rate: 0.1, failure_limt: 1}}\n', 'rollout.analysis.failure_limt', /unknown field/],
    ['name: a\nrun: x\nrollout: {strategy: blue_green, analysis: {max_error_rate: 0.1}}\n', 'rollout.analysis', /never splits traffic/],
    ['- just\n- a list\n', '(root)', /mapping of fields/],
    ['name: [unclosed\n', '(yaml)', /./],
    ['name: a\nrun: "   "\n', 'run', /non-empty shell command/],
    ['name: a\nrun: x\nenv: {__proto__: x, OK: y}\n', 'env.__proto__', /environment variable name/],
    // Upper bounds (src/spec/limits.ts): refused here rather than failing later.
    ['name: a\nrun: x\nreplicas: 100000000000\n', 'replicas', /whole number from 1 to 1000, got 100000000000/],
    ['name: a\nrun: x\nreplicas: 1001\n', 'replicas', /from 1 to 1000/],
    ['name: a\nrun: x\nresources: {accelerators: "A100:99999999999999999999"}\n', 'resources.accelerators', /count from 1 to 16 GPUs per replica/],
    ['name: a\nrun: x\nresources: {accelerators: "A100:17"}\n', 'resources.accelerators', /count from 1 to 16/],
    [`name: a\nrun: x\nenv: {A: "${'x'.repeat(40 * 1024)}"}\n`, 'env.A', /at most 32 KiB/],
    [`name: a\nrun: x\nenv: {${Array.from({ length: 10 }, (_, i) => `V${i}: "${'x'.repeat(30 * 1024)}"`).join(', ')}}\n`, 'env', /env and run together are 30\d KiB: expected at most 256 KiB/],
    [`name: a\nrun: x\nenv: {${Array.from({ length: 300 }, (_, i) => `V${i}: x`).join(', ')}}\n`, 'env', /at most 256 variables/],
    ['name: a\nrun: x\nenv: {"1BAD": x}\n', 'env.1BAD', /environment variable name .*got "1BAD"/],
    ['name: a\nrun: x\nenv: {A: "nul\\0here"}\n', 'env.A', /without NUL characters/],
    [`name: a\nrun: "${'x'.repeat(70 * 1024)}"\n`, 'run', /at most 64 KiB/],
    ['name: a\nrun: x\nrollout: {timeout: 99999999d}\n', 'rollout.timeout', /at most 30d, got "99999999d"/],
    ['name: a\nrun: x\nrollout: {max_surge: "500%"}\n', 'rollout.max_surge', /up to "100%"\), got "500%"/],
    ['name: a\nrun: x\nrollout: {max_unavailable: 5000}\n', 'rollout.max_unavailable', /up to 1000/],
    ['name: a\nrun: x\nreadiness_probe: {initial_delay_seconds: 99999999}\n', 'readiness_probe.initial_delay_seconds', /from 0 to 604800/],
    ['name: a\nrun: x\nreadiness_probe: {period_seconds: 1e9}\n', 'readiness_probe.period_seconds', /at most 3600/],
    [`name: a\nrun: x\nreadiness_probe: {path: "/${'p'.repeat(300)}"}\n`, 'readiness_probe.path', /at most 256 characters/],
    [`name: a\nrun: x\nrollout: {strategy: canary, steps: [${Array.from({ length: 101 }, () => '{weight: 100}').join(', ')}]}\n`, 'rollout.steps', /at most 100 steps/],
  ])('%j → %s', (yaml, path, message) => {
    const r = parseSpec(yaml);
    expect(r.ok).toBe(false);
    if (r.ok) return;
    const issue = r.issues.find((i) => i.path === path);
    expect(issue).toBeDefined();
    expect(issue?.message).toMatch(message);
  });

  test('canary steps: `{pause: 10m}` and `{pause: {}}` normalise; analysis gets its defaults', () => {
    const r = parseSpec(`${minimal}replicas: 4\nrollout:\n  strategy: canary\n  max_surge_percent: 50\n  steps: [{weight: 10}, {pause: 10m}, {weight: 50}, {pause: {}}, {pause: {duration: 1h}}]\n  analysis: {max_error_rate: 0.05}\n`);
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.spec.rollout.steps).toEqual([{ weight: 10 }, { pause: { duration: '10m' } }, { weight: 50 }, { pause: {} }, { pause: { duration: '1h' } }]);
    expect(r.spec.rollout.max_surge_percent).toBe(50);
    expect(r.spec.rollout.analysis).toEqual({ interval: '1m', max_error_rate: 0.05, min_requests: 20, failure_limit: 0 });
  });

  test('a YAML alias bomb ("billion laughs") is refused with a message, not expanded', () => {
    const levels = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]'];
    for (const [prev, cur] of [['a', 'b'], ['b', 'c'], ['c', 'd'], ['d', 'e'], ['e', 'f'], ['f', 'g'], ['g', 'h'], ['h', 'i']]) levels.push(`${cur}: &${cur} [${Array(9).fill(`*${prev}`).join(',')}]`);
    const started = Date.now();
    const r = parseSpec(`${levels.join('\n')}\nname: x\nrun: y\n`);
    expect(r).toEqual({ ok: false, issues: [{ path: '(yaml)', message: expect.stringMatching(/too many alias expansions \(at most 100\)/) }] });
    expect(Date.now() - started).toBeLessThan(5000); // refused, not expanded (9^9 strings)
  });

  test('YAML nested deeper than the parser can follow: one line that says so, no dangling colon', () => {
    const r = parseSpec(`name: x\nrun: y\nenv: ${'['.repeat(5000)}${']'.repeat(5000)}\n`);
    expect(r).toEqual({ ok: false, issues: [{ path: '(yaml)', message: expect.stringMatching(/^nested too deeply to read \(a spec needs a few levels\) at line 3, column \d+$/) }] });
  });

  test('a file that is not UTF-8 is refused, not silently mangled', async () => {
    const { loadSpecFile } = await import('../../src/spec/load');
    const file = path.join(os.tmpdir(), `latin1-${process.pid}.yaml`);
    fs.writeFileSync(file, Buffer.from('name: a\nrun: x\nenv:\n  GREETING: "caf\xe9"\n', 'latin1'));
    try {
      expect(await loadSpecFile(file)).toEqual({ ok: false, issues: [{ path: '(file)', message: `${file} is not UTF-8 text` }] });
    } finally {
      fs.rmSync(file, { force: true });
    }
  });

  describe('loadSpecFile reads a bounded amount of a regular file only', () => {
    let dir: string;
    beforeAll(() => {
      dir = fs.mkdtempSync(path.join(os.tmpdir(), 'spec-read-'));
    });
    afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

    const refused = async (file: string) => {
      const { loadSpecFile } = await import('../../src/spec/load');
      const r = await loadSpecFile(file);
      expect(r.ok).toBe(false);
      return r.ok ? [] : r.issues;
    };

    test('/dev/urandom (endless) and /dev/zero: refused as character devices, not read', async () => {
      for (const device of ['/dev/urandom', '/dev/zero']) {
        expect(await refused(device)).toEqual([{ path: '(file)', message: `expected a regular file, ${device} is a character device` }]);
      }
    });

    test('a named pipe with no writer: refused at once, not waited on', async () => {
      const fifo = path.join(dir, 'spec.fifo');
      const made = spawnSync('mkfifo', [fifo]);
      expect(made.status).toBe(0);
      expect(await refused(fifo)).toEqual([{ path: '(file)', message: `expected a regular file, ${fifo} is a named pipe (FIFO)` }]);
    });

    test('a directory, a missing file', async () => {
      expect(await refused(dir)).toEqual([{ path: '(file)', message: `expected a regular file, ${dir} is a directory` }]);
      expect(await refused(path.join(dir, 'nope.yaml'))).toEqual([{ path: '(file)', message: `cannot read ${path.join(dir, 'nope.yaml')}: ENOENT` }]);
    });

    test('a file over 1 MiB: refused by its size, before it is read', async () => {
      const big = path.join(dir, 'big.yaml');
      fs.writeFileSync(big, `${minimal}# ${'x'.repeat(2 * 1024 * 1024)}\n`);
      expect(await refused(big)).toEqual([{ path: '(file)', message: `expected a spec of at most 1024 KiB, ${big} has 2049 KiB` }]);
    });

    test('a file that says it is empty but is not (/proc) is read to its end, within the limit', async () => {
      const { loadSpecFile } = await import('../../src/spec/load');
      expect(fs.statSync('/proc/self/status').size).toBe(0);
      const r = await loadSpecFile('/proc/self/status');
      expect(r.ok).toBe(false);
      if (r.ok) return;
      expect(r.issues).toContainEqual({ path: 'name', message: 'expected a service name, got nothing' }); // read and parsed
    });

    test('a regular file at exactly the limit is read', async () => {
      const { loadSpecFile } = await import('../../src/spec/load');
      const file = path.join(dir, 'limit.yaml');
      const head = `${minimal}# `;
      fs.writeFileSync(file, `${head}${'x'.repeat(1024 * 1024 - head.length - 1)}\n`);
      expect(fs.statSync(file).size).toBe(1024 * 1024);
      expect((await loadSpecFile(file)).ok).toBe(true);
    });
  });

  test('a spec larger than 1 MiB is refused before it is parsed', () => {
    const r = parseSpec(`${minimal}# ${'x'.repeat(1024 * 1024)}\n`);
    expect(r).toEqual({ ok: false, issues: [{ path: '(file)', message: expect.stringMatching(/at most 1024 KiB/) }] });
  });

  test('the limits themselves are accepted: 1000 replicas, 16 GPUs, 30 days, 100 steps', () => {
    const r = parseSpec(`${minimal}replicas: 1000\nresources: {accelerators: "H100:16"}\nrollout: {strategy: canary, timeout: 30d, steps: [${Array.from({ length: 100 }, () => '{weight: 100}').join(', ')}]}\n`);
    expect(r.ok).toBe(true);
  });

  test('every bad field is reported at once, one line each', () => {
    const r = parseSpec('name: A\nreplicas: 0\nrun: ""\nrollout: {strategy: x}\n');
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.issues.map((i) => i.path).sort()).toEqual(['name', 'replicas', 'rollout.strategy', 'run']);
    expect(formatIssues(r.issues).split('\n')).toHaveLength(4);
  });
});

describe('durations', () => {
  test.each([
    ['90s', 90_000],
    ['10m', 600_000],
    ['2h', 7_200_000],
    ['1h30m', 5_400_000],
    ['500ms', 500],
    ['1d', 86_400_000],
    ['120m', 7_200_000],
  ])('%s = %d ms', (text, ms) => {
    expect(parseDurationMs(text)).toBe(ms);
  });
  test.each(['', 'soon', '10', '10 m', 'm10', '-5s'])('%j is refused', (text) => {
    expect(() => parseDurationMs(text)).toThrow(/expected a duration/);
  });
  test.each([
    [7_200_000, '2h'],
    [5_400_000, '1h30m'],
    [45_000, '45s'],
    [250, '250ms'],
  ])('formatDuration(%d) = %s', (ms, text) => {
    expect(formatDuration(ms)).toBe(text);
  });
});

test.each([
  [undefined, undefined],
  ['A100', { name: 'A100', count: 1 }],
  ['L4:2', { name: 'L4', count: 2 }],
])('parseAccelerators(%j)', (text, expected) => {
  expect(parseAccelerators(text)).toEqual(expected);
});

test('specChanges lists the dotted paths that differ', () => {
  const a = parseSpec(minimal);
  const b = parseSpec(`${minimal}replicas: 3\nenv: {X: "1"}\n`);
  if (!a.ok || !b.ok) throw new Error('specs should parse');
  expect(specChanges(a.spec, b.spec)).toEqual(['env.X', 'replicas']);
  expect(specChanges(a.spec, a.spec)).toEqual([]);
});
