import { once } from 'node:events'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, test } from 'vitest'
import { sleep } from '../util/timing.js'
import { resumeAfterSave, startMigration, streamInto } from './migration.js'

let dir = ''
afterEach(() => rmSync(dir, { recursive: true, force: true }))

test('a listener that closes with the state unread after the last byte went out is no uncaught error', async () => {
  // QEMU giving up on a state it cannot load: it stops reading and exits, and the kernel answers
  // the sender's socket with a reset after the send has finished. Unheard, that reset ended the
  // supervisor (vitest fails this file on an uncaught error).
  dir = mkdtempSync(join(tmpdir(), 'vmctl-stream-into-'))
  const socket = join(dir, 'state.sock')
  const state = join(dir, 'state')
  writeFileSync(state, Buffer.alloc(64 << 10, 1))
  let closedUnread = Promise.resolve()
  // Never read: the bytes stay in the kernel's queue, and closing with them there is a reset.
  const server = net.createServer({ pauseOnConnect: true }, (connection) => {
    closedUnread = sleep(200).then(() => {
      connection.destroy()
      server.close()
    })
  })
  await once(server.listen(socket), 'listening')
  await expect(streamInto(socket, state)).resolves.toBeUndefined()
  await closedUnread
  await sleep(100)
})

describe('startMigration', () => {
  /** A QMP that refuses `migrate` as a just-restored QEMU does, `refusals` times, then accepts. */
  function refusingQmp(refusals: number, message = 'QMP GenericError: Migration is not finalized yet') {
    const calls: string[] = []
    return {
      calls,
      execute: async (command: string) => {
        calls.push(command)
        if (calls.length <= refusals) throw new Error(message)
        return {}
      },
    }
  }

  test('waits out a restored QEMU that has not finished its incoming migration', async () => {
    const qmp = refusingQmp(3)
    await startMigration(qmp as never, 'exec:cat > /dev/null')
    expect(qmp.calls).toEqual(['migrate', 'migrate', 'migrate', 'migrate'])
  })

  test('throws any other refusal at once', async () => {
    const qmp = refusingQmp(1, 'QMP GenericError: There is a blocker')
    await expect(startMigration(qmp as never, 'exec:cat > /dev/null')).rejects.toThrow(/blocker/)
    expect(qmp.calls).toEqual(['migrate'])
  })
})

describe('resumeAfterSave', () => {
  test('waits out a QEMU still finishing the save it reported completed; other refusals at once', async () => {
    const calls: string[] = []
    let refusals = 2
    const qmp = {
      execute: async (command: string) => {
        calls.push(command)
        if (refusals-- > 0) throw new Error('QMP GenericError: Migration is not finalized yet')
        return {}
      },
    }
    await resumeAfterSave(qmp as never)
    expect(calls).toEqual(['cont', 'cont', 'cont'])
    const refusing = {
      execute: async () => {
        throw new Error('QMP GenericError: Resetting the Virtual Machine is required')
      },
    }
    await expect(resumeAfterSave(refusing as never)).rejects.toThrow(/Resetting/)
  })
})
