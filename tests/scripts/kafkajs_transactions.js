// kafkajs transactions against the broker: a producer that commits and one
// that aborts, read_committed consumers (kafkajs's default) that see only
// committed records and wait for an open transaction, read_uncommitted ones
// that see everything, consume-transform-produce with sendOffsets, and a
// producer fenced by a newer one with its transactional id.
const { kafka, sleep, check, equal, rejects, collect, run } = require('./kafkajs_support')

const values = (records) => records.map((r) => r.message.value.toString())
const messages = (prefix, n) => Array.from({ length: n }, (_, i) => ({ key: `${prefix}-${i}`, value: `${prefix}-${i}` }))
const transactional = (transactionalId) => kafka.producer({ transactionalId, idempotent: true, maxInFlightRequests: 1 })

async function commitAndAbort (admin) {
  await admin.createTopics({ topics: [{ topic: 'txn-out', numPartitions: 2 }] })
  const committer = transactional('txn-committer')
  const aborter = transactional('txn-aborter')
  await Promise.all([committer.connect(), aborter.connect()])

  const first = await committer.transaction()
  await first.send({ topic: 'txn-out', messages: messages('committed', 10) })
  await first.commit()
  const aborted = await aborter.transaction()
  await aborted.send({ topic: 'txn-out', messages: messages('aborted', 10) })
  await aborted.abort()
  const second = await committer.transaction()
  await second.send({ topic: 'txn-out', messages: messages('later', 6) })
  await second.sendBatch({ topicMessages: [{ topic: 'txn-out', messages: messages('batched', 4) }] })
  await second.commit()
  await Promise.all([committer.disconnect(), aborter.disconnect()])

  const expected = [...messages('committed', 10), ...messages('later', 6), ...messages('batched', 4)].map((m) => m.value).sort()
  const committed = await collect(['txn-out'], 20)
  await sleep(500)
  equal(values(committed).sort(), expected, 'read_committed records')
  const everything = await collect(['txn-out'], 30, { readUncommitted: true })
  equal(values(everything).filter((v) => v.startsWith('aborted')).length, 10, 'aborted records seen by read_uncommitted')
}

// An open transaction holds back read_committed consumers at its first
// record, also for non-transactional records written after it.
async function openTransaction (admin) {
  await admin.createTopics({ topics: [{ topic: 'txn-open' }] })
  const plain = kafka.producer()
  const producer = transactional('txn-open')
  await Promise.all([plain.connect(), producer.connect()])
  await plain.send({ topic: 'txn-open', messages: [{ value: 'before' }] })
  const txn = await producer.transaction()
  await txn.send({ topic: 'txn-open', messages: [{ value: 'inside' }] })
  await plain.send({ topic: 'txn-open', messages: [{ value: 'after' }] })

  const consumer = kafka.consumer({ groupId: 'txn-open-reader', maxWaitTimeInMs: 200 })
  await consumer.connect()
  await consumer.subscribe({ topics: ['txn-open'], fromBeginning: true })
  const seen = []
  await consumer.run({ eachMessage: async ({ message }) => { seen.push(message.value.toString()) } })
  const offsets = await admin.fetchTopicOffsets('txn-open')
  // kafkajs lists offsets read_committed: the latest is the last stable one.
  equal(offsets.map((o) => o.high), ['1'], 'latest offset with an open transaction')
  for (let i = 0; i < 50 && seen.length === 0; i++) await sleep(100)
  await sleep(1500)
  equal(seen, ['before'], 'read_committed stops before the open transaction')
  await txn.commit()
  for (let i = 0; i < 100 && seen.length < 3; i++) await sleep(100)
  equal(seen, ['before', 'inside', 'after'], 'records after the commit')
  await Promise.all([consumer.disconnect(), plain.disconnect(), producer.disconnect()])
}

// Reads txn-in in group txn-transform and writes upper-cased copies to
// txn-upper, committing its input offsets inside each transaction.
async function transform (admin) {
  await admin.createTopics({ topics: [{ topic: 'txn-in' }, { topic: 'txn-upper' }] })
  const plain = kafka.producer()
  await plain.connect()
  await plain.send({ topic: 'txn-in', messages: messages('input', 10) })

  const producer = transactional('txn-transformer')
  await producer.connect()
  const groupId = 'txn-transform'
  const consumer = kafka.consumer({ groupId, maxWaitTimeInMs: 200 })
  await consumer.connect()
  await consumer.subscribe({ topics: ['txn-in'], fromBeginning: true })
  let done = 0
  let abortNext = true
  await consumer.run({
    autoCommit: false,
    eachBatchAutoResolve: false,
    eachBatch: async ({ batch, resolveOffset }) => {
      const txn = await producer.transaction()
      await txn.send({ topic: 'txn-upper', messages: batch.messages.map((m) => ({ key: m.key, value: m.value.toString().toUpperCase() })) })
      const next = String(Number(batch.lastOffset()) + 1)
      await txn.sendOffsets({ consumerGroupId: groupId, topics: [{ topic: batch.topic, partitions: [{ partition: batch.partition, offset: next }] }] })
      if (abortNext) {
        // The first attempt is abandoned: neither its records nor its
        // offsets may become visible, and the batch is read again.
        abortNext = false
        await txn.abort()
        consumer.seek({ topic: batch.topic, partition: batch.partition, offset: batch.firstOffset() })
        return
      }
      await txn.commit()
      for (const m of batch.messages) resolveOffset(m.offset)
      done += batch.messages.length
    }
  })
  for (let i = 0; i < 300 && done < 10; i++) await sleep(100)
  await consumer.disconnect()
  equal(done, 10, 'transformed records')
  const [committed] = await admin.fetchOffsets({ groupId, topics: ['txn-in'] })
  equal(committed.partitions.map((p) => p.offset), ['10'], 'offsets committed with the transaction')
  const upper = await collect(['txn-upper'], 10)
  await sleep(500)
  equal(values(upper), messages('input', 10).map((m) => m.value.toUpperCase()), 'transformed records, once each')
  await Promise.all([plain.disconnect(), producer.disconnect()])
}

async function fencing (admin) {
  await admin.createTopics({ topics: [{ topic: 'txn-fenced' }] })
  const old = transactional('txn-fenced')
  await old.connect()
  const oldTxn = await old.transaction()
  await oldTxn.send({ topic: 'txn-fenced', messages: [{ value: 'from-the-old-one' }] })

  const newer = transactional('txn-fenced')
  await newer.connect()
  const txn = await newer.transaction()
  await txn.send({ topic: 'txn-fenced', messages: [{ value: 'from-the-new-one' }] })
  await txn.commit()

  const fenced = await rejects('committing a fenced transaction', () => oldTxn.commit(), { name: 'KafkaJSProtocolError' })
  check(fenced.type === 'INVALID_PRODUCER_EPOCH', `a fenced producer gets INVALID_PRODUCER_EPOCH, got ${fenced.type} (code ${fenced.code})`)
  equal(values(await collect(['txn-fenced'], 1)), ['from-the-new-one'], 'only the new producer\'s record is committed')
  await Promise.all([old.disconnect(), newer.disconnect()])
}

// A producer that "crashes" inside a transaction is fenced by the next one
// with its id, whose InitProducerId aborts the open transaction; a
// transaction past its timeout is aborted by the broker, and its producer
// fenced; a transaction may hold offsets only, or nothing.
async function recovery (admin) {
  await admin.createTopics({ topics: [{ topic: 'txn-recovery', numPartitions: 2 }] })
  const crashing = kafka.producer({ transactionalId: 'txn-crashing', transactionTimeout: 100 })
  await crashing.connect()
  const lost = await crashing.transaction()
  await lost.send({ topic: 'txn-recovery', messages: [{ value: 'never-committed' }] })
  const next = kafka.producer({ transactionalId: 'txn-crashing', transactionTimeout: 100 })
  await next.connect()
  const txn = await next.transaction()
  await txn.send({ topic: 'txn-recovery', messages: [{ value: 'after-the-crash' }] })
  await txn.commit()

  const slow = kafka.producer({ transactionalId: 'txn-slow', transactionTimeout: 1000 })
  await slow.connect()
  const expiring = await slow.transaction()
  await expiring.send({ topic: 'txn-recovery', messages: [{ value: 'too-slow' }] })
  await sleep(4000)
  await rejects('committing a transaction past its timeout', () => expiring.commit(), { name: 'KafkaJSProtocolError', type: 'INVALID_PRODUCER_EPOCH' })
  equal(values(await collect(['txn-recovery'], 1)), ['after-the-crash'], 'records of crashed and expired transactions')

  const offsetsOnly = kafka.producer({ transactionalId: 'txn-offsets-only' })
  await offsetsOnly.connect()
  const empty = await offsetsOnly.transaction()
  await empty.commit()
  const offsets = await offsetsOnly.transaction()
  await offsets.sendOffsets({ consumerGroupId: 'txn-offsets-only', topics: [{ topic: 'txn-recovery', partitions: [{ partition: 0, offset: '5' }, { partition: 1, offset: '10' }] }] })
  await offsets.commit()
  const [committed] = await admin.fetchOffsets({ groupId: 'txn-offsets-only', topics: ['txn-recovery'] })
  equal(committed.partitions.map((p) => p.offset), ['5', '10'], 'offsets of a transaction without records')
  await Promise.all([crashing.disconnect(), next.disconnect(), slow.disconnect(), offsetsOnly.disconnect()])
}

run('kafkajs transactions', async () => {
  const admin = kafka.admin()
  await admin.connect()
  await commitAndAbort(admin)
  await openTransaction(admin)
  await transform(admin)
  await fencing(admin)
  await recovery(admin)
  await admin.disconnect()
})
