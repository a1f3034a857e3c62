import { appendFileSync } from 'node:fs'
import type { VM } from '../../src/index.js'
import { sharedVm, test } from '../../src/index.js'

const it = test.extend<{ shared: VM }>({ shared: sharedVm(process.env.SHARED_NAME ?? 'shared-case') })

it('reports the boot it sees', async ({ shared }) => {
  const { stdout } = await shared.exec('cat /proc/sys/kernel/random/boot_id')
  appendFileSync(process.env.SHARED_OUT!, `${process.pid} ${shared.name} ${stdout.trim()}\n`)
})
