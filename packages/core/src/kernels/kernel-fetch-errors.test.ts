import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { release, tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, test } from 'vitest'
import { KernelFetchError, KernelNotFoundError, VM } from '../index.js'
import { fetchDefaultKernel } from './resolve-kernel.js'

const caches: string[] = []
afterAll(() => {
  for (const dir of caches) rmSync(dir, { recursive: true, force: true })
})
function emptyCache(): string {
  const dir = mkdtempSync(join(tmpdir(), 'vmctl-fetch-errors-'))
  caches.push(dir)
  return join(dir, 'vmctl')
}

/** The one error: the cause, and the three ways out. */
function expectTheOneError(error: unknown, cause: RegExp): void {
  expect(error).toBeInstanceOf(KernelFetchError)
  const message = (error as Error).message
  expect(message).toMatch(cause)
  expect(message).toContain('VMCTL_KERNEL')
  expect(message).toContain('HTTPS_PROXY')
  expect(message).toContain('npx vmctl setup')
}

function expectNothingLeft(cache: string): void {
  const kernels = join(cache, 'kernels')
  expect(existsSync(join(kernels, 'default'))).toBe(false)
  expect(existsSync(kernels) ? readdirSync(kernels) : []).toEqual([])
}

/** A local port nothing listens on: one that was just open and is closed again. */
async function closedPort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as { port: number }
  await new Promise((resolve) => server.close(resolve))
  return port
}

describe('kernel fetch failures (no network needed)', () => {
  test('an unreachable mirror fails within seconds with one error naming the fixes', async () => {
    for (const [mirror, cause] of [
      ['http://127.0.0.1:1', /127\.0\.0\.1:1\/dists\/bookworm\/InRelease.*bad ports/],
      [`http://127.0.0.1:${await closedPort()}`, /connection was refused/],
      ['http://no-such-host.invalid', /does not resolve/],
    ] as const) {
      const cache = emptyCache()
      const started = Date.now()
      const error = await fetchDefaultKernel(cache, { VMCTL_DEBIAN_MIRROR: mirror }, () => {}).catch(
        (e: unknown) => e,
      )
      expect(Date.now() - started).toBeLessThan(5_000)
      expectTheOneError(error, cause)
      expectNothingLeft(cache)
    }
  })

  test('a proxy that refuses fails within seconds and says it was the proxy', async () => {
    const cache = emptyCache()
    const started = Date.now()
    const error = await fetchDefaultKernel(cache, { HTTPS_PROXY: 'http://127.0.0.1:1' }, () => {}).catch(
      (e: unknown) => e,
    )
    expect(Date.now() - started).toBeLessThan(5_000)
    expectTheOneError(error, /through the proxy http:\/\/127\.0\.0\.1:1/)
    expectNothingLeft(cache)
  })

  // With no kernel anywhere VM.up() fetches; here the fetch cannot work, so VM.up() fails with it.
  test.skipIf(existsSync(`/boot/vmlinuz-${release()}`))(
    'VM.up() on a host without a kernel surfaces the same error, and an explicit kernel is never replaced by a fetch',
    async () => {
      const saved = { ...process.env }
      const cache = emptyCache()
      Object.assign(process.env, { VMCTL_CACHE_DIR: cache, VMCTL_DEBIAN_MIRROR: 'http://127.0.0.1:1' })
      delete process.env.VMCTL_KERNEL
      try {
        const started = Date.now()
        expectTheOneError(await VM.up().catch((e: unknown) => e), /bad ports/)
        const explicit = await VM.up({ kernel: '/nonexistent/vmlinuz' }).catch((e: unknown) => e)
        expect(explicit).toBeInstanceOf(KernelNotFoundError)
        expect(Date.now() - started).toBeLessThan(10_000)
        expectNothingLeft(cache)
      } finally {
        process.env = saved
      }
    },
  )
})
