import { KernelFetchError } from '../errors.js'
import { SETUP_COMMAND } from '../paths.js'

/** Response headers within this long, else the mirror (or the proxy) is taken for unreachable. */
const CONNECT_TIMEOUT_MS = 10_000
const HEADERS_TIMEOUT_MS = 20_000
/** A download that stalls (no byte for this long) fails instead of hanging a test run. */
const BODY_TIMEOUT_MS = 60_000

type Undici = typeof import('undici')
type Client = { fetch: Undici['fetch']; dispatcher: InstanceType<Undici['EnvHttpProxyAgent']> }
const clients = new Map<string, Promise<Client>>()

/**
 * undici's fetch with its EnvHttpProxyAgent: HTTPS_PROXY / HTTP_PROXY / NO_PROXY (either case),
 * which Node 20's built-in fetch ignores. undici 7 (Node >= 20.18.1) is the last line that runs
 * on Node 20. Loaded on first use: most VM.up() calls never download anything. One per proxy
 * setting, taken from the env vmctl was given (not only process.env).
 */
function client(env: NodeJS.ProcessEnv): Promise<Client> {
  const proxies = {
    httpProxy: env.HTTP_PROXY ?? env.http_proxy,
    httpsProxy: env.HTTPS_PROXY ?? env.https_proxy,
    noProxy: env.NO_PROXY ?? env.no_proxy,
  }
  const key = JSON.stringify(proxies)
  let made = clients.get(key)
  if (!made) {
    made = import('undici').then(({ fetch, EnvHttpProxyAgent }) => ({
      fetch,
      dispatcher: new EnvHttpProxyAgent({
        ...proxies,
        connect: { timeout: CONNECT_TIMEOUT_MS },
        headersTimeout: HEADERS_TIMEOUT_MS,
        bodyTimeout: BODY_TIMEOUT_MS,
      }),
    }))
    clients.set(key, made)
  }
  return made
}

/**
 * GET that either returns a 200 response with a body or throws the one KernelFetchError that names
 * the ways out (VMCTL_KERNEL, HTTPS_PROXY, vmctl setup), whatever went wrong underneath.
 */
export async function httpGet(url: string, env: NodeJS.ProcessEnv): Promise<Response> {
  const { fetch, dispatcher } = await client(env)
  let response: Awaited<ReturnType<typeof fetch>>
  try {
    response = await fetch(url, { dispatcher })
  } catch (error) {
    throw fetchError(url, error, env)
  }
  if (!response.ok || !response.body) {
    await response.body?.cancel().catch(() => {})
    throw new KernelFetchError(url, `the server answered HTTP ${response.status}`, SETUP_COMMAND)
  }
  return response as unknown as Response
}

/** The error of a failed request or body read, in the user's terms. */
export function fetchError(url: string, error: unknown, env: NodeJS.ProcessEnv): KernelFetchError {
  if (error instanceof KernelFetchError) return error
  return new KernelFetchError(url, describeNetworkError(error, env), SETUP_COMMAND, { cause: error })
}

function describeNetworkError(error: unknown, env: NodeJS.ProcessEnv): string {
  // undici's fetch throws TypeError('fetch failed') with the real error as its cause.
  let e = error as (Error & { code?: string; cause?: unknown }) | undefined
  while (e?.cause && (e.message === 'fetch failed' || !e.code)) e = e.cause as typeof e
  const code = e?.code ?? ''
  const message = e?.message ?? String(error)
  const proxy = env.HTTPS_PROXY || env.https_proxy || env.HTTP_PROXY || env.http_proxy
  if (/proxy/i.test(message)) return `the proxy refused the connection (${message})`
  // fetch() never connects to ports like 1, 21 or 6000 (the Fetch standard's "bad ports").
  if (message === 'bad port')
    return "fetch refuses to connect to that port (one of the Fetch standard's bad ports)"
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN')
    return `the host name does not resolve (${code}: no network or no DNS${proxy ? '' : '; no HTTPS_PROXY set'})`
  if (code === 'ECONNREFUSED')
    return `the connection was refused (${message}${proxy ? `, through the proxy ${proxy}` : ''})`
  if (code === 'UND_ERR_CONNECT_TIMEOUT' || code === 'ETIMEDOUT')
    return `no answer within ${CONNECT_TIMEOUT_MS / 1000} s (offline, or a firewall that needs HTTPS_PROXY)`
  if (code === 'UND_ERR_HEADERS_TIMEOUT') return `no response within ${HEADERS_TIMEOUT_MS / 1000} s`
  if (code === 'UND_ERR_BODY_TIMEOUT') return `the download stalled for ${BODY_TIMEOUT_MS / 1000} s`
  return code ? `${code}: ${message}` : message
}
