import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import {
  CHAOS_KINDS,
  type ChaosEnvironment,
  type ChaosKind,
  type ChaosRound,
  chaosEnvironment,
  removeChaosEnvironment,
  roundLine,
  runRound,
  summarize,
} from '../test-support/chaos-rounds.js'

/**
 * Crash safety: a process booting a VM (library with templates on, off, or making a template, or
 * its third VM, handed a spare supervisor and its QEMU; the CLI's `vmctl run`) SIGKILLed at a
 * random moment, also within 400 ms of QEMU's start during a restore, leaves nothing behind within
 * 5 s and never loses or changes the default template.
 * `pnpm test` runs one round of each kind; `pnpm test:chaos` runs 100 (CHAOS_ROUNDS changes either;
 * CHAOS_KIND=next-vm, say, runs that kind only).
 */
const KINDS = process.env.CHAOS_KIND ? [process.env.CHAOS_KIND as ChaosKind] : CHAOS_KINDS
const ROUNDS = Number(process.env.CHAOS_ROUNDS ?? (process.env.VMCTL_CHAOS === 'full' ? 100 : KINDS.length))

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
        const result = await runRound(chaos, round, KINDS[round % KINDS.length]!)
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
