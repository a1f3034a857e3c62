/**
 * The outer bound of a test that boots cold `count` times in a row (each makes a template). Every
 * boot has its own deadline that fails it with vmctl's error; this bound only keeps vitest's
 * default (one boot's worth) from cutting a slow but healthy test short when the whole suite runs
 * two forks of VM tests on two cores (a cold boot plus template there: 40-90 s, not 10-20 s).
 */
export function coldBootsTimeout(count: number): number {
  return count * 200_000
}
