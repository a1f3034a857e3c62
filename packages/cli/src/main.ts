#!/usr/bin/env node
import module from 'node:module'
import { startEarlySupervisor } from './early-supervisor.js'

// First, before the ~1 MB bundle loads: a command that boots a VM starts its supervisor process now,
// so that its start-up runs beside this one's (early-supervisor.ts).
const earlySupervisor = startEarlySupervisor(process.argv.slice(2))
// V8's compile cache (Node >= 22.1; absent in Node 20, where this is a no-op) keeps the compiled
// CLI bundle on disk for the next run, before the bundle is imported: the ~1.1 MB of it (CLI, core,
// grpc-js) are most of what `vmctl` compiles at start-up.
;(module as { enableCompileCache?: () => unknown }).enableCompileCache?.()
const { main } = await import('./cli-main.js')
main(earlySupervisor)
