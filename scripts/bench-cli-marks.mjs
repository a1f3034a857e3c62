// Preloaded into a `vmctl` process by bench-cli.mjs (node --import): at exit, writes the process's
// performance marks (the CLI sets vmctl:* ones), when this preload ran, and the CPU time the process
// used (in all and at each mark), as JSON to the file VMCTL_BENCH_MARKS names. Times are ms since the process's timeOrigin.
import { writeFileSync } from 'node:fs'

const preloaded = performance.now()
const cpu = () => {
  const { user, system } = process.cpuUsage()
  return (user + system) / 1000
}
const preloadedCpu = cpu()
// The CPU time the process had used at each mark, for a CPU breakdown beside the wall-clock one.
const cpuAt = {}
const mark = performance.mark.bind(performance)
performance.mark = (name, options) => {
  cpuAt[name] = cpu()
  return mark(name, options)
}
process.on('exit', () => {
  const exit = performance.now()
  const usage = process.resourceUsage()
  const marks = Object.fromEntries(performance.getEntriesByType('mark').map((m) => [m.name, m.startTime]))
  writeFileSync(
    process.env.VMCTL_BENCH_MARKS,
    JSON.stringify({
      timeOrigin: performance.timeOrigin,
      preloaded,
      marks,
      exit,
      cpuMs: (usage.userCPUTime + usage.systemCPUTime) / 1000,
      preloadedCpu,
      cpuAt,
    }),
  )
})
