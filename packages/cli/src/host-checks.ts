import { execFileSync } from 'node:child_process'
import { accessSync, constants, type Dirent, lstatSync, readdirSync, statfsSync } from 'node:fs'
import { delimiter, join } from 'node:path'
import { chooseAccelerator, firstLineOf, locateQemu } from '@vmctl/core'
import { HOST_PACKAGES, installCommand, type PackageManager } from './distribution.js'

export interface HostCheck {
  name: string
  /** missing: VMs cannot run (setup exits non-zero); warn: they run, slower or with less. */
  status: 'ok' | 'warn' | 'missing'
  detail: string
  fix?: string
}

/** Below this much free space in the cache a kernel (435 MB), templates and images do not fit. */
const MIN_FREE_BYTES = 2 * 1024 ** 3

/** What vmctl needs from the host, each checked without booting anything. */
export function checkHost(
  cache: string,
  manager: PackageManager | undefined,
  env = process.env,
): HostCheck[] {
  const fix = (what: keyof typeof HOST_PACKAGES) =>
    installCommand(manager, [HOST_PACKAGES[what][manager ?? 'apt']])
  const checks: HostCheck[] = []
  const [major = 0, minor = 0] = process.versions.node.split('.').map(Number)
  checks.push(
    major > 20 || (major === 20 && minor >= 19)
      ? { name: 'node', status: 'ok', detail: `v${process.versions.node}` }
      : {
          name: 'node',
          status: 'missing',
          detail: `v${process.versions.node}`,
          fix: 'install Node.js 20.19+, 22 or 24',
        },
  )
  try {
    const qemu = locateQemu(env)
    checks.push({ name: 'qemu', status: 'ok', detail: `${qemu} (${qemuVersion(qemu)})` })
  } catch (error) {
    checks.push({ name: 'qemu', status: 'missing', detail: firstLineOf(error), fix: fix('qemu') })
  }
  const sbin = `${env.PATH ?? ''}${delimiter}/usr/sbin${delimiter}/sbin${delimiter}/usr/bin`
  const tool = (name: keyof typeof HOST_PACKAGES, why: string, required: boolean) => {
    const path = findExecutable(name, sbin)
    checks.push(
      path
        ? { name, status: 'ok', detail: path }
        : { name, status: required ? 'missing' : 'warn', detail: `not found (${why})`, fix: fix(name) },
    )
  }
  tool('mkfs.ext4', "makes the agent's runtime disk", true)
  tool('qemu-img', 'needed for disk images: the image option, vmctl image', false)
  tool('setpriv', 'ties QEMU to its supervisor, so a killed supervisor cannot leave QEMU running', false)
  checks.push(kvmCheck(cache, env))
  checks.push(
    canOpen('/dev/vhost-vsock')
      ? { name: 'vhost-vsock', status: 'ok', detail: '/dev/vhost-vsock' }
      : {
          name: 'vhost-vsock',
          status: 'warn',
          detail: '/dev/vhost-vsock cannot be opened (the agent talks over virtio-serial instead)',
          fix: 'sudo modprobe vhost_vsock (and access to /dev/vhost-vsock)',
        },
  )
  checks.push(diskCheck(cache))
  return checks
}

function kvmCheck(cache: string, env: NodeJS.ProcessEnv): HostCheck {
  try {
    const choice = chooseAccelerator(cache, env)
    if (choice.accel === 'kvm')
      return {
        name: 'kvm',
        status: 'ok',
        detail: choice.probe
          ? '/dev/kvm opens; the first boot probes whether KVM works'
          : 'KVM works (verdict cached)',
      }
    return { name: 'kvm', status: 'warn', detail: `VMs run under TCG, 5-10x slower: ${choice.reason}` }
  } catch (error) {
    return { name: 'kvm', status: 'missing', detail: firstLineOf(error) }
  }
}

function diskCheck(cache: string): HostCheck {
  let dir = cache
  while (!exists(dir) && dir !== '/') dir = join(dir, '..')
  const stats = statfsSync(dir)
  const free = stats.bavail * stats.bsize
  const detail = `${cache}: ${gib(cacheSize(cache))} used, ${gib(free)} free`
  return free >= MIN_FREE_BYTES
    ? { name: 'cache', status: 'ok', detail }
    : {
        name: 'cache',
        status: 'warn',
        detail: `${detail} (under ${gib(MIN_FREE_BYTES)})`,
        fix: 'free disk space, or set XDG_CACHE_HOME to a larger disk',
      }
}

/** Bytes the cache takes on disk (allocated blocks: templates' RAM files are sparse). */
export function cacheSize(dir: string): number {
  let total = 0
  let entries: Dirent[]
  try {
    entries = readdirSync(dir, { withFileTypes: true })
  } catch {
    return 0
  }
  for (const entry of entries) {
    const path = join(dir, entry.name)
    if (entry.isDirectory()) total += cacheSize(path)
    else {
      try {
        total += lstatSync(path).blocks * 512
      } catch {}
    }
  }
  return total
}

function qemuVersion(qemu: string): string {
  try {
    const out = execFileSync(qemu, ['--version'], {
      encoding: 'utf8',
      timeout: 10_000,
      stdio: ['ignore', 'pipe', 'ignore'],
    })
    return out.split('\n')[0]!.replace(/^QEMU emulator version\s*/, 'version ')
  } catch (error) {
    return `--version failed: ${firstLineOf(error)}`
  }
}

function findExecutable(name: string, path: string): string | undefined {
  for (const dir of path.split(delimiter)) {
    if (!dir) continue
    try {
      accessSync(join(dir, name), constants.X_OK)
      return join(dir, name)
    } catch {}
  }
  return undefined
}

function canOpen(path: string): boolean {
  try {
    accessSync(path, constants.R_OK | constants.W_OK)
    return true
  } catch {
    return false
  }
}

function exists(path: string): boolean {
  try {
    lstatSync(path)
    return true
  } catch {
    return false
  }
}

function gib(bytes: number): string {
  return bytes >= 1024 ** 3 ? `${(bytes / 1024 ** 3).toFixed(1)} GiB` : `${Math.round(bytes / 1024 ** 2)} MiB`
}
