// What every kafkajs script shares: the client pointed at `--bootstrap`
// (over TLS with `--ssl-ca`, a client certificate with `--ssl-cert` and
// `--ssl-key`, logging in with `--sasl MECHANISM:USER:PASSWORD`, or with an
// unsecured token for USER with `--sasl oauthbearer:USER`), waiting
// for a condition, checks that name what was expected, and the exit status
// (non-zero with the reason on the first mismatch).
const fs = require('fs')
const path = require('path')
const kafkajs = require(path.join(__dirname, '..', 'node', 'node_modules', 'kafkajs'))

const { Kafka, logLevel } = kafkajs

// The value after `--name`, or undefined.
function option (name) {
  const flag = process.argv.indexOf(`--${name}`)
  return flag < 0 ? undefined : process.argv[flag + 1]
}

const bootstrap = option('bootstrap')
if (!bootstrap) {
  console.error(`usage: node ${path.basename(process.argv[1])} --bootstrap HOST:PORT [--ssl-ca PEM [--ssl-cert PEM --ssl-key PEM]] [--sasl MECHANISM:USER:PASSWORD | --sasl oauthbearer:USER]`)
  process.exit(2)
}

// kafkajs hands `ssl` to node's tls.connect; the test CA signs for
// 127.0.0.1, so the broker's name is checked as usual.
function security () {
  const settings = {}
  const read = (name) => option(name) && fs.readFileSync(option(name))
  if (option('ssl-ca')) settings.ssl = { ca: [read('ssl-ca')], cert: read('ssl-cert'), key: read('ssl-key') }
  if (option('sasl')) {
    const [mechanism, username, ...password] = option('sasl').split(':')
    settings.sasl = mechanism === 'oauthbearer'
      ? { mechanism, oauthBearerProvider: async () => ({ value: unsecuredJws(username) }) }
      : { mechanism, username, password: password.join(':') }
  }
  return settings
}

// An unsecured JWS (`alg: none`, no signature) naming `sub` for an hour.
function unsecuredJws (sub) {
  const segment = (value) => Buffer.from(JSON.stringify(value)).toString('base64url')
  const now = Math.floor(Date.now() / 1000)
  return `${segment({ alg: 'none' })}.${segment({ sub, iat: now, exp: now + 3600 })}.`
}

// Errors only: kafkajs logs expected retries (a rebalance, a coordinator
// moving) as errors too, so this is the context shown when a script fails.
const kafka = new Kafka({
  clientId: 'kafkajs-test',
  brokers: [bootstrap],
  logLevel: logLevel.ERROR,
  retry: { retries: 5 },
  ...security()
})

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

// Polls `condition` every 100 ms for up to `ms`; `what` names it on timeout.
async function waitFor (what, condition, ms = 30000) {
  for (let i = 0; i < ms / 100; i++) {
    if (await condition()) return
    await sleep(100)
  }
  throw new Error(`timed out waiting for ${what}`)
}

function check (condition, message) {
  if (!condition) throw new Error(message)
}

// JSON with object keys sorted, so that key order does not matter.
const canonical = (value) => JSON.stringify(value, (_, v) =>
  v && typeof v === 'object' && !Array.isArray(v) && !Buffer.isBuffer(v)
    ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : 1)))
    : v)

// Deep equality through JSON, which is how the values are printed anyway.
function equal (actual, expected, what) {
  const a = canonical(actual)
  const e = canonical(expected)
  if (a !== e) throw new Error(`${what}: expected ${e}, got ${a}`)
}

// `expected` holds error properties; its `cause` those of the error's cause
// (kafkajs wraps the last error when it gives up retrying).
function matches (what, error, expected) {
  for (const [key, value] of Object.entries(expected)) {
    if (key === 'cause') {
      check(error.cause, `${what}: expected a cause in ${error.stack}`)
      matches(what, error.cause, value)
    } else {
      check(error[key] === value, `${what}: expected ${key} ${value}, got ${error[key]} (${error.stack})`)
    }
  }
}

// Runs `body`, which must reject, and checks the error it rejects with.
async function rejects (what, body, expected) {
  let error
  try {
    await body()
  } catch (e) {
    error = e
  }
  check(error, `${what}: expected an error, it succeeded`)
  matches(what, error, expected)
  return error
}

// Reads `count` records of `topics` from the beginning in a new group;
// `{ topic, partition, message }` each, in the order they came.
async function collect (topics, count, options = {}) {
  const consumer = kafka.consumer({ groupId: `collect-${topics.join('-')}-${Date.now()}`, maxWaitTimeInMs: 200, ...options })
  await consumer.connect()
  await consumer.subscribe({ topics, fromBeginning: true })
  const seen = []
  await consumer.run({ eachMessage: async ({ topic, partition, message }) => { seen.push({ topic, partition, message }) } })
  await waitFor(`${count} records of ${topics}`, () => seen.length >= count)
  await consumer.disconnect()
  return seen
}

// Runs the script's body and exits with its outcome, also when a client it
// failed to disconnect would keep node running.
function run (name, main) {
  main().then(
    () => {
      console.log(`${name} ok`)
      process.exit(0)
    },
    (e) => {
      console.error(`${name} FAILED:`, e)
      process.exit(1)
    }
  )
}

module.exports = { kafkajs, kafka, bootstrap, option, sleep, waitFor, check, equal, rejects, collect, run }
