import { loadExeca } from '../host/lazy-execa.js'

/**
 * The shared libraries (and the ELF interpreter) an executable needs, as absolute host paths,
 * resolved by the host's dynamic loader through `ldd`. Empty for a static executable.
 */
export async function sharedLibraries(executable: string): Promise<string[]> {
  const execa = await loadExeca()
  const result = await execa('ldd', [executable], { reject: false, env: { LC_ALL: 'C' } })
  if (result.exitCode !== 0) {
    if (/not a dynamic executable|statically linked/.test(`${result.stdout}${result.stderr}`)) return []
    throw new Error(`ldd ${executable} failed: ${result.stderr || result.stdout}`)
  }
  const libraries: string[] = []
  for (const line of result.stdout.split('\n')) {
    const arrow = line.match(/=>\s+(\/\S+)/)
    const bare = line.match(/^\s*(\/\S+)\s+\(/)
    const path = arrow?.[1] ?? bare?.[1]
    if (path) libraries.push(path)
  }
  return libraries
}
