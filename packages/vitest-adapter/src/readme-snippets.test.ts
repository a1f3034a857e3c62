import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { expect, test } from 'vitest'

// The README's "In test files" snippets must be excerpts of the examples that CI runs: each code
// block, cut at `// …` lines, appears verbatim in the example file its paragraph links to.
const root = fileURLToPath(new URL('../../../', import.meta.url))

test("the README's adapter snippets come from the tested examples", () => {
  const readme = readFileSync(`${root}README.md`, 'utf8')
  const section = readme.slice(readme.indexOf('## In test files'), readme.indexOf('## The command line'))
  const blocks = [...section.matchAll(/\]\((examples\/[^)]+)\)[^`]*?```(?:ts|js)\n([\s\S]*?)```/g)]
  expect(blocks.length).toBeGreaterThanOrEqual(4)
  for (const [, file, code] of blocks) {
    const source = readFileSync(`${root}${file}`, 'utf8')
    for (const excerpt of code!.split(/^\/\/ …\n/m)) expect(source, `${file}`).toContain(excerpt)
  }
})
