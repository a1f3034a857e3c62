import { expect, test } from 'vitest'
import { lockIn, tryLock } from './cross-process-lock.js'

test('a lock guards one directory: the same entry name in two caches locks independently', async () => {
  const name = `vmctl-test-${process.pid}-${Date.now()}`
  const first = await tryLock(lockIn('/tmp/cache-a', name))
  const otherCache = await tryLock(lockIn('/tmp/cache-b', name))
  const sameCache = await tryLock(lockIn('/tmp/cache-a/.', name))
  try {
    expect(first).toBeTypeOf('function')
    expect(otherCache).toBeTypeOf('function')
    expect(sameCache).toBeUndefined()
  } finally {
    first?.()
    otherCache?.()
  }
  const again = await tryLock(lockIn('/tmp/cache-a', name))
  expect(again).toBeTypeOf('function')
  again?.()
})
