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

  test('the bytes of a partial line longer than the limit are dropped (a peer out of step); what follows still splits', () => {
    const lines = new LineSplitter(8)
    expect(lines.push('x'.repeat(20))).toEqual([])
    expect(lines.push('tail\nok\n')).toEqual(['tail', 'ok'])
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
    expect(decoder.push(encodeMessage({ op: 'attach', lease: true }) + encodeMessage('x'))).toEqual([
      { op: 'attach', lease: true },
      'x',
    ])
  })
})
