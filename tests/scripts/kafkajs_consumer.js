// kafkajs's consumer against the broker: eachBatch resolving and committing
// offsets by hand, seek, pause and resume, fromBeginning false, a third
// member of a group on two partitions left idle until a partition frees up,
// autoCommit off with commitOffsets, a restart resuming at the commits, and a
// long-poll fetch answered when a record arrives.
const { kafka, sleep, waitFor, check, equal, run } = require('./kafkajs_support')

const messages = (prefix, n, partition = 0) => Array.from({ length: n }, (_, i) => ({ partition, value: `${prefix}-${i}` }))
const values = (prefix, from, to) => Array.from({ length: to - from }, (_, i) => `${prefix}-${from + i}`)

async function committed (admin, groupId, topic) {
  const [{ partitions }] = await admin.fetchOffsets({ groupId, topics: [topic] })
  return partitions.sort((a, b) => a.partition - b.partition).map((p) => p.offset)
}

// Starts a consumer of `topic` in `groupId` that pushes what it reads.
async function consumer (groupId, topic, runOptions, { fromBeginning = true, ...options } = {}) {
  const c = kafka.consumer({ groupId, maxWaitTimeInMs: 200, ...options })
  const joins = []
  c.on(c.events.GROUP_JOIN, (e) => joins.push(e.payload))
  await c.connect()
  await c.subscribe({ topics: [topic], fromBeginning })
  const seen = []
  await c.run({ eachMessage: async ({ message }) => { seen.push(message.value.toString()) }, ...runOptions })
  return { c, seen, joins }
}

async function eachBatch (admin, producer) {
  await admin.createTopics({ topics: [{ topic: 'consume-batch' }] })
  await producer.send({ topic: 'consume-batch', messages: messages('batch', 10) })
  const seen = []
  let stop = false
  const c = kafka.consumer({ groupId: 'consume-batch', maxWaitTimeInMs: 200 })
  await c.connect()
  await c.subscribe({ topics: ['consume-batch'], fromBeginning: true })
  await c.run({
    eachBatchAutoResolve: false,
    eachBatch: async ({ batch, resolveOffset, commitOffsetsIfNecessary, heartbeat, isRunning, isStale }) => {
      for (const message of batch.messages) {
        if (stop || !isRunning() || isStale()) break
        seen.push(message.value.toString())
        // The first six records are handled; the seventh "fails" the batch.
        if (seen.length === 7) {
          stop = true
          break
        }
        resolveOffset(message.offset)
        await heartbeat()
      }
      await commitOffsetsIfNecessary()
    }
  })
  await waitFor('seven records in eachBatch', () => stop)
  await c.disconnect()
  equal(await committed(admin, 'consume-batch', 'consume-batch'), ['6'], 'offset committed by commitOffsetsIfNecessary')

  const again = await consumer('consume-batch', 'consume-batch')
  await waitFor('the rest of the batch', () => again.seen.length >= 4)
  await sleep(500)
  await again.c.disconnect()
  equal(again.seen, values('batch', 6, 10), 'records after the resolved ones')
  equal(await committed(admin, 'consume-batch', 'consume-batch'), ['10'], 'offset committed on disconnect')
}

async function seek (admin, producer) {
  await admin.createTopics({ topics: [{ topic: 'consume-seek' }] })
  await producer.send({ topic: 'consume-seek', messages: messages('seek', 10) })
  const { c, seen } = await consumer('consume-seek', 'consume-seek')
  await waitFor('all records before seeking', () => seen.length >= 10)
  c.seek({ topic: 'consume-seek', partition: 0, offset: '3' })
  await waitFor('records again after seeking', () => seen.length >= 17)
  await sleep(500)
  equal(seen, [...values('seek', 0, 10), ...values('seek', 3, 10)], 'records after seek to 3')
  await c.disconnect()
}

async function pauseResume (admin, producer) {
  await admin.createTopics({ topics: [{ topic: 'consume-pause', numPartitions: 2 }] })
  const { c, seen } = await consumer('consume-pause', 'consume-pause')
  await producer.send({ topic: 'consume-pause', messages: messages('first', 2, 0) })
  await waitFor('records before the pause', () => seen.length >= 2)
  c.pause([{ topic: 'consume-pause', partitions: [1] }])
  equal(c.paused(), [{ topic: 'consume-pause', partitions: [1] }], 'paused partitions')
  await producer.send({ topic: 'consume-pause', messages: messages('paused', 3, 1) })
  await producer.send({ topic: 'consume-pause', messages: messages('running', 3, 0) })
  await waitFor('records of the running partition', () => seen.length >= 5)
  await sleep(1000)
  equal(seen, [...values('first', 0, 2), ...values('running', 0, 3)], 'nothing read from the paused partition')
  c.resume([{ topic: 'consume-pause', partitions: [1] }])
  await waitFor('records of the resumed partition', () => seen.length >= 8)
  equal(seen.slice(5), values('paused', 0, 3), 'records after resume')
  await c.disconnect()
}

async function fromLatest (admin, producer) {
  await admin.createTopics({ topics: [{ topic: 'consume-latest' }] })
  await producer.send({ topic: 'consume-latest', messages: messages('old', 5) })
  const { c, seen, joins } = await consumer('consume-latest', 'consume-latest', {}, { fromBeginning: false })
  await waitFor('the group join', () => joins.length > 0)
  await sleep(1000)
  await producer.send({ topic: 'consume-latest', messages: messages('new', 2) })
  await waitFor('the new records', () => seen.length >= 2)
  await sleep(500)
  equal(seen, values('new', 0, 2), 'fromBeginning false reads only new records')
  await c.disconnect()
}

// Partitions in a member's latest assignment.
const assigned = (member) => Object.values(member.joins.at(-1).memberAssignment).flat().length

async function idleMember (admin, producer) {
  await admin.createTopics({ topics: [{ topic: 'consume-three', numPartitions: 2 }] })
  const options = { heartbeatInterval: 500, sessionTimeout: 10000 }
  const members = []
  for (let i = 0; i < 3; i++) {
    members.push(await consumer('consume-three', 'consume-three', {}, options))
    if (i === 1) await waitFor('two members sharing the partitions', () => members.every((m) => m.joins.length > 0 && assigned(m) === 1))
  }
  const share = () => members.map((m) => m.joins.length > 0 ? assigned(m) : -1).sort()
  await waitFor('the third member to join', () => members[2].joins.length > 0 && share().join() === '0,1,1')
  await producer.send({ topic: 'consume-three', messages: [...messages('p0', 5, 0), ...messages('p1', 5, 1)] })
  await waitFor('every record', () => members.reduce((n, m) => n + m.seen.length, 0) >= 10)
  const idle = members.find((m) => assigned(m) === 0)
  equal(idle.seen, [], 'the idle member reads nothing')

  const busy = members.filter((m) => m !== idle)
  await busy[0].c.disconnect()
  await waitFor('the idle member to take over a partition', () => assigned(idle) === 1)
  await producer.send({ topic: 'consume-three', messages: [...messages('q0', 5, 0), ...messages('q1', 5, 1)] })
  await waitFor('the records after the takeover', () => idle.seen.length + busy[1].seen.length >= 20 - busy[0].seen.length)
  check(idle.seen.length === 5, `the member that was idle reads its new partition: ${idle.seen}`)
  await Promise.all([idle.c.disconnect(), busy[1].c.disconnect()])
}

async function manualCommits (admin, producer) {
  await admin.createTopics({ topics: [{ topic: 'consume-manual', numPartitions: 2 }] })
  await producer.send({ topic: 'consume-manual', messages: [...messages('m0', 6, 0), ...messages('m1', 4, 1)] })
  const first = await consumer('consume-manual', 'consume-manual', { autoCommit: false })
  await waitFor('every record', () => first.seen.length >= 10)
  await sleep(500)
  equal(await committed(admin, 'consume-manual', 'consume-manual'), ['-1', '-1'], 'nothing committed with autoCommit off')
  await first.c.commitOffsets([{ topic: 'consume-manual', partition: 0, offset: '4' }, { topic: 'consume-manual', partition: 1, offset: '4' }])
  equal(await committed(admin, 'consume-manual', 'consume-manual'), ['4', '4'], 'offsets of commitOffsets')
  await first.c.disconnect()
  equal(await committed(admin, 'consume-manual', 'consume-manual'), ['4', '4'], 'autoCommit off commits nothing on disconnect')

  // A restart resumes at the commits: two records of partition 0 are left.
  const second = await consumer('consume-manual', 'consume-manual', {})
  await waitFor('the records after the commits', () => second.seen.length >= 2)
  await sleep(1000)
  equal(second.seen, values('m0', 4, 6), 'records after the restart')
  await second.c.disconnect()
  equal(await committed(admin, 'consume-manual', 'consume-manual'), ['6', '4'], 'autoCommit commits what the restart read')
}

// Records larger than maxBytesPerPartition and maxBytes still come, a whole
// batch at a time (KIP-74); a committed offset past the end is reset as
// fromBeginning says; describeGroup shows the running member.
async function limitsAndResets (admin, producer) {
  await admin.createTopics({ topics: [{ topic: 'consume-large' }] })
  const large = Array.from({ length: 20 }, (_, i) => ({ value: `${i}-${'z'.repeat(1000)}` }))
  for (let i = 0; i < 20; i += 5) await producer.send({ topic: 'consume-large', messages: large.slice(i, i + 5) })
  await admin.setOffsets({ groupId: 'consume-large', topic: 'consume-large', partitions: [{ partition: 0, offset: '100' }] })
  const { c, seen } = await consumer('consume-large', 'consume-large', {}, { maxBytesPerPartition: 180, maxBytes: 500 })
  await waitFor('every large record', () => seen.length >= 20)
  equal(seen, large.map((m) => m.value), 'large records, from the start after an out-of-range commit')
  const description = await c.describeGroup()
  equal([description.state, description.protocolType, description.members.length], ['Stable', 'consumer', 1], 'describeGroup')
  await c.disconnect()
}

// A subscribed topic that grows is rebalanced onto its new partitions once
// the consumer's metadata is refreshed.
async function growingTopic (admin, producer) {
  await admin.createTopics({ topics: [{ topic: 'consume-grow' }] })
  const { c, seen, joins } = await consumer('consume-grow', 'consume-grow', {}, { metadataMaxAge: 500 })
  await waitFor('the group join', () => joins.length > 0)
  await admin.createPartitions({ topicPartitions: [{ topic: 'consume-grow', count: 2 }] })
  await producer.send({ topic: 'consume-grow', messages: [{ partition: 1, value: 'on-the-new-partition' }] })
  await waitFor('the record of the new partition', () => seen.length === 1)
  equal(joins.at(-1).memberAssignment, { 'consume-grow': [0, 1] }, 'assignment after the topic grew')
  await c.disconnect()
}

// With a fetch wait far beyond how long the script waits for the record, the
// record can only arrive in time if the broker answers the waiting fetch as
// soon as it is written.
async function longPoll (admin, producer) {
  await admin.createTopics({ topics: [{ topic: 'consume-long-poll' }] })
  const fetches = []
  const { c, seen, joins } = await consumer('consume-long-poll', 'consume-long-poll', {}, { maxWaitTimeInMs: 25000, sessionTimeout: 60000 })
  c.on(c.events.FETCH_START, () => fetches.push('start'))
  await waitFor('the group join', () => joins.length > 0)
  await waitFor('a waiting fetch', () => fetches.length > 0)
  await sleep(1000)
  equal(seen, [], 'records before producing')
  await producer.send({ topic: 'consume-long-poll', messages: [{ value: 'wake-up' }] })
  await waitFor('the record to wake the waiting fetch', () => seen.length === 1, 15000)
  equal(seen, ['wake-up'], 'the long-polled record')
  await c.disconnect()
}

run('kafkajs consumer', async () => {
  const admin = kafka.admin()
  const producer = kafka.producer()
  await Promise.all([admin.connect(), producer.connect()])
  await eachBatch(admin, producer)
  await seek(admin, producer)
  await pauseResume(admin, producer)
  await fromLatest(admin, producer)
  await idleMember(admin, producer)
  await manualCommits(admin, producer)
  await limitsAndResets(admin, producer)
  await growingTopic(admin, producer)
  await longPoll(admin, producer)
  await Promise.all([admin.disconnect(), producer.disconnect()])
})
