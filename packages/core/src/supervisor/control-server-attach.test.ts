import { mkdtempSync, rmSync } from 'node:fs'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, expect, test } from 'vitest'
import { logger } from '../log.js'
import { encodeMessage } from '../util/lines.js'
import type { ControlHandlers } from './control-dispatch.js'
import { serveRequests } from './control-dispatch.js'
import type { ControlEvent } from './control-protocol.js'
import { ControlServer } from './control-server.js'

const dir = mkdtempSync(join(tmpdir(), 'vmctl-control-attach-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

// A boot that fails before its creator attached (a corrupt template found at once): the supervisor
// keeps its socket until the creator attaches, which then hears the cause in its catch-up. Before,
// the socket closed first and the creator could only say the supervisor "exited without a word".
test('a failure before the creator attached reaches it on attaching; untilAttached waits for that, or its bound', async () => {
  const control = new ControlServer()
  const path = join(dir, 'control.sock')
  await control.listen(path)
  const failed: ControlEvent = {
    event: 'failed',
    error: {
      code: 'BOOT_FAILED',
      message: 'the template is corrupt',
      consoleTail: '',
      accel: 'tcg',
      timeoutMs: 1,
    },
  }
  serveRequests(
    control,
    { status: () => ({}), catchUp: () => [failed] } as unknown as ControlHandlers,
    logger('test'),
  )
  try {
    const started = performance.now()
    await control.untilAttached(50) // nobody: the bound
    expect(performance.now() - started).toBeGreaterThanOrEqual(45)

    const waiting = control.untilAttached(60_000)
    const socket = net.connect(path)
    let received = ''
    socket.on('data', (chunk) => (received += chunk))
    await new Promise((resolve) => socket.once('connect', resolve))
    socket.write(encodeMessage({ op: 'attach', lease: true, id: '1' }))
    await waiting
    await new Promise((resolve) => setTimeout(resolve, 50))
    expect(received).toContain('"event":"failed"')
    expect(received).toContain('the template is corrupt')
    socket.destroy()
  } finally {
    control.close()
  }
})
