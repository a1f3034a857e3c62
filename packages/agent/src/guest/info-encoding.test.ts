import { describe, expect, test } from 'vitest'
import { AgentService, InfoResponse } from '../generated/vmctl/agent/v1/agent.js'
import { infoSerializer } from './info-encoding.js'

const addresses = (count: number): InfoResponse['addresses'] =>
  Array.from({ length: count }, (_, i) => ({
    interface: `eth${i}`,
    address: `10.0.${i}.2`,
    prefix: 24,
    family: 'IPv4',
  }))

const answer = (fields: Partial<InfoResponse>): InfoResponse => ({
  ...InfoResponse.create(),
  kernelRelease: '6.1.0-57-amd64',
  osRelease: 'Debian GNU/Linux 12 (bookworm)',
  uptimeSeconds: 12.5,
  cpus: 2,
  memoryTotalBytes: 1_000_000_000,
  memoryAvailableBytes: 700_000_000,
  hostname: 'vm-1',
  agentVersion: 'dev',
  ...fields,
})

describe('info answers encoded from kept parts', () => {
  test("a run of answers, each changing something or nothing, is the generated codec's bytes", () => {
    const serialize = infoSerializer()
    const kept = addresses(2)
    const run: InfoResponse[] = [
      answer({ addresses: kept }),
      answer({ addresses: kept, uptimeSeconds: 13.25, memoryAvailableBytes: 699_999_744 }),
      // The same array with an address pushed into it is not looked at again: the agent hands on a
      // new array when the tables change (guest-addresses.ts); a new array is encoded again.
      answer({ addresses: addresses(3) }),
      answer({ addresses: kept, hostname: 'renamed' }),
      answer({ addresses: kept, osRelease: '' }),
      answer({ addresses: kept, kernelRelease: 'é' }),
      answer({ addresses: kept, cpus: 4 }),
      answer({ addresses: kept, agentVersion: '1.2.3' }),
      // Defaults are not written; NaN is; large and one-byte varints.
      answer({ addresses: [], uptimeSeconds: 0, memoryAvailableBytes: 0, cpus: 0, hostname: '' }),
      answer({ addresses: kept, uptimeSeconds: Number.NaN }),
      answer({
        addresses: kept,
        memoryTotalBytes: Number.MAX_SAFE_INTEGER,
        memoryAvailableBytes: 127,
        cpus: 128,
      }),
      answer({ addresses: kept, memoryTotalBytes: 2 ** 32, cpus: 0xffffffff }),
    ]
    // Each after the plain answer, so that each change alone must be seen.
    for (const message of run.flatMap((changed) => [answer({ addresses: kept }), changed])) {
      const bytes = serialize(message)
      expect(bytes.toString('hex')).toBe(AgentService.info.responseSerialize(message).toString('hex'))
      expect(InfoResponse.decode(bytes)).toEqual(message)
    }
  })

  test('a count out of range throws as the generated codec does, and the next answer is whole', () => {
    const serialize = infoSerializer()
    expect(() => AgentService.info.responseSerialize(answer({ cpus: -1 }))).toThrow()
    expect(() => serialize(answer({ cpus: -1 }))).toThrow()
    const message = answer({ addresses: addresses(1) })
    expect(serialize(message).equals(AgentService.info.responseSerialize(message))).toBe(true)
  })

  test('an answer is its own buffer: the next one does not overwrite it', () => {
    const serialize = infoSerializer()
    const kept = addresses(1)
    const first = serialize(answer({ addresses: kept, uptimeSeconds: 1 }))
    const copy = Buffer.from(first)
    serialize(answer({ addresses: kept, uptimeSeconds: 2 }))
    expect(first.equals(copy)).toBe(true)
  })
})
