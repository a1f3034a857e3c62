/**
 * What supervisor-main.ts loads once its QEMU is started: the supervisor and all it imports. A file
 * of its own so that the bundle can be two files (scripts/bundle-supervisor.mjs): a few-KB entry
 * that Node reads and runs before anything else, and this, which it loads after.
 */
export { mark, markAt } from './restore-timeline.js'
export { Supervisor } from './supervisor.js'
export { VmDirectory } from './vm-directory.js'
