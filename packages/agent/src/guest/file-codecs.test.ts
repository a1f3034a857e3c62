import { describe, expect, test } from 'vitest'
import {
  AgentService,
  InfoResponse,
  PullResponse,
  type PushRequest,
} from '../generated/vmctl/agent/v1/agent.js'
import { agentServiceWithFileCodecs, DATA_PREFIX_BYTES, dataMessage } from './file-codecs.js'

const service = agentServiceWithFileCodecs()

describe('file codecs without copies', () => {
  test.each([0, 1, 127, 128, 16383, 16384, 1024 * 1024])(
    'a %i-byte data message serializes to the generated codec bytes',
    (length) => {
      const buffer = Buffer.alloc(DATA_PREFIX_BYTES + length, 0xab)
      const message = dataMessage(buffer, length)
      const generated = AgentService.pull.responseSerialize(message)
      expect(service.pull.responseSerialize(message).equals(generated)).toBe(true)
      const decoded = PullResponse.decode(service.pull.responseSerialize(message))
      expect(
        decoded.kind?.$case === 'data' && decoded.kind.value.equals(buffer.subarray(DATA_PREFIX_BYTES)),
      ).toBe(true)
    },
  )

  test("stat messages serialize to the generated codec's bytes", () => {
    const message: PullResponse = {
      kind: { $case: 'stat', value: { size: 5, mode: 0o644, isDirectory: false } },
    }
    expect(service.pull.responseSerialize(message).equals(AgentService.pull.responseSerialize(message))).toBe(
      true,
    )
  })

  test("info's answers, one after another in the kept writer, are the generated codec's bytes", () => {
    const answer = (addresses: number, hostname: string): InfoResponse => ({
      ...InfoResponse.create(),
      kernelRelease: '6.1.0',
      uptimeSeconds: 12.5,
      cpus: 2,
      memoryTotalBytes: 2 ** 33 + 5,
      addresses: Array.from({ length: addresses }, (_, i) => ({
        interface: `eth${i}`,
        address: `10.0.${i}.2`,
        prefix: 24,
        family: 'IPv4',
      })),
      hostname,
    })
    for (const message of [answer(40, 'a'.repeat(300)), answer(1, 'vm'), answer(0, ''), answer(3, 'é')]) {
      const bytes = service.info.responseSerialize(message)
      expect(bytes.equals(AgentService.info.responseSerialize(message))).toBe(true)
      expect(InfoResponse.decode(bytes)).toEqual(message)
    }
    // An encode that throws halfway leaves nothing behind for the next answer.
    expect(() => service.info.responseSerialize({ ...answer(2, 'x'), cpus: -1 })).toThrow()
    expect(
      service.info
        .responseSerialize(answer(1, 'vm'))
        .equals(AgentService.info.responseSerialize(answer(1, 'vm'))),
    ).toBe(true)
  })

  test.each([0, 1, 200, 70000])('a pushed %i-byte data message decodes to the same bytes', (length) => {
    const data = Buffer.alloc(length, 0xcd)
    const wire = AgentService.push.requestSerialize({ kind: { $case: 'data', value: data } })
    const decoded = service.push.requestDeserialize(wire)
    expect(decoded.kind?.$case === 'data' && decoded.kind.value.equals(data)).toBe(true)
  })

  test('a pushed header, or a data field followed by more fields, decodes as the generated codec does', () => {
    const header: PushRequest = {
      kind: {
        $case: 'header',
        value: { path: '/x', mode: 0o600, owner: 'nobody', parents: true, directory: false },
      },
    }
    const wire = AgentService.push.requestSerialize(header)
    expect(service.push.requestDeserialize(wire)).toEqual(header)
    const twice = Buffer.concat([
      AgentService.push.requestSerialize({ kind: { $case: 'data', value: Buffer.from('ab') } }),
      AgentService.push.requestSerialize({ kind: { $case: 'data', value: Buffer.from('cd') } }),
    ])
    expect(service.push.requestDeserialize(twice)).toEqual(AgentService.push.requestDeserialize(twice))
  })

  test.each([0, 1, 200, 1024 * 1024])(
    'a pulled %i-byte data message decodes on the host as a view of what was received',
    (length) => {
      const data = Buffer.alloc(length, 0xef)
      const wire = AgentService.pull.responseSerialize({ kind: { $case: 'data', value: data } })
      const decoded = service.pull.responseDeserialize(wire)
      expect(decoded).toEqual(AgentService.pull.responseDeserialize(wire))
      expect(decoded.kind?.$case === 'data' && decoded.kind.value.buffer).toBe(wire.buffer)
    },
  )

  test('a pulled stat, or a data field followed by more fields, decodes as the generated codec does', () => {
    const stat: PullResponse = {
      kind: { $case: 'stat', value: { size: 9, mode: 0o600, isDirectory: false } },
    }
    const wire = AgentService.pull.responseSerialize(stat)
    expect(service.pull.responseDeserialize(wire)).toEqual(stat)
    const twice = Buffer.concat([
      AgentService.pull.responseSerialize({ kind: { $case: 'data', value: Buffer.from('ab') } }),
      AgentService.pull.responseSerialize({ kind: { $case: 'data', value: Buffer.from('cd') } }),
    ])
    expect(service.pull.responseDeserialize(twice)).toEqual(AgentService.pull.responseDeserialize(twice))
  })
})
