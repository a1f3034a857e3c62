// Bundles the VM supervisor (dist/supervisor/supervisor-main.js and everything it imports, grpc-js
// included) into one CommonJS file. Every VM.up() starts a supervisor process, and Node loading
// ~200 ES modules took ~0.35 s of a ~1 s template restore; one file loads in ~0.15 s (bench: the
// "VM.up() → agent ready" row).
import { build } from 'esbuild'

await build({
  entryPoints: ['dist/supervisor/supervisor-main.js'],
  outfile: 'dist/supervisor.cjs',
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  minifyWhitespace: true,
  minifySyntax: true,
  legalComments: 'none',
  logLevel: 'warning',
  // @vmctl/agent's index also exports the paths of its bundle and native helpers, which use
  // import.meta.url; the supervisor never calls them (VM.up() resolves those paths and hands them
  // over in launch.json), and if it did they would throw, not misresolve.
  logOverride: { 'empty-import-meta': 'silent' },
})
