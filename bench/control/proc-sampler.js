/**
 * One process's resident memory and CPU, sampled from /proc/<pid> (Linux) while it runs:
 * peak and mean RSS, CPU time used over the window as a share of one core.
 */
'use strict';
const fs = require('node:fs');
const { execFileSync } = require('node:child_process');

let ticksPerSecond;
function clockTicks() {
  if (ticksPerSecond === undefined) {
    try {
      ticksPerSecond = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      ticksPerSecond = 100;
    }
  }
  return ticksPerSecond;
}

/** {rssMiB, cpuSeconds} of `pid` now; undefined once it is gone. */
function readProc(pid) {
  try {
    const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // Fields 14 (utime) and 15 (stime), counted from field 3 just after the comm.
    const ticks = Number(fields[14 - 3]) + Number(fields[15 - 3]);
    return { rssMiB: Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) / 1024, cpuSeconds: ticks / clockTicks() };
  } catch {
    return undefined;
  }
}

/** Samples `pid` every `everyMs` until `stop()`, which resolves to the window's figures. */
function sampleProcess(pid, everyMs = 500) {
  const first = readProc(pid);
  const startedAt = Date.now();
  const rss = [];
  let last = first;
  const timer = setInterval(() => {
    const now = readProc(pid);
    if (!now) return;
    rss.push(now.rssMiB);
    last = now;
  }, everyMs);
  return {
    stop() {
      clearInterval(timer);
      const seconds = (Date.now() - startedAt) / 1000;
      const cpu = first && last ? last.cpuSeconds - first.cpuSeconds : NaN;
      return {
        seconds,
        samples: rss.length,
        rssPeakMiB: rss.length ? Math.max(...rss) : NaN,
        rssMeanMiB: rss.length ? rss.reduce((a, b) => a + b, 0) / rss.length : NaN,
        cpuSeconds: cpu,
        cpuCorePercent: (100 * cpu) / seconds,
      };
    },
  };
}

/** Pids of `pid`'s children (Linux), e.g. the Temporal server under the dev stack's guardian. */
function childPids(pid) {
  try {
    return fs.readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

module.exports = { readProc, sampleProcess, childPids };
