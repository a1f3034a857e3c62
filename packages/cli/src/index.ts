/** The vmctl command line as a function, for embedding and tests. */
export { runCli, MAIN_HELP } from './run-cli.js'
export { UsageError } from './usage-error.js'
