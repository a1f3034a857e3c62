import type { ProvisioningVm } from '../images/provision.js'
import { execIn, spawnIn } from './exec.js'
import { startVm } from './start-vm.js'
import { VmConnection } from './vm-connection.js'
import type { VmOptions } from './vm-options.js'

/**
 * The VM that runs provisioning steps (images/provision.ts); its overlay, outside the VM's
 * directory, becomes the layer. Built on a VmConnection, not on VM: `VM.up()` hands this to
 * image resolution, so a VM here would make vm.ts import itself through images/.
 */
export async function provisioningVm(options: VmOptions, overlay: string): Promise<ProvisioningVm> {
  const connection = new VmConnection(await startVm(options, { overlay }))
  return {
    async spawnStep(step, onOutput) {
      const process = spawnIn(connection, ['sh', '-c', step], {})
      process.stdout.setEncoding('utf8').on('data', onOutput)
      process.stderr.setEncoding('utf8').on('data', onOutput)
      return (await process.wait()).exitCode ?? 128
    },
    async sync() {
      await execIn(connection, ['sync'], {})
    },
    destroy: () => connection.destroy(),
  }
}
