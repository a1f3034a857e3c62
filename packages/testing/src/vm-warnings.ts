import type { VM } from '@vmctl/core'

const printed = new Set<string>()

/**
 * Prints a VM's warnings (`vm.warnings`: KVM unusable so TCG, a template rebuilt) to stderr, each
 * text once per process: a test run boots many VMs, and the same notice for each is noise. Core
 * prints nothing itself; the adapters call this for every VM they hand to a test.
 */
export function printVmWarnings(
  vm: Pick<VM, 'warnings'>,
  write: (text: string) => void = (text) => process.stderr.write(text),
): void {
  for (const warning of vm.warnings) {
    if (printed.has(warning)) continue
    printed.add(warning)
    write(`vmctl: ${warning}\n`)
  }
}
