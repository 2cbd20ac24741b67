/**
 * Version pinning: `X-Rollout-Version: primary | canary | <number>` sends a request only to
 * that version (to try a canary by hand). Primary = the oldest version taking traffic, canary =
 * the newest when two take traffic.
 */
export type Pin = { ok: true; version?: number } | { ok: false; error: string };

export const PIN_HEADER = 'x-rollout-version';

export function resolvePin(header: string | string[] | undefined, serving: number[], service: string): Pin {
  if (header === undefined) return { ok: true };
  const value = (Array.isArray(header) ? header[0] : header).trim().toLowerCase();
  const list = serving.length ? serving.map((v) => `v${v}`).join(', ') : 'none';
  if (value === 'primary') {
    return serving.length ? { ok: true, version: serving[0] } : { ok: false, error: `no version of ${service} takes traffic` };
  }
  if (value === 'canary') {
    return serving.length > 1
      ? { ok: true, version: serving[serving.length - 1] }
      : { ok: false, error: `${service} has no canary: serving ${list}` };
  }
  const number = /^v?(\d+)$/.exec(value);
  if (!number) return { ok: false, error: `${PIN_HEADER} must be "primary", "canary" or a version number, got "${value}"` };
  const version = Number(number[1]);
  return serving.includes(version) ? { ok: true, version } : { ok: false, error: `version ${version} of ${service} takes no traffic (serving ${list})` };
}
