import { type ExecResult, formatListeningPort, type VM } from '@vmctl/core'

/**
 * What vitest's and jest's `expect.extend()` both take: `pass`, and a message for the case the
 * assertion fails (which, under `.not`, is the passing case).
 */
export interface MatcherResult {
  pass: boolean
  message: () => string
  actual?: unknown
  expected?: unknown
}

/** The matchers' signatures, for declaration merging in the adapters. */
export interface VmMatchers<R = unknown> {
  /** The command exited 0 (not killed, not timed out). */
  toSucceed(): R
  /** The command exited with `code`. */
  toFailWith(code: number): R
  /** stdout equals the string (a trailing newline is ignored) or matches the RegExp. */
  toHaveStdout(expected: string | RegExp): R
  /** The path exists in the guest; with `content`, the file's text equals it or matches it. */
  toHaveFile(path: string, content?: string | RegExp): Promise<R>
  /** Something listens on this TCP port in the guest (any address, IPv4 or IPv6). */
  toHaveListeningPort(port: number): Promise<R>
  /** A process runs whose name (comm or argv[0]'s basename) equals the string, or whose command line matches the RegExp. */
  toHaveProcess(name: string | RegExp): Promise<R>
  /** An interface has this address ("10.0.2.15", or with its prefix "10.0.2.15/24"). */
  toHaveIpAddress(address: string): Promise<R>
}

type ResultLike = Pick<ExecResult, 'command' | 'exitCode' | 'stdout' | 'stderr'> &
  Partial<Pick<ExecResult, 'signal' | 'timedOut'>>
type VmLike = Pick<VM, 'exec' | 'name' | 'info' | 'listeningPorts'>

const MAX_SHOWN = 3000

function isResult(value: unknown): value is ResultLike {
  return typeof value === 'object' && value !== null && 'exitCode' in value && 'stdout' in value
}

function isVm(value: unknown): value is VmLike {
  return typeof value === 'object' && value !== null && typeof (value as VmLike).exec === 'function'
}

function text(output: unknown): string {
  return Buffer.isBuffer(output) ? output.toString('utf8') : String(output ?? '')
}

function clip(value: string): string {
  const trimmed = value.trimEnd()
  return trimmed.length > MAX_SHOWN ? `…${trimmed.slice(-MAX_SHOWN)}` : trimmed
}

function section(title: string, body: string): string {
  const shown = clip(body)
  return `\n--- ${title} ---\n${shown || '(empty)'}`
}

function outcome(result: ResultLike): string {
  if (result.timedOut) return 'timed out'
  if (result.signal) return `was killed by ${result.signal}`
  return `exited with ${result.exitCode}`
}

function notAResult(name: string, received: unknown): MatcherResult {
  const hint =
    typeof (received as Promise<unknown>)?.then === 'function'
      ? 'got a Promise: await the command first, expect(await vm.exec(...))'
      : `got ${typeof received}`
  return { pass: false, message: () => `${name} expects the result of vm.exec(); ${hint}` }
}

function notAVm(name: string, received: unknown): MatcherResult {
  return {
    pass: false,
    message: () => `${name} expects a VM, expect(vm).${name}(...); got ${typeof received}`,
  }
}

export function toSucceed(this: unknown, received: unknown): MatcherResult {
  if (!isResult(received)) return notAResult('toSucceed', received)
  const pass = received.exitCode === 0 && !received.signal && !received.timedOut
  return {
    pass,
    message: () =>
      pass
        ? `expected \`${received.command}\` to fail, but it exited with 0${section('stdout', text(received.stdout))}`
        : `expected \`${received.command}\` to succeed, but it ${outcome(received)}${section('stdout', text(received.stdout))}${section('stderr', text(received.stderr))}`,
  }
}

export function toFailWith(this: unknown, received: unknown, code: number): MatcherResult {
  if (!isResult(received)) return notAResult('toFailWith', received)
  const pass = received.exitCode === code
  return {
    pass,
    actual: received.exitCode,
    expected: code,
    message: () =>
      pass
        ? `expected \`${received.command}\` not to exit with ${code}, but it did`
        : `expected \`${received.command}\` to exit with ${code}, but it ${outcome(received)}${section('stdout', text(received.stdout))}${section('stderr', text(received.stderr))}`,
  }
}

export function toHaveStdout(this: unknown, received: unknown, expected: string | RegExp): MatcherResult {
  if (!isResult(received)) return notAResult('toHaveStdout', received)
  const stdout = text(received.stdout)
  const pass =
    expected instanceof RegExp || Object.prototype.toString.call(expected) === '[object RegExp]'
      ? new RegExp(expected).test(stdout)
      : stdout === expected || stdout === `${expected}\n`
  return {
    pass,
    actual: stdout,
    expected,
    message: () =>
      `expected the stdout of \`${received.command}\` ${pass ? 'not ' : ''}to ${typeof expected === 'string' ? 'equal' : 'match'} ${typeof expected === 'string' ? JSON.stringify(expected) : String(expected)}; the command ${outcome(received)}${section('stdout', stdout)}${pass ? '' : section('stderr', text(received.stderr))}`,
  }
}

export async function toHaveFile(
  this: unknown,
  received: unknown,
  path: string,
  content?: string | RegExp,
): Promise<MatcherResult> {
  if (!isVm(received)) return notAVm('toHaveFile', received)
  const probe = await received.exec(['sh', '-c', 'test -e "$1" && echo yes || echo no', 'sh', path], {
    reject: false,
  })
  const exists = probe.stdout.trim() === 'yes'
  let pass = exists
  let actualContent: string | undefined
  if (exists && content !== undefined) {
    const read = await received.exec(['cat', path], { reject: false })
    actualContent = read.stdout
    pass =
      read.exitCode === 0 &&
      (typeof content === 'string'
        ? actualContent === content || actualContent === `${content}\n`
        : new RegExp(content).test(actualContent))
  }
  const listing = async () => {
    const parent = path.replace(/\/[^/]*\/?$/, '') || '/'
    const ls = await received.exec(['ls', '-la', parent], { reject: false })
    return section(`ls -la ${parent}`, ls.exitCode === 0 ? ls.stdout : ls.stderr)
  }
  const shownListing = !exists ? await listing() : ''
  return {
    pass,
    message: () => {
      if (!exists) return `expected VM ${received.name} to have ${path}, but it does not exist${shownListing}`
      if (content === undefined) return `expected VM ${received.name} not to have ${path}, but it exists`
      return `expected ${path} in VM ${received.name} ${pass ? 'not ' : ''}to ${typeof content === 'string' ? `contain exactly ${JSON.stringify(content)}` : `match ${String(content)}`}${section(`${path}`, actualContent ?? '')}`
    },
  }
}

/** Local TCP ports in LISTEN state, from /proc/net/tcp{,6} (no ss or netstat needed in the guest). */
export async function toHaveListeningPort(
  this: unknown,
  received: unknown,
  port: number,
): Promise<MatcherResult> {
  if (!isVm(received)) return notAVm('toHaveListeningPort', received)
  const ports = await received.listeningPorts()
  const pass = ports.some((entry) => entry.port === port)
  const shown = ports
    .sort((a, b) => a.port - b.port)
    .map(formatListeningPort)
    .join('\n')
  return {
    pass,
    message: () =>
      `expected VM ${received.name} ${pass ? 'not ' : ''}to listen on TCP port ${port}${section('listening TCP ports', shown || '(none)')}`,
  }
}

/** pid, comm and command line of every process, read from /proc with the guest's sh. */
async function processes(vm: VmLike): Promise<Array<{ pid: number; comm: string; args: string }>> {
  const script = `for d in /proc/[0-9]*; do c=$(cat $d/comm 2>/dev/null) || continue; a=$(tr "\\0" " " < $d/cmdline 2>/dev/null); printf "%s\\t%s\\t%s\\n" "\${d#/proc/}" "$c" "$a"; done`
  const { stdout } = await vm.exec(['sh', '-c', script], { reject: false })
  return stdout
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const [pid = '', comm = '', args = ''] = line.split('\t')
      return { pid: Number(pid), comm, args: args.trim() }
    })
    .sort((a, b) => a.pid - b.pid)
}

export async function toHaveProcess(
  this: unknown,
  received: unknown,
  name: string | RegExp,
): Promise<MatcherResult> {
  if (!isVm(received)) return notAVm('toHaveProcess', received)
  const list = await processes(received)
  const pass = list.some((p) =>
    typeof name === 'string'
      ? p.comm === name || (p.args.split(' ')[0] ?? '').split('/').pop() === name
      : new RegExp(name).test(p.args || p.comm),
  )
  const shown = list.map((p) => `${String(p.pid).padStart(6)} ${p.args || `[${p.comm}]`}`).join('\n')
  return {
    pass,
    message: () =>
      `expected VM ${received.name} ${pass ? 'not ' : ''}to run a process ${typeof name === 'string' ? `named ${JSON.stringify(name)}` : `matching ${String(name)}`}${section('processes', shown)}`,
  }
}

export async function toHaveIpAddress(
  this: unknown,
  received: unknown,
  address: string,
): Promise<MatcherResult> {
  if (!isVm(received)) return notAVm('toHaveIpAddress', received)
  const info = await received.info()
  const [wanted, wantedPrefix] = address.split('/')
  const pass = info.addresses.some(
    (a) => a.address === wanted && (wantedPrefix === undefined || String(a.prefix) === wantedPrefix),
  )
  const shown = info.addresses.map((a) => `${a.interface.padEnd(12)} ${a.address}/${a.prefix}`).join('\n')
  return {
    pass,
    message: () =>
      `expected VM ${received.name} ${pass ? 'not ' : ''}to have address ${address}${section('addresses', shown || '(none)')}`,
  }
}

/** Every matcher, for `expect.extend(vmMatchers)` in any runner that takes jest-style matchers. */
export const vmMatchers = {
  toSucceed,
  toFailWith,
  toHaveStdout,
  toHaveFile,
  toHaveListeningPort,
  toHaveProcess,
  toHaveIpAddress,
}
