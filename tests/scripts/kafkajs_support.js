// What every kafkajs script shares: the client pointed at `--bootstrap`,
// waiting for a condition, checks that name what was expected, and the exit
// status (non-zero with the reason on the first mismatch).
const path = require('path')
const kafkajs = require(path.join(__dirname, '..', 'node', 'node_modules', 'kafkajs'))

const { Kafka, logLevel } = kafkajs
const flag = process.argv.indexOf('--bootstrap')
if (flag < 0 || !process.argv[flag + 1]) {
  console.error(`usage: node ${path.basename(process.argv[1])} --bootstrap HOST:PORT`)
  process.exit(2)
}
const bootstrap = process.argv[flag + 1]

// Errors only: kafkajs logs expected retries (a rebalance, a coordinator
// moving) as errors too, so this is the context shown when a script fails.
const kafka = new Kafka({
  clientId: 'kafkajs-test',
  brokers: [bootstrap],
  logLevel: logLevel.ERROR,
  retry: { retries: 5 }
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

module.exports = { kafkajs, kafka, bootstrap, sleep, waitFor, check, equal, rejects, collect, run }
