#!/usr/bin/env node
// Sends a Minecraft status ping (server list ping) and prints the server's
// status response as one line of JSON. Exits 0 when a response arrives, 1 on failure.
'use strict'

const USAGE = `usage: node ping.js [--host ADDR] [--port N] [--timeout MS]
  --host ADDR   server address (default 127.0.0.1)
  --port N      server port (default 25565)
  --timeout MS  give up after this many milliseconds (default 10000)
`

function parseArgs (argv) {
  const options = { host: '127.0.0.1', port: 25565, timeout: 10000 }
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]
    const value = argv[i + 1]
    if (arg === '--help' || arg === '-h') {
      process.stdout.write(USAGE)
      process.exit(0)
    } else if (arg === '--host' && value !== undefined) {
      options.host = value
      i++
    } else if (arg === '--port' && value !== undefined) {
      options.port = Number(value)
      i++
    } else if (arg === '--timeout' && value !== undefined) {
      options.timeout = Number(value)
      i++
    } else {
      process.stderr.write(`ping: invalid argument ${arg}\n${USAGE}`)
      process.exit(1)
    }
  }
  if (!Number.isInteger(options.port) || options.port < 1 ||
      options.port > 65535) {
    process.stderr.write(`ping: invalid --port ${options.port}\n`)
    process.exit(1)
  }
  if (!(options.timeout > 0)) {
    process.stderr.write(`ping: invalid --timeout ${options.timeout}\n`)
    process.exit(1)
  }
  return options
}

const options = parseArgs(process.argv.slice(2))

let mc
try {
  mc = require('minecraft-protocol')
} catch (err) {
  process.stderr.write('ping: cannot load minecraft-protocol ' +
    `(${err.message}). Run \`npm ci\` in ${__dirname} first.\n`)
  process.exit(1)
}

const timer = setTimeout(() => {
  process.stderr.write(`ping: no status response from ${options.host}:` +
    `${options.port} within ${options.timeout} ms\n`)
  process.exit(1)
}, options.timeout)

mc.ping({
  host: options.host,
  port: options.port,
  closeTimeout: options.timeout
}).then((result) => {
  clearTimeout(timer)
  process.stdout.write(JSON.stringify(result) + '\n')
  process.exit(0)
}).catch((err) => {
  clearTimeout(timer)
  process.stderr.write(`ping: status ping to ${options.host}:${options.port}` +
    ` failed: ${err && err.message}\n`)
  process.exit(1)
})
