import { AgentError, VmctlError } from '@vmctl/core'

/** What the guest agent says when the caller's request names something wrong (a cwd, a user, a path). */
const BAD_REQUEST = ['NOT_FOUND', 'INVALID_ARGUMENT', 'FAILED_PRECONDITION']

/**
 * The exit status for an error: 2 for bad input (flags, options, config, a VM name, a request the
 * guest refused), like any usage error, so a script can tell it from a command that ran and
 * failed; 1 for everything else.
 */
export function exitCodeFor(error: unknown): number {
  const declared = (error as { exitCode?: unknown } | undefined)?.exitCode
  if (typeof declared === 'number') return declared
  if (error instanceof AgentError && BAD_REQUEST.includes(error.grpcCode ?? '')) return 2
  if (error instanceof VmctlError && error.code === 'VM_NOT_FOUND') return 2
  return 1
}
