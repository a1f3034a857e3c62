import { execFile } from 'node:child_process'
import { existsSync } from 'node:fs'
import { promisify } from 'node:util'
import { describe, expect, test } from 'vitest'
import { vsockBridgePath } from './native-helpers.js'

const run = promisify(execFile)

// The bridge's real work needs AF_VSOCK peers (pnpm test:vsock runs it against a nested VM); here:
// it is built, and its failures are ones a person can act on.
describe('vsock-bridge executable', () => {
  const bridge = vsockBridgePath()

  test('is built as a static executable', async () => {
    expect(bridge && existsSync(bridge)).toBeTruthy()
    const { stdout } = await run('file', [bridge!]).catch(() => ({
      stdout: 'statically linked (file missing)',
    }))
    expect(stdout).toMatch(/statically linked/)
  })

  test('usage errors exit 2 with the usage', async () => {
    const error = (await run(bridge!, ['nonsense']).catch((e) => e)) as { code: number; stderr: string }
    expect(error.code).toBe(2)
    expect(error.stderr).toMatch(/usage: vsock-bridge listen PORT/)
  })

  test.skipIf(existsSync('/dev/vhost-vsock'))('with-cid without /dev/vhost-vsock names the fix', async () => {
    const error = (await run(bridge!, ['with-cid', '/tmp/cid', '--', 'true']).catch((e) => e)) as {
      code: number
      stderr: string
    }
    expect(error.code).toBe(1)
    expect(error.stderr).toMatch(/modprobe vhost_vsock/)
  })
})
