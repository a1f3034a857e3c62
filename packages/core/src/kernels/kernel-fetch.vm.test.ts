import { execFileSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, readlinkSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, test } from 'vitest'
import { VM } from '../index.js'
import { fetchDefaultKernel } from './resolve-kernel.js'

// Downloads ~71 MB from Debian's archive (deb.debian.org, or VMCTL_DEBIAN_MIRROR) into an empty
// cache, then boots from it: what a user's first VM.up() does on a machine without a kernel.
const root = mkdtempSync(join(tmpdir(), 'vmctl-fetch-vm-'))
const saved = { ...process.env }
afterAll(() => {
  process.env = saved
  rmSync(root, { recursive: true, force: true })
})

describe('kernel fetch from the Debian archive (network, vm)', () => {
  test('fetches the default kernel into an empty cache once, and a VM boots from it', async () => {
    Object.assign(process.env, { XDG_CACHE_HOME: root, VMCTL_TEMPLATES: '0' })
    for (const key of ['VMCTL_CACHE_DIR', 'VMCTL_KERNEL']) delete process.env[key]
    const cache = join(root, 'vmctl')
    const lines: string[] = []
    // Two callers at once (as two test workers would be): one fetches, the other waits for it.
    const [first, second] = await Promise.all([
      fetchDefaultKernel(cache, process.env, (line) => lines.push(line)),
      fetchDefaultKernel(cache, process.env, (line) => lines.push(line)),
    ])
    expect([first.fetched, second.fetched].sort()).toEqual([false, true])
    const fetched = first.fetched ? first : second
    console.log(`fetched ${fetched.release}: ${JSON.stringify(fetched.phases)}`)
    expect(lines.some((line) => line.startsWith('waiting for another process'))).toBe(true)

    const kernels = join(cache, 'kernels')
    const dir = join(kernels, fetched.release)
    expect(readlinkSync(join(kernels, 'default'))).toBe(fetched.release)
    for (const file of [
      'vmlinuz',
      'vmlinux',
      'config',
      '.complete',
      `lib/modules/${fetched.release}/modules.dep`,
    ])
      expect(existsSync(join(dir, file)), file).toBe(true)
    expect(readFileSync(join(dir, 'release'), 'utf8')).toBe(`${fetched.release}\n`)
    expect(readFileSync(join(dir, 'vmlinux')).readUInt32BE(0)).toBe(0x7f454c46)

    await using vm = await VM.up()
    const { stdout } = await vm.exec('uname -r')
    expect(stdout.trim()).toBe(fetched.release)
    // The module tree is the guest's: a module outside the initramfs loads by name.
    await vm.exec('modprobe dummy && grep -q "^dummy " /proc/modules')
  }, 900_000)

  test('fetches busybox-static into the cache, a static binary that runs', async () => {
    const cache = join(root, 'vmctl')
    const { ensureBusybox } = await import('./fetched-busybox.js')
    const busybox = await ensureBusybox(cache, process.env, () => {})
    expect(busybox).toBe(join(cache, 'busybox', 'busybox'))
    expect(execFileSync(busybox, ['echo', 'hello from busybox'], { encoding: 'utf8' })).toBe(
      'hello from busybox\n',
    )
    expect(readFileSync(join(cache, 'busybox', 'version'), 'utf8')).toMatch(/^1:1\.\d+/)
  }, 120_000)
})
