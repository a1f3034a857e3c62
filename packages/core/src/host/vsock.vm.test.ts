import { fileURLToPath } from 'node:url'
import { vsockBridgePath } from '@vmctl/agent'
import { describe, expect, test } from 'vitest'
import { VM } from '../index.js'
import { locateQemu } from './qemu-locator.js'

/**
 * The vsock pieces for real, inside a guest (this host has no vsock): the bridge over AF_VSOCK
 * loopback, and CID reservation plus QEMU's vhost-vsock device through /dev/vhost-vsock. The whole
 * path (host, QEMU, guest agent) against a nested VM is `pnpm test:vsock` (packages/core/test/vsock.nested.ts).
 */
describe('vsock in a vm', () => {
  test('vsock-bridge carries bytes both ways, and reserves distinct CIDs that QEMU takes', async () => {
    await using vm = await VM.up()
    const bridge = vsockBridgePath()!
    const loaded = await vm.exec('modprobe vsock_loopback && modprobe vhost_vsock && ls /dev/vhost-vsock', {
      reject: false,
    })
    expect(loaded.exitCode, loaded.stderr).toBe(0)

    // Loopback (CID 1): a listener that answers each connection, then a client through the bridge.
    const server = vm.spawn([bridge, 'listen', '7001'], { stdin: 'pipe' })
    const serverOutput: Buffer[] = []
    server.stdout.on('data', (chunk: Buffer) => serverOutput.push(chunk))
    await new Promise((r) => setTimeout(r, 500))
    const client = await vm.exec(`printf 'ping over vsock' | timeout 10 ${bridge} connect 1 7001; true`)
    expect(client.exitCode).toBe(0)
    await new Promise((r) => setTimeout(r, 300))
    expect(Buffer.concat(serverOutput).toString()).toBe('ping over vsock')
    server.kill('SIGKILL')

    // Two reservations held at once get different CIDs from the kernel; QEMU accepts fd and CID.
    const cids = await vm.exec(
      `d=$(mktemp -d); for n in a b; do ${bridge} with-cid $d/$n -- sleep 2 & done; wait; cat $d/a $d/b`,
    )
    const [a, b] = cids.stdout.trim().split('\n').map(Number)
    expect(a).toBeGreaterThan(2)
    expect(b).toBeGreaterThan(2)
    expect(a).not.toBe(b)
    const qemu = locateQemu()
    const qmp = [
      '{"execute":"qmp_capabilities"}',
      '{"execute":"qom-get","arguments":{"path":"/machine/peripheral/vsock0","property":"guest-cid"}}',
      '{"execute":"quit"}',
    ].join('\n')
    const started = await vm.exec(
      `d=$(mktemp -d); printf '%s\\n' '${qmp}' | ${bridge} with-cid $d/cid -- ${qemu} -machine microvm -accel tcg -nodefaults -display none -S -qmp stdio -device vhost-vsock-device,id=vsock0,guest-cid=@VSOCK_CID@,vhostfd=@VSOCK_FD@; echo; cat $d/cid`,
      { timeoutMs: 60_000 },
    )
    const lines = started.stdout.trim().split('\n')
    const reserved = Number(lines.at(-1))
    expect(reserved).toBeGreaterThan(2)
    expect(started.stdout).toContain(`{"return": ${reserved}}`)

    // The agent itself on its vsock transport, reached the way the supervisor reaches it.
    const fixture = fileURLToPath(new URL('../../test/fixtures/vsock-loopback-agent.mjs', import.meta.url))
    const agent = await vm.exec([process.execPath, fixture], { timeoutMs: 170_000 })
    const findings = JSON.parse(agent.stdout.trim().split('\n').at(-1)!)
    const release = (await vm.exec('uname -r')).stdout.trim()
    expect(findings).toEqual({ first: release, afterReconnect: release })
  })
})
