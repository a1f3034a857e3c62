import { isVmtestConfig, releaseEarlySupervisor, VM, type VmOptions } from '@vmctl/core'
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
  const spare = loneSpareFromEnv()
  if (spare) options.keepSpare = spare
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
    if (vm) await endVm(vm, options.networks !== undefined && options.networks.length > 0)
    performance.mark('vmctl:destroyed')
  }
}

/**
 * Ends the command's VM, handing its teardown to the supervisor (QEMU's exit and the removal of
 * its files need not hold the command's exit). The request is on the supervisor's socket once
 * destroy() returns (its first synchronous steps write it; a local socket with room takes it at
 * once), so this process does not wait for the answer: from here it exits (cli-main.ts), and a
 * request that did not get out is replaced by the close of the connection, on which the
 * supervisor ends a VM whose caller is gone. Either way nothing of the VM outlives the teardown
 * (cli.vm.test.ts looks for leftovers). A VM on networks waits for the answer, which says that
 * its network names are being freed: a next `vmctl run --network` may want the same name.
 */
async function endVm(vm: VM, onNetworks: boolean): Promise<void> {
  const destroying = vm.destroy({ waitForExit: false })
  if (onNetworks) await destroying
  else destroying.catch(() => {}) // nothing waits on it: the supervisor finishes alone
}

/** How long a spare left by `vmctl run` waits for the next one, unless VMCTL_SPARE_IDLE_S says. */
const DEFAULT_SPARE_IDLE_S = 60

/**
 * VMCTL_SPARE_VM=1: once its VM is ready, `vmctl run` leaves a spare of it for the next `vmctl run`
 * of the same options in the same directory (core's keepSpare `{ idleMs }`): restored and warmed
 * while the command runs, taken by the next run, ended once unused for VMCTL_SPARE_IDLE_S seconds.
 */
function loneSpareFromEnv(): VmOptions['keepSpare'] {
  if (process.env.VMCTL_SPARE_VM !== '1') return undefined
  const text = process.env.VMCTL_SPARE_IDLE_S
  const seconds = text === undefined ? DEFAULT_SPARE_IDLE_S : Number(text)
  if (!Number.isFinite(seconds) || seconds < 1 || seconds > 3600)
    throw new UsageError(
      `VMCTL_SPARE_IDLE_S must be a number of seconds from 1 to 3600 (how long a spare waits for the next vmctl run), not ${JSON.stringify(text)}`,
    )
  return { idleMs: Math.round(seconds * 1000) }
}
