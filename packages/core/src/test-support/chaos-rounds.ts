import { execFileSync, spawn } from 'node:child_process'
import { copyFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs'
import { homedir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { pollUntil, sleep } from '../util/timing.js'

/**
 * Crash safety, measured: a process that boots a VM is SIGKILLed at a random moment, and nothing of
 * that VM (supervisor, QEMU, its directory, a half-made template) may remain 5 s later, nor may the
 * default template be lost or changed. Checked by reading /proc and the directories only: any vmctl
 * command would sweep what a killed run left behind and hide the leak.
 *
 * Runs in a private runtime directory and cache (XDG_CACHE_HOME), so that VMs of other runs on the
 * machine are neither counted nor disturbed; every process of this run carries that cache path in
 * its environment, which is how its leftovers are found whatever their name.
 */

const CHILD = fileURLToPath(new URL('../../test/fixtures/chaos-child.mjs', import.meta.url))
const CLI = fileURLToPath(new URL('../../../cli/dist/main.js', import.meta.url))
/** What the issue asks: gone within 5 s of the kill. */
export const LEAK_AFTER_MS = 5_000
/** Past this a leftover is killed by the harness (so that rounds stay independent and bounded). */
const GIVE_UP_MS = 60_000

export type ChaosKind =
  | 'templates-on'
  | 'restore-window'
  | 'templates-off'
  | 'template-new'
  | 'cli'
  | 'next-vm'
export const CHAOS_KINDS: ChaosKind[] = [
  'templates-on',
  'restore-window',
  'templates-off',
  'template-new',
  'cli',
  // Two VMs made and destroyed, then a third: killed while a spare supervisor starts, while its
  // QEMU for the next VM waits (prestarted-qemu.ts), or while the third VM takes it.
  'next-vm',
]

/** Kill delays (ms after the spawn) drawn uniformly below these: about a boot of that kind here. */
const KILL_WITHIN: Record<ChaosKind, number> = {
  'templates-on': 4_000,
  'restore-window': 400, // after QEMU appears, not after the spawn
  'templates-off': 15_000,
  'template-new': 20_000,
  cli: 4_000,
  'next-vm': 2_000, // the three VMs take ~1.5-1.8 s here
}

export interface ChaosEnvironment {
  base: string
  runtimeDir: string
  cacheHome: string
  cacheDir: string
  env: NodeJS.ProcessEnv
  /** The default template as the warm-up made it. */
  template: TemplatePrint
}

interface TemplatePrint {
  key: string
  files: string[]
  meta: string
  state: string
}

export interface ChaosRound {
  round: number
  kind: ChaosKind
  killAtMs: number
  /** Where the boot was when the kill landed. */
  phase: 'before QEMU' | 'QEMU running' | 'ready' | 'exited'
  /** From the kill until no process and no directory of the VM remained; undefined: not within GIVE_UP_MS. */
  goneMs: number | undefined
  leakedProcesses: string[]
  leakedDirectories: string[]
  template: 'unchanged' | 'lost' | 'changed'
  roundMs: number
}

/** A private runtime directory and cache, with the kernel (and the KVM verdict) of the user's cache. */
export async function chaosEnvironment(): Promise<ChaosEnvironment> {
  // Short: socket paths live under it (107 bytes at most).
  const base = mkdtempSync('/tmp/chaos-')
  const cacheHome = join(base, 'c')
  const cacheDir = join(cacheHome, 'vmctl')
  const runtimeDir = join(base, 'r')
  const shared = join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'vmctl')
  execFileSync('mkdir', ['-p', cacheDir])
  // cp -a: the kernels' `default` link is relative, and stays valid in the copy.
  if (existsSync(join(shared, 'kernels'))) execFileSync('cp', ['-a', join(shared, 'kernels'), cacheDir])
  if (existsSync(join(shared, 'kvm-verdict.json')))
    copyFileSync(join(shared, 'kvm-verdict.json'), join(cacheDir, 'kvm-verdict.json'))
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    XDG_CACHE_HOME: cacheHome,
    VMCTL_CACHE_DIR: undefined,
    VMCTL_RUNTIME_DIR: runtimeDir,
    VMCTL_TEMPLATES: undefined,
  }
  const partial = { base, runtimeDir, cacheHome, cacheDir, env }
  const template = await makeDefaultTemplate(partial)
  return { ...partial, template }
}

export function removeChaosEnvironment(chaos: Pick<ChaosEnvironment, 'base' | 'cacheHome'>): void {
  for (const pid of processesOf(chaos)) kill(pid.pid)
  rmSync(chaos.base, { recursive: true, force: true })
}

/** Boots and destroys one VM with templates on: the template it leaves is the one later rounds guard. */
async function makeDefaultTemplate(chaos: Omit<ChaosEnvironment, 'template'>): Promise<TemplatePrint> {
  const child = spawn(process.execPath, [CHILD, JSON.stringify({ name: 'chaos-warmup' }), 'destroy'], {
    env: chaos.env,
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let output = ''
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk))
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk))
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve))
  if (code !== 0) throw new Error(`the warm-up boot failed (exit ${code}):\n${output}`)
  const keys = templateEntries(chaos.cacheDir).filter((entry) => !entry.includes('.'))
  if (keys.length !== 1)
    throw new Error(`the warm-up left ${keys.length} templates, not 1: ${keys.join(', ')}`)
  return printTemplate(chaos.cacheDir, keys[0]!)!
}

export async function runRound(chaos: ChaosEnvironment, round: number, kind: ChaosKind): Promise<ChaosRound> {
  const started = Date.now()
  const name = `chaos-${round}-${Math.random().toString(36).slice(2, 6)}`
  // The next VM takes the name the spare's QEMU was started under: no name of its own.
  const options: Record<string, unknown> = kind === 'next-vm' ? {} : { name }
  const env = { ...chaos.env }
  if (kind === 'templates-off') env.VMCTL_TEMPLATES = '0'
  // A definition of its own: its template does not exist yet, so this boot makes one.
  if (kind === 'template-new') options.kernelArgs = [`chaos.round=${round}`]
  const child =
    kind === 'cli'
      ? spawn(process.execPath, [CLI, 'run', '--', 'true'], { env, stdio: ['ignore', 'pipe', 'pipe'] })
      : spawn(process.execPath, [CHILD, JSON.stringify(options), ...(kind === 'next-vm' ? ['third'] : [])], {
          env,
          stdio: ['ignore', 'pipe', 'pipe'],
        })
  let ready = false
  child.stdout!.on('data', (chunk: Buffer) => {
    if (chunk.toString().includes('ready ')) ready = true
  })
  child.stderr!.resume()
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  let qemuSeen = false

  let killAtMs: number
  if (kind === 'restore-window') {
    // Aimed at the restore's first 400 ms: QEMU is up, the state is loading, the guest waking.
    const seen = await until(() => qemuOf(name).length > 0 || child.exitCode !== null, 30_000)
    qemuSeen = seen && child.exitCode === null
    await sleep(Math.random() * KILL_WITHIN[kind])
    killAtMs = Date.now() - started
  } else {
    killAtMs = Math.round(Math.random() * KILL_WITHIN[kind])
    const deadline = started + killAtMs
    // Watched on the way, to say where the kill landed.
    while (Date.now() < deadline && child.exitCode === null) {
      if (!qemuSeen && processesOf(chaos).some((p) => p.command.includes('qemu-system'))) qemuSeen = true
      await sleep(Math.min(50, Math.max(0, deadline - Date.now())))
    }
  }
  const phase: ChaosRound['phase'] =
    child.exitCode !== null ? 'exited' : ready ? 'ready' : qemuSeen ? 'QEMU running' : 'before QEMU'
  const killedAt = Date.now()
  kill(child.pid!)
  await exited

  let leakedProcesses: string[] = []
  let leakedDirectories: string[] = []
  let goneMs: number | undefined
  for (;;) {
    const processes = processesOf(chaos)
    const directories = leftovers(chaos)
    const elapsed = Date.now() - killedAt
    if (processes.length === 0 && directories.length === 0) {
      goneMs = elapsed
      break
    }
    if (elapsed > LEAK_AFTER_MS && leakedProcesses.length + leakedDirectories.length === 0) {
      leakedProcesses = processes.map((p) => `${p.pid} ${p.command.slice(0, 80)}`)
      leakedDirectories = directories
    }
    if (elapsed > GIVE_UP_MS) {
      for (const p of processes) kill(p.pid)
      for (const dir of directories) rmSync(dir, { recursive: true, force: true })
      break
    }
    await sleep(25)
  }
  if (
    goneMs !== undefined &&
    goneMs > LEAK_AFTER_MS &&
    leakedProcesses.length + leakedDirectories.length === 0
  )
    leakedDirectories = ['(gone only after 5 s)']

  const now = printTemplate(chaos.cacheDir, chaos.template.key)
  const template = !now
    ? 'lost'
    : JSON.stringify(now) === JSON.stringify(chaos.template)
      ? 'unchanged'
      : 'changed'
  // Templates of the per-round definitions go; a lost or changed default is made again, so that the
  // next round is measured against a template of its own.
  for (const entry of templateEntries(chaos.cacheDir))
    if (entry !== chaos.template.key)
      rmSync(join(chaos.cacheDir, 'templates', entry), { recursive: true, force: true })
  if (template !== 'unchanged') {
    rmSync(join(chaos.cacheDir, 'templates', chaos.template.key), { recursive: true, force: true })
    chaos.template = await makeDefaultTemplate(chaos)
  }
  return {
    round,
    kind,
    killAtMs,
    phase,
    goneMs,
    leakedProcesses,
    leakedDirectories,
    template,
    roundMs: Date.now() - started,
  }
}

export function summarize(rounds: ChaosRound[]): string {
  const gone = rounds
    .map((r) => r.goneMs)
    .filter((ms): ms is number => ms !== undefined)
    .sort((a, b) => a - b)
  const roundTimes = rounds.map((r) => r.roundMs).sort((a, b) => a - b)
  const count = (predicate: (r: ChaosRound) => boolean) => rounds.filter(predicate).length
  const phases = ['before QEMU', 'QEMU running', 'ready', 'exited']
    .map((phase) => `${phase} ${count((r) => r.phase === phase)}`)
    .join(', ')
  const lines = [
    `rounds: ${rounds.length} (${CHAOS_KINDS.map((k) => `${k} ${count((r) => r.kind === k)}`).join(', ')})`,
    `kills landed: ${phases}`,
    `leaks at ${LEAK_AFTER_MS / 1000} s: ${count((r) => r.leakedProcesses.length > 0)} rounds with processes, ${count((r) => r.leakedDirectories.length > 0)} with directories`,
    `templates lost: ${count((r) => r.template === 'lost')}, changed: ${count((r) => r.template === 'changed')}`,
    `kill to all gone: median ${median(gone)} ms, max ${gone.at(-1) ?? '-'} ms${gone.length < rounds.length ? ` (${rounds.length - gone.length} never within ${GIVE_UP_MS / 1000} s)` : ''}`,
    `time per round: median ${median(roundTimes)} ms, max ${roundTimes.at(-1) ?? '-'} ms`,
  ]
  for (const r of rounds.filter(
    (r) => r.leakedProcesses.length + r.leakedDirectories.length > 0 || r.template !== 'unchanged',
  ))
    lines.push(
      `  round ${r.round} (${r.kind}, killed at ${r.killAtMs} ms, ${r.phase}): template ${r.template}, gone after ${r.goneMs ?? 'never'} ms; ${[...r.leakedProcesses, ...r.leakedDirectories].join('; ')}`,
    )
  return lines.join('\n')
}

export function roundLine(r: ChaosRound): string {
  const bad = r.leakedProcesses.length + r.leakedDirectories.length > 0 || r.template !== 'unchanged'
  return `round ${r.round} ${r.kind}: killed at ${r.killAtMs} ms (${r.phase}), all gone after ${r.goneMs ?? 'never'} ms, template ${r.template}${bad ? ' LEAK' : ''}`
}

function median(sorted: number[]): number | string {
  return sorted.length ? sorted[Math.floor(sorted.length / 2)]! : '-'
}

/** Processes of this chaos run: the private cache path is in their environment (QEMU inherits it). */
function processesOf(chaos: Pick<ChaosEnvironment, 'cacheHome'>): { pid: number; command: string }[] {
  const marker = `XDG_CACHE_HOME=${chaos.cacheHome}\0`
  const found: { pid: number; command: string }[] = []
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    const pid = Number(entry)
    if (pid === process.pid) continue
    try {
      if (!readFileSync(`/proc/${pid}/environ`, 'latin1').includes(marker)) continue
      const command = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ').trim()
      if (command) found.push({ pid, command })
    } catch {}
  }
  return found
}

function qemuOf(name: string): number[] {
  const found: number[] = []
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    try {
      const command = readFileSync(`/proc/${entry}/cmdline`, 'utf8')
      if (command.includes('qemu-system') && command.includes(`vmctl_hostname=${name} `))
        found.push(Number(entry))
    } catch {}
  }
  return found
}

/** VM directories, spare supervisors' QEMU socket directories and half-made templates. */
function leftovers(chaos: Pick<ChaosEnvironment, 'runtimeDir' | 'cacheDir'>): string[] {
  const found: string[] = []
  for (const dir of [join(chaos.runtimeDir, 'vms'), join(chaos.runtimeDir, 'spare-qemu')])
    if (existsSync(dir)) found.push(...readdirSync(dir).map((entry) => join(dir, entry)))
  for (const entry of templateEntries(chaos.cacheDir))
    if (entry.includes('.')) found.push(join(chaos.cacheDir, 'templates', entry))
  return found
}

function templateEntries(cacheDir: string): string[] {
  try {
    return readdirSync(join(cacheDir, 'templates'))
  } catch {
    return []
  }
}

function printTemplate(cacheDir: string, key: string): TemplatePrint | undefined {
  const dir = join(cacheDir, 'templates', key)
  try {
    const print = (file: string) => {
      const stat = statSync(join(dir, file))
      return `${stat.ino}@${stat.mtimeMs}`
    }
    // last-used is rewritten by every restore: bookkeeping, not the template.
    const files = readdirSync(dir).filter((file) => file !== 'last-used')
    return { key, files: files.sort(), meta: print('meta.json'), state: print('state') }
  } catch {
    return undefined
  }
}

function kill(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL')
  } catch {}
}

async function until(predicate: () => boolean, timeoutMs: number): Promise<boolean> {
  return (await pollUntil(predicate, { timeoutMs, everyMs: 5 })) === true
}
