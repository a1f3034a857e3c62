import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { disksDir, readManifest } from '../disks/disks-dir.js'
import { cacheDir, privateEntries, vmsDir } from '../paths.js'
import type { VmState, VmStatus } from '../supervisor/control-protocol.js'
import type { AttachedDisk } from '../supervisor/disk-hotplug.js'
import { deadPrestartDirs, prestartOwner } from '../supervisor/prestarted-qemu.js'
import { isAlias, isAlive, isStale, VmDirectory } from '../supervisor/vm-directory.js'
import { templatesDir } from '../templates/template-store.js'
import { vmQemuProcesses } from './host-processes.js'

/** What `vmctl ps` and `vmctl gc` find out of place, each with what gc does about it. */
export type FindingKind =
  | 'dead-supervisor'
  | 'supervisor-without-qemu'
  | 'qemu-without-supervisor'
  | 'missing-disk'
  | 'unreferenced-disk'
  | 'template-staging'
  | 'stopped-unexpectedly'
  | 'paused-disk-full'

export interface Finding {
  kind: FindingKind
  /** The VM's name, or the file's path. */
  subject: string
  /** What is wrong, in words. */
  detail: string
  /** What `vmctl gc` does about it. */
  repair: string
  /** The VM it concerns, if any. */
  vm?: string
  /** The process it concerns (a QEMU, a supervisor). */
  pid?: number
  /** The file or directory it concerns. */
  path?: string
}

/** A VM as the host shows it: its supervisor's word and what actually runs. */
export interface ObservedVm {
  name: string
  /** The supervisor's state; `starting` before it wrote one, `dead` when it is gone. */
  state: VmState | 'starting' | 'dead'
  status: VmStatus | undefined
  supervisorAlive: boolean
  qemuAlive: boolean
  disks: AttachedDisk[]
  /** The findings about this VM (also in the host's list). */
  problems: FindingKind[]
}

export interface HostObservation {
  vms: ObservedVm[]
  findings: Finding[]
}

const IN_PROGRESS = /\.(\d+)\.(?:partial|staging)(?:\.[A-Za-z0-9]+)?$/

/**
 * Looks at everything vmctl keeps for this user and says what is out of place, changing nothing:
 * VM directories and their supervisors, QEMU processes, plugged disks, vmctl's disks directory,
 * template staging. `gcHost()` repairs what this finds.
 */
export function observeHost(env: NodeJS.ProcessEnv = process.env): HostObservation {
  const findings: Finding[] = []
  const vms: ObservedVm[] = []
  const root = vmsDir(env)
  const qemus = vmQemuProcesses(root)
  const referenced = new Set<string>()

  for (const name of privateEntries(root).sort()) {
    if (isAlias(root, name)) continue // a renamed VM's former name, listed under its own
    const directory = new VmDirectory(name, env)
    const status = directory.readStatus()
    const supervisorAlive = isAlive(status?.pid)
    const qemuAlive = isAlive(status?.qemuPid)
    const disks = readDisks(directory)
    const problems: FindingKind[] = []
    const add = (finding: Omit<Finding, 'vm'>) => {
      findings.push({ ...finding, vm: name })
      problems.push(finding.kind)
    }
    let state: ObservedVm['state'] = status?.state ?? 'starting'
    if (status && !supervisorAlive) {
      state = 'dead'
      add({
        kind: 'dead-supervisor',
        subject: name,
        detail: `VM ${name}'s supervisor (pid ${status.pid}) is gone, its directory is left`,
        repair: `remove ${directory.path}`,
        path: directory.path,
        pid: status.pid,
      })
    } else if (!status && isStale(directory)) {
      state = 'dead'
      add({
        kind: 'dead-supervisor',
        subject: name,
        detail: `VM ${name}'s directory has no supervisor: its creator died before one started${existsSync(directory.launchFile) ? ' (launch.json written, no supervisor spawned)' : ''}`,
        repair: `remove ${directory.path}`,
        path: directory.path,
      })
    } else if (status && status.state === 'ready' && !qemuAlive) {
      add({
        kind: 'supervisor-without-qemu',
        subject: name,
        detail: `VM ${name}'s supervisor (pid ${status.pid}) says ready, but its QEMU (pid ${status.qemuPid ?? 'none'}) is not running`,
        repair: `stop the supervisor (pid ${status.pid}) and remove ${directory.path}`,
        pid: status.pid,
        path: directory.path,
      })
    } else if (status?.state === 'stopped' && status.stopped?.unexpected) {
      // Not out of place for the supervisor (it knows), but what the VM's user believes (it runs)
      // and what runs differ; the VM is the user's, so gc leaves it.
      add({
        kind: 'stopped-unexpectedly',
        subject: name,
        detail: `VM ${name} is stopped: its QEMU ended without vmctl asking (${status.stopped.how}) at ${status.stopped.at}`,
        repair: `nothing: the VM is kept; vmctl start ${name} boots it again, vmctl down ${name} removes it`,
        pid: status.pid,
        path: directory.path,
      })
    }
    if (supervisorAlive && status?.diskFull) {
      const { file, directory: where, since } = status.diskFull
      add({
        kind: 'paused-disk-full',
        subject: name,
        detail: `VM ${name} is paused: the filesystem of ${where} had no room for a write to its disk ${file} (since ${since})`,
        repair: `nothing: free space in ${where} and the VM goes on by itself; vmctl down ${name} removes it`,
        pid: status.pid,
        path: file,
      })
    }
    if (supervisorAlive) for (const disk of disks) referenced.add(disk.path)
    for (const disk of disks) {
      if (existsSync(disk.path) || !supervisorAlive) continue
      add({
        kind: 'missing-disk',
        subject: disk.path,
        detail: `VM ${name} has ${disk.path} plugged in, but the file is gone (deleted while attached; QEMU still holds the old one open)`,
        repair: `detach it from VM ${name}`,
        path: disk.path,
      })
    }
    vms.push({ name, state, status, supervisorAlive, qemuAlive, disks, problems })
  }

  const reported = new Set<string>()
  for (const qemu of qemus) {
    const owner = vms.find((vm) => vm.name === qemu.vm)
    if (owner?.supervisorAlive && qemu.ppid === owner.status?.pid) continue
    // A spare supervisor's QEMU waiting for its VM: its parent is the spare that wrote `owner`.
    if (!owner && qemu.spareDir && qemu.ppid === prestartOwner(qemu.spareDir) && isAlive(qemu.ppid)) continue
    const detail = owner?.supervisorAlive
      ? `a QEMU (pid ${qemu.pid}) runs in VM ${qemu.vm}'s directory but is not its supervisor's (pid ${owner.status?.pid})`
      : qemu.spareDir && !owner
        ? `a QEMU (pid ${qemu.pid}) started for the next VM (${qemu.vm}) by a spare supervisor that is gone`
        : `a QEMU (pid ${qemu.pid}) runs for VM ${qemu.vm}, whose supervisor is gone`
    const leftDir = qemu.spareDir && !owner?.supervisorAlive ? qemu.spareDir : undefined
    const finding: Finding = {
      kind: 'qemu-without-supervisor',
      subject: qemu.vm,
      detail,
      repair: `kill QEMU pid ${qemu.pid}${
        owner?.supervisorAlive
          ? ''
          : leftDir
            ? ` and remove ${leftDir}`
            : ` and remove VM ${qemu.vm}'s directory`
      }`,
      vm: qemu.vm,
      pid: qemu.pid,
      path: leftDir ?? join(root, qemu.vm),
    }
    if (leftDir) reported.add(leftDir)
    findings.push(finding)
    owner?.problems.push(finding.kind)
  }

  for (const dir of deadPrestartDirs(dirname(root)).filter((dir) => !reported.has(dir)))
    findings.push({
      kind: 'dead-supervisor',
      subject: dir,
      detail: `${dir} held the sockets of a QEMU a spare supervisor started for the next VM; that supervisor is gone`,
      repair: `remove ${dir}`,
      path: dir,
    })
  findings.push(...diskFindings(disksDir(env), referenced), ...stagingFindings(templatesDir(cacheDir(env))))
  return { vms, findings }
}

/** Files in vmctl's disks directory that nothing references and nothing will (see vm-disk.ts). */
function diskFindings(dir: string, referenced: Set<string>): Finding[] {
  const findings: Finding[] = []
  const entries = safeReaddir(dir)
  const manifests = new Map<string, ReturnType<typeof readManifest>>()
  for (const entry of entries.filter((e) => e.endsWith('.json')))
    manifests.set(entry.slice(0, -'.json'.length), readManifest(join(dir, entry)))
  for (const entry of entries) {
    const path = join(dir, entry)
    const unreferenced = (detail: string) =>
      findings.push({ kind: 'unreferenced-disk', subject: path, detail, repair: `delete ${path}`, path })
    const building = entry.match(IN_PROGRESS)
    if (building) {
      if (!isAlive(Number(building[1])))
        unreferenced(`${path} is a disk whose creation was cut short (its process ${building[1]} is gone)`)
      continue
    }
    if (entry.endsWith('.json')) {
      const manifest = manifests.get(entry.slice(0, -'.json'.length))
      // A record whose file a VM still has plugged in is that VM's missing-disk finding.
      if (!manifest || (!existsSync(join(dir, manifest.file)) && !referenced.has(join(dir, manifest.file))))
        unreferenced(`${path} describes a disk whose file is gone`)
      continue
    }
    if (referenced.has(path)) continue
    const name = entry.replace(/\.(qcow2|raw)$/, '')
    const manifest = manifests.get(name)
    if (!manifest) unreferenced(`${path} is in vmctl's disks directory, but no disk record names it`)
    else if (!manifest.persistent && !isAlive(manifest.creatorPid))
      unreferenced(
        `${path} is a throwaway disk (not persistent) whose process (${manifest.creatorPid}) is gone and that no VM has plugged in`,
      )
  }
  return findings
}

/** Template staging directories of processes that died while making a template. */
function stagingFindings(dir: string): Finding[] {
  return safeReaddir(dir)
    .filter((entry) => /\.staging$/.test(entry))
    .flatMap((entry) => {
      const pid = Number(entry.match(IN_PROGRESS)?.[1])
      if (!pid || isAlive(pid)) return []
      const path = join(dir, entry)
      return [
        {
          kind: 'template-staging' as const,
          subject: path,
          detail: `${path} is a template its maker (pid ${pid}) never finished: it died while making it`,
          repair: `remove ${path}`,
          path,
          pid,
        },
      ]
    })
}

function readDisks(directory: VmDirectory): AttachedDisk[] {
  try {
    return JSON.parse(readFileSync(directory.disksFile, 'utf8')) as AttachedDisk[]
  } catch {
    return []
  }
}

function safeReaddir(path: string): string[] {
  try {
    return readdirSync(path)
  } catch {
    return []
  }
}
