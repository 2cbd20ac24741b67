/** Who a replica runs as and the environment it gets: only its spec's, its identity and a minimal base. */
import { findUser, replicaEnvironment, replicaUserFrom, ReplicaUserError } from '../../src/providers/local/replica-identity';

const passwd = 'root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\nmodel:x:1001:1001::/home/model:/bin/sh\nbroken line\n';

test.each([
  ['nobody', { name: 'nobody', uid: 65534, gid: 65534 }],
  ['1001', { name: 'model', uid: 1001, gid: 1001 }],
  ['ghost', undefined],
])('findUser(%j)', (who, expected) => {
  expect(findUser(passwd, who)).toEqual(expected);
});

describe('replicaUserFrom (ROLLOUT_REPLICA_USER)', () => {
  const read = () => passwd;
  test.each([
    ['unset, worker is root → nobody', undefined, 0, { name: 'nobody', uid: 65534, gid: 65534 }],
    ['unset, worker is a user → that user (no switch)', undefined, 1000, undefined],
    ['"worker" as root → no switch', 'worker', 0, undefined],
    ['a name as root', 'model', 0, { name: 'model', uid: 1001, gid: 1001 }],
    ['the worker\'s own user', 'root', 0, undefined],
  ])('%s', (_name, setting, uid, expected) => {
    expect(replicaUserFrom(setting, uid, read)).toEqual(expected);
  });
  test.each([
    ['ghost', 0, /no user "ghost"/],
    ['nobody', 1000, /needs the worker to run as root/],
  ])('%j with worker uid %d is refused', (setting, uid, message) => {
    expect(() => replicaUserFrom(setting, uid, read)).toThrow(ReplicaUserError);
    expect(() => replicaUserFrom(setting, uid, read)).toThrow(message);
  });
});

test('replicaEnvironment: the base, HOME, the spec, the identity; nothing else of the worker', () => {
  const env = replicaEnvironment({
    workerEnv: { PATH: '/usr/bin', LANG: 'C.UTF-8', HOME: '/root', TEMPORAL_ADDRESS: 'x', ROUTER_TOKEN: 'secret', ROUTER_ADMIN_URL: 'y', ROLLOUT_STATE_DIR: 'z', AWS_SECRET_ACCESS_KEY: 'k' },
    specEnv: { MODEL: 'tiny', PORT: '1' },
    home: '/state/home',
    identity: { PORT: '8000', REPLICA_ID: 'llm-v1-r1', SERVICE_NAME: 'llm', SERVICE_VERSION: '1' },
    cudaVisibleDevices: '',
  });
  expect(env).toEqual({ PATH: '/usr/bin', LANG: 'C.UTF-8', HOME: '/state/home', MODEL: 'tiny', PORT: '8000', REPLICA_ID: 'llm-v1-r1', SERVICE_NAME: 'llm', SERVICE_VERSION: '1', CUDA_VISIBLE_DEVICES: '' });
});
