import { type ChildProcess, spawn } from 'node:child_process'
import { fstatSync, readFileSync, rmSync, statSync } from 'node:fs'

/**
 * How VM.up() hands its supervisor the QEMU command of a template clone (start-vm.ts): JSON of an
 * EarlyQemuPlan on the supervisor's stdin (readEarlyQemuPlan below).
 */
export interface EarlyQemuPlan {
  /** The whole command, its parent-death wrapper included, exactly as QemuProcess would run it. */
  command: string[]
  /** The template RAM file it maps, and that file's identity when the plan was made. */
  ram: { path: string; identity: string }
  /**
   * Where its sockets are when not in its VM's directory: a QEMU a spare supervisor started before
   * its VM was known (prestarted-qemu.ts), in a directory of its own.
   */
  socketDir?: string
}

/** A file's identity: another template made under the same key is another file. */
export function fileIdentity(path: string): string | undefined {
  try {
    const stat = statSync(path)
    return `${stat.dev}:${stat.ino}:${stat.size}:${stat.mtimeMs}`
  } catch {
    return undefined
  }
}

/**
 * A template clone's QEMU, spawned as the supervisor's first act, before it loads the rest of its
 * code: QEMU's own start (~0.1-0.2 s to its QMP socket) then runs beside the supervisor's. The
 * supervisor adopts it (take) when the QEMU it is about to start for the clone has exactly this
 * command and the template's RAM file is still the one it maps; any other QEMU it starts first
 * (a template being made, a cold boot) means this one is killed unused. It dies with the
 * supervisor like any other (the command carries the parent-death wrapper).
 */
export class EarlyQemu {
  private child: ChildProcess | undefined
  private readonly plan: EarlyQemuPlan
  private exited = false

  /** Starts the QEMU that `env` plans, if any (and removes the plan from `env`). */
  static start(raw: string | undefined): EarlyQemu | undefined {
    if (!raw) return undefined
    try {
      const plan = JSON.parse(raw) as EarlyQemuPlan
      if (!Array.isArray(plan.command) || plan.command.length === 0 || typeof plan.ram?.path !== 'string')
        return undefined
      return new EarlyQemu(plan)
    } catch {
      return undefined // not ours to judge: the supervisor starts its QEMU the ordinary way
    }
  }

  private constructor(plan: EarlyQemuPlan) {
    this.plan = plan
    const [file, ...args] = plan.command
    const child = spawn(file!, args, { stdio: ['ignore', 'pipe', 'pipe'] })
    child.once('exit', () => {
      this.exited = true
    })
    child.once('error', () => {
      this.exited = true
    })
    this.child = child
  }

  get pid(): number | undefined {
    return this.child?.pid
  }

  /** Where its sockets are, when not in its VM's directory (EarlyQemuPlan.socketDir). */
  get socketDir(): string | undefined {
    return this.plan.socketDir
  }

  /** Not taken yet, and still running. */
  get waiting(): boolean {
    return (
      this.child !== undefined &&
      !this.exited &&
      this.child.exitCode === null &&
      this.child.signalCode === null
    )
  }

  /**
   * Whether this QEMU runs the command of `plan` (made for the VM directory `vmDirectory`), but
   * for its sockets' directory: a QEMU started before its VM was known that this VM can take.
   */
  stands(plan: EarlyQemuPlan | undefined, vmDirectory: string): boolean {
    const own = this.plan.socketDir
    if (
      !own ||
      !plan?.ram ||
      !Array.isArray(plan.command) ||
      plan.ram.identity !== this.plan.ram.identity ||
      plan.command.length !== this.plan.command.length
    )
      return false
    return plan.command.every(
      (arg, i) => arg.replaceAll(`${vmDirectory}/`, `${own}/`) === this.plan.command[i],
    )
  }

  /**
   * The QEMU, if it runs `command` and maps the template RAM file that is there now; else it is
   * killed, and the caller spawns its own. Once: later QEMUs of this VM are spawned as usual.
   */
  take(command: string[]): ChildProcess | undefined {
    const child = this.child
    this.child = undefined
    if (!child) return undefined
    const same =
      command.length === this.plan.command.length && command.every((arg, i) => arg === this.plan.command[i])
    const running = !this.exited && child.exitCode === null && child.signalCode === null
    if (same && running && fileIdentity(this.plan.ram.path) === this.plan.ram.identity) return child
    child.kill('SIGKILL')
    return undefined
  }

  /** Kills it if it was not taken (the VM goes down first, or another QEMU is wanted). */
  discard(): void {
    this.child?.kill('SIGKILL')
    this.child = undefined
    if (this.plan.socketDir) rmSync(this.plan.socketDir, { recursive: true, force: true })
  }
}

/**
 * The plan VM.up() writes to the supervisor's stdin (start-vm.ts), read to its end: empty when
 * there is none, or when stdin is neither a pipe nor a socket (a supervisor started by hand must
 * not wait on a tty). Node's `stdio: 'pipe'` gives a child a socket (a socketpair), not a FIFO:
 * reading only FIFOs read no plan at all from VM.up(), and every clone's QEMU started late.
 */
export function readEarlyQemuPlan(): string {
  try {
    const stdin = fstatSync(0)
    return stdin.isFIFO() || stdin.isSocket() ? readFileSync(0, 'utf8') : ''
  } catch {
    return ''
  }
}
