// kafkajs over a secured listener (see the flags of kafkajs_support):
// records produced and read back in a consumer group that commits them,
// then consume-transform-produce in transactions (sendOffsets, commit),
// whose first, aborted attempt a read_committed consumer must never see.
// `--prefix` names the topics and groups, so that runs can share a broker.
const { kafka, option, waitFor, check, equal, collect, run } = require('./kafkajs_support')

const prefix = option('prefix') || 'secure'
const messages = (tag, n) => Array.from({ length: n }, (_, i) => ({ key: `${tag}-${i}`, value: `${tag}-${i}` }))
const values = (records) => records.map((r) => r.message.value.toString())

// The offsets `groupId` committed on `topic`, by partition.
async function committed (admin, groupId, topic) {
  const [offsets] = await admin.fetchOffsets({ groupId, topics: [topic] })
  return offsets.partitions.sort((a, b) => a.partition - b.partition).map((p) => p.offset)
}

async function produceAndConsume (admin) {
  const topic = `${prefix}-records`
  await admin.createTopics({ topics: [{ topic, numPartitions: 3 }] })
  const producer = kafka.producer({ idempotent: true })
  await producer.connect()
  await producer.send({ topic, messages: messages('record', 100), acks: -1 })
  await producer.disconnect()

  const groupId = `${prefix}-group`
  const consumer = kafka.consumer({ groupId, maxWaitTimeInMs: 200 })
  await consumer.connect()
  await consumer.subscribe({ topics: [topic], fromBeginning: true })
  const seen = []
  await consumer.run({ eachMessage: async ({ message }) => { seen.push(message.value.toString()) } })
  await waitFor('100 records read in the group', () => seen.length >= 100)
  await consumer.disconnect()
  equal(seen.sort(), messages('record', 100).map((m) => m.value).sort(), 'records read in the group')
  const offsets = await committed(admin, groupId, topic)
  equal(offsets.reduce((sum, o) => sum + Number(o), 0), 100, `offsets committed by the group (${offsets})`)
}

async function transform (admin) {
  const input = `${prefix}-txn-in`
  const output = `${prefix}-txn-out`
  await admin.createTopics({ topics: [{ topic: input }, { topic: output }] })
  const plain = kafka.producer()
  await plain.connect()
  await plain.send({ topic: input, messages: messages('input', 10) })
  await plain.disconnect()

  const producer = kafka.producer({ transactionalId: `${prefix}-transformer`, idempotent: true, maxInFlightRequests: 1 })
  await producer.connect()
  const groupId = `${prefix}-transform`
  const consumer = kafka.consumer({ groupId, maxWaitTimeInMs: 200 })
  await consumer.connect()
  await consumer.subscribe({ topics: [input], fromBeginning: true })
  let done = 0
  let aborted = false
  await consumer.run({
    autoCommit: false,
    eachBatchAutoResolve: false,
    eachBatch: async ({ batch, resolveOffset }) => {
      const txn = await producer.transaction()
      const tag = aborted ? 'committed' : 'aborted'
      await txn.send({ topic: output, messages: batch.messages.map((m) => ({ key: m.key, value: `${tag}-${m.value}` })) })
      await txn.sendOffsets({ consumerGroupId: groupId, topics: [{ topic: batch.topic, partitions: [{ partition: batch.partition, offset: String(Number(batch.lastOffset()) + 1) }] }] })
      if (!aborted) {
        aborted = true
        await txn.abort()
        consumer.seek({ topic: batch.topic, partition: batch.partition, offset: batch.firstOffset() })
        return
      }
      await txn.commit()
      for (const m of batch.messages) resolveOffset(m.offset)
      done += batch.messages.length
    }
  })
  await waitFor('10 records transformed', () => done >= 10)
  await consumer.disconnect()
  await producer.disconnect()
  equal(await committed(admin, groupId, input), ['10'], 'offsets committed with the transaction')
  // The aborted records come first in the log: a consumer that did not
  // skip them would read them among its first ten.
  const readCommitted = await collect([output], 10)
  equal(values(readCommitted), messages('input', 10).map((m) => `committed-${m.value}`), 'read_committed records')
  const everything = await collect([output], 20, { readUncommitted: true })
  check(values(everything).some((v) => v.startsWith('aborted-')), 'the aborted attempt was written')
}

run(`kafkajs over ${prefix}`, async () => {
  const admin = kafka.admin()
  await admin.connect()
  await produceAndConsume(admin)
  await transform(admin)
  await admin.disconnect()
})
