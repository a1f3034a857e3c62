import { execFile } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, describe, expect, test } from 'vitest'

const CLI = fileURLToPath(new URL('../dist/main.js', import.meta.url))
const cache = mkdtempSync(join(tmpdir(), 'vmctl-setup-'))
afterAll(() => rmSync(cache, { recursive: true, force: true }))

function vmctl(args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number; stdout: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { env: { ...process.env, ...env } }, (error, stdout) =>
      resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout }),
    )
  })
}

describe('vmctl setup (no network: VMCTL_KERNEL names the kernel)', () => {
  test('one line per check; a missing kernel is named with its fix and fails the command', async () => {
    const { code, stdout } = await vmctl(['setup'], {
      XDG_CACHE_HOME: cache,
      VMCTL_KERNEL: '/nonexistent/vmlinuz',
    })
    const lines = stdout.trimEnd().split('\n')
    for (const name of [
      'node',
      'qemu',
      'mkfs.ext4',
      'qemu-img',
      'setpriv',
      'kvm',
      'vhost-vsock',
      'cache',
      'kernel',
    ])
      expect(
        lines.filter((line) => line.split(/\s+/)[1] === name),
        name,
      ).toHaveLength(1)
    expect(stdout).toMatch(/^ok +node +v\d+/m)
    expect(stdout).toMatch(
      /^missing +kernel +no kernel at \$VMCTL_KERNEL: \/nonexistent\/vmlinuz \(does not exist\); fix: /m,
    )
    expect(stdout).toMatch(new RegExp(`^ok +cache +${join(cache, 'vmctl')}: `, 'm'))
    expect(lines.at(-1)).toMatch(/cannot run VMs here yet: kernel missing/)
    expect(code).toBe(1)
  })

  test('--no-fetch downloads nothing: an empty cache is a warning that the first VM fetches the kernel', async () => {
    const empty = mkdtempSync(join(tmpdir(), 'vmctl-setup-empty-'))
    try {
      const { code, stdout } = await vmctl(['setup', '--no-fetch'], {
        XDG_CACHE_HOME: empty,
        VMCTL_KERNEL: '',
        VMCTL_DEBIAN_MIRROR: 'http://127.0.0.1:9',
      })
      expect(stdout).toMatch(/^warn +kernel +not cached yet: the first VM fetches it/m)
      expect(existsSync(join(empty, 'vmctl', 'kernels'))).toBe(false)
      expect(code).toBe(0)
    } finally {
      rmSync(empty, { recursive: true, force: true })
    }
  })

  test('VMCTL_KERNEL naming a kernel (debian:trixie) is fetched, not looked for as a path', async () => {
    const empty = mkdtempSync(join(tmpdir(), 'vmctl-setup-named-'))
    const env = {
      XDG_CACHE_HOME: empty,
      VMCTL_KERNEL: 'debian:trixie',
      VMCTL_DEBIAN_MIRROR: 'http://127.0.0.1:9',
    }
    try {
      // The mirror refuses: the error is the fetch's, naming the suite's index, not "no kernel at".
      const fetched = await vmctl(['setup'], env)
      expect(fetched.stdout).toMatch(
        /^missing +kernel +VMCTL_KERNEL=debian:trixie: could not download the guest kernel from Debian's archive \(http:\/\/127\.0\.0\.1:9\/dists\/trixie\//m,
      )
      expect(fetched.code).toBe(1)
      const offline = await vmctl(['setup', '--no-fetch'], env)
      expect(offline.stdout).toMatch(
        /^warn +kernel +VMCTL_KERNEL=debian:trixie: not cached yet: the first VM fetches it/m,
      )
      expect(offline.code).toBe(0)
    } finally {
      rmSync(empty, { recursive: true, force: true })
    }
  })

  test('--help says what it fetches and checks', async () => {
    const { code, stdout } = await vmctl(['setup', '--help'], {})
    expect(code).toBe(0)
    expect(stdout).toMatch(/Usage: vmctl setup \[--boot\] \[--no-fetch\]/)
    expect(stdout).toMatch(/VMCTL_DEBIAN_MIRROR/)
  })
})
