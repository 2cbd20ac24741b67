/**
 * How long after its start a `gc-<service>` workflow may still begin: the CLI waits this long for
 * a worker to pick it up, then ends it and gives up; a worker that sees it later refuses to act.
 * Plain data, shared by the workflow and the CLI.
 */
export const GC_START_WITHIN_MS = 60_000;
