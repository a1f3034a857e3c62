import { readdirSync, readFileSync } from 'node:fs'
import { join, sep } from 'node:path'
import { vmsDir } from '../paths.js'
import { launchSpecsIn } from '../read-launch-spec.js'

/**
 * The module trees in `$CACHE/kernels/custom` (custom-modules.ts) that a VM uses now, by key. A VM
 * in kernel mode reads its modules through the host root at that path for as long as it runs
 * (modprobe in the guest), so `vmctl kernel prune` must keep them. Two sources, since VMs of other
 * runtime directories (each test run has its own) are not in this one's list:
 * - every process on the host whose arguments carry `vmctl_modules=PATH` (QEMU's -append, for a
 *   booted VM and for one restored from a template alike: the path is the current one, passed again
 *   at each restore);
 * - the launch specs of this runtime directory's VMs, which name the tree before QEMU starts (all
 *   of them, running or not: keeping a tree too many costs a few MB, one too few a VM's modules).
 * A template holds no path: a VM restored from it resolves its kernel again, and a pruned tree is
 * made anew under the same key (it is keyed by the modules' content) before the restore.
 */
export function customTreesInUse(cacheDir: string, env: NodeJS.ProcessEnv = process.env): Set<string> {
  const base = join(cacheDir, 'kernels', 'custom') + sep
  const keys = new Set<string>()
  const note = (path: string | undefined) => {
    if (path?.startsWith(base)) keys.add(path.slice(base.length).split(sep)[0]!)
  }
  for (const pid of safeReaddir('/proc')) {
    if (!/^\d+$/.test(pid)) continue
    let cmdline: string
    try {
      cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8')
    } catch {
      continue
    }
    for (const match of cmdline.matchAll(/vmctl_modules=([^\s\0]+)/g)) note(match[1])
  }
  try {
    for (const spec of launchSpecsIn(vmsDir(env))) note(spec.kernel.modulesDir)
  } catch {}
  return keys
}

function safeReaddir(dir: string): string[] {
  try {
    return readdirSync(dir)
  } catch {
    return []
  }
}
