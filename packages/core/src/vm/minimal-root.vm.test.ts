import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { VM } from '../index.js'

describe('vm: a root with only busybox and the agent executable', () => {
  let vm: VM
  beforeAll(async () => {
    vm = await VM.up({ hostRoot: false })
  })
  afterAll(async () => {
    await vm?.destroy()
  })

  test('the guest has no node and no host files, and runs commands through the one executable', async () => {
    const result = await vm.exec(
      'ls /vmctl; command -v node || echo no-node; test -e /usr/lib/x86_64-linux-gnu/libnode.so || echo no-libnode; ls /home 2>&1 | head -1; readlink /bin/sh',
    )
    expect(result.stdout).toBe(
      'guest-setup\nlost+found\nvmctl-agent\nvmctl-spawner\nvsock-bridge\nno-node\nno-libnode\nls: /home: No such file or directory\n/bin/busybox\n',
    )
    const info = await vm.info()
    expect(info.osRelease).toBe('vmctl initramfs (busybox)')
    await vm.writeFile('/tmp/x', 'in ramfs')
    expect(await vm.readFile('/tmp/x')).toBe('in ramfs')
  })

  test('a command on a terminal: the init mounts a devpts of its own for it', async () => {
    const result = await vm.exec('tty; stty size', { tty: { rows: 30, cols: 100 } })
    expect(result.stdout).toMatch(/^\/dev\/pts\/\d+\r\n30 100\r\n$/)
  })
})
