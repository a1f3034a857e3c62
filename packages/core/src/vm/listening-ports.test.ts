import { describe, expect, test } from 'vitest'
import { formatListeningPort, parseListeningPorts } from './listening-ports.js'

const TCP = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0
   1: 0100007F:1538 00000000:0000 0A 00000000:00000000 00:00000000 00000000   105        0 2 1 0 100 0 0 10 0
   2: 0F02000A:1F90 0202000A:C350 01 00000000:00000000 00:00000000 00000000     0        0 3 1 0 20 4 30 10 -1
`
const TCP6 = `  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:0016 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4 1 0 100 0 0 10 0
   1: 00000000000000000000000001000000:2382 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 5 1 0 100 0 0 10 0
   2: 000080FE00000000FF005452120000FE:01BB 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 6 1 0 100 0 0 10 0
   3: 0000000000000000FFFF00000100007F:0050 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 7 1 0 100 0 0 10 0
`

describe('parseListeningPorts', () => {
  test('listening sockets of both files, with their addresses; connections are not listed', () => {
    expect(parseListeningPorts(TCP + TCP6)).toEqual([
      { address: '0.0.0.0', port: 8080 },
      { address: '127.0.0.1', port: 5432 },
      { address: '::', port: 22 },
      { address: '::1', port: 9090 },
      { address: 'fe80::5254:ff:fe00:12', port: 443 },
      { address: '::ffff:7f00:1', port: 80 },
    ])
    expect(parseListeningPorts(TCP + TCP6).map(formatListeningPort)).toContain('[::]:22')
  })

  test('nothing listening, or no text, is an empty list', () => {
    expect(parseListeningPorts(TCP.split('\n')[0] ?? '')).toEqual([])
    expect(parseListeningPorts('')).toEqual([])
  })
})
