/** The local provider: replicas as process groups on this machine. */
export { LocalProvider, type LocalProviderOptions } from './local-provider';
export type { LocalReplicaRecord } from './records';
