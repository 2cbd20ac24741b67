/**
 * bench:control's results: the machine described, each part's figures, written to
 * bench/results/control-<time>.json and .md and to the README between its bench:control markers.
 */
'use strict';
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const ROOT = path.resolve(__dirname, '..', '..');
const RESULTS = path.join(ROOT, 'bench', 'results');

/** Cores, model, memory, Node, kernel, and how loaded the machine was (load average, CPU pressure). */
function machine() {
  const cpus = os.cpus();
  let pressure;
  try {
    pressure = Number(/avg60=([\d.]+)/.exec(fs.readFileSync('/proc/pressure/cpu', 'utf8'))?.[1]);
  } catch {
    pressure = undefined;
  }
  return { cpus: cpus.length, model: cpus[0]?.model?.trim(), memoryGiB: Math.round(os.totalmem() / 2 ** 30), node: process.version, platform: `${os.platform()} ${os.release()}`, loadAverage: os.loadavg()[0], cpuPressure60s: pressure };
}

function markdownTable(header, rows) {
  return [`| ${header.join(' | ')} |`, `|${header.map(() => '---').join('|')}|`, ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n');
}

/**
 * Writes the run: `parts` is [{name, title, table (markdown), summary: [[figure, value, target, met]], data}].
 * Returns the markdown written.
 */
function writeReport({ quick, startedAt, machineBefore, parts }) {
  const after = machine();
  const stamp = new Date(startedAt).toISOString().replace(/[:.]/g, '-');
  const summaryRows = parts.flatMap((p) => p.summary.map(([figure, value, target, met]) => [figure, value, target, met === undefined ? '-' : met ? 'yes' : 'no']));
  const m = machineBefore;
  const head =
    `Machine: ${m.cpus} × ${m.model}, ${m.memoryGiB} GiB, Node ${m.node}, ${m.platform}; load average ${m.loadAverage.toFixed(2)} → ${after.loadAverage.toFixed(2)}` +
    `${m.cpuPressure60s !== undefined ? `, CPU pressure (PSI some, 60 s) ${m.cpuPressure60s}% → ${after.cpuPressure60s}%` : ''}; ` +
    `${quick ? 'BENCH_QUICK=1 (smaller counts)' : 'full run'}, ${Math.round((Date.now() - startedAt) / 6000) / 10} minutes, ${new Date(startedAt).toISOString().slice(0, 16)}Z.`;
  const md = [head, '', markdownTable(['figure', 'value', 'target', 'met'], summaryRows), '', ...parts.flatMap((p) => [`### ${p.title}`, '', p.table, ''])].join('\n');
  fs.mkdirSync(RESULTS, { recursive: true });
  const base = path.join(RESULTS, `control-${stamp}`);
  fs.writeFileSync(`${base}.json`, JSON.stringify({ date: new Date(startedAt).toISOString(), quick, machine: { before: machineBefore, after }, parts: parts.map(({ name, title, summary, data }) => ({ name, title, summary, data })) }, null, 2) + '\n');
  fs.writeFileSync(`${base}.md`, md + '\n');
  // The README shows the summary of the last full run of every part (a partial or quick run leaves it alone).
  const readmePath = path.join(ROOT, 'README.md');
  const readme = fs.readFileSync(readmePath, 'utf8');
  const START = '<!-- bench:control:start -->';
  const END = '<!-- bench:control:end -->';
  if (!quick && parts.length === PART_NAMES.length && readme.includes(START) && readme.includes(END)) {
    const table = [head, '', markdownTable(['figure', 'value', 'target', 'met'], summaryRows), '', `Details: \`bench/results/control-${stamp}.md\`.`].join('\n');
    fs.writeFileSync(readmePath, `${readme.slice(0, readme.indexOf(START) + START.length)}\n${table}\n${readme.slice(readme.indexOf(END))}`);
  }
  return { md, files: [`${base}.json`, `${base}.md`].map((f) => path.relative(ROOT, f)) };
}

/** Every part, in the order a full run takes them. */
const PART_NAMES = ['overhead', 'reaction', 'history', 'fleet', 'horizontal'];

/** Percentile `p` (0–100) of numbers, nearest rank. */
function percentile(values, p) {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

module.exports = { machine, markdownTable, writeReport, PART_NAMES, percentile };
