import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import {
  CHAOS_KINDS,
  type ChaosEnvironment,
  type ChaosRound,
  chaosEnvironment,
  removeChaosEnvironment,
  roundLine,
  runRound,
  summarize,
} from '../test-support/chaos-rounds.js'

/**
 * Crash safety: a process booting a VM (library with templates on, off, or making a template; the
 * CLI's `vmctl run`) SIGKILLed at a random moment, also within 400 ms of QEMU's start during a
 * restore, leaves nothing behind within 5 s and never loses or changes the default template.
 * `pnpm test` runs 5 rounds (each kind once); `pnpm test:chaos` runs 100 (CHAOS_ROUNDS changes either).
 */
const ROUNDS = Number(process.env.CHAOS_ROUNDS ?? (process.env.VMCTL_CHAOS === 'full' ? 100 : 5))

describe('vm: chaos, a VM-booting process killed at a random moment', () => {
  let chaos: ChaosEnvironment
  beforeAll(async () => {
    chaos = await chaosEnvironment()
  }, 300_000)
  afterAll(() => {
    if (chaos) removeChaosEnvironment(chaos)
  })

  test(
    `${ROUNDS} rounds: no process, directory or template lost`,
    async () => {
      const rounds: ChaosRound[] = []
      for (let round = 0; round < ROUNDS; round++) {
        const result = await runRound(chaos, round, CHAOS_KINDS[round % CHAOS_KINDS.length]!)
        rounds.push(result)
        console.log(roundLine(result))
      }
      const summary = summarize(rounds)
      console.log(summary)
      const bad = rounds.filter(
        (r) => r.leakedProcesses.length + r.leakedDirectories.length > 0 || r.template !== 'unchanged',
      )
      expect(bad.map(roundLine), summary).toEqual([])
    },
    ROUNDS * 90_000,
  )
})
