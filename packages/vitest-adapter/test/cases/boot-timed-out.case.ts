// A test whose timeout passes while its `vm` fixture is still booting: the VM that boot hands over
// later must be destroyed then, not left running until the worker exits. The second test of the
// file watches for that from inside the same worker (the worker's exit would end it anyway).
import { existsSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { runtimeDir } from '@vmctl/core'
import { expect, test } from '../../src/index.js'

const vms = join(runtimeDir(), 'vms')
// testVmName() makes VM names from the test's name: this test's VMs start with this.
const PREFIX = 'a-boot-longer-than-the-t'
const ours = () => (existsSync(vms) ? readdirSync(vms).filter((name) => name.startsWith(PREFIX)) : [])

test('a boot longer than the timeout', async ({ vm }) => {
  await vm.exec('true')
}, 300)

test('the VM of the timed-out test is destroyed once its boot ends', async () => {
  // Its directory appears during the boot and must go soon after the boot ends (a TCG boot takes
  // seconds to minutes on a loaded host: the deadline is generous).
  const deadline = Date.now() + 170_000
  let seen = false
  while (Date.now() < deadline) {
    const left = ours()
    if (left.length > 0) seen = true
    else if (seen) break
    await new Promise((r) => setTimeout(r, 200))
  }
  expect(seen, 'the timed-out test never made a VM directory').toBe(true)
  expect(ours()).toEqual([])
})
