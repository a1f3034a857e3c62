// A fresh VM per test from the helpers (they work in any jest environment).
const { useVm } = require('@vmctl/jest')

describe('a web server under jest (vm)', () => {
  const vm = useVm({ ports: [8080] })

  test('reached through vm.forwardedPort()', async () => {
    const server = vm.spawn([
      'node',
      '-e',
      "require('http').createServer((q, s) => s.end('hi\\n')).listen(8080)",
    ])
    await server.waitForPort(8080) // fails at once, with its output, if node exits first
    await expect(vm).toHaveListeningPort(8080)
    const response = await fetch(`http://127.0.0.1:${vm.forwardedPort(8080)}/`)
    expect(await response.text()).toBe('hi\n')
    server.kill()
    await server.wait()
  })
})
