import { describe, expect, it } from 'vitest'
import {
  BOOT_WATCH_START,
  type BootWatchState,
  DEFAULT_HANG_BOUNDS,
  HEALTHY_BOOT_CPU_MS,
  HEALTHY_FIRST_LINE_CPU_MS,
  hangBoundsFor,
  judgeBootProgress,
  SOFT_LOCKUP,
} from './boot-progress.js'

const bounds = { cpuMs: 10_000, notRunningSamples: 3 }
/** No byte yet, and `notRunningSamples` samples before this one with the vCPUs not running. */
const silent = (notRunningSamples = 0): BootWatchState => ({ ...BOOT_WATCH_START, notRunningSamples })

describe('judgeBootProgress', () => {
  it("a soft lockup report while QEMU keeps busy is hung, though the guest keeps printing; a starved QEMU's is not", () => {
    const lockup = 'watchdog: BUG: soft lockup - CPU#1 stuck for 45s!'
    const printing: BootWatchState = {
      ...BOOT_WATCH_START,
      guestBytes: 900,
      cpuMsAtLastByte: 47_000,
      cpuMs: 47_100,
    }
    const busy = judgeBootProgress(
      { guestBytes: 1_000, cpuMs: 48_050, status: 'running', lockup },
      printing,
      bounds,
    )
    expect(busy).toMatchObject({ verdict: 'hung' })
    expect((busy as { reason: string }).reason).toBe(
      `the guest kernel reports a CPU stuck ("${lockup}") while QEMU keeps busy (950 ms of CPU in the last second): its boot is stuck, not slow`,
    )
    // The host did not run QEMU for a while: the guest's watchdog fires late, with a false report.
    expect(
      judgeBootProgress({ guestBytes: 1_000, cpuMs: 47_200, status: 'running', lockup }, printing, bounds),
    ).toMatchObject({ verdict: 'progressed', state: { cpuMs: 47_200 } })
    // console= elsewhere: the console is not ours to read.
    const elsewhere = { ...bounds, cpuMs: Number.POSITIVE_INFINITY }
    expect(
      judgeBootProgress({ guestBytes: 1_000, cpuMs: 48_050, status: 'running', lockup }, printing, elsewhere),
    ).toMatchObject({ verdict: 'progressed' })
    expect(SOFT_LOCKUP.test(`[   48.348263] ${lockup} [swapper/0:1]`)).toBe(true)
  })

  it('a byte from the guest (console or ports) is progress, whatever the CPU time or status', () => {
    expect(
      judgeBootProgress({ guestBytes: 1, cpuMs: 99_000, status: 'paused' }, silent(5), bounds),
    ).toMatchObject({
      verdict: 'progressed',
      state: { guestBytes: 1, cpuMsAtLastByte: 99_000, notRunningSamples: 0 },
    })
  })

  it('a silent guest under the CPU bound is waited for, however long the wall time (a loaded host)', () => {
    expect(
      judgeBootProgress({ guestBytes: 0, cpuMs: 9_999, status: 'running' }, silent(), bounds),
    ).toMatchObject({
      verdict: 'waiting',
      state: { notRunningSamples: 0 },
    })
  })

  it('a silent guest that used the CPU bound is hung, and the reason gives the figures', () => {
    const judged = judgeBootProgress({ guestBytes: 0, cpuMs: 10_000, status: 'running' }, silent(), bounds)
    expect(judged.verdict).toBe('hung')
    expect(judged).toMatchObject({ reason: expect.stringContaining('QEMU used 10.0 s of CPU time') })
  })

  it('after bytes, the CPU bound counts from the last new byte: a guest that printed, then went silent, is hung', () => {
    // The first line at 1.5 s of QEMU CPU, then nothing (a stall inside the kernel's boot).
    let state = BOOT_WATCH_START
    const step = (guestBytes: number, cpuMs: number) => {
      const judged = judgeBootProgress({ guestBytes, cpuMs, status: 'running' }, state, bounds)
      if (judged.verdict !== 'hung') state = judged.state
      return judged
    }
    expect(step(60, 1_500).verdict).toBe('progressed')
    expect(step(60, 11_000).verdict).toBe('waiting') // 9.5 s of CPU since the line: under the bound
    expect(step(120, 11_400).verdict).toBe('progressed') // more bytes: the count starts again
    expect(step(120, 21_399).verdict).toBe('waiting')
    const judged = step(120, 21_400)
    expect(judged).toMatchObject({
      verdict: 'hung',
      reason: expect.stringMatching(
        /^QEMU used 10\.0 s of CPU time since the guest's last byte \(120 bytes in all/,
      ),
    })
  })

  it('after a byte the bound is twice as long, grows with the vCPUs, and a bootTimeoutMs above the default lifts it', () => {
    expect(hangBoundsFor([], [], { cpus: 2, slowBootDeclared: false }).afterByteCpuMs).toBe(
      2 * DEFAULT_HANG_BOUNDS.cpuMs,
    )
    expect(hangBoundsFor([], [], { cpus: 8, slowBootDeclared: false }).afterByteCpuMs).toBe(
      8 * DEFAULT_HANG_BOUNDS.cpuMs,
    )
    const declared = hangBoundsFor([], [], { cpus: 2, slowBootDeclared: true })
    expect(declared.afterByteCpuMs).toBe(Number.POSITIVE_INFINITY)
    expect(declared.cpuMs).toBe(DEFAULT_HANG_BOUNDS.cpuMs) // no byte at all is still judged
    const printed: BootWatchState = { notRunningSamples: 0, guestBytes: 80, cpuMsAtLastByte: 1_500 }
    const sample = { guestBytes: 80, cpuMs: 1_500 + DEFAULT_HANG_BOUNDS.cpuMs + 1, status: 'running' }
    expect(judgeBootProgress(sample, printed, hangBoundsFor([])).verdict).toBe('waiting')
    // Before any byte the bound stays the first line's.
    const quiet = { ...sample, guestBytes: 0, cpuMs: DEFAULT_HANG_BOUNDS.cpuMs }
    expect(judgeBootProgress(quiet, BOOT_WATCH_START, hangBoundsFor([])).verdict).toBe('hung')
  })

  it('after bytes, vCPUs that stop running are hung too, named as a silence after output', () => {
    const after: BootWatchState = { notRunningSamples: 2, guestBytes: 300, cpuMsAtLastByte: 2_000 }
    expect(
      judgeBootProgress({ guestBytes: 300, cpuMs: 2_100, status: 'paused' }, after, bounds),
    ).toMatchObject({
      verdict: 'hung',
      reason:
        "QEMU is not running the guest's vCPUs (QMP status 'paused') and the guest has sent nothing more",
    })
  })

  it('vCPUs not running for the given number of samples in a row is hung, fewer is waiting', () => {
    const sample = { guestBytes: 0, cpuMs: 50, status: 'inmigrate' }
    expect(judgeBootProgress(sample, silent(), bounds)).toMatchObject({
      verdict: 'waiting',
      state: { notRunningSamples: 1 },
    })
    expect(judgeBootProgress(sample, silent(1), bounds)).toMatchObject({
      verdict: 'waiting',
      state: { notRunningSamples: 2 },
    })
    const judged = judgeBootProgress(sample, silent(2), bounds)
    expect(judged).toMatchObject({
      verdict: 'hung',
      reason: expect.stringContaining("QMP status 'inmigrate'"),
    })
  })

  it('a running sample resets the count, and so does an unanswered QMP (a starved QEMU is judged on CPU alone)', () => {
    expect(
      judgeBootProgress({ guestBytes: 0, cpuMs: 50, status: 'running' }, silent(2), bounds),
    ).toMatchObject({
      verdict: 'waiting',
      state: { notRunningSamples: 0 },
    })
    expect(
      judgeBootProgress({ guestBytes: 0, cpuMs: 50, status: undefined }, silent(2), bounds),
    ).toMatchObject({
      verdict: 'waiting',
      state: { notRunningSamples: 0 },
    })
  })

  it('an unreadable CPU time is no verdict by itself', () => {
    expect(
      judgeBootProgress({ guestBytes: 0, cpuMs: undefined, status: 'running' }, silent(), bounds).verdict,
    ).toBe('waiting')
  })

  it('a console the user sent elsewhere (console=) makes silence prove nothing: only QMP counts', () => {
    const bounds = hangBoundsFor(['console=ttyS1'])
    expect(
      judgeBootProgress({ guestBytes: 0, cpuMs: 500_000, status: 'running' }, silent(), bounds).verdict,
    ).toBe('waiting')
    expect(judgeBootProgress({ guestBytes: 0, cpuMs: 0, status: 'paused' }, silent(2), bounds).verdict).toBe(
      'hung',
    )
    expect(hangBoundsFor(['loglevel=7'])).toMatchObject(DEFAULT_HANG_BOUNDS)
  })

  it('the default bound leaves a healthy boot several times its measured CPU time', () => {
    expect(DEFAULT_HANG_BOUNDS.cpuMs / HEALTHY_FIRST_LINE_CPU_MS).toBeGreaterThanOrEqual(4)
    // A silence after a byte is bounded the same: over twice a whole healthy boot.
    expect(DEFAULT_HANG_BOUNDS.cpuMs / HEALTHY_BOOT_CPU_MS).toBeGreaterThanOrEqual(2)
    expect(DEFAULT_HANG_BOUNDS.cpuMs).toBeLessThan(60_000)
  })
  it("with a gdb stub, a debugger's stops wait: attached or interrupted ('paused'), and -s -S's 'prelaunch'", () => {
    const stopped = (status: string, qemuArgs: string[]) =>
      judgeBootProgress({ guestBytes: 0, cpuMs: 50, status }, silent(99), hangBoundsFor([], qemuArgs)).verdict
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
      expect(judgeBootProgress({ guestBytes: 0, cpuMs: 50, status }, silent(99), bounds)).toMatchObject({
        verdict: 'waiting',
        state: { notRunningSamples: 0 },
      })
  })
})
