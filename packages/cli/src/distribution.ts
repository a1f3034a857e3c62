import { readFileSync } from 'node:fs'

export type PackageManager = 'apt' | 'dnf' | 'pacman'

/** What vmctl needs from the host, by the package that provides it on each distribution. */
export const HOST_PACKAGES = {
  qemu: { apt: 'qemu-system-x86', dnf: 'qemu-system-x86-core', pacman: 'qemu-system-x86' },
  'qemu-img': { apt: 'qemu-utils', dnf: 'qemu-img', pacman: 'qemu-img' },
  'mkfs.ext4': { apt: 'e2fsprogs', dnf: 'e2fsprogs', pacman: 'e2fsprogs' },
  setpriv: { apt: 'util-linux', dnf: 'util-linux-core', pacman: 'util-linux' },
} satisfies Record<string, Record<PackageManager, string>>

/**
 * The host's package manager from /etc/os-release (ID, then ID_LIKE): Debian and Ubuntu (and their
 * derivatives) apt-get, Fedora and RHEL-likes dnf, Arch-likes pacman; undefined for the rest.
 */
export function packageManager(osRelease = readOsRelease()): PackageManager | undefined {
  const fields = new Map<string, string>()
  for (const line of osRelease.split('\n')) {
    const match = /^([A-Z_]+)=(.*)$/.exec(line.trim())
    if (match) fields.set(match[1]!, match[2]!.replace(/^["']|["']$/g, ''))
  }
  const ids = [fields.get('ID') ?? '', ...(fields.get('ID_LIKE') ?? '').split(/\s+/)]
  for (const id of ids) {
    if (id === 'debian' || id === 'ubuntu') return 'apt'
    if (id === 'fedora' || id === 'rhel' || id === 'centos') return 'dnf'
    if (id === 'arch') return 'pacman'
  }
  return undefined
}

/** The command that installs packages with this manager (with sudo unless root). */
export function installCommand(manager: PackageManager | undefined, packages: string[]): string {
  const sudo = process.getuid?.() === 0 ? '' : 'sudo '
  if (manager === 'apt') return `${sudo}apt-get install ${packages.join(' ')}`
  if (manager === 'dnf') return `${sudo}dnf install ${packages.join(' ')}`
  if (manager === 'pacman') return `${sudo}pacman -S ${packages.join(' ')}`
  return `install ${packages.join(' ')} with your distribution's package manager`
}

function readOsRelease(): string {
  for (const path of ['/etc/os-release', '/usr/lib/os-release']) {
    try {
      return readFileSync(path, 'utf8')
    } catch {}
  }
  return ''
}
