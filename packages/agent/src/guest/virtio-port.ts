import {
  createReadStream,
  createWriteStream,
  constants as fsConstants,
  openSync,
  readdirSync,
  readFileSync,
} from 'node:fs'
import net from 'node:net'
import { Duplex } from 'node:stream'

/** The device path of the virtio-serial port called `name`, once the kernel has created it. */
export function findVirtioPort(name: string): string | undefined {
  let entries: string[]
  try {
    entries = readdirSync('/sys/class/virtio-ports')
  } catch {
    return undefined
  }
  for (const entry of entries) {
    try {
      if (readFileSync(`/sys/class/virtio-ports/${entry}/name`, 'utf8').trim() === name)
        return `/dev/${entry}`
    } catch {}
  }
  return undefined
}

/**
 * Opens a virtio-serial port as a socket.
 *
 * `new net.Socket({ fd })` refuses character devices (libuv calls them files), and fs streams go
 * through the thread pool: 15 MB/s against 126 MB/s for an epoll-driven pipe handle on the same
 * port under TCG (docs/prototype-measurements.md section 5). So we open the fd ourselves and wrap it in a libuv
 * pipe handle, falling back to fs streams if this Node ever drops the binding.
 */
export function openVirtioPort(path: string, log: (message: string) => void = () => {}): Duplex {
  const fd = openSync(path, fsConstants.O_RDWR | fsConstants.O_NONBLOCK)
  try {
    // biome-ignore lint/suspicious/noExplicitAny: process.binding is untyped and deprecated
    const binding = (process as any).binding('pipe_wrap')
    const handle = new binding.Pipe(binding.constants.SOCKET)
    const status = handle.open(fd)
    if (typeof status === 'number' && status < 0) throw new Error(`pipe open failed: ${status}`)
    return new net.Socket({ handle, readable: true, writable: true } as net.SocketConstructorOpts)
  } catch (error) {
    log(`pipe handle unavailable (${(error as Error).message}); using fs streams, which are slower`)
    const readable = createReadStream('', { fd, autoClose: false, highWaterMark: 64 * 1024 })
    const writable = createWriteStream('', { fd, autoClose: false })
    return Duplex.from({ readable, writable })
  }
}
