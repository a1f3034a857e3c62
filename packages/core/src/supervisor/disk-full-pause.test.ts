import { EventEmitter } from 'node:events'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, expect, test } from 'vitest'
import type { QmpClient } from '../qemu/qmp-client.js'
import { DiskFullPause, erroredFile, type QueryBlockEntry } from './disk-full-pause.js'

const scratch = mkdtempSync(join(tmpdir(), 'vmctl-disk-full-pause-'))
afterAll(() => rmSync(scratch, { recursive: true, force: true }))

// query-block as QEMU 7.2 answers it for an image-mode VM's `-drive` and a plugged disk's
// `blockdev-add` node (trimmed to the fields read).
const blocks: QueryBlockEntry[] = [
  {
    device: 'runtime',
    qdev: '/machine/peripheral-anon/device[2]/virtio-backend',
    inserted: { 'node-name': '#block154', file: '/run/vms/a/runtime.img' },
  },
  {
    device: 'image',
    qdev: '/machine/peripheral-anon/device[3]/virtio-backend',
    inserted: { 'node-name': '#block391', file: '/run/vms/a/disk.qcow2' },
  },
  { device: '', qdev: 'disk0-dev', inserted: { 'node-name': 'disk0', file: '/data/d.qcow2' } },
]

test('the file of a BLOCK_IO_ERROR: by its root node, else by the -drive id', () => {
  expect(erroredFile({ device: '', 'node-name': 'disk0' }, blocks)).toBe('/data/d.qcow2')
  expect(erroredFile({ device: 'image', 'node-name': '#block391' }, blocks)).toBe('/run/vms/a/disk.qcow2')
  expect(erroredFile({ device: 'image' }, blocks)).toBe('/run/vms/a/disk.qcow2')
  expect(erroredFile({ device: '', 'node-name': 'disk9' }, blocks)).toBeUndefined()
})

/** A QMP that records commands and answers query-block with `blocks`. */
function fakeQmp(file: string) {
  const emitter = new EventEmitter() as EventEmitter & { commands: string[] }
  emitter.commands = []
  Object.assign(emitter, {
    execute: async (command: string) => {
      emitter.commands.push(command)
      return command === 'query-block' ? [{ device: '', inserted: { 'node-name': 'disk0', file } }] : {}
    },
  })
  return emitter
}

test('pauses on a no-space stop only, names the file, and resumes the guest once there is room', async () => {
  const pause = new DiskFullPause(() => {})
  const qmp = fakeQmp(join(scratch, 'd.qcow2'))
  pause.watch(qmp as unknown as QmpClient)
  const paused = new Promise((resolve) => pause.once('paused', resolve))
  // Another I/O error, and a no-space one whose policy is to report it to the guest: QEMU's own.
  qmp.emit('event', 'BLOCK_IO_ERROR', { device: '', 'node-name': 'disk0', action: 'report', nospace: true })
  qmp.emit('event', 'BLOCK_IO_ERROR', { device: '', 'node-name': 'disk0', action: 'stop', nospace: false })
  qmp.emit('event', 'BLOCK_IO_ERROR', { device: '', 'node-name': 'disk0', action: 'stop', nospace: true })
  qmp.emit('event', 'BLOCK_IO_ERROR', { device: '', 'node-name': 'disk0', action: 'stop', nospace: true })
  expect(await paused).toMatchObject({ file: join(scratch, 'd.qcow2'), directory: scratch })
  expect(pause.paused?.file).toBe(join(scratch, 'd.qcow2'))
  // The test's temporary directory has room (more than RESUME_FREE_MIB): the next check resumes.
  await new Promise((resolve) => pause.once('resumed', resolve))
  expect(qmp.commands).toEqual(['query-block', 'cont'])
  expect(pause.paused).toBeUndefined()
  pause.stop()
})
