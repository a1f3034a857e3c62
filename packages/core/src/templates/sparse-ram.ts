import { open, rename, rm } from 'node:fs/promises'

/**
 * A template's RAM file is as long as the guest's RAM (1 GiB by default) but sparse: only the pages
 * the guest touched take disk space (~190 MB). A copy that does not keep holes, such as a CI cache
 * (GNU tar without --sparse, what actions/cache runs), brings it back dense: 1.1 GB per template,
 * in every later save of the cache too. So a template whose RAM file takes much more space than it
 * did when it was saved is made sparse again, once, by the first VM that uses it.
 */

/** Bytes a file takes on disk (allocated blocks). */
export function allocatedBytes(stat: { blocks: number }): number {
  return stat.blocks * 512
}

/**
 * Whether `allocated` is much more than `saved`: more than a tenth and 8 MiB over (a file system
 * that allocates in larger blocks, or a copy that kept most holes, is left alone).
 */
export function denserThanSaved(allocated: number, saved: number): boolean {
  return allocated > saved * 1.1 + 8 * 2 ** 20
}

const PAGE = 4096
const CHUNK = 1 << 20

/**
 * Rewrites `path` with its all-zero pages as holes (what reads back is the same bytes), into a new
 * file renamed over it: a VM restoring from the old file meanwhile keeps its mapping of the old
 * inode, and a crash leaves the old file whole (the partial copy is removed on failure).
 * Returns the bytes the new file takes on disk.
 */
export async function rewriteSparse(path: string): Promise<number> {
  const partial = `${path}.${process.pid}.sparse`
  const source = await open(path, 'r')
  let target: Awaited<ReturnType<typeof open>> | undefined
  try {
    target = await open(partial, 'w', 0o644)
    const { size } = await source.stat()
    const buffer = Buffer.alloc(CHUNK)
    const zero = Buffer.alloc(PAGE)
    for (let offset = 0; offset < size; ) {
      const { bytesRead } = await source.read(buffer, 0, CHUNK, offset)
      if (bytesRead === 0) break
      // Runs of non-zero pages are written in one call; zero pages are skipped (left as holes).
      let run = -1
      for (let page = 0; page < bytesRead; page += PAGE) {
        const end = Math.min(page + PAGE, bytesRead)
        const isZero = buffer.subarray(page, end).equals(zero.subarray(0, end - page))
        if (!isZero && run < 0) run = page
        if (isZero && run >= 0) {
          await target.write(buffer, run, page - run, offset + run)
          run = -1
        }
      }
      if (run >= 0) await target.write(buffer, run, bytesRead - run, offset + run)
      offset += bytesRead
    }
    await target.truncate(size)
    await target.sync()
    await target.close()
    target = undefined
    await rename(partial, path)
    const rewritten = await open(path, 'r')
    try {
      return allocatedBytes(await rewritten.stat())
    } finally {
      await rewritten.close()
    }
  } catch (error) {
    await target?.close().catch(() => {})
    await rm(partial, { force: true })
    throw error
  } finally {
    await source.close()
  }
}
