/**
 * The pure parts of the on-call commands, table-driven: the live display of `deploy --wait`
 * (frames from status snapshots), the in-place redraw of a terminal block, `status --watch`'s
 * line per change, `list`'s rows, `history`'s causes and rows, the exact id filter, --limit.
 */
import { mapBounded } from '../../src/cli/bounded';
import { duration, parseLimit, renderHistory, type HistoryEntry } from '../../src/cli/commands/history';
import { entryOf, renderList } from '../../src/cli/commands/list';
import type { StatusView } from '../../src/cli/commands/status';
import { clip, LiveRegion, redrawText } from '../../src/cli/live-region';
import { progressFrame, replicaLines, trafficBar } from '../../src/cli/progress-frame';
import { causeOf, describeCause } from '../../src/cli/rollout-cause';
import { rolloutVersionOf } from '../../src/cli/visibility';
import { statusLine } from '../../src/cli/watch-status';
import type { ReplicaRecord, RolloutStatus, ServiceStatus } from '../../src/workflows/types';

const replica = (id: string, version: number, status: ReplicaRecord['status']): ReplicaRecord => ({ id, version, status, gpus: 0, endpoint: `http://127.0.0.1:1${id.length}` });

function rolloutStatus(over: Partial<RolloutStatus> = {}): RolloutStatus {
  return {
    workflowId: 'rollout-llm-v2',
    service: 'llm',
    fromVersion: 1,
    toVersion: 2,
    phase: 'rolling_out',
    note: 'waiting for llm-v2-r3 to become ready',
    replicas: [replica('llm-v1-r1', 1, 'READY'), replica('llm-v1-r2', 1, 'READY'), replica('llm-v2-r3', 2, 'STARTING')],
    traffic: { '1': 100 },
    deadline: null,
    mode: 'replicas',
    canaryPercent: 0,
    refused: [],
    run: 1,
    ...over,
  };
}

describe('deploy --wait live display: frames from snapshots', () => {
  test.each([
    {
      what: 'a rolling rollout with a replica loading',
      status: rolloutStatus(),
      lines: ['llm  v1 → v2  rolling_out  00:12', `traffic   [${'█'.repeat(30)}]  █ v1 100%`, 'replicas  v1  READY 2', '          v2  STARTING 1', 'now       waiting for llm-v2-r3 to become ready'],
    },
    {
      what: 'a canary at step 2 of 3 with analysis, half the traffic',
      status: rolloutStatus({
        mode: 'steps',
        steps: [{ weight: 10 }, { weight: 50 }, { weight: 100 }],
        stepIndex: 1,
        traffic: { '1': 50, '2': 50 },
        canaryPercent: 50,
        replicas: [replica('llm-v1-r1', 1, 'READY'), replica('llm-v2-r3', 2, 'READY')],
        analysis: { passed: 2, failed: 0, inconclusive: 1, failureLimit: 0, last: { verdict: 'pass', reasons: [], at: 0 } },
        note: 'canary at 50%',
      }),
      lines: [
        'llm  v1 → v2  rolling_out  00:12',
        `traffic   [${'█'.repeat(15)}${'▒'.repeat(15)}]  █ v1 50%  ▒ v2 50%`,
        'replicas  v1  READY 1',
        '          v2  READY 1',
        'canary    step 2/3 weight 50%',
        'analysis  2 passed, 0 failed (rollback above 0); last pass',
        'now       canary at 50%',
      ],
    },
    {
      what: 'rolling back, with its reason, and an activity being retried',
      status: rolloutStatus({ phase: 'rolling_back', reason: 'manual rollback: p99 too high', replicas: [replica('llm-v1-r1', 1, 'READY'), replica('llm-v2-r3', 2, 'SHUTTING_DOWN')], note: 'rolling back' }),
      waiting: [{ activity: 'terminateReplica', attempt: 3, lastFailure: 'EC2 throttled', nextAttemptAt: 15_000 }],
      lines: [
        'llm  v1 → v2  rolling_back  00:12',
        `traffic   [${'█'.repeat(30)}]  █ v1 100%`,
        'replicas  v1  READY 1',
        '          v2  SHUTTING_DOWN 1',
        'reason    manual rollback: p99 too high',
        'now       rolling back',
        'waiting   terminateReplica failed 3 times, next try in 5 s: EC2 throttled',
      ],
    },
    {
      what: 'a first deploy with nothing yet',
      status: rolloutStatus({ fromVersion: 0, traffic: {}, replicas: [], note: 'starting' }),
      lines: ['llm  first deploy → v2  rolling_out  00:12', 'traffic   no traffic yet', 'replicas  none', 'now       starting'],
    },
  ])('$what', ({ status, waiting, lines }) => {
    expect(progressFrame(status, waiting ?? [], 12_500, 10_000)).toEqual(lines);
  });

  test.each([
    [{ '1': 100 }, 30, 0],
    [{ '1': 33, '2': 67 }, 10, 20],
    [{ '1': 1, '2': 99 }, 0, 30],
    [{ '1': 50, '2': 50 }, 15, 15],
  ])('the traffic bar of %j has 30 cells: %i of the old version, %i of the new', (traffic, old, nu) => {
    const bar = [.../^\[(.*)\]/.exec(trafficBar(traffic))![1]];
    expect(bar).toHaveLength(30);
    expect(bar.filter((c) => c === '█')).toHaveLength(old);
    expect(bar.filter((c) => c === '▒')).toHaveLength(nu);
  });

  test('a version with no traffic is left out of the bar', () => {
    expect(trafficBar({ '1': 0, '2': 100 })).toBe(`[${'█'.repeat(30)}]  █ v2 100%`);
  });

  test('replica states in a fixed order, READY first', () => {
    expect(replicaLines([replica('a', 2, 'FAILED'), replica('b', 2, 'STARTING'), replica('c', 2, 'READY'), replica('d', 1, 'SHUTTING_DOWN')])).toEqual(['v1  SHUTTING_DOWN 1', 'v2  READY 1  STARTING 1  FAILED 1']);
  });
});

describe('redrawing a block in place', () => {
  const size = { columns: 40, rows: 10 };
  test.each([
    { what: 'the first frame: no cursor move', previous: 0, lines: ['a', 'b'], text: 'a\x1b[K\nb\x1b[K\n\x1b[J', rows: 2 },
    { what: 'the next frame goes back up over the previous one and clears what is left below', previous: 3, lines: ['x'], text: '\r\x1b[3Ax\x1b[K\n\x1b[J', rows: 1 },
    { what: 'a frame taller than the terminal is cut, saying so', previous: 0, lines: Array.from({ length: 12 }, (_, i) => `l${i}`), text: [...Array.from({ length: 8 }, (_, i) => `l${i}\x1b[K`), '… 4 more line(s) (terminal too short)\x1b[K'].join('\n') + '\n\x1b[J', rows: 9 },
  ])('$what', ({ previous, lines, text, rows }) => {
    expect(redrawText(previous, lines, size)).toEqual({ text, rows });
  });

  test('a line wider than the terminal is clipped (a wrapped line would break the count)', () => {
    expect(clip('x'.repeat(100), 40)).toBe(`${'x'.repeat(38)}…`);
    expect(clip('short', 40)).toBe('short');
  });

  test('LiveRegion draws only what changed, and counts the rows it drew', () => {
    const written: string[] = [];
    const region = new LiveRegion({ write: (s: string) => written.push(s) > 0, columns: 80, rows: 24 } as never);
    region.draw(['one', 'two']);
    region.draw(['one', 'two']);
    region.draw(['three']);
    expect(written).toEqual(['one\x1b[K\ntwo\x1b[K\n\x1b[J', '\r\x1b[2Athree\x1b[K\n\x1b[J']);
    region.release();
    region.draw(['three']);
    expect(written[2]).toBe('three\x1b[K\n\x1b[J');
  });
});

describe('status --watch without a terminal: one line per change', () => {
  const view = (over: Partial<StatusView> = {}): StatusView => ({
    name: 'llm',
    version: 1,
    endpoint: 'http://127.0.0.1:8080/llm',
    traffic: { '1': 100 },
    replicas: [replica('llm-v1-r1', 1, 'READY')],
    waiting: [],
    ...over,
  });
  test.each([
    { what: 'steady', v: view(), line: 'llm v1 · traffic v1 100% · v1 READY×1' },
    { what: 'after a rollback', v: view({ lastRollout: { version: 2, workflowId: 'rollout-llm-v2', outcome: 'rolled_back', reason: 'manual rollback' } }), line: 'llm v1 · traffic v1 100% · last v2 rolled_back · v1 READY×1' },
    {
      what: 'mid-canary, waiting on a retried launch (no countdown: it would change every second)',
      v: view({ rollout: rolloutStatus({ mode: 'steps', canaryPercent: 25, note: 'canary at 25%' }), waiting: [{ activity: 'launchReplica', attempt: 2, lastFailure: 'no capacity', nextAttemptAt: Date.now() + 9000 }] }),
      line: 'llm v1 · traffic v1 100% · rollout v1 → v2 rolling_out 25%: canary at 25% · v1 READY×1 · waiting: launchReplica failed 2 times: no capacity',
    },
    { what: 'nothing serving yet', v: view({ version: 0, traffic: {}, replicas: [] }), line: 'llm (none serving yet) · traffic none · no replicas' },
  ])('$what', ({ v, line }) => {
    expect(statusLine(v)).toBe(line);
  });
});

describe('list rows', () => {
  const service = (over: Partial<ServiceStatus> = {}): ServiceStatus => ({
    name: 'llm',
    version: 1,
    nextVersion: 2,
    endpoint: 'http://127.0.0.1:8080/llm',
    replicas: [replica('llm-v1-r1', 1, 'READY'), replica('llm-v1-r2', 1, 'READY')],
    traffic: { '1': 100 },
    spec: { replicas: 2 } as ServiceStatus['spec'],
    ...over,
  });
  test.each([
    { what: 'serving', s: service(), r: undefined, entry: { name: 'llm', version: 1, status: 'serving', replicas: { ready: 2, total: 2, desired: 2 }, endpoint: 'http://127.0.0.1:8080/llm' } },
    {
      what: 'one replica lost: degraded',
      s: service({ replicas: [replica('llm-v1-r1', 1, 'READY'), replica('llm-v1-r2', 1, 'FAILED')] }),
      r: undefined,
      entry: { status: 'degraded', replicas: { ready: 1, total: 2, desired: 2 } },
    },
    {
      what: 'mid-rollout: the rollout phase, its percent and its replicas',
      s: service({ activeRollout: { workflowId: 'rollout-llm-v2', version: 2 } }),
      r: rolloutStatus({ canaryPercent: 30, phase: 'manual' }),
      entry: { status: 'manual', replicas: { ready: 2, total: 3, desired: 2 }, rollout: { workflowId: 'rollout-llm-v2', version: 2, phase: 'manual', canaryPercent: 30 } },
    },
    { what: 'a first deploy that never served', s: service({ version: 0, replicas: [], endpoint: undefined }), r: undefined, entry: { status: 'no version', replicas: { ready: 0, total: 0, desired: 2 } } },
  ])('$what', ({ s, r, entry }) => {
    const got = entryOf(s, r);
    expect(got).toMatchObject(entry);
    if (!('endpoint' in entry) && s.endpoint === undefined) expect(got.endpoint).toBeUndefined();
  });

  test('a failed query shows in its row and under the table', () => {
    const text = renderList([
      entryOf(service()),
      { name: 'zzz', version: 0, status: 'error', replicas: { ready: 0, total: 0 }, error: 'no answer to the status query within 10 s' },
    ]);
    expect(text.split('\n')).toEqual([
      'NAME  VERSION  STATUS   READY  ROLLOUT  ENDPOINT',
      'llm   v1       serving  2/2    -        http://127.0.0.1:8080/llm',
      'zzz   -        error    -      -        -',
      '',
      'zzz: no answer to the status query within 10 s',
      '',
    ]);
  });
});

describe('history: why a rollout ended', () => {
  test.each([
    { what: 'recorded: a person with a reason', outcome: 'rolled_back' as const, reason: 'manual rollback: x', cause: { kind: 'person' as const, personReason: 'p99 too high' }, want: { kind: 'person', personReason: 'p99 too high' }, words: 'rolled back by a person: p99 too high' },
    { what: 'recorded: promoted', outcome: 'succeeded' as const, reason: undefined, cause: { kind: 'promoted' as const }, want: { kind: 'promoted' }, words: 'promoted' },
    { what: 'words only: succeeded', outcome: 'succeeded' as const, reason: undefined, cause: undefined, want: { kind: 'promoted' }, words: 'promoted' },
    { what: 'words only: a person', outcome: 'rolled_back' as const, reason: 'manual rollback: bad: latency', cause: undefined, want: { kind: 'person', personReason: 'bad: latency' }, words: 'rolled back by a person: bad: latency' },
    { what: 'words only: a person without a reason', outcome: 'rolled_back' as const, reason: 'manual rollback', cause: undefined, want: { kind: 'person' }, words: 'rolled back by a person (no reason given)' },
    { what: 'words only: timeout', outcome: 'rolled_back' as const, reason: 'timed out after 5m', cause: undefined, want: { kind: 'timeout' }, words: 'rolled back by timeout' },
    { what: 'words only: analysis', outcome: 'rolled_back' as const, reason: 'analysis failed: canary error rate 50.0% > max 5%', cause: undefined, want: { kind: 'analysis' }, words: 'rolled back by analysis' },
    { what: 'words only: readiness', outcome: 'rolled_back' as const, reason: 'replica llm-v2-r3 failed: not ready within 30 s', cause: undefined, want: { kind: 'readiness', replicaId: 'llm-v2-r3' }, words: 'rolled back by readiness (llm-v2-r3)' },
    { what: 'recorded: a lost replica', outcome: 'rolled_back' as const, reason: 'replica llm-v2-r3 failed: exited', cause: { kind: 'replica_lost' as const, replicaId: 'llm-v2-r3' }, want: { kind: 'replica_lost', replicaId: 'llm-v2-r3' }, words: 'rolled back by a lost replica (llm-v2-r3)' },
    { what: 'a rollback that then failed keeps what started it', outcome: 'failed' as const, reason: 'timed out after 5m; the rollback did not complete in time', cause: undefined, want: { kind: 'timeout' }, words: 'rollback failed, started by timeout' },
    { what: 'recorded: an activity failed for good', outcome: 'failed' as const, reason: 'UnauthorizedOperation', cause: { kind: 'activity_failed' as const }, want: { kind: 'activity_failed' }, words: 'failed: an activity failed for good' },
    { what: 'unknown words', outcome: 'failed' as const, reason: 'something else', cause: undefined, want: undefined, words: 'failed' },
  ])('$what', ({ outcome, reason, cause, want, words }) => {
    const got = causeOf(outcome, reason, cause);
    expect(got).toEqual(want);
    expect(describeCause(got, outcome)).toBe(words);
  });

  test.each([
    ['a', 'rollout-a-v1', 1],
    ['a', 'rollout-a-v12', 12],
    ['a', 'rollout-a-v2-v1', undefined], // service a-v2's first rollout
    ['a', 'rollout-ab-v1', undefined],
    ['a-v2', 'rollout-a-v2-v1', 1],
    ['a', 'rollout-a-v0', undefined],
    ['a', 'rollout-a-v', undefined],
  ])('the id filter: %s owns %s → %s', (service, id, version) => {
    expect(rolloutVersionOf(service, id)).toBe(version);
  });

  test.each([
    [undefined, 20],
    ['1', 1],
    ['1000', 1000],
  ])('--limit %s → %i', (text, n) => expect(parseLimit(text)).toBe(n));

  test.each(['0', '-1', '2.5', 'ten', '1001', ''])('--limit %j is refused (exit 2, naming the flag)', (text) => {
    expect(() => parseLimit(text)).toThrow(expect.objectContaining({ exitCode: 2, message: expect.stringMatching(/^--limit: expected a whole number from 1 to 1000/) }));
  });

  test.each([
    [0, '0s'],
    [59, '59s'],
    [65, '1m05s'],
    [7260, '2h01m'],
  ])('duration %i s is %s', (s, text) => expect(duration(s)).toBe(text));

  test('rows: newest first as given, a running one marked, the reason last', () => {
    const entries: HistoryEntry[] = [
      { workflowId: 'rollout-a-v3', version: 3, fromVersion: 2, strategy: 'canary', mode: 'rollout', outcome: 'running', phase: 'paused', why: 'paused', startedAt: '2026-12-02T10:00:00.123Z', durationSeconds: 5, runs: 1 },
      { workflowId: 'rollout-a-v2', version: 2, fromVersion: 1, strategy: 'rolling', mode: 'rollout', outcome: 'rolled_back', cause: { kind: 'person', personReason: 'bad' }, why: 'rolled back by a person: bad', startedAt: '2026-12-02T09:00:00.000Z', endedAt: '2026-12-02T09:01:05.000Z', durationSeconds: 65, runs: 1, ui: 'http://ui/x' },
    ];
    expect(renderHistory(entries).split('\n')).toEqual([
      'VERSION  STRATEGY  OUTCOME           STARTED               DURATION  UI           WHY',
      'v2→3     canary    running (paused)  2026-12-02T10:00:00Z  5s+       -            paused',
      'v1→2     rolling   rolled_back       2026-12-02T09:00:00Z  1m05s     http://ui/x  rolled back by a person: bad',
      '',
    ]);
  });
});

test('mapBounded keeps the order and never runs more than its limit at once', async () => {
  let running = 0;
  let most = 0;
  const out = await mapBounded([5, 1, 4, 2, 3, 0, 6], 3, async (n) => {
    running += 1;
    most = Math.max(most, running);
    await new Promise((r) => setTimeout(r, n));
    running -= 1;
    return n * 10;
  });
  expect(out).toEqual([50, 10, 40, 20, 30, 0, 60]);
  expect(most).toBe(3);
  expect(await mapBounded([], 3, async () => 1)).toEqual([]);
});
