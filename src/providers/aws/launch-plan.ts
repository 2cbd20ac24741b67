/**
 * A launch request, the spec's `resources` and the worker's AWS config → what RunInstances is
 * sent, less the attempt's own parts (instance type, subnet, market, client token). Everything
 * a user could get wrong is refused here, before any call, with the field to fix. Pure.
 *
 *   resources {provider: aws, accelerators: "L4:1", spot: true, spot_fallback_on_demand: true}
 *   → instanceTypes [g6.xlarge, g6.2xlarge, g6.4xlarge], markets [spot, on-demand], port 8000,
 *     image: the worker's image_id, endpoint on the private address
 *
 * Defaults (the spec has none, so that a stored spec never changes): port 8000, on-demand,
 * private address, the AMI's root volume.
 */
import type { RunInstancesCommandInput } from '@aws-sdk/client-ec2';
import { parseAccelerators } from '../../spec/accelerators';
import type { ResourcesSpec } from '../../spec/types';
import { ProviderError, type LaunchRequest } from '../types';
import { catalogEntry, CatalogMissError, instanceTypesFor } from './catalog';
import type { AwsWorkerConfig } from './config';
import type { Attempt, Market } from './placement';
import { instanceTags, specFingerprint } from './tags';
import { renderUserData, USER_DATA_MAX_BYTES } from './user-data';

export const DEFAULT_PORT = 8000;

export interface LaunchPlan {
  /** undefined: the launch template's type. */
  instanceTypes: (string | undefined)[];
  markets: Market[];
  port: number;
  address: 'private' | 'public';
  /** RunInstances input without InstanceType, subnet or network interfaces, market options, ClientToken. */
  base: RunInstancesCommandInput;
}

const invalid = (message: string) => new ProviderError(message, 'InvalidRequest', false);

export interface LaunchPlanInput {
  req: LaunchRequest;
  resources: ResourcesSpec;
  config: AwsWorkerConfig;
  /** The AMI's root device (DescribeImages), when `root_volume_gb` is set. */
  rootDeviceName?: string;
}

export function instanceTypesOf(resources: ResourcesSpec): (string | undefined)[] {
  const accel = parseAccelerators(resources.accelerators);
  if (resources.instance_type) {
    const known = catalogEntry(resources.instance_type);
    if (accel && known && (known.accelerator.toUpperCase() !== accel.name.toUpperCase() || known.gpus !== accel.count)) {
      throw invalid(`resources.instance_type ${resources.instance_type} has ${known.gpus} × ${known.accelerator}, but resources.accelerators asks for ${accel.count} × ${accel.name}`);
    }
    return [resources.instance_type];
  }
  if (accel) {
    try {
      return instanceTypesFor(accel.name, accel.count);
    } catch (err) {
      if (err instanceof CatalogMissError) throw invalid(`resources.accelerators ${resources.accelerators}: ${err.message}`);
      throw err;
    }
  }
  if (resources.launch_template) return [undefined];
  throw invalid('provider aws needs resources.accelerators, resources.instance_type or resources.launch_template');
}

export function launchPlan({ req, resources, config, rootDeviceName }: LaunchPlanInput): LaunchPlan {
  if (req.secretNames?.length) {
    throw invalid(
      `env ${req.secretNames.join(', ')}: secret references are not supported with provider aws yet (the value would be written into the instance's user data, which ec2:DescribeInstanceAttribute reads in plain text)`,
    );
  }
  const imageId = resources.image_id ?? (resources.launch_template ? undefined : config.image_id);
  if (!imageId && !resources.launch_template) {
    throw invalid('no AMI for the instance: set resources.image_id or resources.launch_template in the spec, or image_id in the worker\'s AWS config (ROLLOUT_AWS_CONFIG)');
  }
  if (resources.root_volume_gb !== undefined && !rootDeviceName) {
    throw invalid('resources.root_volume_gb needs resources.image_id (or the worker\'s image_id) to know the root device; with only a launch template, set the volume size in the template');
  }
  const instanceTypes = instanceTypesOf(resources);
  const markets: Market[] = resources.spot ? (resources.spot_fallback_on_demand ? ['spot', 'on-demand'] : ['spot']) : ['on-demand'];
  const port = resources.port ?? DEFAULT_PORT;
  const address = resources.public_ip ? 'public' : 'private';

  const userData = renderUserData({
    run: req.run,
    env: req.env,
    identity: { PORT: String(port), REPLICA_ID: req.replicaId, SERVICE_NAME: req.service, SERVICE_VERSION: String(req.version) },
  });
  const userDataBytes = Buffer.byteLength(userData, 'utf8');
  if (userDataBytes > USER_DATA_MAX_BYTES) {
    throw invalid(`the instance's user data (run and env) is ${Math.ceil(userDataBytes / 1024)} KiB: EC2 takes at most ${USER_DATA_MAX_BYTES / 1024} KiB; make env and run smaller (e.g. move configuration into the AMI or a file the instance fetches)`);
  }

  const tags = instanceTags({ service: req.service, version: req.version, replicaId: req.replicaId, port, address, spec: specFingerprint({ run: req.run, env: req.env, resources, gpus: req.gpus }) }, config.tags);
  const base: RunInstancesCommandInput = {
    MinCount: 1,
    MaxCount: 1,
    ...(imageId ? { ImageId: imageId } : {}),
    ...(resources.launch_template
      ? {
          LaunchTemplate: {
            ...(resources.launch_template.id ? { LaunchTemplateId: resources.launch_template.id } : { LaunchTemplateName: resources.launch_template.name }),
            Version: resources.launch_template.version ?? '$Default',
          },
        }
      : {}),
    UserData: Buffer.from(userData, 'utf8').toString('base64'),
    TagSpecifications: [
      { ResourceType: 'instance', Tags: tags },
      { ResourceType: 'volume', Tags: tags },
    ],
    ...(config.instance_profile ? { IamInstanceProfile: config.instance_profile.startsWith('arn:') ? { Arn: config.instance_profile } : { Name: config.instance_profile } } : {}),
    ...(config.key_name ? { KeyName: config.key_name } : {}),
    ...(resources.root_volume_gb !== undefined && rootDeviceName
      ? { BlockDeviceMappings: [{ DeviceName: rootDeviceName, Ebs: { VolumeSize: resources.root_volume_gb, VolumeType: 'gp3', DeleteOnTermination: true } }] }
      : {}),
    // The instance's own shutdown (a crashed model server running `poweroff`) ends it for good:
    // a stopped GPU instance would still hold its volumes and its place, and nobody restarts it.
    InstanceInitiatedShutdownBehavior: 'terminate',
    MetadataOptions: { HttpTokens: 'required', HttpEndpoint: 'enabled' },
  };
  return { instanceTypes, markets, port, address, base };
}

/** The full RunInstances input of one attempt, without its ClientToken. */
export function attemptInput(plan: LaunchPlan, attempt: Attempt, securityGroups: string[] | undefined): RunInstancesCommandInput {
  const network: Partial<RunInstancesCommandInput> =
    plan.address === 'public'
      ? { NetworkInterfaces: [{ DeviceIndex: 0, SubnetId: attempt.subnetId, AssociatePublicIpAddress: true, DeleteOnTermination: true, ...(securityGroups ? { Groups: securityGroups } : {}) }] }
      : { SubnetId: attempt.subnetId, ...(securityGroups ? { SecurityGroupIds: securityGroups } : {}) };
  return {
    ...plan.base,
    ...(attempt.instanceType ? { InstanceType: attempt.instanceType as RunInstancesCommandInput['InstanceType'] } : {}),
    ...network,
    ...(attempt.market === 'spot' ? { InstanceMarketOptions: { MarketType: 'spot', SpotOptions: { SpotInstanceType: 'one-time', InstanceInterruptionBehavior: 'terminate' } } } : {}),
  };
}
