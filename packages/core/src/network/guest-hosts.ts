import { lockIn, withLock } from '../host/cross-process-lock.js'
import { logger } from '../log.js'
import { ensureRuntimeDir } from '../paths.js'
import type { MemberInfo } from './network-directory.js'

const log = logger('network')

/** What writing a guest's names needs of a VM handle: its exec (the VM class, not imported here). */
export interface HostsShell {
  exec(command: string, options?: { timeoutMs?: number }): Promise<unknown>
}

/**
 * Attaches to a VM made in another process, by name (`VM.attach`, given by vm.ts: network/ sits
 * below vm/ and imports nothing of it).
 */
export type AttachShell = (name: string) => Promise<HostsShell & { close(): Promise<void> }>

/**
 * Runs `write` (a command that rewrites the VM's /etc/hosts) holding a host-wide lock for that VM,
 * whichever process writes: every writer of a member's names is on this host. A lock in the guest
 * (util-linux `flock`) cost a restored guest 1.4-3.2 s under TCG for its first start over the 9p
 * root, the biggest part of a member's setup; this one costs nothing there.
 */
export function withHostsLock<T>(
  vm: string,
  write: () => Promise<T>,
  env: NodeJS.ProcessEnv = process.env,
): Promise<T> {
  return withLock(lockIn(ensureRuntimeDir(env), `vmctl-hosts-${vm}`), write)
}

/**
 * Writes the networks' names into /etc/hosts of members booted before this one, in whatever
 * process they were made (`own` finds those made in this one). Each write carries the switch's
 * membership version, and a guest keeps only a newer list than it has: two members joining at
 * once, each writing what it saw, leave every guest with the later list.
 */
export async function tellOthers(
  scripts: Map<string, string[]>,
  own: (name: string) => HostsShell | undefined,
  attach: AttachShell,
): Promise<void> {
  if (scripts.size === 0) return
  await Promise.all(
    [...scripts].map(async ([name, list]) => {
      const handle = own(name)
      if (handle) {
        // A member made in this process: its agent connection is warm (a new one costs the guest
        // seconds under TCG). A handle closed (not destroyed) fails here while its VM runs on:
        // then through VM.attach, as for a member of another process.
        try {
          await withHostsLock(name, () => handle.exec(list.join('\n'), { timeoutMs: 60_000 }))
          return
        } catch (error) {
          log(
            "names not written to %s through this process's handle (%s): attaching",
            name,
            (error as Error).message,
          )
        }
      }
      const other = await attach(name).catch(() => undefined) // gone meanwhile: nothing to update
      if (!other) return
      try {
        await withHostsLock(name, () => other.exec(list.join('\n'), { timeoutMs: 60_000 }))
      } catch (error) {
        log('names not written to %s: %s', name, (error as Error).message)
      } finally {
        await other.close()
      }
    }),
  )
}

/**
 * One network's names for /etc/hosts, in a subshell (its early exit ends only itself), run under
 * `withHostsLock`. Shell built-ins only: every program started costs a restored guest under TCG.
 */
export function hostsScript(network: string, version: number, members: MemberInfo[]): string {
  const tag = ` # vmctl-net:${network}`
  const lines = members.map((m) => `${m.ip} ${m.names.join(' ')}${tag}`).join('\\n')
  const versionFile = `/run/vmctl-hosts.${network}.version`
  return `(v=-1; [ -f ${versionFile} ] && read v < ${versionFile}
[ "$v" -lt ${version} ] || exit 0
kept=; [ -f /etc/hosts ] && while IFS= read -r l || [ -n "$l" ]; do
case $l in *'${tag}') ;; *) kept="$kept$l
";; esac; done < /etc/hosts
printf '%s${lines}\\n' "$kept" > /etc/hosts && echo ${version} > ${versionFile})`
}
