import { existsSync } from 'node:fs'
import { resolve } from 'node:path'
import { loadVmtestConfig, VM, type VmtestTarget } from '@vmctl/core'
import { HELP_OPTION, helpLines, hostEnvironment } from '../cli-options.js'
import { parseCommandLine } from '../parse-command-line.js'
import { UsageError } from '../usage-error.js'

const OPTIONS = {
  config: { type: 'string' as const, short: 'c', value: 'FILE', help: 'the config (default ./vmtest.toml)' },
  filter: {
    type: 'string' as const,
    short: 'f',
    value: 'REGEX',
    help: 'run only the targets whose name matches',
  },
  ...HELP_OPTION,
}

export const VMTEST_HELP = `Usage: vmctl vmtest [-c vmtest.toml] [--filter REGEX]

Runs a vmtest config (danobi/vmtest's vmtest.toml: [[target]] tables) with vmctl: each target boots
a VM and runs its command, printed the way vmtest prints it ("=> NAME", PASS or FAILED). Every
field is honoured or refused by name: name, kernel (a path, or a name like debian:trixie), image,
kernel_args, rootfs, command (run by bash), [target.vm] num_cpus, memory, mounts, extra_args; uefi,
bios and a foreign arch are errors (vmctl boots x86_64 kernels directly, without firmware). The
directory holding the config is shared read-write at /mnt/vmtest; kernel targets run in it, with
this shell's environment, as vmtest does. Exits 1 when any target fails. vmtest's one-liner,
vmtest -k KERNEL "cmd", is: vmctl run -k KERNEL -- cmd.

Options:
${helpLines(OPTIONS)}`

export async function vmtestCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseCommandLine(args, OPTIONS, 'vmtest')
  if (values.help) {
    console.log(VMTEST_HELP)
    return 0
  }
  if (positionals.length > 0)
    throw new UsageError(`vmctl vmtest: unexpected ${JSON.stringify(positionals[0])}`)
  return runVmtestFile(
    (values.config as string | undefined) ?? 'vmtest.toml',
    values.filter as string | undefined,
  )
}

/** Runs the targets of a vmtest config in order; 0 when every one passed. */
export async function runVmtestFile(file: string, filter?: string): Promise<number> {
  const path = resolve(file)
  if (!existsSync(path)) throw new UsageError(`vmctl vmtest: no ${path}. Fix: write one, or pass it with -c`)
  let pattern: RegExp | undefined
  try {
    pattern = filter === undefined ? undefined : new RegExp(filter)
  } catch (error) {
    throw new UsageError(
      `vmctl vmtest: --filter ${JSON.stringify(filter)} is not a regular expression (${(error as Error).message})`,
    )
  }
  const targets = loadVmtestConfig(path).filter((t) => !pattern || pattern.test(t.name))
  if (targets.length === 0)
    throw new UsageError(`vmctl vmtest: no target matches --filter ${JSON.stringify(filter)}`)
  let failed = 0
  for (const target of targets) if (!(await runTarget(target))) failed++
  return failed > 0 ? 1 : 0
}

async function runTarget(target: VmtestTarget): Promise<boolean> {
  const say = (line: string) => process.stdout.write(`${line}\n`)
  say(`=> ${target.name}`)
  say('===> Booting')
  let vm: VM | undefined
  try {
    vm = await VM.up(target.options)
    say('===> Setting up VM')
    say('===> Running command')
    const result = await vm.exec(['bash', '-c', target.command], {
      // vmtest passes its environment into kernel targets (their userspace is the host's).
      env: target.mode === 'kernel' ? hostEnvironment() : {},
      cwd: target.cwd,
      stdout: process.stdout,
      stderr: process.stderr,
      buffer: false,
      reject: false,
    })
    if (result.exitCode === 0) {
      say('PASS')
      return true
    }
    say(
      result.signal
        ? `Command killed by ${result.signal}`
        : `Command failed with exit code: ${result.exitCode}`,
    )
  } catch (error) {
    say((error as Error).message)
  } finally {
    await vm?.destroy()
  }
  say('FAILED')
  return false
}
