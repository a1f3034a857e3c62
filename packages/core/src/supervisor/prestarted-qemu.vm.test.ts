import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, test } from 'vitest'
import { eventually } from '../test-support/vm-processes.js'

const keeper = fileURLToPath(new URL('../../test/fixtures/prestart-keeper.mjs', import.meta.url))

/** QEMU processes whose sockets are in `runtime`'s spare-qemu directory. */
function spareQemus(runtime: string): number[] {
  const found: number[] = []
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    try {
      const command = readFileSync(`/proc/${entry}/cmdline`, 'utf8')
      if (command.includes('qemu-system') && command.includes(`${runtime}/spare-qemu/`))
        found.push(Number(entry))
    } catch {}
  }
  return found
}

function socketDirs(runtime: string): string[] {
  const base = join(runtime, 'spare-qemu')
  return existsSync(base) ? readdirSync(base) : []
}

describe('vm: the QEMU a spare supervisor starts for the next VM', () => {
  test.each(['ends', 'is killed with SIGKILL'])(
    'goes, with its socket directory, when its process %s',
    async (how) => {
      const runtime = mkdtempSync(join(tmpdir(), 'vmctl-prestart-'))
      let child: ReturnType<typeof spawn> | undefined
      try {
        child = spawn(process.execPath, [keeper], {
          env: { ...process.env, VMCTL_RUNTIME_DIR: runtime },
          stdio: ['pipe', 'pipe', 'inherit'],
        })
        await once(child.stdout!, 'data')
        await eventually(() => spareQemus(runtime).length === 1, 60_000, "the spare's QEMU to start")
        expect(socketDirs(runtime)).toHaveLength(1)
        if (how === 'ends') child.stdin!.end()
        else child.kill('SIGKILL')
        await once(child, 'exit')
        await eventually(
          () => spareQemus(runtime).length === 0 && socketDirs(runtime).length === 0,
          15_000,
          () =>
            `QEMU ${spareQemus(runtime).join(',') || 'gone'}, socket directories ${socketDirs(runtime).join(',') || 'gone'}`,
        )
      } finally {
        child?.kill('SIGKILL')
        for (const pid of spareQemus(runtime)) process.kill(pid, 'SIGKILL')
        rmSync(runtime, { recursive: true, force: true })
      }
    },
    180_000,
  )
})
