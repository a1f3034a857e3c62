import { createHash } from 'node:crypto'
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs'
import { join } from 'node:path'
import { KernelFetchError } from '../errors.js'
import { withLock } from '../host/cross-process-lock.js'
import { SETUP_COMMAND } from '../paths.js'
import { cachedBusyboxPath } from './cached-fetches.js'
import { unpackDebData } from './deb-unpack.js'
import { archiveSources, downloadPackage, findInArchive } from './debian-archive.js'

/**
 * busybox for the guest's init, for hosts without one (Fedora, Arch and Ubuntu do not install it by
 * default): Debian's busybox-static, fetched once into the cache the same way as the kernel.
 * vmctl prefers the host's busybox when there is one (boot-vm.ts): a host that has everything
 * keeps working offline, and its caches stay valid.
 */
export async function ensureBusybox(
  cacheDir: string,
  env: NodeJS.ProcessEnv = process.env,
  say: (line: string) => void = (line) => process.stderr.write(`vmctl: ${line}\n`),
): Promise<string> {
  const path = cachedBusyboxPath(cacheDir)
  if (existsSync(path)) return path
  const dir = join(cacheDir, 'busybox')
  mkdirSync(dir, { recursive: true })
  const lock = `vmctl-busybox-${createHash('sha256').update(dir).digest('hex').slice(0, 16)}`
  return withLock(
    lock,
    async () => {
      if (existsSync(path)) return path
      for (const entry of readdirSync(dir))
        if (entry.startsWith('.stage-')) rmSync(join(dir, entry), { recursive: true, force: true })
      const sources = archiveSources(env)
      const found = await findInArchive(sources, 'busybox-static')
      if (!found)
        throw new KernelFetchError(
          sources.map((s) => s.mirror).join(', '),
          'no busybox-static in the archive',
          SETUP_COMMAND,
        )
      say(`no busybox on this host; fetching Debian's busybox-static ${found.stanza.get('Version')}`)
      const stage = mkdtempSync(join(dir, '.stage-'))
      try {
        const deb = join(stage, 'package.deb')
        await downloadPackage(found, deb)
        const wanted = ['bin/busybox', 'usr/bin/busybox']
        await unpackDebData(deb, stage, (p) => wanted.includes(p))
        const binary = wanted.map((p) => join(stage, p)).find((p) => existsSync(p))
        if (!binary) throw new Error('the busybox-static package has no bin/busybox')
        chmodSync(binary, 0o755)
        writeFileSync(join(dir, 'version'), `${found.stanza.get('Version')}\n`)
        renameSync(binary, path)
        return path
      } finally {
        rmSync(stage, { recursive: true, force: true })
      }
    },
    () => say('waiting for another process fetching busybox'),
  )
}
