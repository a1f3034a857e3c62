// Run with VMCTL_BOOT_BUDGET_MS=300 by src/jest.vm.test.ts: useVm()'s beforeEach times out while the
// VM boots. The VM that boot hands over later must be destroyed then, not left running until the
// worker exits; the second block watches for that from inside the same worker.
const { existsSync, readdirSync } = require('node:fs')
const { tmpdir } = require('node:os')
const { join } = require('node:path')
const { useVm } = require('@vmctl/jest')

// vmctl's runtime directory, found as @vmctl/core finds it (core is an ES module: jest cannot require it).
const { VMCTL_RUNTIME_DIR, XDG_RUNTIME_DIR } = process.env
const runtime =
  VMCTL_RUNTIME_DIR ||
  (XDG_RUNTIME_DIR ? join(XDG_RUNTIME_DIR, 'vmctl') : join(tmpdir(), `vmctl-${process.getuid()}`))
const vms = join(runtime, 'vms')
// VM names are made from the test's name: this test's VMs start with this.
const PREFIX = 'a-boot-longer-than-the-b'
const ours = () => (existsSync(vms) ? readdirSync(vms).filter((name) => name.startsWith(PREFIX)) : [])

describe('useVm', () => {
  const vm = useVm()
  test('a boot longer than the budget', async () => {
    await vm.exec('true')
  })
})

test('the VM of the timed-out hook is destroyed once its boot ends', async () => {
  const deadline = Date.now() + 170_000
  let seen = false
  while (Date.now() < deadline) {
    if (ours().length > 0) seen = true
    else if (seen) break
    await new Promise((r) => setTimeout(r, 200))
  }
  expect(seen).toBe(true)
  expect(ours()).toEqual([])
})
