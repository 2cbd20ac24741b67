/**
 * The heartbeat timeout of every long activity. After a worker crash, the next attempt of its
 * activity starts this long after the last heartbeat, on a worker that is up; activities
 * heartbeat every HEARTBEAT_EVERY_MS (src/activities/heartbeat.ts), well inside it.
 */
export const HEARTBEAT_TIMEOUT = '5 seconds';
