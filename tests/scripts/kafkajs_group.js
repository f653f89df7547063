// kafkajs against the broker: an idempotent producer, two consumers in one
// group sharing a topic's partitions, commits, and a restarted member that
// resumes after them; then a group of members subscribed by regular
// expression to two topics, leaving and joining while records arrive.
// Exits non-zero on any mismatch.
const { kafka, sleep, waitFor, equal, run } = require('./kafkajs_support')

async function consume (groupId, seen, assigned) {
  const consumer = kafka.consumer({ groupId, sessionTimeout: 10000, heartbeatInterval: 500 })
  await consumer.connect()
  await consumer.subscribe({ topic: 'kafkajs', fromBeginning: true })
  consumer.on(consumer.events.GROUP_JOIN, (e) => {
    assigned.push((e.payload.memberAssignment.kafkajs || []).length)
  })
  await consumer.run({ eachMessage: async ({ message }) => { seen.push(message.value.toString()) } })
  return consumer
}

// Every record is read (at least once) and the commits add up to the log
// end offsets, whoever read which partition when.
async function churn (admin, producer) {
  await admin.createTopics({ topics: [{ topic: 'churn-a', numPartitions: 6 }, { topic: 'churn-b', numPartitions: 3 }] })
  const seen = new Set()
  const start = async () => {
    const c = kafka.consumer({ groupId: 'churn', maxWaitTimeInMs: 200, heartbeatInterval: 300, sessionTimeout: 10000 })
    await c.connect()
    await c.subscribe({ topics: [/^churn-/], fromBeginning: true })
    await c.run({ partitionsConsumedConcurrently: 3, eachMessage: async ({ topic, partition, message }) => { seen.add(`${topic}/${partition}/${message.offset}`) } })
    return c
  }
  const members = []
  for (let i = 0; i < 4; i++) members.push(await start())
  for (let round = 0; round < 10; round++) {
    const batch = (topic, n) => ({ topic, messages: Array.from({ length: n }, (_, i) => ({ key: `${round}-${i}`, value: topic })) })
    await producer.sendBatch({ topicMessages: [batch('churn-a', 60), batch('churn-b', 30)] })
    if (round === 3 || round === 7) await members.shift().disconnect()
    if (round === 5) members.push(await start())
    await sleep(300)
  }
  await waitFor('every record of the churning group', () => seen.size >= 900, 60000)
  await Promise.all(members.map((m) => m.disconnect()))
  const offsets = await admin.fetchOffsets({ groupId: 'churn', topics: ['churn-a', 'churn-b'] })
  equal(offsets.flatMap((t) => t.partitions).reduce((n, p) => n + Number(p.offset), 0), 900, 'committed offsets of the churning group')
}

run('kafkajs group', async () => {
  const admin = kafka.admin()
  await admin.connect()
  await admin.createTopics({ topics: [{ topic: 'kafkajs', numPartitions: 4 }] })
  const producer = kafka.producer({ idempotent: true })
  await producer.connect()
  const messages = Array.from({ length: 200 }, (_, i) => ({ key: `k${i}`, value: `v${i}` }))
  await producer.send({ topic: 'kafkajs', messages })

  const seen = []
  const assignedA = []
  const assignedB = []
  const a = await consume('js-group', seen, assignedA)
  const b = await consume('js-group', seen, assignedB)
  for (let i = 0; i < 100 && (seen.length < 200 || assignedA.at(-1) + assignedB.at(-1) !== 4); i++) await sleep(200)
  if (seen.length !== 200 || new Set(seen).size !== 200) throw new Error(`consumed ${seen.length} records`)
  if (assignedA.at(-1) !== 2 || assignedB.at(-1) !== 2) throw new Error(`assignments ${assignedA} / ${assignedB}`)
  await a.disconnect()
  await b.disconnect()

  await producer.send({ topic: 'kafkajs', messages: [{ key: 'late', value: 'after-commit' }] })
  const resumed = []
  const c = await consume('js-group', resumed, [])
  for (let i = 0; i < 100 && resumed.length < 1; i++) await sleep(200)
  await sleep(1000)
  await c.disconnect()
  if (resumed.length !== 1 || resumed[0] !== 'after-commit') throw new Error(`resumed with ${resumed.slice(0, 5)}`)
  const offsets = await admin.fetchOffsets({ groupId: 'js-group', topics: ['kafkajs'] })
  const committed = offsets[0].partitions.reduce((sum, p) => sum + Number(p.offset), 0)
  if (committed !== 201) throw new Error(`committed offsets add up to ${committed}`)
  await churn(admin, producer)
  await producer.disconnect()
  await admin.disconnect()
})
