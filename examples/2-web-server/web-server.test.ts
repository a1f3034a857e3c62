// A server started in a fresh VM, reached from the test through a forwarded port.
import { expect, test } from '@vmctl/vitest'

test.override({ vmOptions: { ports: [8080] } }) // for every test of this file

test('serves a page through vm.forwardedPort() (vm)', async ({ vm }) => {
  await vm.writeFile('/srv/www/index.html', '<h1>hello from the VM</h1>\n')
  const server = vm.spawn('python3 -m http.server 8080 --directory /srv/www')

  await server.waitForPort(8080) // fails at once, with its output, if the server exits first
  await expect(vm).toHaveListeningPort(8080)
  await expect(vm).toHaveProcess(/http\.server 8080/)

  const response = await fetch(`http://127.0.0.1:${vm.forwardedPort(8080)}/`)
  expect(response.status).toBe(200)
  expect(await response.text()).toBe('<h1>hello from the VM</h1>\n')

  server.kill()
  await server.wait()
})
