/** The worker's AWS config (ROLLOUT_AWS_CONFIG): YAML or JSON, each problem with its field path and what was expected. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { awsWorkerConfigFromEnv, parseAwsWorkerConfig } from '../../src/providers/aws/config';

const SUBNET = 'subnet-0123456789abcdef0';

describe('worker AWS config', () => {
  test('YAML with every field', () => {
    const r = parseAwsWorkerConfig(
      `region: us-east-1\nsubnets: [${SUBNET}, subnet-0123456789abcdef1]\nsecurity_groups: [sg-0123456789abcdef0]\ninstance_profile: arn:aws:iam::123456789012:instance-profile/gpu-replica\nimage_id: ami-0123456789abcdef0\nkey_name: ops\ntags: {team: ml-platform, "cost center": "42"}\n`,
    );
    expect(r).toEqual({
      ok: true,
      config: {
        region: 'us-east-1',
        subnets: [SUBNET, 'subnet-0123456789abcdef1'],
        security_groups: ['sg-0123456789abcdef0'],
        instance_profile: 'arn:aws:iam::123456789012:instance-profile/gpu-replica',
        image_id: 'ami-0123456789abcdef0',
        key_name: 'ops',
        tags: { team: 'ml-platform', 'cost center': '42' },
      },
    });
  });

  test('JSON is YAML too; only subnets are required', () => {
    expect(parseAwsWorkerConfig(JSON.stringify({ subnets: [SUBNET] }))).toEqual({ ok: true, config: { subnets: [SUBNET] } });
  });

  test.each([
    ['{}', 'subnets', /expected a list of subnet ids, one per availability zone, got nothing/],
    ['subnets: []', 'subnets', /at least one subnet id/],
    ['subnets: [subnet-xyz]', 'subnets.0', /subnet id like "subnet-0123456789abcdef0", got "subnet-xyz"/],
    [`subnets: [${SUBNET}, ${SUBNET}]`, 'subnets', /each subnet once/],
    [`subnets: [${SUBNET}]\nsecurity_groups: sg-0123456789abcdef0`, 'security_groups', /list of security group ids, got "sg-0123456789abcdef0"/],
    [`subnets: [${SUBNET}]\nsecurity_groups: [default]`, 'security_groups.0', /security group id like "sg-/],
    [`subnets: [${SUBNET}]\nregion: virginia`, 'region', /AWS region like "us-east-1", got "virginia"/],
    [`subnets: [${SUBNET}]\ninstance_profile: "arn:aws:iam::1:role/x"`, 'instance_profile', /instance profile name or ARN/],
    [`subnets: [${SUBNET}]\nimage_id: ubuntu-22.04`, 'image_id', /AMI id like "ami-/],
    [`subnets: [${SUBNET}]\ntags: {"gpu-rollout:service": x}`, 'tags.gpu-rollout:service', /not starting with "gpu-rollout:" or "aws:"/],
    [`subnets: [${SUBNET}]\nvpc: vpc-1`, 'vpc', /unknown field/],
    ['- a list', '(root)', /mapping of fields/],
    ['subnets: [unclosed', '(yaml)', /./],
  ])('%j → %s', (text, fieldPath, message) => {
    const r = parseAwsWorkerConfig(text);
    expect(r.ok).toBe(false);
    if (r.ok) return;
    const issue = r.issues.find((i) => i.path === fieldPath);
    expect({ fieldPath, message: issue?.message ?? r.issues }).toEqual({ fieldPath, message: expect.stringMatching(message) });
  });

  describe('from ROLLOUT_AWS_CONFIG', () => {
    let dir: string;
    beforeAll(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), 'aws-config-'))));
    afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

    test('unset: no AWS config (the worker has no aws provider)', () => {
      expect(awsWorkerConfigFromEnv({})).toBeUndefined();
    });

    test('a file is read', () => {
      const file = path.join(dir, 'aws.yaml');
      fs.writeFileSync(file, `subnets: [${SUBNET}]\n`);
      expect(awsWorkerConfigFromEnv({ ROLLOUT_AWS_CONFIG: file })).toEqual({ ok: true, config: { subnets: [SUBNET] } });
    });

    test('a missing file, a directory and a device are refused, naming the variable', () => {
      expect(awsWorkerConfigFromEnv({ ROLLOUT_AWS_CONFIG: path.join(dir, 'nope.yaml') })).toEqual({ ok: false, issues: [{ path: '(file)', message: expect.stringMatching(/^ROLLOUT_AWS_CONFIG .*nope.yaml: cannot read it \(ENOENT\)/) }] });
      expect(awsWorkerConfigFromEnv({ ROLLOUT_AWS_CONFIG: dir })).toEqual({ ok: false, issues: [{ path: '(file)', message: expect.stringMatching(/expected a regular file, it is a directory/) }] });
      expect(awsWorkerConfigFromEnv({ ROLLOUT_AWS_CONFIG: '/dev/urandom' })).toEqual({ ok: false, issues: [{ path: '(file)', message: expect.stringMatching(/character device/) }] });
    });
  });
});

describe('deploy/aws', () => {
  const root = path.resolve(__dirname, '..', '..');

  test('the example worker config is valid', () => {
    expect(parseAwsWorkerConfig(fs.readFileSync(path.join(root, 'deploy/aws/worker-config.example.yaml'), 'utf8')).ok).toBe(true);
  });

  test('the IAM policy allows every EC2 call the provider makes, and terminates only tagged instances', () => {
    const policy = JSON.parse(fs.readFileSync(path.join(root, 'deploy/aws/iam-policy.json'), 'utf8')) as { Statement: { Action: string | string[]; Condition?: Record<string, Record<string, string>> }[] };
    const allowed = new Set(policy.Statement.flatMap((s) => (Array.isArray(s.Action) ? s.Action : [s.Action])));
    const dir = path.join(root, 'src/providers/aws');
    const source = fs.readdirSync(dir).filter((f) => f.endsWith('.ts')).map((f) => fs.readFileSync(path.join(dir, f), 'utf8')).join('\n');
    const used = [...new Set([...source.matchAll(/\b(?:new ([A-Z]\w+)Command|paginate([A-Z]\w+))\(/g)].map((m) => `ec2:${m[1] ?? m[2]}`))].sort();
    expect(used).toEqual(['ec2:DescribeImages', 'ec2:DescribeInstanceTypeOfferings', 'ec2:DescribeInstances', 'ec2:DescribeSubnets', 'ec2:RunInstances', 'ec2:TerminateInstances']);
    expect(used.filter((a) => !allowed.has(a))).toEqual([]);
    const terminate = policy.Statement.filter((s) => s.Action === 'ec2:TerminateInstances');
    expect(terminate).toHaveLength(1);
    expect(terminate[0].Condition).toEqual({ Null: { 'aws:ResourceTag/gpu-rollout:service': 'false' } });
    expect(allowed.has('iam:PassRole')).toBe(true);
  });
});
