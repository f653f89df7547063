// kafkajs against a broker that does not auto-create topics: producing to,
// subscribing to and asking for metadata of a topic that does not exist end
// in UNKNOWN_TOPIC_OR_PARTITION (wrapped once kafkajs gives up retrying),
// and nothing is created along the way.
const { kafkajs, bootstrap, equal, rejects, run } = require('./kafkajs_support')

// Few retries, so that the retried errors come back quickly.
const client = new kafkajs.Kafka({ brokers: [bootstrap], retry: { retries: 1, initialRetryTime: 50 }, logLevel: kafkajs.logLevel.NOTHING })
const unknown = { type: 'UNKNOWN_TOPIC_OR_PARTITION', code: 3 }

run('kafkajs without auto-creation', async () => {
  const admin = client.admin()
  const producer = client.producer()
  const consumer = client.consumer({ groupId: 'no-auto-create' })
  await Promise.all([admin.connect(), producer.connect(), consumer.connect()])
  await rejects('producing to a topic that does not exist', () => producer.send({ topic: 'missing', messages: [{ value: 'lost' }] }),
    { name: 'KafkaJSNumberOfRetriesExceeded', cause: unknown })
  await rejects('subscribing to a topic that does not exist', () => consumer.subscribe({ topics: ['missing'] }),
    { name: 'KafkaJSProtocolError', ...unknown })
  await rejects('metadata of a topic that does not exist', () => admin.fetchTopicMetadata({ topics: ['missing'] }),
    { name: 'KafkaJSProtocolError', ...unknown })
  equal(await admin.listTopics(), [], 'topics after all of it')

  await admin.createTopics({ topics: [{ topic: 'created' }] })
  const [sent] = await producer.send({ topic: 'created', messages: [{ value: 'kept' }] })
  equal([sent.errorCode, sent.baseOffset], [0, '0'], 'producing to a created topic')
  await Promise.all([admin.disconnect(), producer.disconnect(), consumer.disconnect()])
})
