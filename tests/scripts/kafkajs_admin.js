// kafkajs's admin client against the broker: topics (create with configs,
// validate only, grow, delete), configs of topics and of the broker, the
// cluster, topic offsets (by timestamp too, and after DeleteRecords), a
// group's offsets (fetch, set, reset), groups (list, describe, delete), and
// the errors kafkajs raises for what does not exist.
const { kafkajs, kafka, bootstrap, waitFor, check, equal, rejects, run } = require('./kafkajs_support')

const { ConfigResourceTypes } = kafkajs

const entry = (resource, name) => {
  const found = resource.configEntries.find((c) => c.configName === name)
  check(found, `${resource.resourceName} has no config ${name}: ${JSON.stringify(resource.configEntries.map((c) => c.configName))}`)
  return found
}

async function topicConfig (admin, topic, name) {
  const { resources } = await admin.describeConfigs({
    resources: [{ type: ConfigResourceTypes.TOPIC, name: topic, configNames: [name] }]
  })
  equal(resources.length, 1, `described resources of ${topic}`)
  equal(resources[0].errorCode, 0, `DescribeConfigs error of ${topic}`)
  equal(resources[0].configEntries.length, 1, `entries when asking for ${name} alone`)
  return entry(resources[0], name)
}

async function topics (admin) {
  const created = await admin.createTopics({
    topics: [{
      topic: 'admin-configured',
      numPartitions: 3,
      replicationFactor: 1,
      configEntries: [
        { name: 'cleanup.policy', value: 'compact' },
        { name: 'retention.ms', value: '60000' }
      ]
    }]
  })
  equal(created, true, 'createTopics of a new topic')
  equal(await admin.createTopics({ topics: [{ topic: 'admin-configured', numPartitions: 3 }] }), false,
    'createTopics of an existing topic')
  equal(await admin.createTopics({ topics: [{ topic: 'admin-plain' }], waitForLeaders: false }), true,
    'createTopics without waiting for leaders')

  const { brokers: [{ nodeId }] } = await admin.describeCluster()
  equal(await admin.createTopics({ topics: [{ topic: 'admin-assigned', replicaAssignment: [{ partition: 0, replicas: [nodeId] }, { partition: 1, replicas: [nodeId] }] }] }),
    true, 'createTopics with a replica assignment')
  const { topics: [assigned] } = await admin.fetchTopicMetadata({ topics: ['admin-assigned'] })
  equal(assigned.partitions.map((p) => [p.partitionId, p.replicas]).sort(), [[0, [nodeId]], [1, [nodeId]]], 'assigned replicas')

  equal(await admin.createTopics({ validateOnly: true, waitForLeaders: false, topics: [{ topic: 'admin-validated', numPartitions: 2 }] }),
    true, 'createTopics validateOnly')
  const listed = await admin.listTopics()
  check(!listed.includes('admin-validated'), `validateOnly created the topic: ${listed}`)
  check(listed.includes('admin-configured') && listed.includes('admin-plain'), `listTopics: ${listed}`)

  const tooMany = await rejects('replication factor 3 on one broker',
    () => admin.createTopics({ topics: [{ topic: 'admin-replicated', replicationFactor: 3 }] }),
    { name: 'KafkaJSAggregateError' })
  equal(tooMany.errors.map((e) => e.type), ['INVALID_REPLICATION_FACTOR'], 'replication factor error')
  const badConfig = await rejects('an invalid config value',
    () => admin.createTopics({ topics: [{ topic: 'admin-bad-config', configEntries: [{ name: 'retention.ms', value: 'soon' }] }] }),
    { name: 'KafkaJSAggregateError' })
  equal(badConfig.errors.map((e) => e.type), ['INVALID_CONFIG'], 'invalid config error')

  const { topics: [metadata] } = await admin.fetchTopicMetadata({ topics: ['admin-configured'] })
  equal(metadata.name, 'admin-configured', 'metadata topic name')
  equal(metadata.partitions.map((p) => p.partitionId).sort(), [0, 1, 2], 'partition ids')
  for (const p of metadata.partitions) {
    check(p.partitionErrorCode === 0 && p.leader >= 0 && p.replicas.length === 1 && p.isr.length === 1,
      `partition metadata ${JSON.stringify(p)}`)
  }
  const { topics: all } = await admin.fetchTopicMetadata()
  check(all.some((t) => t.name === 'admin-plain'), 'fetchTopicMetadata without topics lists every topic')

  await admin.createPartitions({ topicPartitions: [{ topic: 'admin-configured', count: 5 }] })
  const { topics: [grown] } = await admin.fetchTopicMetadata({ topics: ['admin-configured'] })
  equal(grown.partitions.length, 5, 'partitions after createPartitions')
  await rejects('shrinking a topic', () => admin.createPartitions({ topicPartitions: [{ topic: 'admin-configured', count: 2 }] }),
    { name: 'KafkaJSProtocolError', type: 'INVALID_PARTITIONS', message: 'Number of partitions is invalid' })

  await admin.deleteTopics({ topics: ['admin-plain'] })
  await waitFor('admin-plain to go', async () => !(await admin.listTopics()).includes('admin-plain'))
}

async function configs (admin) {
  equal((await topicConfig(admin, 'admin-configured', 'cleanup.policy')).configValue, 'compact', 'cleanup.policy at creation')
  const retention = await topicConfig(admin, 'admin-configured', 'retention.ms')
  equal([retention.configValue, retention.isDefault], ['60000', false], 'retention.ms at creation')

  const { resources: [everything] } = await admin.describeConfigs({
    resources: [{ type: ConfigResourceTypes.TOPIC, name: 'admin-configured' }]
  })
  check(everything.configEntries.length > 2, `all topic configs: ${everything.configEntries.length}`)
  const segment = entry(everything, 'segment.bytes')
  check(segment.isDefault && !segment.readOnly, `a default topic config: ${JSON.stringify(segment)}`)

  await admin.alterConfigs({
    validateOnly: true,
    resources: [{ type: ConfigResourceTypes.TOPIC, name: 'admin-configured', configEntries: [{ name: 'cleanup.policy', value: 'delete' }] }]
  })
  equal((await topicConfig(admin, 'admin-configured', 'cleanup.policy')).configValue, 'compact', 'cleanup.policy after validateOnly')
  await admin.alterConfigs({
    resources: [{ type: ConfigResourceTypes.TOPIC, name: 'admin-configured', configEntries: [{ name: 'cleanup.policy', value: 'delete' }] }]
  })
  equal((await topicConfig(admin, 'admin-configured', 'cleanup.policy')).configValue, 'delete', 'cleanup.policy after alterConfigs')

  const { brokers: [{ nodeId }] } = await admin.describeCluster()
  const { resources } = await admin.describeConfigs({
    resources: [
      { type: ConfigResourceTypes.TOPIC, name: 'admin-configured', configNames: ['cleanup.policy'] },
      { type: ConfigResourceTypes.BROKER, name: String(nodeId) }
    ]
  })
  equal(resources.length, 2, 'topic and broker resources described')
  const broker = resources.find((r) => r.resourceType === ConfigResourceTypes.BROKER)
  check(broker && broker.errorCode === 0 && broker.resourceName === String(nodeId), `broker resource ${JSON.stringify(broker)}`)
  const maxBytes = entry(broker, 'message.max.bytes')
  // message.max.bytes may change at run time (KIP-226); node.id may not.
  check(Number(maxBytes.configValue) > 0 && !maxBytes.readOnly, `message.max.bytes ${JSON.stringify(maxBytes)}`)
  await rejects('altering a static broker config', () => admin.alterConfigs({
    resources: [{ type: ConfigResourceTypes.BROKER, name: String(nodeId), configEntries: [{ name: 'node.id', value: '7' }] }]
  }), { name: 'KafkaJSProtocolError', type: 'INVALID_REQUEST' })

  const { resources: [synonyms] } = await admin.describeConfigs({
    includeSynonyms: true,
    resources: [{ type: ConfigResourceTypes.TOPIC, name: 'admin-configured', configNames: ['cleanup.policy', 'retention.ms'] }]
  })
  // The override, then the broker setting it hides, as Kafka lists them.
  equal(entry(synonyms, 'cleanup.policy').configSynonyms, [
    { configName: 'cleanup.policy', configValue: 'delete', configSource: 1 },
    { configName: 'log.cleanup.policy', configValue: 'delete', configSource: 5 }
  ], 'synonyms of a topic override')
  // AlterConfigs replaces every override of the resource.
  equal(entry(synonyms, 'retention.ms').configSynonyms, [{ configName: 'log.retention.ms', configValue: '604800000', configSource: 5 }],
    'synonyms of a default, after AlterConfigs dropped its override')

  await rejects('describing a topic that does not exist', () => admin.describeConfigs({
    resources: [{ type: ConfigResourceTypes.TOPIC, name: 'admin-missing' }]
  }), { name: 'KafkaJSProtocolError', type: 'UNKNOWN_TOPIC_OR_PARTITION' })
  await rejects('an invalid config value', () => admin.alterConfigs({
    resources: [{ type: ConfigResourceTypes.TOPIC, name: 'admin-configured', configEntries: [{ name: 'retention.ms', value: 'soon' }] }]
  }), { name: 'KafkaJSProtocolError', type: 'INVALID_CONFIG' })
}

async function cluster (admin) {
  const { brokers, controller, clusterId } = await admin.describeCluster()
  equal(brokers.length, 1, 'brokers')
  const [broker] = brokers
  check(typeof broker.host === 'string' && broker.port > 0, `broker ${JSON.stringify(broker)}`)
  equal(controller, broker.nodeId, 'controller')
  check(typeof clusterId === 'string' && clusterId.length > 0, `cluster id ${clusterId}`)

  // One broker: no reassignment is ever in progress, moving a partition onto
  // the broker it is on is a no-op, and onto another broker is refused.
  equal(await admin.listPartitionReassignments({}), { topics: [] }, 'reassignments in progress')
  await admin.alterPartitionReassignments({ topics: [{ topic: 'admin-configured', partitionAssignment: [{ partition: 0, replicas: [broker.nodeId] }] }] })
  const elsewhere = await rejects('moving a partition to a broker that does not exist', () => admin.alterPartitionReassignments({
    topics: [{ topic: 'admin-configured', partitionAssignment: [{ partition: 0, replicas: [broker.nodeId + 1] }] }]
  }), { name: 'KafkaJSAggregateError' })
  equal(elsewhere.errors.map((e) => e.type), ['INVALID_REPLICA_ASSIGNMENT'], 'error of a reassignment to another broker')
}

async function topicOffsets (admin, producer) {
  await admin.createTopics({ topics: [{ topic: 'admin-offsets', numPartitions: 2 }] })
  equal(await admin.fetchTopicOffsets('admin-offsets'), [
    { partition: 0, offset: '0', high: '0', low: '0' },
    { partition: 1, offset: '0', high: '0', low: '0' }
  ], 'offsets of an empty topic')
  equal(await admin.fetchTopicOffsetsByTimestamp('admin-offsets', Date.now()), [
    { partition: 0, offset: '0' }, { partition: 1, offset: '0' }
  ], 'offsets by timestamp of an empty topic')

  const base = Date.now() - 60000
  const at = (i) => String(base + i * 1000)
  await producer.send({
    topic: 'admin-offsets',
    messages: Array.from({ length: 10 }, (_, i) => ({ partition: 0, value: `p0-${i}`, timestamp: at(i) }))
  })
  await producer.send({
    topic: 'admin-offsets',
    messages: Array.from({ length: 4 }, (_, i) => ({ partition: 1, value: `p1-${i}`, timestamp: at(i) }))
  })
  equal(await admin.fetchTopicOffsets('admin-offsets'), [
    { partition: 0, offset: '10', high: '10', low: '0' },
    { partition: 1, offset: '4', high: '4', low: '0' }
  ], 'offsets after producing')
  equal(await admin.fetchTopicOffsetsByTimestamp('admin-offsets', base + 6000), [
    { partition: 0, offset: '6' }, { partition: 1, offset: '4' }
  ], 'offsets by timestamp')
  equal(await admin.fetchTopicOffsetsByTimestamp('admin-offsets', base + 5500), [
    { partition: 0, offset: '6' }, { partition: 1, offset: '4' }
  ], 'offsets by a timestamp between records')
  equal(await admin.fetchTopicOffsetsByTimestamp('admin-offsets', base - 1000), [
    { partition: 0, offset: '0' }, { partition: 1, offset: '0' }
  ], 'offsets by a timestamp before every record')

  await admin.deleteTopicRecords({ topic: 'admin-offsets', partitions: [{ partition: 0, offset: '7' }] })
  await admin.deleteTopicRecords({ topic: 'admin-offsets', partitions: [{ partition: 1, offset: '-1' }] })
  // Below the log start offset: nothing to delete, and no error.
  await admin.deleteTopicRecords({ topic: 'admin-offsets', partitions: [{ partition: 0, offset: '2' }] })
  equal(await admin.fetchTopicOffsets('admin-offsets'), [
    { partition: 0, offset: '10', high: '10', low: '7' },
    { partition: 1, offset: '4', high: '4', low: '4' }
  ], 'offsets after deleteTopicRecords')
  const outOfRange = await rejects('deleting records past the end', () => admin.deleteTopicRecords({
    topic: 'admin-offsets', partitions: [{ partition: 0, offset: '99' }]
  }), { name: 'KafkaJSNonRetriableError', cause: { name: 'KafkaJSDeleteTopicRecordsError' } })
  equal(outOfRange.cause.partitions.map((p) => p.error.type), ['OFFSET_OUT_OF_RANGE'], 'error of deleting past the end')

  const consumer = kafka.consumer({ groupId: 'admin-reader', maxWaitTimeInMs: 100 })
  await consumer.connect()
  await consumer.subscribe({ topic: 'admin-offsets', fromBeginning: true })
  const seen = []
  await consumer.run({ eachMessage: async ({ partition, message }) => { seen.push([partition, message.offset]) } })
  await waitFor('the records left after deleteTopicRecords', () => seen.length >= 3)
  await consumer.disconnect()
  equal(seen, [[0, '7'], [0, '8'], [0, '9']], 'records left after deleteTopicRecords')
}

async function groupOffsets (admin) {
  const groupId = 'admin-offsets-group'
  equal(await admin.fetchOffsets({ groupId, topics: ['admin-offsets'] }), [{
    topic: 'admin-offsets',
    partitions: [{ partition: 0, offset: '-1', metadata: null }, { partition: 1, offset: '-1', metadata: null }]
  }], 'offsets of a group that never committed')

  await admin.setOffsets({ groupId, topic: 'admin-offsets', partitions: [{ partition: 0, offset: '8' }, { partition: 1, offset: '4' }] })
  const set = await admin.fetchOffsets({ groupId, topics: ['admin-offsets'] })
  equal(set[0].partitions.map((p) => p.offset), ['8', '4'], 'offsets after setOffsets')
  equal(await admin.fetchOffsets({ groupId }), set, 'offsets of every topic of the group')

  await admin.resetOffsets({ groupId, topic: 'admin-offsets', earliest: true })
  const { groups: [empty] } = await admin.describeGroups([groupId])
  equal(empty, { groupId, errorCode: 0, state: 'Empty', protocolType: 'consumer', protocol: '', members: [] }, 'a group whose setOffsets consumer left')
  const reset = await admin.fetchOffsets({ groupId, topics: ['admin-offsets'] })
  equal(reset[0].partitions.map((p) => p.offset), ['-2', '-2'], 'offsets after resetOffsets to the earliest')
  const resolved = await admin.fetchOffsets({ groupId, topics: ['admin-offsets'], resolveOffsets: true })
  equal(resolved[0].partitions.map((p) => p.offset), ['7', '4'], 'earliest offsets resolved')
  await admin.resetOffsets({ groupId, topic: 'admin-offsets' })
  const latest = await admin.fetchOffsets({ groupId, topics: ['admin-offsets'], resolveOffsets: true })
  equal(latest[0].partitions.map((p) => p.offset), ['10', '4'], 'latest offsets resolved')
}

async function groups (admin, producer) {
  await admin.createTopics({ topics: [{ topic: 'admin-groups' }] })
  const seen = []
  const consumer = kafka.consumer({ groupId: 'admin-live', maxWaitTimeInMs: 100 })
  await consumer.connect()
  await consumer.subscribe({ topic: 'admin-groups', fromBeginning: true })
  await consumer.run({ eachMessage: async ({ message }) => { seen.push(message.value.toString()) } })
  await producer.send({ topic: 'admin-groups', messages: [{ value: 'one' }] })
  await waitFor('the live group to consume', () => seen.length === 1)

  const { groups: listed } = await admin.listGroups()
  const live = listed.find((g) => g.groupId === 'admin-live')
  equal(live, { groupId: 'admin-live', protocolType: 'consumer' }, 'listGroups entry')
  check(listed.some((g) => g.groupId === 'admin-offsets-group'), `listGroups lists the group with offsets only: ${JSON.stringify(listed)}`)

  const { groups: [described, unknown] } = await admin.describeGroups(['admin-live', 'admin-nobody'])
  equal([described.groupId, described.errorCode, described.state, described.protocolType, described.protocol],
    ['admin-live', 0, 'Stable', 'consumer', 'RoundRobinAssigner'], 'describeGroups of a live group')
  equal(described.members.length, 1, 'members')
  const [member] = described.members
  check(member.clientId === 'kafkajs-test' && member.memberId && member.clientHost && member.memberMetadata.length > 0 && member.memberAssignment.length > 0,
    `member ${JSON.stringify({ ...member, memberMetadata: undefined, memberAssignment: undefined })}`)
  const assignment = kafkajs.AssignerProtocol.MemberAssignment.decode(member.memberAssignment)
  equal(assignment.assignment, { 'admin-groups': [0] }, 'member assignment')
  equal(unknown, { groupId: 'admin-nobody', errorCode: 0, state: 'Dead', protocolType: '', protocol: '', members: [] },
    'describeGroups of a group that does not exist')

  await rejects('setting the offsets of a running group', () => admin.setOffsets({ groupId: 'admin-live', topic: 'admin-groups', partitions: [{ partition: 0, offset: '0' }] }),
    { message: 'The consumer group must have no running instances, current state: Stable' })
  const nonEmpty = await rejects('deleting a group with members', () => admin.deleteGroups(['admin-live']), { name: 'KafkaJSDeleteGroupsError' })
  equal(nonEmpty.groups.map((g) => [g.groupId, g.error.type]), [['admin-live', 'NON_EMPTY_GROUP']], 'error of deleting a live group')

  await consumer.stop()
  const missing = await rejects('deleting a group that does not exist', () => admin.deleteGroups(['admin-live', 'admin-nobody']),
    { name: 'KafkaJSDeleteGroupsError' })
  equal(missing.groups.map((g) => [g.groupId, g.error.type]), [['admin-nobody', 'GROUP_ID_NOT_FOUND']], 'error of deleting an unknown group')
  const after = (await admin.listGroups()).groups.map((g) => g.groupId)
  check(!after.includes('admin-live'), `the emptied group is deleted: ${after}`)
  equal(await admin.deleteGroups(['admin-offsets-group']), [{ groupId: 'admin-offsets-group', errorCode: 0 }], 'deleteGroups result')
  await consumer.disconnect()
}

// kafkajs retries UNKNOWN_TOPIC_OR_PARTITION (a topic may be on its way):
// without retries the protocol error is the cause of the one it gives up with.
async function unknownTopics () {
  const strict = kafka.admin({ retry: { retries: 0 } })
  const noCreation = new kafkajs.Kafka({ brokers: [bootstrap], retry: { retries: 0 } })
    .admin({ allowAutoTopicCreation: false })
  await Promise.all([strict.connect(), noCreation.connect()])
  const unknown = { name: 'KafkaJSNumberOfRetriesExceeded', cause: { name: 'KafkaJSProtocolError', type: 'UNKNOWN_TOPIC_OR_PARTITION', code: 3 } }
  await rejects('growing a topic that does not exist', () => strict.createPartitions({ topicPartitions: [{ topic: 'admin-missing', count: 2 }] }),
    { name: 'KafkaJSProtocolError', type: 'UNKNOWN_TOPIC_OR_PARTITION', message: 'This server does not host this topic-partition' })
  await rejects('deleting a topic that does not exist', () => strict.deleteTopics({ topics: ['admin-missing'] }), unknown)
  await rejects('altering a topic that does not exist', () => strict.alterConfigs({
    resources: [{ type: ConfigResourceTypes.TOPIC, name: 'admin-missing', configEntries: [{ name: 'retention.ms', value: '1000' }] }]
  }), { name: 'KafkaJSProtocolError', type: 'UNKNOWN_TOPIC_OR_PARTITION' })
  await rejects('metadata of a topic that does not exist', () => noCreation.fetchTopicMetadata({ topics: ['admin-missing'] }),
    { name: 'KafkaJSProtocolError', type: 'UNKNOWN_TOPIC_OR_PARTITION', code: 3, message: 'This server does not host this topic-partition' })
  await rejects('offsets of a topic that does not exist', () => noCreation.fetchTopicOffsets('admin-missing'), unknown)
  check(!(await strict.listTopics()).includes('admin-missing'), 'no admin call created admin-missing')
  await Promise.all([strict.disconnect(), noCreation.disconnect()])
}

run('kafkajs admin', async () => {
  const admin = kafka.admin()
  const producer = kafka.producer()
  await Promise.all([admin.connect(), producer.connect()])
  await topics(admin)
  await configs(admin)
  await cluster(admin)
  await topicOffsets(admin, producer)
  await groupOffsets(admin)
  await groups(admin, producer)
  await unknownTopics()
  await Promise.all([admin.disconnect(), producer.disconnect()])
})
