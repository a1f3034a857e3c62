import { createReadStream } from 'node:fs'
import { open } from 'node:fs/promises'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { createGunzip } from 'node:zlib'
import * as tar from 'tar'
import { readArMembers } from './ar-archive.js'
import { unxzParallel } from './parallel-unxz.js'

/**
 * Extracts the files of a .deb's data archive that `keep` accepts (paths without the leading
 * "./", e.g. `boot/vmlinuz-6.1.0-57-amd64`) into `dest`: the ar member `data.tar.xz` (what Debian
 * builds today), `.gz` or uncompressed, streamed through the decompressor into node-tar. No dpkg,
 * no maintainer scripts.
 */
export async function unpackDebData(
  deb: string,
  dest: string,
  keep: (path: string) => boolean,
): Promise<void> {
  const members = await readArMembers(deb)
  const data = members.find((m) => m.name.startsWith('data.tar'))
  if (!data)
    throw new Error(`${deb} has no data.tar member (members: ${members.map((m) => m.name).join(', ')})`)
  const raw = () => createReadStream(deb, { start: data.offset, end: data.offset + data.size - 1 })
  // Every stage inside the pipeline: an error anywhere ends it, and each stream is closed.
  let stages: Readable[]
  // Read whole (71 MB for the kernel) to decode its blocks on several threads.
  if (data.name === 'data.tar.xz')
    stages = [Readable.from(unxzParallel(await readRange(deb, data.offset, data.size)))]
  else if (data.name === 'data.tar.gz') stages = [raw(), createGunzip()]
  else if (data.name === 'data.tar') stages = [raw()]
  else throw new Error(`${deb}: ${data.name} is compressed in a way vmctl does not unpack (xz and gzip are)`)
  await pipeline([
    ...stages,
    tar.x({
      cwd: dest,
      strict: true,
      preserveOwner: false,
      filter: (path) => keep(path.replace(/^\.\//, '')),
    }),
  ])
}

async function readRange(path: string, offset: number, size: number): Promise<Buffer> {
  const file = await open(path, 'r')
  try {
    const buffer = Buffer.alloc(size)
    const { bytesRead } = await file.read(buffer, 0, size, offset)
    if (bytesRead !== size) throw new Error(`${path} is shorter than its ar header says`)
    return buffer
  } finally {
    await file.close()
  }
}
