import { describe, expect, test } from 'vitest'
import { encodeMessage, LineDecoder, LineSplitter } from './lines.js'

describe('LineSplitter', () => {
  test('whole lines come out as chunks complete them; a partial line waits', () => {
    const lines = new LineSplitter()
    expect(lines.push('{"a":')).toEqual([])
    expect(lines.push('1}\n{"b"')).toEqual(['{"a":1}'])
    expect(lines.push(':2}\n\nlast')).toEqual(['{"b":2}', ''])
    expect(lines.push('\n')).toEqual(['last'])
  })

  test('a line longer than the limit is dropped whole, its tail too (a peer out of step); what follows still splits', () => {
    const lines = new LineSplitter(8)
    expect(lines.push('x'.repeat(20))).toEqual([])
    expect(lines.push('more')).toEqual([])
    expect(lines.push('tail\nok\n')).toEqual(['ok'])
    // Over the limit across chunks, at the end of a chunk with lines before it, or in one chunk.
    expect(lines.push('xxxxx')).toEqual([])
    expect(lines.push('yyyyy\n')).toEqual([])
    expect(lines.push(`a\n${'z'.repeat(9)}`)).toEqual(['a'])
    expect(lines.push('z\nb\n')).toEqual(['b'])
    expect(lines.push(`${'w'.repeat(9)}\nexactly8\n`)).toEqual(['exactly8'])
  })
})

describe('LineDecoder', () => {
  test('NDJSON messages as chunks complete them; blank lines and lines that are not JSON are dropped', () => {
    const decoder = new LineDecoder()
    expect(decoder.push('{"reply":"st')).toEqual([])
    expect(decoder.push('atus"}\n\nnot json\n{"event":"ready"}\n')).toEqual([
      { reply: 'status' },
      { event: 'ready' },
    ])
  })

  test('encodeMessage frames what LineDecoder reads back', () => {
    const decoder = new LineDecoder()
    expect(
      decoder.push(encodeMessage({ op: 'attach', lease: true }) + encodeMessage({ event: 'x' })),
    ).toEqual([{ op: 'attach', lease: true }, { event: 'x' }])
  })

  test('JSON that is not an object is dropped: a peer sending `null` must not throw at `message.op`', () => {
    const decoder = new LineDecoder()
    expect(decoder.push('null\n7\n"op"\n[{"op":"status"}]\ntrue\n{"op":"status"}\n')).toEqual([
      { op: 'status' },
    ])
  })
})
