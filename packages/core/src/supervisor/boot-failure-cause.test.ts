import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, test } from 'vitest'
import { bootFailureLines, withBootFailureCause } from './boot-failure-cause.js'

const dir = mkdtempSync(join(tmpdir(), 'vmctl-boot-cause-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

/** A console where the cause comes early and 300 lines of an agent restart loop follow. */
function buriedConsole(cause: string): string {
  const noise = Array.from(
    { length: 300 },
    (_, i) => `vmctl-init: agent exited with status 1, restarting (${i})`,
  )
  return ['[    0.000000] Linux version 6.12.57+deb13-amd64', cause, ...noise, ''].join('\r\n')
}

describe('the console line that explains a failed boot', () => {
  test('found however far above the tail it is, with its line number and kind', () => {
    const lines = bootFailureLines(buriedConsole('vmctl-init: insmod 6.12/kernel/fs/9p/9p.ko failed'))
    expect(lines).toEqual([
      { line: 2, text: 'vmctl-init: insmod 6.12/kernel/fs/9p/9p.ko failed', what: 'a driver did not load' },
    ])
  })

  test('the known causes, most telling first', () => {
    const text = [
      "insmod: can't insert '/lib/modules/x/9p.ko': unknown symbol in module, or unknown parameter",
      'VFS: Unable to mount root fs on unknown-block(0,0)',
      'mount: mounting host on /newroot failed: unknown filesystem type 9p',
      'Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(0,0)',
    ].join('\n')
    expect(bootFailureLines(text, 10).map((l) => l.what)).toEqual([
      'the kernel panicked',
      'the kernel could not mount a root',
      'a driver did not load',
      'a filesystem driver is missing',
    ])
  })

  test('appended to the message when the tail lacks it; nothing when nothing is known', () => {
    const path = join(dir, 'console.log')
    writeFileSync(
      path,
      buriedConsole('modprobe: FATAL: Module virtio_blk not found in directory /lib/modules/6.12'),
    )
    const message = withBootFailureCause('boot timed out', path, 'vmctl-init: agent exited with status 1')
    expect(message).toMatch(
      /^boot timed out\n.*console\.log.*\n {2}line 2: modprobe: FATAL: Module virtio_blk not found/,
    )
    writeFileSync(path, 'all quiet\n')
    expect(withBootFailureCause('boot timed out', path, '')).toBe('boot timed out')
    expect(withBootFailureCause('boot timed out', join(dir, 'absent.log'), '')).toBe('boot timed out')
  })
})
