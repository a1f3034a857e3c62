import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import * as openpgp from 'openpgp'
import { afterAll, describe, expect, test } from 'vitest'
import { parseStanza } from './deb822.js'
import { DEBIAN_ARCHIVE_FINGERPRINTS, DEBIAN_ARCHIVE_KEYS } from './debian-keyring.js'
import { verifiedRelease } from './release-signature.js'

// bookworm-security's InRelease as Debian published it (29 Nov 2026), signed by the security
// archive's bookworm key.
const INRELEASE = readFileSync(
  new URL('../../test/fixtures/bookworm-security.InRelease', import.meta.url),
  'utf8',
)
const URL_ = 'https://deb.debian.org/debian-security/dists/bookworm-security/InRelease'
const scratch = mkdtempSync(join(tmpdir(), 'vmctl-release-signature-'))
afterAll(() => rmSync(scratch, { recursive: true, force: true }))
// No host keyring in play (this host has Debian's, which would verify the fixture whatever
// vmctl's copy holds): only vmctl's copy of Debian's keys, and what a test names.
const env = {}
const verify = (text: string, environment: NodeJS.ProcessEnv = env) =>
  verifiedRelease(URL_, text, environment, false)

describe("a Release file's signature", () => {
  test("vmctl's copy of Debian's keys is the four keys its comment names, by fingerprint", async () => {
    const keys = await openpgp.readKeys({ armoredKeys: DEBIAN_ARCHIVE_KEYS })
    expect(keys.map((key) => key.getFingerprint().toUpperCase())).toEqual(DEBIAN_ARCHIVE_FINGERPRINTS)
  })

  test("Debian's own InRelease checks out, and its text is the signed Release", async () => {
    const release = parseStanza(await verify(INRELEASE))
    expect(release.get('Codename')).toBe('bookworm-security')
    expect(release.get('SHA256')).toMatch(/main\/binary-amd64\/Packages\.xz/)
  })

  test('one changed checksum fails, naming the cause', async () => {
    const tampered = INRELEASE.replace(/^( [0-9a-f]{64})/m, (line) =>
      line.replace(/[0-9a-f]/, (c) => (c === '0' ? '1' : '0')),
    )
    expect(tampered).not.toBe(INRELEASE)
    await expect(verify(tampered)).rejects.toThrow(
      /no signature on it checks out against a Debian archive key/,
    )
  })

  test('an unsigned file, or a proxy page, is refused', async () => {
    await expect(verify('Origin: Debian\nSuite: bookworm\n', env)).rejects.toThrow(
      /not a signed Release file/,
    )
  })

  test("a mirror's own key counts once VMCTL_DEBIAN_KEYRING names it, and not before", async () => {
    const { privateKey, publicKey } = await openpgp.generateKey({
      type: 'curve25519',
      userIDs: [{ name: 'A local mirror' }],
      format: 'object',
    })
    const text = 'Origin: Local\nSuite: bookworm\nSHA256:\n 00 1 main/binary-amd64/Packages.gz\n'
    const signed = await openpgp.sign({
      message: await openpgp.createCleartextMessage({ text }),
      signingKeys: privateKey,
    })
    await expect(verify(signed, env)).rejects.toThrow(/set VMCTL_DEBIAN_KEYRING/)
    const keyring = join(scratch, 'mirror.asc')
    writeFileSync(keyring, publicKey.armor())
    expect(parseStanza(await verify(signed, { VMCTL_DEBIAN_KEYRING: keyring })).get('Origin')).toBe('Local')
    writeFileSync(join(scratch, 'junk'), 'not a key')
    await expect(verify(signed, { VMCTL_DEBIAN_KEYRING: join(scratch, 'junk') })).rejects.toThrow(
      /VMCTL_DEBIAN_KEYRING names a file that holds no OpenPGP public keys/,
    )
  })
})
