/** The AWS provider: replicas as EC2 instances, found by their tags. */
export { AwsProvider, type AwsProviderOptions } from './aws-provider';
export { AWS_CONFIG_ENV, awsConfigProblem, awsWorkerConfigFromEnv, parseAwsWorkerConfig, validateAwsWorkerConfig, type AwsWorkerConfig } from './config';
export { CATALOG, catalogEntry, instanceTypesFor } from './catalog';
