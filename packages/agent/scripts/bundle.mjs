// Bundles the guest agent into one CommonJS file with its dependencies, so the guest needs only
// a node binary and this file.
import { readFileSync } from 'node:fs'
import { build } from 'esbuild'

await build({
  entryPoints: ['dist/agent-main.js'],
  outfile: 'dist/agent.cjs',
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  minifyWhitespace: true,
  minifySyntax: true,
  legalComments: 'none',
  logLevel: 'warning',
  define: { VMCTL_AGENT_VERSION: JSON.stringify(JSON.parse(readFileSync('package.json', 'utf8')).version) },
})
