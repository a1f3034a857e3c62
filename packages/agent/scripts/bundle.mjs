// Bundles the guest agent into one CommonJS file with its dependencies, so the guest needs only
// a node binary and this file.
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
})
