import { describe, expect, it } from 'vitest'
import {
  DEFAULT_HANG_BOUNDS,
  HEALTHY_FIRST_LINE_CPU_MS,
  hangBoundsFor,
  judgeBootProgress,
} from './boot-progress.js'

const bounds = { cpuMs: 10_000, notRunningSamples: 3 }

describe('judgeBootProgress', () => {
  it('a byte from the guest (console or ports) is progress, whatever the CPU time or status', () => {
    expect(judgeBootProgress({ guestBytes: 1, cpuMs: 99_000, status: 'paused' }, 5, bounds)).toEqual({
      verdict: 'progressed',
    })
  })

  it('a silent guest under the CPU bound is waited for, however long the wall time (a loaded host)', () => {
    expect(judgeBootProgress({ guestBytes: 0, cpuMs: 9_999, status: 'running' }, 0, bounds)).toEqual({
      verdict: 'waiting',
      notRunningSamples: 0,
    })
  })

  it('a silent guest that used the CPU bound is hung, and the reason gives the figures', () => {
    const judged = judgeBootProgress({ guestBytes: 0, cpuMs: 10_000, status: 'running' }, 0, bounds)
    expect(judged.verdict).toBe('hung')
    expect(judged).toMatchObject({ reason: expect.stringContaining('QEMU used 10.0 s of CPU time') })
  })

  it('vCPUs not running for the given number of samples in a row is hung, fewer is waiting', () => {
    const sample = { guestBytes: 0, cpuMs: 50, status: 'inmigrate' }
    expect(judgeBootProgress(sample, 0, bounds)).toEqual({ verdict: 'waiting', notRunningSamples: 1 })
    expect(judgeBootProgress(sample, 1, bounds)).toEqual({ verdict: 'waiting', notRunningSamples: 2 })
    const judged = judgeBootProgress(sample, 2, bounds)
    expect(judged).toMatchObject({
      verdict: 'hung',
      reason: expect.stringContaining("QMP status 'inmigrate'"),
    })
  })

  it('a running sample resets the count, and so does an unanswered QMP (a starved QEMU is judged on CPU alone)', () => {
    expect(judgeBootProgress({ guestBytes: 0, cpuMs: 50, status: 'running' }, 2, bounds)).toEqual({
      verdict: 'waiting',
      notRunningSamples: 0,
    })
    expect(judgeBootProgress({ guestBytes: 0, cpuMs: 50, status: undefined }, 2, bounds)).toEqual({
      verdict: 'waiting',
      notRunningSamples: 0,
    })
  })

  it('an unreadable CPU time is no verdict by itself', () => {
    expect(judgeBootProgress({ guestBytes: 0, cpuMs: undefined, status: 'running' }, 0, bounds).verdict).toBe(
      'waiting',
    )
  })

  it('a console the user sent elsewhere (console=) makes silence prove nothing: only QMP counts', () => {
    const bounds = hangBoundsFor(['console=ttyS1'])
    expect(judgeBootProgress({ guestBytes: 0, cpuMs: 500_000, status: 'running' }, 0, bounds).verdict).toBe(
      'waiting',
    )
    expect(judgeBootProgress({ guestBytes: 0, cpuMs: 0, status: 'paused' }, 2, bounds).verdict).toBe('hung')
    expect(hangBoundsFor(['loglevel=7'])).toEqual(DEFAULT_HANG_BOUNDS)
  })

  it('the default bound leaves a healthy boot several times its measured CPU time', () => {
    expect(DEFAULT_HANG_BOUNDS.cpuMs / HEALTHY_FIRST_LINE_CPU_MS).toBeGreaterThanOrEqual(4)
    expect(DEFAULT_HANG_BOUNDS.cpuMs).toBeLessThan(60_000)
  })
  it("with a gdb stub, a debugger's stops wait: attached or interrupted ('paused'), and -s -S's 'prelaunch'", () => {
    const stopped = (status: string, qemuArgs: string[]) =>
      judgeBootProgress({ guestBytes: 0, cpuMs: 50, status }, 99, hangBoundsFor([], qemuArgs)).verdict
    const gdbSocket = ['-gdb', 'unix:/tmp/gdb.sock,server=on,wait=off']
    for (const qemuArgs of [
      ['-s', '-S'],
      ['-S', ...gdbSocket],
    ]) {
      expect(stopped('prelaunch', qemuArgs)).toBe('waiting')
      expect(stopped('paused', qemuArgs)).toBe('waiting')
      // Not a debugger's: an I/O error or a dead guest still counts.
      expect(stopped('io-error', qemuArgs)).toBe('hung')
    }
    expect(stopped('paused', ['-s'])).toBe('waiting')
    expect(stopped('prelaunch', ['-s'])).toBe('hung')
    // -S alone: nothing continues it.
    expect(stopped('prelaunch', ['-S'])).toBe('hung')
    expect(stopped('paused', ['-S'])).toBe('hung')
  })

  it("a guest stopped at a debugger's breakpoint ('debug') or suspended is not hung, however long", () => {
    for (const status of ['debug', 'suspended'])
      expect(judgeBootProgress({ guestBytes: 0, cpuMs: 50, status }, 99, bounds)).toEqual({
        verdict: 'waiting',
        notRunningSamples: 0,
      })
  })
})
