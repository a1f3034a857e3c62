import { copyFileSync, existsSync, linkSync, mkdirSync, mkdtempSync, readdirSync, symlinkSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { cacheDir } from '../paths.js'

/**
 * A cache directory of a test file's own whose templates directory only that file writes: the
 * shared kernel, runtime disks and initramfs linked in (nothing is rebuilt), and the host's KVM
 * verdict copied (no probe boot runs). Call it in beforeAll; the caller sets VMCTL_CACHE_DIR.
 */
export function linkedCache(prefix: string): string {
  const cache = mkdtempSync(join(tmpdir(), prefix))
  const shared = cacheDir()
  if (existsSync(join(shared, 'kernels'))) symlinkSync(join(shared, 'kernels'), join(cache, 'kernels'))
  for (const dir of ['runtime', 'initramfs']) {
    mkdirSync(join(cache, dir))
    if (!existsSync(join(shared, dir))) continue
    for (const file of readdirSync(join(shared, dir)))
      if (!/\.(partial|staging)/.test(file)) linkSync(join(shared, dir, file), join(cache, dir, file))
  }
  if (existsSync(join(shared, 'kvm-verdict.json')))
    copyFileSync(join(shared, 'kvm-verdict.json'), join(cache, 'kvm-verdict.json'))
  return cache
}
