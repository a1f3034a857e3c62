import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, test } from 'vitest'
import { ensureVmsDir, privateEntries, runtimeDir, vmsDir } from './paths.js'
import { listVms } from './supervisor/vm-directory.js'

const scratch = mkdtempSync(join(tmpdir(), 'vmctl-paths-test-'))
afterAll(() => rmSync(scratch, { recursive: true, force: true }))

describe('runtime paths', () => {
  test('computing or listing never makes the directory; a writer does, private', () => {
    const env = { VMCTL_RUNTIME_DIR: join(scratch, 'run') }
    expect(runtimeDir(env)).toBe(join(scratch, 'run'))
    expect(vmsDir(env)).toBe(join(scratch, 'run', 'vms'))
    expect(privateEntries(vmsDir(env))).toEqual([])
    expect(listVms(env)).toEqual([])
    expect(existsSync(join(scratch, 'run'))).toBe(false)

    expect(ensureVmsDir(env)).toBe(join(scratch, 'run', 'vms'))
    expect(privateEntries(vmsDir(env))).toEqual([])
  })

  test('a directory that is not private is refused, by writers and listings alike', () => {
    const open = join(scratch, 'open')
    mkdirSync(join(open, 'vms'), { recursive: true })
    chmodSync(open, 0o755)
    expect(() => ensureVmsDir({ VMCTL_RUNTIME_DIR: open })).toThrow(/not a private directory/)
    chmodSync(join(open, 'vms'), 0o777)
    expect(() => privateEntries(join(open, 'vms'))).toThrow(/not a private directory/)

    const target = join(scratch, 'target')
    mkdirSync(target, { mode: 0o700 })
    symlinkSync(target, join(scratch, 'link'))
    expect(() => privateEntries(join(scratch, 'link'))).toThrow(/symlink/)
  })
})
