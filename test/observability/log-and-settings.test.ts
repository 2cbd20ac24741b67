/**
 * The pure parts of the worker's observability: its settings (each bad one a one-line message
 * naming it) and the bridge from Temporal's Logger to pino (one JSON object a line, with the
 * service, workflow and activity fields).
 */
import { PassThrough } from 'node:stream';
import { createWorkerLogger, serviceOfWorkflowId, TemporalPinoLogger } from '../../src/observability/log';
import { observabilitySettingsFrom } from '../../src/observability/settings';

describe('observabilitySettingsFrom', () => {
  test.each([
    [{}, {}, { logLevel: 'info' }],
    [{ ROLLOUT_METRICS_PORT: '' }, {}, { logLevel: 'info' }],
    [{ ROLLOUT_METRICS_PORT: '0' }, {}, { logLevel: 'info' }],
    [{ ROLLOUT_METRICS_PORT: '9464' }, {}, { logLevel: 'info', metrics: { host: '127.0.0.1', port: 9464, portFrom: 'ROLLOUT_METRICS_PORT' } }],
    [{ ROLLOUT_METRICS_PORT: '9464', ROLLOUT_METRICS_HOST: '0.0.0.0', ROLLOUT_LOG_LEVEL: 'DEBUG' }, {}, { logLevel: 'debug', metrics: { host: '0.0.0.0', port: 9464, portFrom: 'ROLLOUT_METRICS_PORT' } }],
    // The flag wins over the variable, 0 included.
    [{ ROLLOUT_METRICS_PORT: '9464' }, { metricsPort: '9500' }, { logLevel: 'info', metrics: { host: '127.0.0.1', port: 9500, portFrom: '--metrics-port' } }],
    [{ ROLLOUT_METRICS_PORT: '9464' }, { metricsPort: '0' }, { logLevel: 'info' }],
  ])('%j %j', (env, flags, expected) => {
    expect(observabilitySettingsFrom(env, flags)).toEqual(expected);
  });

  test.each([
    [{ ROLLOUT_METRICS_PORT: '65536' }, {}, 'ROLLOUT_METRICS_PORT: expected a TCP port (1–65535, or 0 for none), got "65536"'],
    [{ ROLLOUT_METRICS_PORT: ' 80' }, {}, 'ROLLOUT_METRICS_PORT: expected a TCP port (1–65535, or 0 for none), got " 80"'],
    [{}, { metricsPort: 'x' }, '--metrics-port: expected a TCP port (1–65535, or 0 for none), got "x"'],
    [{ ROLLOUT_METRICS_PORT: '1', ROLLOUT_METRICS_HOST: 'example.com' }, {}, 'ROLLOUT_METRICS_HOST: expected an IP address to listen on (127.0.0.1, 0.0.0.0, ::), got "example.com"'],
    [{ ROLLOUT_LOG_LEVEL: 'verbose' }, {}, 'ROLLOUT_LOG_LEVEL: expected one of trace, debug, info, warn, error, got "verbose"'],
  ])('%j %j is refused', (env, flags, message) => {
    expect(() => observabilitySettingsFrom(env, flags)).toThrow(new Error(message));
  });
});

test('serviceOfWorkflowId reads the service out of each workflow id the product uses', () => {
  expect(serviceOfWorkflowId('service-llm')).toBe('llm');
  expect(serviceOfWorkflowId('rollout-chat-bot-v12')).toBe('chat-bot');
  expect(serviceOfWorkflowId('gc-llm')).toBe('llm');
  expect(serviceOfWorkflowId('something-else')).toBeUndefined();
});

test("Temporal's log lines become one JSON object a line, with service, workflowId and activity", () => {
  const out = new PassThrough();
  let text = '';
  out.on('data', (c: Buffer) => (text += c.toString()));
  const logger = new TemporalPinoLogger(createWorkerLogger('info', out).child({ component: 'temporal' }));
  logger.warn('rolling back', { workflowId: 'rollout-llm-v3', runId: 'r', why: 'timed out', sdkComponent: 'workflow' });
  logger.info('Activity failed', { workflowId: 'service-llm', activityType: 'launchReplica', attempt: 2, error: new Error('no capacity') });
  logger.debug('dropped below the level');
  const lines = text.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  expect(lines).toHaveLength(2);
  expect(lines[0]).toMatchObject({ level: 40, msg: 'rolling back', name: 'worker', component: 'temporal', workflowId: 'rollout-llm-v3', service: 'llm', why: 'timed out' });
  expect(lines[1]).toMatchObject({ level: 30, msg: 'Activity failed', service: 'llm', activity: 'launchReplica', attempt: 2, err: { message: 'no capacity' } });
  for (const line of lines) expect(Number.isNaN(Date.parse(String(line.time)))).toBe(false);
});
