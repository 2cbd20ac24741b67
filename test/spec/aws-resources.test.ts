/** The spec's aws-only `resources` fields: accepted with provider aws, refused elsewhere, each error with its field path. */
import { parseSpec } from '../../src/spec/load';
import { specChanges } from '../../src/spec/diff';

const base = 'name: llm\nrun: serve --port $PORT\n';

describe('resources on provider aws', () => {
  test('every aws field is accepted and kept as written (no defaults filled in)', () => {
    const r = parseSpec(
      `${base}resources:\n  provider: aws\n  accelerators: "L4:1"\n  region: us-east-1\n  image_id: ami-0123456789abcdef0\n  launch_template: {name: gpu-base, version: 3}\n  spot: true\n  spot_fallback_on_demand: true\n  root_volume_gb: 200\n  public_ip: false\n  port: 8000\n`,
    );
    expect(r.ok && r.spec.resources).toEqual({
      provider: 'aws',
      accelerators: 'L4:1',
      region: 'us-east-1',
      image_id: 'ami-0123456789abcdef0',
      launch_template: { name: 'gpu-base', version: '3' },
      spot: true,
      spot_fallback_on_demand: true,
      root_volume_gb: 200,
      public_ip: false,
      port: 8000,
    });
  });

  test('a spec without the new fields parses exactly as before: a stored spec is not "changed" by this version', () => {
    const r = parseSpec(`${base}resources: {provider: aws, instance_type: g5.xlarge}\n`);
    expect(r.ok && r.spec.resources).toEqual({ provider: 'aws', instance_type: 'g5.xlarge' });
    const local = parseSpec(base);
    expect(local.ok && local.spec.resources).toEqual({ provider: 'local' });
    if (r.ok) expect(specChanges(r.spec, r.spec)).toEqual([]);
  });

  test.each([
    ['resources: {provider: local, spot: true}', 'resources.spot', /spot is read only with provider: aws \(provider is local\)/],
    ['resources: {image_id: ami-0123456789abcdef0}', 'resources.image_id', /only with provider: aws \(provider is local\)/],
    ['resources: {port: 8000}', 'resources.port', /only with provider: aws/],
    ['resources: {provider: aws}', 'resources', /provider aws needs accelerators .*, instance_type or launch_template/],
    ['resources: {provider: aws, instance_type: g5.xlarge, region: "US East"}', 'resources.region', /AWS region like "us-east-1", got "US East"/],
    ['resources: {provider: aws, instance_type: g5.xlarge, image_id: ubuntu}', 'resources.image_id', /AMI id like "ami-0123456789abcdef0", got "ubuntu"/],
    ['resources: {provider: aws, launch_template: {}}', 'resources.launch_template', /exactly one of id and name/],
    ['resources: {provider: aws, launch_template: {id: lt-0123456789abcdef0, name: x12}}', 'resources.launch_template', /exactly one of id and name/],
    ['resources: {provider: aws, launch_template: {id: template}}', 'resources.launch_template.id', /launch template id like "lt-/],
    ['resources: {provider: aws, launch_template: {name: base, version: latest}}', 'resources.launch_template.version', /a number, "\$Latest" or "\$Default"/],
    ['resources: {provider: aws, launch_template: {name: base, colour: red}}', 'resources.launch_template.colour', /unknown field/],
    ['resources: {provider: aws, instance_type: g5.xlarge, spot: "yes"}', 'resources.spot', /true or false, got "yes"/],
    ['resources: {provider: aws, instance_type: g5.xlarge, spot_fallback_on_demand: true}', 'resources.spot_fallback_on_demand', /needs spot: true/],
    ['resources: {provider: aws, instance_type: g5.xlarge, root_volume_gb: 0}', 'resources.root_volume_gb', /whole number of GiB from 1 to 16384, got 0/],
    ['resources: {provider: aws, instance_type: g5.xlarge, port: 70000}', 'resources.port', /whole number from 1 to 65535, got 70000/],
    ['resources: {provider: aws, instance_type: g5.xlarge, subnets: [a]}', 'resources.subnets', /unknown field/],
    ['resources: {provider: aws, instance_type: g5.xlarge}\nenv: {HF_TOKEN: {from_env: HF_TOKEN}}', 'env.HF_TOKEN', /secret references are not supported with provider: aws yet .*user data/],
    ['resources: {provider: aws, instance_type: g5.xlarge}\nenv: {KEY: {from_file: /run/key}}', 'env.KEY', /not supported with provider: aws/],
  ])('%s → %s', (yaml, path, message) => {
    const r = parseSpec(`${base}${yaml}\n`);
    expect(r.ok).toBe(false);
    if (r.ok) return;
    const issue = r.issues.find((i) => i.path === path);
    expect({ path, message: issue?.message }).toEqual({ path, message: expect.stringMatching(message) });
  });

  test('secret references stay fine with provider local', () => {
    expect(parseSpec(`${base}env: {HF_TOKEN: {from_env: HF_TOKEN}}\n`).ok).toBe(true);
  });
});
