import { execFileSync, spawn } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { buildImage, cacheDir, fetchDefaultKernel } from '@vmctl/core'
import { afterAll, describe, expect, test } from 'vitest'

const CLI = fileURLToPath(new URL('../dist/main.js', import.meta.url))
// Under the package, not the host's /tmp: a directory the guest sees at the same path.
const dir = mkdtempSync(join(fileURLToPath(new URL('..', import.meta.url)), '.test-vmtest-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

function vmctl(
  args: string[],
  env: NodeJS.ProcessEnv = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      cwd: dir,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d: Buffer) => (stdout += d))
    child.stderr.on('data', (d: Buffer) => (stderr += d))
    child.on('exit', (code) => resolve({ code: code ?? -1, stdout, stderr }))
  })
}

describe('vmctl vmtest and vmctl as a test runner (vm)', () => {
  test("vmtest's README example: a kernel target passes, an image target fails, exit 1", async () => {
    const kernel = await fetchDefaultKernel(cacheDir())
    // The image the other image tests build (cached): Debian 12 with jq.
    const image = await buildImage({ distribution: 'bookworm', packages: ['jq'] }, cacheDir())
    writeFileSync(
      join(dir, 'vmtest.toml'),
      `[[target]]
name = "Debian kernel"
kernel = "${join(kernel.dir, 'vmlinux')}"
command = "uname -r | grep -e amd64$ && test \\"$VMTEST_PROBE\\" = from-host && test \\"$PWD\\" = ${dir} && touch /mnt/vmtest/kernel-was-here"

[[target]]
name = "Debian image"
image = "${image.path}"
command = "ls -l /mnt/vmtest && cat /proc/thiswillfail"
`,
    )
    const result = await vmctl(['vmtest'], { VMTEST_PROBE: 'from-host' })
    expect(result.code, result.stderr).toBe(1)
    const out = result.stdout
    expect(out).toMatch(
      /^=> Debian kernel\n===> Booting\n===> Setting up VM\n===> Running command\n[^\n]*amd64\nPASS\n/,
    )
    expect(out).toMatch(
      /=> Debian image\n[\s\S]*vmtest\.toml[\s\S]*Command failed with exit code: 1\nFAILED\n$/,
    )
    expect(result.stderr).toContain('cat: /proc/thiswillfail: No such file or directory')
    expect(existsSync(join(dir, 'kernel-was-here'))).toBe(true)
    // --filter runs only the matching target.
    const filtered = await vmctl(['vmtest', '--filter', 'kernel$'], { VMTEST_PROBE: 'from-host' })
    expect(filtered.code).toBe(0)
    expect(filtered.stdout).not.toContain('Debian image')
  }, 900_000)

  test('as go test -exec or a cargo runner: a program built on the host runs in the guest kernel with its cwd, args and environment', async () => {
    writeFileSync(
      join(dir, 'probe.c'),
      `#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <sys/utsname.h>
int main(int argc, char **argv) {
  char cwd[4096]; struct utsname u; uname(&u);
  printf("%s %s %s %s\\n", u.release, getcwd(cwd, sizeof cwd), getenv("RUNNER_PROBE"), argc > 1 ? argv[1] : "-");
  return 3;
}
`,
    )
    execFileSync('cc', ['-O', '-o', join(dir, 'probe.test'), join(dir, 'probe.c')])
    // What `go test -exec 'vmctl run -E -k debian:trixie --'` runs: the runner, then the binary and its flags.
    const result = await vmctl(['run', '-E', '-k', 'debian:trixie', '--', './probe.test', '-test.v'], {
      RUNNER_PROBE: 'kept',
    })
    expect(result.stdout.trim()).toMatch(
      new RegExp(`^6\\.12\\.\\S+ ${dir.replace(/[.]/g, '\\.')} kept -test\\.v$`),
    )
    expect(result.code).toBe(3)
  }, 900_000)
})
