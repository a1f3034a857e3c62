import { existsSync } from 'node:fs'

const SETPRIV = '/usr/bin/setpriv'

/**
 * Runs `command` so that it is SIGKILLed when this supervisor dies, whatever kills it (QEMU and
 * the vsock bridge): the kernel's PR_SET_PDEATHSIG, set by setpriv before it execs the command.
 */
export function withParentDeathSignal(command: string[]): [string, string[]] {
  return existsSync(SETPRIV)
    ? [SETPRIV, ['--pdeathsig', 'KILL', '--', ...command]]
    : [command[0]!, command.slice(1)]
}
