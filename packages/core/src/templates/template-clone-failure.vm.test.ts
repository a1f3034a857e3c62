import { createHash, randomBytes } from 'node:crypto'
import { readFileSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, describe, expect, test } from 'vitest'
import { cacheDir, removeTemplate, VM } from '../index.js'
import { coldBootsTimeout } from '../test-support/cold-boots.js'
import { templatesDir } from './template-store.js'

const made = new Set<string>()
afterAll(() => {
  for (const key of made) removeTemplate(cacheDir(), key)
})

describe('templates: removed only for a reason of their own (vm)', () => {
  test(
    'a template whose clones fail twice is removed and rebuilt, and the warning names both failures',
    async () => {
      const definition = { kernelArgs: [`vmctl_test_case=${randomBytes(4).toString('hex')}`] }
      const first = await VM.up(definition)
      const key = first.template!.key
      made.add(key)
      await first.destroy()
      // A device state QEMU cannot load that still passes the template's own check (size, checksum):
      // only a clone can tell, so only two failed clones may remove it.
      const dir = join(templatesDir(cacheDir()), key)
      const garbage = randomBytes(statSync(join(dir, 'state')).size)
      writeFileSync(join(dir, 'state'), garbage)
      const meta = JSON.parse(readFileSync(join(dir, 'meta.json'), 'utf8'))
      meta.stateSha256 = createHash('sha256').update(garbage).digest('hex')
      writeFileSync(join(dir, 'meta.json'), JSON.stringify(meta))

      await using vm = await VM.up(definition)
      expect(vm.template).toEqual({ key, made: true })
      expect((await vm.exec('echo ok')).stdout).toBe('ok\n')
      const removed = vm.warnings.filter((warning) => /template/.test(warning))
      expect(removed).toHaveLength(1)
      expect(removed[0]).toMatch(
        new RegExp(`^the VM template ${key} did not restore twice \\(.+; .+\\); rebuilding it$`),
      )
    },
    coldBootsTimeout(2),
  )
})
