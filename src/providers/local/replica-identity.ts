/**
 * Who a local replica runs as, and the environment it gets. A replica is the user's code: it
 * gets what its spec gives it (plus PORT, its identity, CUDA_VISIBLE_DEVICES and a minimal base:
 * PATH, HOME, LANG, LC_*, TZ, TMPDIR) and nothing of the worker's own environment (the Temporal
 * address, the router's admin URL and token, the state dir). When the worker runs as root,
 * replicas run as an unprivileged user (`nobody` unless ROLLOUT_REPLICA_USER says otherwise), so
 * they cannot read the worker's files or its /proc/<pid>/environ either. Pure except the
 * passwd lookup's injected reader.
 */

export interface ReplicaUser {
  name: string;
  uid: number;
  gid: number;
}

/** Variables of the worker's environment a replica keeps (when set). */
const BASE_VARIABLES = ['PATH', 'LANG', 'LC_ALL', 'LC_CTYPE', 'LC_MESSAGES', 'TZ', 'TMPDIR'];

/** One line of /etc/passwd → its user, or undefined. */
function passwdEntry(line: string): ReplicaUser | undefined {
  const [name, , uid, gid] = line.split(':');
  if (!name || !/^\d+$/.test(uid ?? '') || !/^\d+$/.test(gid ?? '')) return undefined;
  return { name, uid: Number(uid), gid: Number(gid) };
}

/** A user by name or numeric uid in a passwd file's text. */
export function findUser(passwd: string, nameOrUid: string): ReplicaUser | undefined {
  for (const line of passwd.split('\n')) {
    const entry = passwdEntry(line.trim());
    if (entry && (entry.name === nameOrUid || String(entry.uid) === nameOrUid)) return entry;
  }
  return undefined;
}

export class ReplicaUserError extends Error {}

/**
 * The user replicas run as, from ROLLOUT_REPLICA_USER:
 *   unset, worker running as root     → nobody
 *   unset, any other worker user      → undefined (the worker's own user: no switch possible)
 *   "worker"                          → undefined (the worker's own user, even as root: no isolation)
 *   a name or uid                     → that user (the worker must run as root to switch)
 */
export function replicaUserFrom(setting: string | undefined, workerUid: number, readPasswd: () => string): ReplicaUser | undefined {
  const wanted = setting?.trim() || (workerUid === 0 ? 'nobody' : '');
  if (wanted === '' || wanted === 'worker') return undefined;
  const user = findUser(readPasswd(), wanted);
  if (!user) throw new ReplicaUserError(`ROLLOUT_REPLICA_USER: no user "${wanted}" in /etc/passwd (use a user name, a uid, or "worker")`);
  if (user.uid === workerUid) return undefined;
  if (workerUid !== 0) throw new ReplicaUserError(`ROLLOUT_REPLICA_USER=${wanted}: running replicas as another user needs the worker to run as root (or set it to "worker")`);
  return user;
}

export interface ReplicaEnvInput {
  /** The worker's own environment (only BASE_VARIABLES are taken from it). */
  workerEnv: Record<string, string | undefined>;
  /** The spec's env, secrets resolved. */
  specEnv: Record<string, string>;
  /** HOME of the replica (its user's, or the worker's). */
  home?: string;
  identity: { PORT: string; REPLICA_ID: string; SERVICE_NAME: string; SERVICE_VERSION: string };
  /** Set (also to "") when GPUs are enforced: the replica sees exactly these. */
  cudaVisibleDevices?: string;
}

/** The replica's whole environment; the identity variables win over the spec's. */
export function replicaEnvironment(input: ReplicaEnvInput): Record<string, string> {
  const env: Record<string, string> = {};
  for (const name of BASE_VARIABLES) {
    const value = input.workerEnv[name];
    if (value !== undefined) env[name] = value;
  }
  if (input.home !== undefined) env.HOME = input.home;
  Object.assign(env, input.specEnv, input.identity);
  if (input.cudaVisibleDevices !== undefined) env.CUDA_VISIBLE_DEVICES = input.cudaVisibleDevices;
  return env;
}
