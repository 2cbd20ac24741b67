/**
 * The worker's log: one JSON object per line on stdout (pino), at the level ROLLOUT_LOG_LEVEL
 * names. Temporal's own log lines (the SDK's worker, the workflows' `log`, the activities' `log`,
 * the Rust core) reach it through the Runtime's logger (`TemporalPinoLogger`), with the fields
 * an operator filters by: `service`, `workflowId`, `activity`.
 */
import type { LogLevel, LogMetadata, Logger } from '@temporalio/common';
import pino from 'pino';
import { showValue } from '../spec/show-value';

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error'] as const;
export type RolloutLogLevel = (typeof LOG_LEVELS)[number];

/** ROLLOUT_LOG_LEVEL, checked: unset or empty = info; anything else not in LOG_LEVELS is an error message. */
export function logLevelFrom(value: string | undefined): { level: RolloutLogLevel } | { problem: string } {
  if (value === undefined || value === '') return { level: 'info' };
  const level = value.toLowerCase();
  if ((LOG_LEVELS as readonly string[]).includes(level)) return { level: level as RolloutLogLevel };
  return { problem: `ROLLOUT_LOG_LEVEL: expected one of ${LOG_LEVELS.join(', ')}, got ${showValue(value)}` };
}

/**
 * The worker's root logger. Written to process.stdout as a stream (not pino's own fd writer):
 * under `rollout dev` stdout is a pipe whose errors (EPIPE once the stack is gone) the worker
 * already ignores on that stream. `time` is an ISO string, easier to read than epoch ms.
 */
export function createWorkerLogger(level: RolloutLogLevel, destination: NodeJS.WritableStream = process.stdout): pino.Logger {
  return pino({ name: 'worker', level, base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime }, destination);
}

/** The service a workflow id belongs to (`service-llm`, `rollout-llm-v3`, `gc-llm` → `llm`); undefined for others. */
export function serviceOfWorkflowId(workflowId: string): string | undefined {
  return /^(?:service|gc)-([a-z][a-z0-9-]*)$/.exec(workflowId)?.[1] ?? /^rollout-([a-z][a-z0-9-]*)-v\d+$/.exec(workflowId)?.[1];
}

const PINO_LEVEL: Record<LogLevel, RolloutLogLevel> = { TRACE: 'trace', DEBUG: 'debug', INFO: 'info', WARN: 'warn', ERROR: 'error' };

/**
 * Temporal's Logger interface over pino, for `Runtime.install({ logger })`. The SDK's metadata
 * is kept as it comes (workflowId, runId, activityId, taskQueue, sdkComponent…) plus `service`
 * (from the workflow id) and `activity` (the activity type), so one filter finds a service's lines.
 */
export class TemporalPinoLogger implements Logger {
  constructor(private readonly pino: pino.Logger) {}

  log(level: LogLevel, message: string, meta?: LogMetadata): void {
    const fields: Record<string, unknown> = { ...meta };
    const workflowId = typeof fields.workflowId === 'string' ? fields.workflowId : undefined;
    const service = workflowId && serviceOfWorkflowId(workflowId);
    if (service && fields.service === undefined) fields.service = service;
    if (typeof fields.activityType === 'string' && fields.activity === undefined) fields.activity = fields.activityType;
    // Errors as pino serializes them (message, stack), not as `{}`.
    if (fields.error instanceof Error) fields.err = fields.error;
    if (fields.failure instanceof Error) fields.err = fields.failure;
    this.pino[PINO_LEVEL[level] ?? 'info'](fields, message);
  }
  trace(message: string, meta?: LogMetadata): void {
    this.log('TRACE', message, meta);
  }
  debug(message: string, meta?: LogMetadata): void {
    this.log('DEBUG', message, meta);
  }
  info(message: string, meta?: LogMetadata): void {
    this.log('INFO', message, meta);
  }
  warn(message: string, meta?: LogMetadata): void {
    this.log('WARN', message, meta);
  }
  error(message: string, meta?: LogMetadata): void {
    this.log('ERROR', message, meta);
  }
}

/** Temporal's level name for ours (the Rust core's filter takes these). */
export const TEMPORAL_LEVEL: Record<RolloutLogLevel, LogLevel> = { trace: 'TRACE', debug: 'DEBUG', info: 'INFO', warn: 'WARN', error: 'ERROR' };
