import { isVmtestConfig, releaseEarlySupervisor, VM } from '@vmctl/core'
import { EXEC_OPTIONS, HELP_OPTION, helpLines, VM_OPTIONS, vmOptionsFrom } from '../cli-options.js'
import { guestCommand, parseCommandLine } from '../parse-command-line.js'
import { UsageError } from '../usage-error.js'
import { printVmWarnings } from '../vm-warnings.js'
import { execAndReport } from './exec-and-report.js'
import { runVmtestFile } from './vmtest-command.js'

const OPTIONS = { ...VM_OPTIONS, ...EXEC_OPTIONS, ...HELP_OPTION }

export const RUN_HELP = `Usage: vmctl run [options] -- COMMAND [ARG...]

Boots a fresh VM, runs COMMAND in it with its output as it comes, destroys the VM and exits with
the command's exit code. One argument is a shell script ('ls | wc -l'); several are argv.

Options:
${helpLines(OPTIONS)}`

export async function runCommand(args: string[]): Promise<number> {
  const { values, positionals, command } = parseCommandLine(args, OPTIONS, 'run')
  if (values.help) {
    console.log(RUN_HELP)
    return 0
  }
  if (positionals.length > 0)
    throw new UsageError(`vmctl run: unexpected ${JSON.stringify(positionals[0])}; put the command after --`)
  // A vmtest.toml given to run: its targets, as `vmctl vmtest -c FILE` runs them.
  if (typeof values.config === 'string' && isVmtestConfig(values.config)) {
    releaseEarlySupervisor() // each target boots its own VM, in its own time
    return runVmtestFile(values.config)
  }
  if (command.length === 0)
    throw new UsageError('vmctl run: no command; usage: vmctl run [options] -- COMMAND [ARG...]')
  const options = vmOptionsFrom(values)
  let vm: VM | undefined
  let interrupted = false
  const onSignal = (signal: NodeJS.Signals) => {
    interrupted = true
    // The supervisor destroys the VM once this process is gone; destroying first keeps it tidy.
    void (vm?.destroy() ?? Promise.resolve()).finally(() => process.exit(signal === 'SIGINT' ? 130 : 143))
  }
  process.once('SIGINT', onSignal)
  process.once('SIGTERM', onSignal)
  try {
    performance.mark('vmctl:up')
    vm = await VM.up(options)
    performance.mark('vmctl:ready')
    printVmWarnings(vm)
    if (interrupted) return 130
    return await execAndReport(vm, guestCommand(command), values)
  } finally {
    performance.mark('vmctl:exec-done')
    process.off('SIGINT', onSignal)
    process.off('SIGTERM', onSignal)
    // Once the supervisor says the teardown is under way (no call reaches the guest any more), the
    // VM is ending whatever this process does: QEMU's own exit (~0.1 s) and the removal of its
    // files need not hold the command's exit (cli.vm.test.ts checks that nothing is left).
    await vm?.destroy({ waitForExit: false })
    performance.mark('vmctl:destroyed')
  }
}
