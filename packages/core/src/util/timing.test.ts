import { describe, expect, it } from 'vitest'
import { pollUntil, sleep } from './timing.js'

describe('pollUntil', () => {
  it('returns the first value an attempt yields', async () => {
    let calls = 0
    const value = await pollUntil(() => (++calls >= 3 ? `after ${calls}` : undefined), {
      timeoutMs: 1000,
      everyMs: 1,
    })
    expect(value).toBe('after 3')
  })

  it('treats a throwing attempt as not yet', async () => {
    let calls = 0
    const value = await pollUntil(
      () => {
        if (++calls < 2) throw new Error('not there')
        return true
      },
      { timeoutMs: 1000, everyMs: 1 },
    )
    expect(value).toBe(true)
  })

  it('gives up with undefined when the time runs out', async () => {
    const started = Date.now()
    expect(await pollUntil(() => false, { timeoutMs: 30, everyMs: 5 })).toBeUndefined()
    expect(Date.now() - started).toBeGreaterThanOrEqual(25)
  })

  it('stops early when stopIf says so', async () => {
    let calls = 0
    const value = await pollUntil(() => (++calls, undefined), {
      timeoutMs: 5000,
      everyMs: 1,
      stopIf: () => calls >= 2,
    })
    expect(value).toBeUndefined()
    expect(calls).toBe(2)
  })
})

describe('sleep', () => {
  it('rejects when aborted', async () => {
    await expect(sleep(10_000, AbortSignal.timeout(5))).rejects.toThrow()
  })
})
