// Logged in as a super user (the flags of kafkajs_support), gives
// `--principal` every operation on every topic, group and transactional
// id, and idempotent writes on the cluster, with CreateAcls.
const { kafkajs, kafka, option, run } = require('./kafkajs_support')

const { AclResourceTypes, AclOperationTypes, AclPermissionTypes, ResourcePatternTypes } = kafkajs

run('kafkajs grant', async () => {
  const principal = option('principal')
  const allow = (resourceType, resourceName, operation) => ({
    resourceType,
    resourceName,
    resourcePatternType: ResourcePatternTypes.LITERAL,
    principal,
    host: '*',
    operation,
    permissionType: AclPermissionTypes.ALLOW
  })
  const admin = kafka.admin()
  await admin.connect()
  await admin.createAcls({
    acl: [
      allow(AclResourceTypes.TOPIC, '*', AclOperationTypes.ALL),
      allow(AclResourceTypes.GROUP, '*', AclOperationTypes.ALL),
      allow(AclResourceTypes.TRANSACTIONAL_ID, '*', AclOperationTypes.ALL),
      allow(AclResourceTypes.CLUSTER, 'kafka-cluster', AclOperationTypes.IDEMPOTENT_WRITE)
    ]
  })
  await admin.disconnect()
})
