// kafkajs's producer against the broker: acks 0, 1 and -1, every codec
// kafkajs can use without native code (none, gzip built in, snappy through
// kafkajs-snappy), headers, timestamps, explicit partitions, sendBatch over
// several topics, an idempotent producer, and the errors for invalid topics
// and records over the size limit. Every record is read back by a consumer.
const path = require('path')
const { kafkajs, kafka, bootstrap, check, equal, rejects, collect, run } = require('./kafkajs_support')

const { CompressionTypes, CompressionCodecs } = kafkajs
CompressionCodecs[CompressionTypes.Snappy] = require(path.join(__dirname, '..', 'node', 'node_modules', 'kafkajs-snappy'))

const values = (records) => records.map((r) => r.message.value.toString())
const messages = (prefix, n, extra = {}) => Array.from({ length: n }, (_, i) => ({ key: `${prefix}-k${i}`, value: `${prefix}-${i}`, ...extra }))

async function acks (admin, producer) {
  await admin.createTopics({ topics: [{ topic: 'produce-acks' }] })
  const none = await producer.send({ topic: 'produce-acks', acks: 0, messages: messages('acks0', 5) })
  equal(none, [], 'acks=0 answer')
  const one = await producer.send({ topic: 'produce-acks', acks: 1, messages: messages('acks1', 5) })
  const all = await producer.send({ topic: 'produce-acks', acks: -1, messages: messages('acksall', 5) })
  // acks=0 has no answer to wait for: the records of acks=1, sent after them
  // on the same connection, land after them.
  equal(one, [{ topicName: 'produce-acks', partition: 0, errorCode: 0, baseOffset: '5', logAppendTime: '-1', logStartOffset: '0' }], 'acks=1 answer')
  equal(all, [{ topicName: 'produce-acks', partition: 0, errorCode: 0, baseOffset: '10', logAppendTime: '-1', logStartOffset: '0' }], 'acks=-1 answer')
  equal(await producer.send({ topic: 'produce-acks', messages: [] }), [], 'sending no records')
  const read = await collect(['produce-acks'], 15)
  equal(values(read), [...messages('acks0', 5), ...messages('acks1', 5), ...messages('acksall', 5)].map((m) => m.value), 'records of every acks setting')
  equal(read.map((r) => r.message.offset), Array.from({ length: 15 }, (_, i) => String(i)), 'offsets')
}

async function codecs (admin, producer) {
  const codecs = { none: CompressionTypes.None, gzip: CompressionTypes.GZIP, snappy: CompressionTypes.Snappy }
  const topics = Object.keys(codecs).map((name) => `produce-${name}`)
  await admin.createTopics({ topics: topics.map((topic) => ({ topic })) })
  const big = 'x'.repeat(5000)
  for (const [name, compression] of Object.entries(codecs)) {
    await producer.send({ topic: `produce-${name}`, compression, messages: messages(name, 50, { value: undefined }).map((m, i) => ({ ...m, value: `${name}-${i}-${big}` })) })
  }
  const read = await collect(topics, 150)
  for (const name of Object.keys(codecs)) {
    const got = read.filter((r) => r.topic === `produce-${name}`)
    equal(values(got), Array.from({ length: 50 }, (_, i) => `${name}-${i}-${big}`), `${name} records`)
  }
  // The broker recompresses on the way in for a topic with a codec of its own.
  await admin.createTopics({ topics: [{ topic: 'produce-recompressed', configEntries: [{ name: 'compression.type', value: 'gzip' }] }] })
  await producer.send({ topic: 'produce-recompressed', compression: CompressionTypes.Snappy, messages: messages('recompressed', 20) })
  equal(values(await collect(['produce-recompressed'], 20)), messages('recompressed', 20).map((m) => m.value), 'records recompressed by the broker')
}

async function headersAndPartitions (admin, producer) {
  await admin.createTopics({ topics: [{ topic: 'produce-partitions', numPartitions: 3 }] })
  const timestamp = String(Date.now() - 3600 * 1000)
  const sent = await producer.send({
    topic: 'produce-partitions',
    messages: [
      { partition: 2, key: 'a', value: 'to-2', timestamp, headers: { trace: 'abc', bytes: Buffer.from([0, 1, 255]), many: ['one', 'two'] } },
      { partition: 0, key: null, value: 'to-0' },
      { partition: 2, key: 'b', value: null },
      { partition: 1, key: 'c', value: 'to-1', headers: {} }
    ]
  })
  equal(sent.map((r) => [r.partition, r.baseOffset]).sort(), [[0, '0'], [1, '0'], [2, '0']], 'one batch per partition')
  const read = await collect(['produce-partitions'], 4)
  const byValue = (v) => read.find((r) => r.message.value === null ? v === null : r.message.value.toString() === v)
  const first = byValue('to-2')
  equal([first.partition, first.message.offset, first.message.key.toString(), first.message.timestamp], [2, '0', 'a', timestamp], 'partition, offset, key and timestamp')
  const h = first.message.headers
  equal([h.trace.toString(), [...h.bytes], h.many.map(String)], ['abc', [0, 1, 255], ['one', 'two']], 'headers')
  equal([byValue('to-0').partition, byValue('to-0').message.key], [0, null], 'a record without key')
  const tombstone = byValue(null)
  equal([tombstone.partition, tombstone.message.offset, tombstone.message.key.toString()], [2, '1', 'b'], 'a tombstone')
  equal([byValue('to-1').partition, byValue('to-1').message.headers], [1, {}], 'no headers')

  const keyed = await producer.send({ topic: 'produce-partitions', messages: [{ key: 'same', value: '1' }, { key: 'same', value: '2' }] })
  equal(keyed.length, 1, 'records with one key go to one partition')
}

// A topic stamped with the broker's clock, and one created by producing.
async function timestampsAndAutoCreation (admin, producer) {
  await admin.createTopics({ topics: [{ topic: 'produce-log-time', configEntries: [{ name: 'message.timestamp.type', value: 'LogAppendTime' }] }] })
  const before = Date.now()
  const [stamped] = await producer.send({ topic: 'produce-log-time', messages: [{ value: 'stamped', timestamp: '1000' }] })
  check(Number(stamped.logAppendTime) >= before - 60000, `logAppendTime of the answer: ${stamped.logAppendTime}`)
  const [read] = await collect(['produce-log-time'], 1)
  equal(read.message.timestamp, stamped.logAppendTime, 'the record carries the log append time')

  const [created] = await producer.send({ topic: 'produce-auto-created', messages: [{ value: 'first' }] })
  equal([created.errorCode, created.baseOffset], [0, '0'], 'producing to a topic that did not exist')
  check((await admin.listTopics()).includes('produce-auto-created'), 'the topic was auto-created')
}

async function batches (admin, producer) {
  await admin.createTopics({ topics: [{ topic: 'produce-batch-a' }, { topic: 'produce-batch-b', numPartitions: 2 }] })
  const result = await producer.sendBatch({
    topicMessages: [
      { topic: 'produce-batch-a', messages: messages('a', 10) },
      { topic: 'produce-batch-b', messages: messages('b', 10).map((m, i) => ({ ...m, partition: i % 2 })) },
      { topic: 'produce-batch-a', messages: messages('a2', 5) }
    ]
  })
  const answer = result.map((r) => [r.topicName, r.partition, r.baseOffset, r.errorCode]).sort()
  equal(answer, [['produce-batch-a', 0, '0', 0], ['produce-batch-b', 0, '0', 0], ['produce-batch-b', 1, '0', 0]], 'sendBatch answer')
  equal(await producer.sendBatch({ topicMessages: [] }), [], 'sendBatch of nothing')
  const read = await collect(['produce-batch-a', 'produce-batch-b'], 25)
  equal(values(read.filter((r) => r.topic === 'produce-batch-a')), [...messages('a', 10), ...messages('a2', 5)].map((m) => m.value), 'topic a of the batch')
  equal(read.filter((r) => r.topic === 'produce-batch-b').length, 10, 'topic b of the batch')
}

async function idempotent (admin) {
  await admin.createTopics({ topics: [{ topic: 'produce-idempotent', numPartitions: 2 }] })
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 })
  await producer.connect()
  for (let round = 0; round < 5; round++) {
    const answer = await producer.send({ topic: 'produce-idempotent', acks: -1, messages: messages(`idem${round}`, 10).map((m, i) => ({ ...m, partition: i % 2 })) })
    equal(answer.map((r) => [r.partition, r.baseOffset]).sort(), [[0, String(round * 5)], [1, String(round * 5)]], `idempotent round ${round}`)
  }
  await rejects('an idempotent producer with acks=1', () => producer.send({ topic: 'produce-idempotent', acks: 1, messages: messages('bad', 1) }),
    { name: 'KafkaJSNonRetriableError' })
  await producer.disconnect()
  const read = await collect(['produce-idempotent'], 50)
  equal(new Set(values(read)).size, 50, 'idempotent records, each once')
  for (const p of [0, 1]) {
    equal(read.filter((r) => r.partition === p).map((r) => r.message.offset), Array.from({ length: 25 }, (_, i) => String(i)), `offsets of partition ${p}`)
  }
}

// Sends that do not wait for each other share connections, so the broker
// has many requests in flight on each; every one lands once.
async function concurrent (admin, producer) {
  await admin.createTopics({ topics: [{ topic: 'produce-concurrent', numPartitions: 3 }] })
  const idempotent = kafka.producer({ idempotent: true })
  await idempotent.connect()
  const answers = await Promise.all(Array.from({ length: 300 }, (_, i) =>
    (i % 2 ? producer : idempotent).send({ topic: 'produce-concurrent', acks: -1, messages: [{ partition: i % 3, value: `c${i}` }] })))
  equal(new Set(answers.map(([a]) => `${a.partition}/${a.baseOffset}`)).size, 300, 'distinct offsets of concurrent sends')
  const read = await collect(['produce-concurrent'], 300)
  equal(new Set(values(read)).size, 300, 'concurrently sent records, each once')
  await idempotent.disconnect()
}

async function errors (admin) {
  const producer = new kafkajs.Kafka({ brokers: [bootstrap], retry: { retries: 0 }, logLevel: kafkajs.logLevel.NOTHING }).producer()
  await producer.connect()
  await rejects('producing to an invalid topic name', () => producer.send({ topic: 'bad)(*&^%', messages: [{ value: 'x' }] }),
    { message: 'The request attempted to perform an operation on an invalid topic' })
  await admin.createTopics({ topics: [{ topic: 'produce-small', configEntries: [{ name: 'max.message.bytes', value: '2000' }] }] })
  await rejects('a batch over max.message.bytes', () => producer.send({ topic: 'produce-small', messages: [{ value: 'y'.repeat(5000) }] }),
    { name: 'KafkaJSProtocolError', type: 'MESSAGE_TOO_LARGE' })
  const ok = await producer.send({ topic: 'produce-small', messages: [{ value: 'fits' }] })
  check(ok[0].errorCode === 0, `a small record after the errors: ${JSON.stringify(ok)}`)
  await producer.disconnect()
}

run('kafkajs producer', async () => {
  const admin = kafka.admin()
  const producer = kafka.producer()
  await Promise.all([admin.connect(), producer.connect()])
  await acks(admin, producer)
  await codecs(admin, producer)
  await headersAndPartitions(admin, producer)
  await timestampsAndAutoCreation(admin, producer)
  await batches(admin, producer)
  await idempotent(admin)
  await concurrent(admin, producer)
  await errors(admin)
  await Promise.all([admin.disconnect(), producer.disconnect()])
})
