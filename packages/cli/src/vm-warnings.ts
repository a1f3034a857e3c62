import type { VM } from '@vmctl/core'

/** A VM's warnings (KVM unusable so TCG, a template rebuilt), on stderr: core prints none itself. */
export function printVmWarnings(vm: Pick<VM, 'warnings'>): void {
  for (const warning of vm.warnings) process.stderr.write(`vmctl: ${warning}\n`)
}
