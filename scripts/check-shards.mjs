// `pnpm test:shards`: the examples split over SHARDS vitest runs (--shard=i/n, default 2), as a CI
// matrix would run them. Each shard must pass, and together they must run every test of the
// examples exactly once (compared with `vitest list`). Prints each shard's wall time.
import { spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))
const vitest = join(root, 'node_modules/vitest/vitest.mjs')
const SHARDS = Number(process.env.SHARDS ?? 2)
const work = mkdtempSync(join(tmpdir(), 'vmctl-shards-'))

function run(args) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [vitest, ...args], {
      cwd: root,
      stdio: ['ignore', 'pipe', 'inherit'],
    })
    let stdout = ''
    child.stdout.on('data', (chunk) => (stdout += chunk))
    child.on('close', (code) => resolve({ code, stdout }))
  })
}

const id = (file, name) => `${file.replace(root, '')} > ${name}`
try {
  const listFile = join(work, 'all.json')
  const listed = await run(['list', 'examples', `--json=${listFile}`])
  if (listed.code !== 0) throw new Error('vitest list failed')
  const all = JSON.parse(readFileSync(listFile, 'utf8')).map((t) => id(t.file, t.name))
  const ran = []
  let failed = 0
  for (let i = 1; i <= SHARDS; i++) {
    const out = join(work, `shard-${i}.json`)
    const started = performance.now()
    const result = await run([
      'run',
      'examples',
      `--shard=${i}/${SHARDS}`,
      '--reporter=json',
      `--outputFile=${out}`,
    ])
    const report = JSON.parse(readFileSync(out, 'utf8'))
    const names = report.testResults.flatMap((file) =>
      file.assertionResults.map((t) => id(file.name, [...t.ancestorTitles, t.title].join(' > '))),
    )
    ran.push(...names)
    const seconds = ((performance.now() - started) / 1000).toFixed(1)
    console.log(
      `shard ${i}/${SHARDS}: ${report.numPassedTests} passed, ${report.numFailedTests} failed, ${names.length} tests in ${report.testResults.length} files, ${seconds} s`,
    )
    if (result.code !== 0 || report.numFailedTests > 0) failed++
  }
  const missing = all.filter((t) => !ran.includes(t))
  const twice = ran.filter((t, i) => ran.indexOf(t) !== i)
  console.log(
    `${all.length} tests listed; ${ran.length} run over ${SHARDS} shards; missing ${missing.length}; run twice ${twice.length}`,
  )
  for (const t of missing) console.log(`  missing: ${t}`)
  for (const t of twice) console.log(`  twice: ${t}`)
  process.exitCode = failed || missing.length || twice.length ? 1 : 0
} finally {
  rmSync(work, { recursive: true, force: true })
}
