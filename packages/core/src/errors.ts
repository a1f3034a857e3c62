/**
 * Failures a user can cause or meet. Each has a stable `code` and a message that names the cause
 * and the fix.
 */
export class VmctlError extends Error {
  readonly code: string
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.code = code
    this.name = new.target.name
  }
}

export class KernelNotFoundError extends VmctlError {
  readonly tried: string[]
  constructor(tried: string[], setupCommand: string) {
    super(
      'KERNEL_NOT_FOUND',
      `no guest kernel found. Tried:\n${tried.map((t) => `  - ${t}`).join('\n')}\nFix: correct the kernel option or VMCTL_KERNEL (a vmlinuz/vmlinux, or a kernel directory), or leave both unset: vmctl then uses Debian's kernel, fetched into the cache on first use (${setupCommand} fetches it ahead of time).`,
    )
    this.tried = tried
  }
}

/**
 * The default guest kernel (or busybox) could not be downloaded from Debian's archive: offline, DNS,
 * a proxy that refused, a mirror that is down, or a download that failed its checksum.
 */
export class KernelFetchError extends VmctlError {
  readonly url: string
  constructor(url: string, reason: string, setupCommand: string, options?: { cause?: unknown }) {
    super(
      'KERNEL_FETCH_FAILED',
      `could not download the guest kernel from Debian's archive (${url}): ${reason}. Fix: point VMCTL_KERNEL at a kernel (a vmlinuz/vmlinux, or a directory with vmlinux, release and lib/modules/RELEASE); behind a proxy set HTTPS_PROXY (and NO_PROXY); set VMCTL_DEBIAN_MIRROR for another Debian mirror; or run ${setupCommand} once where the network works.`,
      options,
    )
    this.url = url
  }
}

export class QemuNotFoundError extends VmctlError {
  constructor(binary: string, path: string | undefined) {
    super(
      'QEMU_NOT_FOUND',
      `${binary} was not found in PATH (${path ?? 'unset'}). Fix: install QEMU (Debian/Ubuntu: sudo apt-get install qemu-system-x86 qemu-utils) or set VMCTL_QEMU to its path.`,
    )
  }
}

/**
 * vmctl runs x86-64 guests on x86-64 Linux hosts. In kernel mode the guest runs the host's own
 * programs (the host's root is its root, over 9p), the guest agent is built from the host's `node`,
 * and the supervisor uses Linux's /proc, prctl and unix sockets: another OS or CPU cannot serve.
 */
export class UnsupportedHostError extends VmctlError {
  readonly platform: string
  readonly arch: string
  constructor(platform: string, arch: string, why: string) {
    super(
      'UNSUPPORTED_HOST',
      `this host is ${platform}/${arch}, and vmctl runs VMs on x86-64 Linux only: ${why}. Fix: run the VM tests on an x86-64 Linux machine: a CI runner such as GitHub's ubuntu-latest (not an -arm runner), or an x86-64 Linux VM of your own.`,
    )
    this.platform = platform
    this.arch = arch
  }
}

/** Bad input (an option, a name already taken): the CLI exits with 2, as for any usage error. */
export class InvalidOptionsError extends VmctlError {
  readonly exitCode = 2
  constructor(message: string) {
    super('INVALID_OPTIONS', message)
  }
}

export class BootTimeoutError extends VmctlError {
  readonly consoleTail: string
  constructor(
    name: string,
    timeoutMs: number,
    accel: string,
    consoleTail: string,
    detail = '',
    /** The CPU time the VM's QEMU used in the wall time it ran, where the supervisor could read it. */
    qemu?: { cpuMs: number; ranMs: number },
  ) {
    super(
      'BOOT_TIMEOUT',
      `VM ${name} did not become ready within ${(timeoutMs / 1000).toFixed(0)} s (${accel}${detail ? `; ${detail}` : ''}). QEMU was stopped.${timeoutAdvice(accel, qemu)}\nLast console lines:\n${indent(consoleTail)}`,
    )
    this.consoleTail = consoleTail
  }
}

/** A guest that used less CPU than this share of the time it had was waiting, not working. */
const IDLE_SHARE = 0.1

/**
 * What to do about a boot timeout. QEMU's CPU time tells a slow boot (a busy machine, TCG: more
 * time helps) from a stuck one (a guest waiting for what never comes: more time does not).
 */
function timeoutAdvice(accel: string, qemu: { cpuMs: number; ranMs: number } | undefined): string {
  const used =
    qemu &&
    ` Its QEMU used ${(qemu.cpuMs / 1000).toFixed(1)} s of CPU time in ${(qemu.ranMs / 1000).toFixed(1)} s`
  if (qemu && qemu.ranMs > 0 && qemu.cpuMs / qemu.ranMs < IDLE_SHARE)
    return `${used}: the guest was waiting, not working (or the host starved it of CPU), so more time is unlikely to help; the console lines below show where it stopped.`
  const slow =
    accel === 'tcg' ? ' Under TCG boots are 5-10x slower; raise bootTimeoutMs if the machine is busy.' : ''
  return used ? `${used}: the guest was working.${slow}` : slow
}

export class BootFailedError extends VmctlError {
  readonly consoleTail: string
  constructor(name: string, reason: string, consoleTail: string) {
    super('BOOT_FAILED', `VM ${name} failed to boot: ${reason}\nLast console lines:\n${indent(consoleTail)}`)
    this.consoleTail = consoleTail
  }
}

/** The guest panicked, QEMU died, or the VM was destroyed while a call was pending. */
export class VmExitedError extends VmctlError {
  readonly consoleTail: string
  constructor(name: string, reason: string, consoleTail: string) {
    super(
      'VM_EXITED',
      `VM ${name} is gone: ${reason}${consoleTail ? `\nLast console lines:\n${indent(consoleTail)}` : ''}`,
    )
    this.consoleTail = consoleTail
  }
}

/**
 * A call on a VM that `vm.stop()` stopped (or that is stopping or starting), or whose QEMU ended
 * without being asked (`cause`: killed from outside, the guest powered off or panicked, with the
 * console's last lines): only `start()` and `destroy()` work on it.
 */
export class VmStoppedError extends VmctlError {
  /** Why QEMU ended, when vmctl did not ask it to. */
  readonly stopCause: string | undefined
  /** The console's last lines, when QEMU ended unasked (absent for a stop vmctl made). */
  readonly consoleTail: string | undefined
  constructor(name: string, state: string, cause?: string, consoleTail?: string) {
    super(
      'VM_STOPPED',
      // While a start, restart or stop is under way, start() would queue behind it and be refused
      // (already running): the fix is to wait for the one in progress.
      state === 'starting'
        ? `VM ${name} is starting (a start() or restart() in progress): calls work again once it is ready. Fix: await the vm.start() or vm.restart() in progress, then call again`
        : state === 'powering-off'
          ? `VM ${name} is powering off (a stop() in progress): only start() and destroy() work on a stopped VM. Fix: await the vm.stop() in progress, then vm.start() (vmctl start ${name})`
          : `VM ${name} is ${state}${cause ? `: its QEMU ended without vmctl asking (${cause})` : ''}: only start() and destroy() work on a stopped VM. Fix: await vm.start() first (vmctl start ${name})${cause && consoleTail ? `\nLast console lines:\n${indent(consoleTail)}` : ''}`,
    )
    this.stopCause = cause
    this.consoleTail = cause ? (consoleTail ?? '') : undefined
  }
}

/**
 * The host's filesystem under vmctl's runtime directory (or its cache) is full or over quota: a VM
 * cannot be made there; or a running VM's disk file cannot grow, and QEMU paused the guest.
 * `directory` is the one to free space in.
 */
export class HostDiskFullError extends VmctlError {
  readonly directory: string
  constructor(directory: string, writing: string, fix: string, options?: { cause?: unknown }) {
    super(
      'HOST_DISK_FULL',
      `no space left on the filesystem of ${directory} (writing ${writing}). Fix: ${fix}`,
      options,
    )
    this.directory = directory
  }
}

/** `waitForPort()`: nothing listened on the port in the guest in time. */
export class PortWaitTimeoutError extends VmctlError {
  readonly port: number
  readonly listening: string[]
  constructor(vmName: string, port: number, timeoutMs: number, listening: string[]) {
    super(
      'PORT_WAIT_TIMEOUT',
      `nothing listened on TCP port ${port} in VM ${vmName} within ${timeoutMs} ms (listening: ${listening.join(', ') || 'nothing'}). Fix: check that the server was started and binds port ${port} (its output: the process's stdout and stderr, or vm.logs()), or raise timeoutMs: a server under TCG emulation starts 5-10x slower than under KVM.`,
    )
    this.port = port
    this.listening = listening
  }
}

/** `waitForCommand()`: the command did not succeed in time; `last` is its last try's result. */
export class CommandWaitTimeoutError extends VmctlError {
  readonly last: {
    exitCode: number | undefined
    signal?: string | undefined
    stdout: string | Buffer
    stderr: string | Buffer
  }
  readonly tries: number
  constructor(
    vmName: string,
    last: {
      command: string
      exitCode: number | undefined
      signal?: string | undefined
      timedOut: boolean
      stdout: string | Buffer
      stderr: string | Buffer
    },
    timeoutMs: number,
    tries: number,
  ) {
    const show = (name: string, text: string | Buffer) =>
      String(text).trim() ? `\n--- ${name} ---\n${String(text).trimEnd().slice(-2000)}` : ''
    const ended = last.timedOut
      ? 'was still running at the end'
      : last.signal
        ? `was killed by ${last.signal}`
        : `exited with code ${last.exitCode}`
    super(
      'COMMAND_WAIT_TIMEOUT',
      `${last.command} did not succeed in VM ${vmName} within ${timeoutMs} ms (${tries} ${tries === 1 ? 'try' : 'tries'}; the last ${ended}). Fix: check its output (below) and what it waits for; or raise timeoutMs: a guest under TCG emulation is 5-10x slower than under KVM.${show('stderr', last.stderr)}${show('stdout', last.stdout)}`,
    )
    this.last = last
    this.tries = tries
  }
}

/** `waitForOutput()`: the process's output did not match in time. */
export class OutputWaitTimeoutError extends VmctlError {
  constructor(
    vmName: string,
    command: string,
    pattern: RegExp,
    timeoutMs: number,
    tail: { stdout: string; stderr: string },
  ) {
    const show = (name: string, text: string) =>
      text.trim() ? `\n--- ${name} (its end) ---\n${text.trimEnd()}` : ''
    super(
      'OUTPUT_WAIT_TIMEOUT',
      `the output of ${command} in VM ${vmName} did not match ${pattern} within ${timeoutMs} ms. Fix: check what it printed (below), the pattern, and whether it prints to the stream waited on; or raise timeoutMs: a server under TCG emulation starts 5-10x slower than under KVM.${show('stderr', tail.stderr)}${show('stdout', tail.stdout)}`,
    )
  }
}

/** A guest file too large for what a call returns it as (a Buffer, a string): refused before it is read. */
export class FileTooLargeError extends VmctlError {
  readonly size: number
  constructor(vmName: string, path: string, size: number, holder: 'a Buffer' | 'a string', limit: number) {
    super(
      'FILE_TOO_LARGE',
      `${path} in VM ${vmName} is ${size} bytes, more than ${holder} holds in this Node (${limit}). Fix: vm.pullTo(path, localPath) streams it to a host file${holder === 'a string' ? ", or vm.readFile(path, 'buffer') gives its bytes" : ''}.`,
    )
    this.size = size
  }
}

export class VmNotFoundError extends VmctlError {
  constructor(name: string) {
    super('VM_NOT_FOUND', `no VM named ${JSON.stringify(name)} is running (see vmctl ps)`)
  }
}

/** A call to the guest agent failed; `grpcCode` is its gRPC status ("NOT_FOUND", ...). */
export class AgentError extends VmctlError {
  grpcCode: string | undefined
  constructor(name: string, message: string, options?: { cause?: unknown; grpcCode?: string }) {
    super('AGENT_ERROR', `VM ${name}: ${message}`, options)
    this.grpcCode = options?.grpcCode
  }
}

export function indent(text: string): string {
  const trimmed = text.trimEnd()
  if (!trimmed) return '  (no console output)'
  return trimmed
    .split('\n')
    .map((line) => `  | ${line}`)
    .join('\n')
}
