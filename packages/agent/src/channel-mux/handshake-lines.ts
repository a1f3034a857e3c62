/**
 * The line handshake that (re)synchronises the two ends of the channel multiplexer.
 *
 * Bytes from an old session can sit in either direction (the guest wrote while no host was
 * connected; a snapshot was taken mid-stream; an agent died mid-frame), so neither end may start
 * parsing frames until both agree where the new session begins:
 *
 *   host  → `HELLO n` every 100 ms        guest → `OK n` for each HELLO it sees
 *   host  → `GO n` once, stops HELLO      guest → discards everything up to GO, answers `READY n`,
 *                                                  parses frames from the byte after GO
 *   host  → discards everything up to READY, parses frames from the byte after it
 *
 * A guest agent that (re)starts announces itself with `AGENT-UP id` until it sees a HELLO, which
 * makes a host holding an old session start a new one. (Found necessary by the prototype in
 * docs/prototype-measurements.md section 5.)
 *
 *   host  → PARK frame (nonce)            guest → drops its channels, answers `PARKED nonce`, then
 *                                                  waits for a HELLO without announcing itself
 */
export type HandshakeLine =
  | { kind: 'hello'; nonce: string }
  | { kind: 'ok'; nonce: string }
  | { kind: 'go'; nonce: string }
  | { kind: 'ready'; nonce: string }
  | { kind: 'agent-up'; nonce: string }
  | { kind: 'parked'; nonce: string }

const PREFIX = 'VMCTL-'
const KINDS: Record<string, HandshakeLine['kind']> = {
  HELLO: 'hello',
  OK: 'ok',
  GO: 'go',
  READY: 'ready',
  'AGENT-UP': 'agent-up',
  PARKED: 'parked',
}
const WIRE_NAMES: Record<HandshakeLine['kind'], string> = {
  hello: 'HELLO',
  ok: 'OK',
  go: 'GO',
  ready: 'READY',
  'agent-up': 'AGENT-UP',
  parked: 'PARKED',
}

export function encodeHandshakeLine(line: HandshakeLine): Buffer {
  return Buffer.from(`\n${PREFIX}${WIRE_NAMES[line.kind]} ${line.nonce}\n`, 'latin1')
}

export function parseHandshakeLine(text: string): HandshakeLine | undefined {
  if (!text.startsWith(PREFIX)) return undefined
  const [name, nonce, ...extra] = text.slice(PREFIX.length).split(' ')
  const kind = name === undefined ? undefined : KINDS[name]
  if (!kind || !nonce || extra.length > 0 || !/^[0-9a-f]{1,32}$/.test(nonce)) return undefined
  return { kind, nonce }
}

/** Longest handshake line we accept; older bytes without a newline are dropped. */
export const MAX_LINE_BYTES = 64
