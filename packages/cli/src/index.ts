/** The vmctl command line as a function, for embedding and tests. */
export { MAIN_HELP, runCli } from './run-cli.js'
export { UsageError } from './usage-error.js'
