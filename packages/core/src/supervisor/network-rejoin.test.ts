import { join } from 'node:path'
import { describe, expect, test } from 'vitest'
import { listNetworks } from '../network/network-directory.js'
import { VmNetwork } from '../network/vm-network.js'
import { runtimeDir } from '../paths.js'
import { sampleLaunchSpec } from '../test-support/sample-launch-spec.js'
import { rejoinNetworks } from './network-rejoin.js'

// A real switch process (no VM needed): stopped with SIGSTOP, it is alive and answers nothing.
describe('rejoinNetworks after a start', () => {
  test('a switch that does not answer costs the budget and a warning, not a start that never ends', {
    timeout: 20_000,
  }, async () => {
    const network = await VmNetwork.create({ name: `rejoin-${process.pid}` })
    const pid = listNetworks().find((n) => n.name === network.name)!.pid
    process.kill(pid, 'SIGSTOP')
    try {
      const spec = {
        ...sampleLaunchSpec('/nonexistent-cache'),
        name: `rejoin-vm-${process.pid}`,
        networkAddresses: [{ network: network.name, ip: '10.99.0.2', mac: '02:76:6d:00:00:02' }],
      }
      const directory = {
        agentSocket: '/nonexistent/agent.sock',
        rawSocket: '/nonexistent/raw.sock',
        path: join(runtimeDir(), 'vms', spec.name),
      }
      const started = performance.now()
      const warning = await rejoinNetworks(spec, directory, 1_000)
      expect(performance.now() - started).toBeLessThan(5_000)
      expect(warning).toMatch(/not given again after the start: no answer within 1 s \(a network switch/)
    } finally {
      process.kill(pid, 'SIGCONT')
      await network.close()
    }
  })
})
