// Writes file-seconds.json, the duration of each test file in one whole run, which the slowest-first
// order of vitest.config.ts starts from, from that run's output (vitest prints each file's duration
// when the file ends):
//   node scripts/record-file-seconds.mjs ci.log      (e.g. the log of a fresh clone's .ci/run)
// Files the log does not name keep their old figure; files gone from the repository are dropped.
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))
const log = process.argv[2]
if (!log) {
  console.error('usage: node scripts/record-file-seconds.mjs LOG (the output of a whole pnpm test)')
  process.exit(2)
}
const target = join(root, 'file-seconds.json')
const seconds = existsSync(target) ? JSON.parse(readFileSync(target, 'utf8')) : {}
// " ✓ packages/core/src/vm/vm.vm.test.ts (19 tests) 74413ms", ❯ or × for a file that failed.
const fileLine = /^ [✓❯×] (\S+\.test\.ts) \([^)]*\) (\d+)ms$/
// Colours off: ESC [ ... m sequences.
const colours = new RegExp(`${String.fromCharCode(27)}\\[[0-9;]*m`, 'g')
let read = 0
for (const line of readFileSync(log, 'utf8').replace(colours, '').split('\n')) {
  const match = fileLine.exec(line)
  if (!match) continue
  seconds[match[1]] = Math.round(Number(match[2]) / 1000)
  read++
}
const kept = Object.entries(seconds)
  .filter(([file]) => existsSync(join(root, file)))
  .sort(([a], [b]) => a.localeCompare(b))
writeFileSync(target, `${JSON.stringify(Object.fromEntries(kept), null, 2)}\n`)
console.log(`file-seconds.json: ${read} files from ${log}, ${kept.length} in all`)
