/**
 * Every replica accounted for: the local provider's records in a state dir against the replica
 * processes actually running on this machine (found in /proc by the SERVICE_NAME and REPLICA_ID
 * the provider gives each; readable for processes of our own user).
 */
'use strict';
const fs = require('node:fs');
const path = require('node:path');

/** The records of `<stateDir>/local/replicas`, whose service passes `wanted`. */
function replicaRecords(stateDir, wanted = () => true) {
  const dir = path.join(stateDir, 'local', 'replicas');
  let names;
  try {
    names = fs.readdirSync(dir);
  } catch {
    return [];
  }
  return names
    .filter((n) => n.endsWith('.json'))
    .flatMap((n) => {
      try {
        return [JSON.parse(fs.readFileSync(path.join(dir, n), 'utf8'))];
      } catch {
        return []; // removed between readdir and read
      }
    })
    .filter((r) => wanted(r.service));
}

/** {state, pgrp} of `pid` from /proc; undefined when it is gone. */
function procStat(pid) {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { state: fields[0], pgrp: Number(fields[2]) };
  } catch {
    return undefined;
  }
}

function alive(pid) {
  const stat = procStat(pid);
  return stat !== undefined && stat.state !== 'Z' && stat.state !== 'X';
}

/**
 * Live processes carrying a REPLICA_ID, whose SERVICE_NAME passes `wanted`: [{pid, pgrp, replicaId,
 * service}]. A replica is a process group (`/bin/sh -c <run>` and what it starts): all its members count.
 */
function replicaProcesses(wanted = () => true) {
  const found = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let vars;
    try {
      vars = fs.readFileSync(`/proc/${entry}/environ`, 'utf8').split('\0');
    } catch {
      continue;
    }
    const get = (k) => vars.find((v) => v.startsWith(`${k}=`))?.slice(k.length + 1);
    const replicaId = get('REPLICA_ID');
    const service = get('SERVICE_NAME');
    const stat = procStat(entry);
    if (replicaId && service && wanted(service) && stat && stat.state !== 'Z' && stat.state !== 'X') found.push({ pid: Number(entry), pgrp: stat.pgrp, replicaId, service });
  }
  return found;
}

/**
 * Records against processes: `groups` (process groups running replicas), `unrecorded` (processes
 * in a group no record names: leaked), `dead` (a record whose process is gone), and per service
 * the versions its records run.
 */
function census(stateDir, wanted = () => true) {
  const records = replicaRecords(stateDir, wanted);
  const processes = replicaProcesses(wanted);
  const recordedGroups = new Set(records.map((r) => r.pgid));
  const services = {};
  for (const r of records) (services[r.service] ??= []).push({ version: r.version, alive: alive(r.pid) });
  return {
    records: records.length,
    processes: processes.length,
    groups: new Set(processes.map((p) => p.pgrp)).size,
    unrecorded: processes.filter((p) => !recordedGroups.has(p.pgrp)),
    dead: records.filter((r) => !alive(r.pid)).map((r) => r.replicaId),
    services,
  };
}

module.exports = { census, replicaRecords, replicaProcesses };
