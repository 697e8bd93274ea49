#!/usr/bin/env node
// Starts the demo Minecraft server (flying-squid) for `hearth up` and the
// end-to-end tests.
//
// flying-squid's own app.js merges its default settings (online mode on)
// with a settings file and sets no host, so it listens on every interface.
// This launcher calls createMCServer itself instead: loopback only, offline
// mode (no session server), no external plugins, a small view distance, and
// log lines on stdout. flying-squid's log plugin reads console
// commands from stdin: `help` lists the commands and `stop` closes the server
// and exits the process with status 0, which is what a panel's stop command
// needs.
'use strict'

const path = require('path')

const USAGE = `usage: node launcher.js [--port N] [--host ADDR] [--world DIR]
  --port N     TCP port to listen on (default 25565)
  --host ADDR  address to bind (default 127.0.0.1)
  --world DIR  folder to save the world in (default: keep it in memory)
`

function parseArgs (argv) {
  const options = { port: 25565, host: '127.0.0.1', world: null }
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]
    const value = argv[i + 1]
    if (arg === '--help' || arg === '-h') {
      process.stdout.write(USAGE)
      process.exit(0)
    } else if (arg === '--port' && value !== undefined) {
      options.port = Number(value)
      i++
    } else if (arg === '--host' && value !== undefined) {
      options.host = value
      i++
    } else if (arg === '--world' && value !== undefined) {
      options.world = path.resolve(value)
      i++
    } else {
      process.stderr.write(`launcher: invalid argument ${arg}\n${USAGE}`)
      process.exit(2)
    }
  }
  if (!Number.isInteger(options.port) || options.port < 1 ||
      options.port > 65535) {
    process.stderr.write(`launcher: invalid --port ${options.port}: ` +
      'expected an integer from 1 to 65535\n')
    process.exit(2)
  }
  return options
}

const options = parseArgs(process.argv.slice(2))

let flyingSquid
try {
  flyingSquid = require('flying-squid')
} catch (err) {
  process.stderr.write('launcher: cannot load flying-squid ' +
    `(${err.message}). Run \`npm ci\` in ${__dirname} first.\n`)
  process.exit(1)
}

// flying-squid colours its log lines with the `colors` package. A panel
// reads stdout through a pipe, so plain text keeps its output log readable.
if (!process.stdout.isTTY) {
  try {
    require('colors').disable()
  } catch (err) {
    // Without the package the lines keep their colour codes, which is fine.
  }
}

const server = flyingSquid.createMCServer({
  motd: 'Hearth demo server (flying-squid)',
  host: options.host,
  port: options.port,
  'max-players': 10,
  'online-mode': false,
  // `logging` only controls flying-squid's log file in ./logs; console
  // output stays on, and the panel captures it from stdout.
  logging: false,
  gameMode: 1,
  difficulty: 1,
  worldFolder: options.world || undefined,
  generation: { name: 'superflat', options: { worldHeight: 80 } },
  kickTimeout: 10000,
  plugins: {},
  modpe: false,
  'view-distance': 2,
  'player-list-text': {
    header: { text: 'Hearth' },
    footer: { text: 'demo server' }
  },
  'everybody-op': false,
  'max-entities': 100,
  version: '1.21.4'
})

server.on('ready', () => {
  server.info(`Ready for players on ${options.host}:${options.port}. ` +
    'Type "help" for the console commands, "stop" to shut down.')
})

server.on('error', (err) => {
  // A listen failure (port in use) leaves nothing to serve: exit non-zero
  // so the panel reports the instance as stopped instead of running.
  if (err && (err.code === 'EADDRINUSE' || err.code === 'EACCES')) {
    process.stderr.write(`launcher: cannot listen on ${options.host}:` +
      `${options.port}: ${err.message}\n`)
    process.exit(1)
  }
})

process.on('unhandledRejection', (err) => {
  process.stderr.write(`launcher: unhandled rejection: ${err && err.stack}\n`)
})
