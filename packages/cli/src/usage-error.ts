/** A mistake in how vmctl was called: one line on stderr, exit code 2. */
export class UsageError extends Error {
  readonly exitCode = 2
}
