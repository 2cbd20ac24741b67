/** `rollout router` configuration errors are caught before anything listens. */
import { runRouterFromEnv } from '../../src/router/main';

test.each([
  [{}, /ROUTER_TOKEN is not set/],
  [{ ROUTER_TOKEN: 't', ROUTER_TRAFFIC_PORT: 'eighty' }, /ROUTER_TRAFFIC_PORT must be a port number \(0-65535\), got "eighty"/],
  [{ ROUTER_TOKEN: 't', ROUTER_TRAFFIC_PORT: '0', ROUTER_ADMIN_PORT: '70000' }, /ROUTER_ADMIN_PORT must be a port number/],
])('%p is refused', async (env, message) => {
  await expect(runRouterFromEnv(env)).rejects.toThrow(message);
});
