import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, test } from 'vitest'
import { kernelNameFile, parseKernelName } from './kernel-name.js'
import { installedNamedKernel, linkName, listCachedKernels, pruneKernels } from './kernel-store.js'

const cache = mkdtempSync(join(tmpdir(), 'vmctl-kernel-store-'))
afterAll(() => rmSync(cache, { recursive: true, force: true }))

function kernel(release: string, complete = true): void {
  const dir = join(cache, 'kernels', release)
  mkdirSync(join(dir, 'lib/modules', release), { recursive: true })
  writeFileSync(join(dir, 'vmlinux'), 'x'.repeat(1000))
  if (complete) writeFileSync(join(dir, '.complete'), '')
}

describe('the kernels of the cache', () => {
  test('names point at releases; ls shows sizes and names; prune keeps what is pointed at', async () => {
    kernel('6.1.0-57-amd64')
    kernel('6.12.118+deb13-amd64')
    kernel('5.10.0-46-amd64')
    kernel('6.1.0-1-amd64', false) // a half-made one is not a kernel
    symlinkSync('6.1.0-57-amd64', join(cache, 'kernels', 'default'))
    const trixie = parseKernelName('debian:trixie/rt@6.12.118+deb13')
    linkName(cache, kernelNameFile(trixie), '6.12.118+deb13-amd64')
    mkdirSync(join(cache, 'kernels', 'custom', 'abc'), { recursive: true })

    expect(installedNamedKernel(cache, trixie)?.release).toBe('6.12.118+deb13-amd64')
    expect(installedNamedKernel(cache, parseKernelName('debian:bullseye'))).toBeUndefined()
    const listed = listCachedKernels(cache)
    expect(listed.map((k) => [k.release, k.names, k.isDefault]).sort()).toEqual([
      ['5.10.0-46-amd64', [], false],
      ['6.1.0-57-amd64', [], true],
      ['6.12.118+deb13-amd64', ['debian:trixie/rt@6.12.118+deb13'], false],
    ])
    expect(listed.every((k) => k.bytes >= 1000)).toBe(true)

    const removed = await pruneKernels(cache, [], () => {})
    expect(removed.map((k) => k.release)).toEqual(['5.10.0-46-amd64'])
    expect(existsSync(join(cache, 'kernels', 'custom', 'abc'))).toBe(false)
    // By name: the kernel and the name go.
    await pruneKernels(cache, ['debian:trixie/rt@6.12.118+deb13'], () => {})
    expect(installedNamedKernel(cache, trixie)).toBeUndefined()
    expect(listCachedKernels(cache).map((k) => k.release)).toEqual(['6.1.0-57-amd64'])
  })

  test('prune keeps a custom kernel’s module tree while a VM reads its modules from it', async () => {
    const custom = join(cache, 'kernels', 'custom')
    mkdirSync(join(custom, 'used', 'lib/modules/6.12.0'), { recursive: true })
    mkdirSync(join(custom, 'unused', 'lib/modules/6.12.0'), { recursive: true })
    // What a running VM's QEMU carries in its -append (qemu-command.ts), on a process of its own.
    const qemu = spawn(
      process.execPath,
      [
        '-e',
        'setTimeout(() => {}, 60_000)',
        '--',
        '-append',
        `quiet vmctl_modules=${custom}/used/lib/modules/6.12.0 x=1`,
      ],
      { stdio: 'ignore' },
    )
    await once(qemu, 'spawn')
    try {
      const said: string[] = []
      await pruneKernels(cache, [], (line) => said.push(line))
      expect(readdirSync(custom)).toEqual(['used'])
      expect(said.join('\n')).toMatch(
        /kept the module tree .*\/custom\/used: a running VM loads its modules from it/,
      )
    } finally {
      qemu.kill()
      await once(qemu, 'exit')
    }
    await pruneKernels(cache, [], () => {})
    expect(readdirSync(custom)).toEqual([])
  })
})
