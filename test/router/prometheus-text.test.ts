/** The strict Prometheus text reader and the per-version counters read from the router's /metrics. */
import client from 'prom-client';
import { MetricsFormatError, parseSamples } from '../../src/router/prometheus-text';
import { countersFromMetrics } from '../../src/router/traffic-counters';

describe('parseSamples', () => {
  test('reads what prom-client writes, label values unescaped', async () => {
    const registry = new client.Registry();
    const counter = new client.Counter({ name: 'x_total', help: 'a "help" \\ text', labelNames: ['service', 'version'], registers: [registry] });
    const histogram = new client.Histogram({ name: 'y_seconds', help: 'h', labelNames: ['service'], buckets: [0.1, 1], registers: [registry] });
    counter.labels('we"ird\\name\nline', '2').inc(3);
    histogram.labels('s').observe(0.5);
    const samples = parseSamples(await registry.metrics(), new Set(['x_total', 'y_seconds_bucket']));
    expect(samples).toEqual([
      { name: 'x_total', labels: { service: 'we"ird\\name\nline', version: '2' }, value: 3 },
      { name: 'y_seconds_bucket', labels: { le: '0.1', service: 's' }, value: 0 },
      { name: 'y_seconds_bucket', labels: { le: '1', service: 's' }, value: 1 },
      { name: 'y_seconds_bucket', labels: { le: '+Inf', service: 's' }, value: 1 },
    ]);
  });

  test.each([
    ['no labels, a timestamp', 'a_total 12 1700000000000', { name: 'a_total', labels: {}, value: 12 }],
    ['empty braces, trailing comma in labels', 'a_total{} 1e3', { name: 'a_total', labels: {}, value: 1000 }],
    ['trailing comma', 'a_total{x="1",} -2.5', { name: 'a_total', labels: { x: '1' }, value: -2.5 }],
    ['+Inf value', 'a_total +Inf', { name: 'a_total', labels: {}, value: Infinity }],
    ['a label named like an Object property', 'a_total{__proto__="p",constructor="c"} 1', { name: 'a_total', labels: Object.fromEntries([['__proto__', 'p'], ['constructor', 'c']]), value: 1 }],
  ])('%s', (_name, line, expected) => {
    expect(parseSamples(`# HELP a_total x\n\n${line}\n`, new Set(['a_total']))).toEqual([expected]);
  });

  test('other metrics are skipped, even odd ones', () => {
    expect(parseSamples('b_total{x="unterminated} 1\na_total 1', new Set(['a_total']))).toEqual([{ name: 'a_total', labels: {}, value: 1 }]);
  });

  test.each([
    ['no value', 'a_total{x="1"}', /line 2: expected a space before the value/],
    ['not a number', 'a_total 12abc', /line 2: expected a number, got "12abc"/],
    ['unterminated label value', 'a_total{x="1} 2', /line 2: label x: unterminated value/],
    ['unknown escape', 'a_total{x="\\t"} 2', /line 2: label x: unknown escape/],
    ['label twice', 'a_total{x="1",x="2"} 2', /line 2: label x appears twice/],
    ['unquoted label value', 'a_total{x=1} 2', /line 2: expected ="…" after label x/],
    ['garbage after the timestamp', 'a_total 2 3 4', /line 2: expected a value and an optional integer timestamp/],
    ['a line that is no metric', '{x="1"} 2', /line 2: expected a metric name/],
  ])('refuses %s', (_name, line, message) => {
    expect(() => parseSamples(`# TYPE a_total counter\n${line}\n`, new Set(['a_total']))).toThrow(MetricsFormatError);
    expect(() => parseSamples(`# TYPE a_total counter\n${line}\n`, new Set(['a_total']))).toThrow(message);
  });
});

describe('countersFromMetrics', () => {
  const text = [
    '# TYPE rollout_router_requests_total counter',
    'rollout_router_requests_total{service="llm",version="1",code="2xx"} 90',
    'rollout_router_requests_total{service="llm",version="1",code="4xx"} 5',
    'rollout_router_requests_total{service="llm",version="1",code="5xx"} 5',
    'rollout_router_requests_total{service="llm",version="2",code="5xx"} 3',
    'rollout_router_requests_total{service="other",version="1",code="2xx"} 1000',
    'rollout_router_time_to_first_byte_seconds_bucket{le="0.1",service="llm",version="1"} 80',
    'rollout_router_time_to_first_byte_seconds_bucket{le="+Inf",service="llm",version="1"} 100',
    'rollout_router_time_to_first_byte_seconds_bucket{le="1",service="llm",version="1"} 99',
    'rollout_router_time_to_first_byte_seconds_sum{service="llm",version="1"} 12.5',
    'rollout_router_connect_errors_total{service="llm",version="3"} 7',
  ].join('\n');

  test('requests summed over status classes, 5xx apart, buckets sorted with +Inf last; other services and metrics ignored', () => {
    expect(countersFromMetrics(text, 'llm')).toEqual({
      '1': { requests: 100, errors5xx: 5, ttfbBuckets: [{ le: 0.1, count: 80 }, { le: 1, count: 99 }, { le: '+Inf', count: 100 }] },
      '2': { requests: 3, errors5xx: 3, ttfbBuckets: [] },
    });
    expect(countersFromMetrics(text, 'nope')).toEqual({});
    expect(countersFromMetrics('', 'llm')).toEqual({});
  });

  test.each([
    ['no +Inf bucket', 'rollout_router_time_to_first_byte_seconds_bucket{le="0.1",service="s",version="1"} 1', /no \+Inf bucket/],
    ['a bucket twice', 'rollout_router_time_to_first_byte_seconds_bucket{le="+Inf",service="s",version="1"} 1\nrollout_router_time_to_first_byte_seconds_bucket{le="+Inf",service="s",version="1"} 1', /appears twice/],
    ['a bad le', 'rollout_router_time_to_first_byte_seconds_bucket{le="soon",service="s",version="1"} 1', /expected an le label, got "soon"/],
    ['a version that is no integer', 'rollout_router_requests_total{service="s",version="v1",code="2xx"} 1', /integer version label, got "v1"/],
    ['no code', 'rollout_router_requests_total{service="s",version="1"} 1', /without a code label/],
    ['a negative count', 'rollout_router_requests_total{service="s",version="1",code="2xx"} -1', /expected a count/],
  ])('refuses %s', (_name, metrics, message) => {
    expect(() => countersFromMetrics(metrics, 's')).toThrow(message);
  });
});
