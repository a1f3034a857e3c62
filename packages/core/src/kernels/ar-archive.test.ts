import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, test } from 'vitest'
import { readArMembers } from './ar-archive.js'

const dir = mkdtempSync(join(tmpdir(), 'vmctl-ar-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

function header(name: string, size: number): Buffer {
  const field = (value: string, width: number) => value.padEnd(width, ' ')
  return Buffer.from(
    `${field(name, 16)}${field('0', 12)}${field('0', 6)}${field('0', 6)}${field('100644', 8)}${field(String(size), 10)}\`\n`,
    'latin1',
  )
}

/** An ar archive as dpkg writes it, members padded to even offsets. */
function archive(members: Array<[string, Buffer]>, magic = '!<arch>\n'): Buffer {
  const parts: Buffer[] = [Buffer.from(magic, 'latin1')]
  for (const [name, data] of members) {
    parts.push(header(name, data.length), data)
    if (data.length % 2) parts.push(Buffer.from('\n'))
  }
  return Buffer.concat(parts)
}

function write(name: string, data: Buffer): string {
  const path = join(dir, name)
  writeFileSync(path, data)
  return path
}

describe('ar reader', () => {
  test('lists a .deb-like archive: names, offsets and sizes across odd-sized members', async () => {
    const members: Array<[string, Buffer]> = [
      ['debian-binary', Buffer.from('2.0\n')],
      ['control.tar.xz', Buffer.from('odd-sized control')], // 17 bytes: one byte of padding follows
      ['data.tar.xz/', Buffer.from('the data member')], // GNU style: name ends with "/"
    ]
    const bytes = archive(members)
    const path = write('pkg.deb', bytes)
    const listed = await readArMembers(path)
    expect(listed.map((m) => m.name)).toEqual(['debian-binary', 'control.tar.xz', 'data.tar.xz'])
    listed.forEach((member, i) => {
      expect(bytes.subarray(member.offset, member.offset + member.size)).toEqual(members[i]![1])
    })
  })

  test('reads BSD (#1/N) and GNU (//) long names, skips a symbol table', async () => {
    const longName = 'a-name-longer-than-sixteen-bytes.o'
    const bsd = Buffer.concat([Buffer.from(longName), Buffer.from('bsd payload')])
    const table = Buffer.from(`${longName}/\n`)
    const bytes = archive([
      ['/', Buffer.from('\0\0\0\0')],
      ['//', table],
      ['/0', Buffer.from('gnu payload')],
      [`#1/${longName.length}`, bsd],
    ])
    const listed = await readArMembers(write('long.a', bytes))
    expect(listed.map((m) => m.name)).toEqual([longName, longName])
    expect(bytes.toString('latin1', listed[0]!.offset, listed[0]!.offset + listed[0]!.size)).toBe(
      'gnu payload',
    )
    expect(bytes.toString('latin1', listed[1]!.offset, listed[1]!.offset + listed[1]!.size)).toBe(
      'bsd payload',
    )
  })

  test('rejects what is not an ar archive, or is cut short', async () => {
    await expect(readArMembers(write('not.ar', Buffer.from('PK\u0003\u0004 zip')))).rejects.toThrow(
      /not an ar archive/,
    )
    const cut = archive([['data.tar.xz', Buffer.alloc(100)]]).subarray(0, 120)
    await expect(readArMembers(write('cut.deb', cut))).rejects.toThrow(/runs past the end/)
    const bad = Buffer.from(archive([['x', Buffer.from('y')]]))
    bad[8 + 58] = 0x21 // the header's "`\n" terminator
    await expect(readArMembers(write('bad.deb', bad))).rejects.toThrow(/bad ar header/)
  })
})
