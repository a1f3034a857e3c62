import { randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { dirname, isAbsolute, resolve } from 'node:path'
import { VM, type VmOptions } from '@vmctl/core'
import { failureDiagnostics } from './diagnostics.js'
import { printVmWarnings } from './vm-warnings.js'

/** `VMCTL_KEEP=1`: the VM of a failing test stays up, for `vmctl exec NAME -- sh`. */
export const KEEP_ENV = 'VMCTL_KEEP'

/**
 * How long a test runner should allow for getting a test its VM, on top of the test's own timeout:
 * longer than anything vmctl itself waits before it fails with its own error (a TCG boot 180 s, the
 * KVM probe 8 s and 30 s of margin around the boot, 60 s for the VM's supervisor to start), with
 * room for a host's first VM (kernel download, agent build) and a wait for another process making
 * the same template or shared VM. A boot that hangs fails with vmctl's BootTimeoutError well before.
 */
export const VM_BOOT_BUDGET_MS = 10 * 60_000

/** `VMCTL_BOOT_BUDGET_MS`: the boot budget in place of VM_BOOT_BUDGET_MS (a CI that wants a hung boot to fail sooner). */
export const BOOT_BUDGET_ENV = 'VMCTL_BOOT_BUDGET_MS'

/** The boot budget: VMCTL_BOOT_BUDGET_MS when set (a whole number of ms above 0), else VM_BOOT_BUDGET_MS. */
export function bootBudgetMs(env: NodeJS.ProcessEnv = process.env): number {
  const value = env[BOOT_BUDGET_ENV]
  if (value === undefined || value === '') return VM_BOOT_BUDGET_MS
  const ms = Number(value)
  if (!Number.isInteger(ms) || ms <= 0)
    throw new Error(
      `${BOOT_BUDGET_ENV}=${value} is not a whole number of milliseconds above 0. Fix: set it to one (${VM_BOOT_BUDGET_MS} is the default), or unset it`,
    )
  return ms
}

/** Inline options, or the path of a JSON file holding them (relative to the working directory). */
export type VmOptionsInput = VmOptions | string

export function keepRequested(env: NodeJS.ProcessEnv = process.env): boolean {
  return !!env[KEEP_ENV] && env[KEEP_ENV] !== '0'
}

/**
 * Options from a JSON config file or inline. In a file, `kernel` and `hostRoot` paths are relative
 * to the file's directory.
 */
export function loadVmOptions(input: VmOptionsInput | undefined): VmOptions {
  if (input === undefined) return {}
  if (typeof input !== 'string') return input
  const path = resolve(input)
  let parsed: VmOptions
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8')) as VmOptions
  } catch (error) {
    throw new Error(`cannot read VM options from ${path}: ${(error as Error).message}`)
  }
  const near = (p: string | undefined) => (p && !isAbsolute(p) ? resolve(dirname(path), p) : p)
  return {
    ...parsed,
    kernel: near(parsed.kernel),
    hostRoot: typeof parsed.hostRoot === 'string' ? near(parsed.hostRoot) : parsed.hostRoot,
  }
}

/** A VM name a person can recognise in `vmctl ps`: from the test's name, made unique. */
export function testVmName(label: string | undefined): string | undefined {
  if (!label) return undefined
  const slug = label
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 24)
    .replace(/-+$/, '')
  return `${slug || 't'}-${randomBytes(3).toString('hex')}`
}

/**
 * Boots a VM for a test and prints its warnings (once per process). Under VMCTL_KEEP=1 it is
 * persistent (it must outlive the worker if the test fails) and `finishTestVm` destroys it when
 * the test passes.
 */
export async function startTestVm(input: VmOptionsInput | undefined, label?: string): Promise<VM> {
  const options = loadVmOptions(input)
  const named = { ...options, name: options.name ?? testVmName(label) }
  const vm = await (keepRequested() ? VM.upPersistent(named) : VM.up(named))
  printVmWarnings(vm)
  return vm
}

/** The line that says how to reach a kept VM. */
export function keptMessage(vmName: string, env: NodeJS.ProcessEnv = process.env): string {
  const prefix = env.VMCTL_RUNTIME_DIR ? `VMCTL_RUNTIME_DIR=${env.VMCTL_RUNTIME_DIR} ` : ''
  return `${KEEP_ENV}=1: VM ${vmName} is still running. Reach it with: ${prefix}vmctl exec ${vmName} -- sh (remove it with: ${prefix}vmctl down ${vmName})`
}

/**
 * Ends a test's VM. When the test failed, returns what to append to its error: the console and
 * agent log tails, and either how to reach the kept VM or how to keep it next time.
 */
export async function finishTestVm(vm: VM, failed: boolean): Promise<string | undefined> {
  if (!failed) {
    await vm.destroy()
    return undefined
  }
  const diagnostics = await failureDiagnostics(vm)
  if (keepRequested()) {
    await vm.close()
    return `${diagnostics}\n\n${keptMessage(vm.name)}`
  }
  await vm.destroy()
  return `${diagnostics}\n\n(Run with ${KEEP_ENV}=1 to keep the VM of a failing test: vmctl exec NAME -- sh)`
}
