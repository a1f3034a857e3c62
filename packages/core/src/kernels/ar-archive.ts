import { open } from 'node:fs/promises'

/** A member of an `ar` archive (what a .deb is): its name and where its bytes are in the file. */
export interface ArMember {
  name: string
  offset: number
  size: number
}

const MAGIC = '!<arch>\n'
const HEADER_SIZE = 60

/**
 * Lists the members of an ar archive. A .deb is one: `debian-binary`, `control.tar.*`,
 * `data.tar.*` (deb(5)). Common (System V/GNU) headers; a GNU long-name table or a BSD `#1/N` name
 * are read too, though dpkg writes neither.
 */
export async function readArMembers(path: string): Promise<ArMember[]> {
  const file = await open(path, 'r')
  try {
    const { size: fileSize } = await file.stat()
    const read = async (position: number, length: number): Promise<Buffer> => {
      const buf = Buffer.alloc(length)
      const { bytesRead } = await file.read(buf, 0, length, position)
      return buf.subarray(0, bytesRead)
    }
    if ((await read(0, 8)).toString('latin1') !== MAGIC) throw new Error(`${path} is not an ar archive`)
    const members: ArMember[] = []
    let longNames = ''
    let position = 8
    while (position + HEADER_SIZE <= fileSize) {
      const header = (await read(position, HEADER_SIZE)).toString('latin1')
      if (header.slice(58, 60) !== '`\n') throw new Error(`${path}: bad ar header at offset ${position}`)
      let name = header.slice(0, 16).trimEnd()
      let size = Number.parseInt(header.slice(48, 58).trim(), 10)
      let offset = position + HEADER_SIZE
      if (!Number.isFinite(size) || size < 0 || offset + size > fileSize)
        throw new Error(`${path}: ar member ${JSON.stringify(name)} runs past the end of the file`)
      const next = offset + size + (size % 2) // members are padded to an even offset
      if (name.startsWith('#1/')) {
        const length = Number.parseInt(name.slice(3), 10)
        name = (await read(offset, length)).toString('utf8').replace(/\0+$/, '')
        offset += length
        size -= length
      } else if (name === '//') {
        longNames = (await read(offset, size)).toString('utf8')
        position = next
        continue
      } else if (/^\/\d+$/.test(name)) {
        const start = Number(name.slice(1))
        name = longNames.slice(start, longNames.indexOf('/\n', start))
      } else if (name === '/' || name === '/SYM64/') {
        position = next // the symbol table of a static library
        continue
      } else if (name.endsWith('/')) {
        name = name.slice(0, -1)
      }
      members.push({ name, offset, size })
      position = next
    }
    return members
  } finally {
    await file.close()
  }
}
