/**
 * The heartbeat timeout of every long activity. After a worker crash, the next attempt of its
 * activity starts this long after the last heartbeat, on a worker that is up; activities
 * heartbeat every HEARTBEAT_EVERY_MS (src/activities/heartbeat.ts), well inside it.
 */
export const HEARTBEAT_TIMEOUT = '5 seconds';

/**
 * The heartbeat timeout of a service's watch of its serving replicas between rollouts. Every
 * heartbeat is a write on the Temporal server: at HEARTBEAT_TIMEOUT's pace, 1,000 services at
 * rest would cost it 1,000 writes a second for nothing. The activity heartbeats at a fifth of its
 * timeout (src/activities/heartbeat.ts). The price: after a worker crash, self-healing resumes
 * this long after the last heartbeat, and an interrupted watch (a deploy arrived) goes on probing
 * until its next heartbeat learns of the cancellation (it changes nothing: its result is dropped).
 */
export const IDLE_WATCH_HEARTBEAT_TIMEOUT = '30 seconds';
