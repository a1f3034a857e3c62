import { describe, expect, test } from 'vitest'
import { networksByVm } from './network-column.js'

describe('vmctl ps: the NETWORKS column', () => {
  test("each VM's networks with its address and the faults on its link", () => {
    const port = { connected: true, group: undefined, impair: {}, framesIn: 0, framesDropped: 0 }
    const cells = networksByVm([
      {
        name: 'net-a',
        pid: 1,
        subnet: '10.213.0.0/24',
        leases: 2,
        members: [
          {
            member: 'db',
            names: ['db'],
            ip: '10.213.0.10',
            mac: '02:76:6d:00:00:00',
            bound: true,
            port: { ...port, member: 'db', group: 1 },
          },
          {
            member: 'app',
            names: ['app', 'web'],
            ip: '10.213.0.11',
            mac: '02:76:6d:00:00:01',
            bound: true,
            port: { ...port, member: 'app', connected: false, impair: { delayMs: 100, lossPercent: 5 } },
          },
        ],
      },
      {
        name: 'net-b',
        pid: 2,
        subnet: '10.213.1.0/24',
        leases: 1,
        members: [{ member: 'db', names: ['db'], ip: '10.213.1.10', mac: '02:76:6d:01:00:00', bound: true }],
      },
    ])
    expect(cells.get('db')?.map((c) => c.text)).toEqual(['net-a=10.213.0.10[group 1]', 'net-b=10.213.1.10'])
    expect(cells.get('app')?.map((c) => c.text)).toEqual(['net-a=10.213.0.11[down,delay 100ms,loss 5%]'])
    expect(cells.get('app')?.[0]?.json.names).toEqual(['app', 'web'])
  })
})
