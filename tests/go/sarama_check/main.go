// Drives the broker with Sarama the way an application does, twice: with
// --version (by default the newest protocol version this Sarama knows) and
// with its default version, whose requests are the oldest ones (Produce v0,
// Fetch v0 and message format v0, Metadata v0, OffsetCommit v1). Exits
// non-zero with the first mismatch.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/Shopify/sarama"
)

const partitions = 4

// How the consumer groups assign partitions.
var strategy sarama.BalanceStrategy = sarama.BalanceStrategyRange

func main() {
	bootstrap := flag.String("bootstrap", "127.0.0.1:9092", "broker HOST:PORT")
	versionFlag := flag.String("version", sarama.MaxVersion.String(), "Kafka version for the admin, producer and group checks")
	roundRobin := flag.Bool("roundrobin", false, "groups assign round robin instead of by range")
	flag.Parse()
	if *roundRobin {
		strategy = sarama.BalanceStrategyRoundRobin
	}
	version, err := sarama.ParseKafkaVersion(*versionFlag)
	must(err, "--version")
	brokers := []string{*bootstrap}
	checkModern(brokers, version)
	checkDefaultVersion(brokers)
	fmt.Println("sarama: all checks passed")
}

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "sarama check failed: "+format+"\n", args...)
	os.Exit(1)
}

func must(err error, what string) {
	if err != nil {
		fail("%s: %v", what, err)
	}
}

func config(version sarama.KafkaVersion) *sarama.Config {
	c := sarama.NewConfig()
	c.ClientID = "sarama-check"
	c.Version = version
	c.Metadata.Retry.Backoff = 200 * time.Millisecond
	c.Producer.RequiredAcks = sarama.WaitForAll
	c.Producer.Return.Successes = true
	c.Producer.Partitioner = sarama.NewHashPartitioner
	c.Consumer.Offsets.Initial = sarama.OffsetOldest
	c.Consumer.Return.Errors = true
	c.Consumer.Group.Rebalance.Strategy = strategy
	return c
}

// A record as the producer sent it and where it landed.
type sent struct {
	key, value string
	partition  int32
	offset     int64
}

func checkModern(brokers []string, version sarama.KafkaVersion) {
	log.Printf("sarama %s: admin, producer, consumer, group", version)
	topic := "sarama-modern"
	admin, err := sarama.NewClusterAdmin(brokers, config(version))
	must(err, "new cluster admin")
	defer admin.Close()
	must(admin.CreateTopic(topic, &sarama.TopicDetail{
		NumPartitions:     partitions,
		ReplicationFactor: 1,
		ConfigEntries:     map[string]*string{"retention.ms": strPtr("3600000")},
	}, false), "create topic")
	if err := admin.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: 1, ReplicationFactor: 1}, false); err == nil {
		fail("creating %s twice succeeded", topic)
	} else if te, ok := err.(*sarama.TopicError); !ok || te.Err != sarama.ErrTopicAlreadyExists {
		fail("creating %s twice: want TOPIC_ALREADY_EXISTS, got %v", topic, err)
	}
	checkTopicAdmin(admin, topic)

	codecs := []sarama.CompressionCodec{
		sarama.CompressionNone, sarama.CompressionGZIP, sarama.CompressionSnappy, sarama.CompressionLZ4,
	}
	// Newer Sarama refuses zstd for versions before Kafka 2.1 (KIP-110).
	if version.IsAtLeast(sarama.V2_1_0_0) {
		codecs = append(codecs, sarama.CompressionZSTD)
	}
	var all []sent
	for _, codec := range codecs {
		all = append(all, produce(brokers, version, codec, topic, 25)...)
	}
	checkKeyHashing(all)
	checkPartitionConsumer(brokers, version, topic, all)

	group := "sarama-group"
	first := consumeInGroup(brokers, version, group, topic, len(all), 2)
	checkSame(all, first, "group of two")
	checkGroupAdmin(admin, group, topic, all)

	// A restarted member resumes from the committed offsets: only what is
	// produced after the group stopped arrives.
	more := produce(brokers, version, sarama.CompressionNone, topic, 10)
	resumed := consumeInGroup(brokers, version, group, topic, len(more), 1)
	checkSame(more, resumed, "resumed group")

	// The default version's Fetch v0 gets every batch, whatever its codec,
	// as a message set of magic 0.
	checkPartitionConsumer(brokers, sarama.NewConfig().Version, topic, append(all, more...))

	checkRecordsAdmin(brokers, version, admin)

	must(admin.DeleteTopic(topic), "delete topic")
	waitFor(func() bool {
		topics, err := admin.ListTopics()
		must(err, "list topics after delete")
		_, present := topics[topic]
		return !present
	}, "topic "+topic+" to be gone")
}

func strPtr(s string) *string { return &s }

// An idempotent and an async producer on a one-partition topic, whose
// partitions, records and configs the admin then changes.
func checkRecordsAdmin(brokers []string, version sarama.KafkaVersion, admin sarama.ClusterAdmin) {
	topic := "sarama-records"
	must(admin.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: 1, ReplicationFactor: 1}, false), "create topic")
	c := config(version)
	c.Producer.Idempotent = true
	c.Net.MaxOpenRequests = 1
	idempotent, err := sarama.NewSyncProducer(brokers, c)
	must(err, "new idempotent producer")
	for i := 0; i < 5; i++ {
		_, offset, err := idempotent.SendMessage(&sarama.ProducerMessage{Topic: topic, Value: sarama.StringEncoder(fmt.Sprint("idempotent-", i))})
		must(err, "idempotent send")
		if offset != int64(i) {
			fail("idempotent send %d landed at offset %d", i, offset)
		}
	}
	must(idempotent.Close(), "close idempotent producer")

	async, err := sarama.NewAsyncProducer(brokers, config(version))
	must(err, "new async producer")
	for i := 0; i < 10; i++ {
		async.Input() <- &sarama.ProducerMessage{Topic: topic, Value: sarama.StringEncoder(fmt.Sprint("async-", i))}
	}
	for i := 0; i < 10; i++ {
		select {
		case <-async.Successes():
		case err := <-async.Errors():
			fail("async send: %v", err)
		case <-time.After(20 * time.Second):
			fail("async send: %d of 10 acknowledged", i)
		}
	}
	must(async.Close(), "close async producer")

	must(admin.DeleteRecords(topic, map[int32]int64{0: 3}), "delete records")
	client, err := sarama.NewClient(brokers, config(version))
	must(err, "new client")
	oldest, err := client.GetOffset(topic, 0, sarama.OffsetOldest)
	must(err, "oldest offset")
	newest, err := client.GetOffset(topic, 0, sarama.OffsetNewest)
	must(err, "newest offset")
	if oldest != 3 || newest != 15 {
		fail("after DeleteRecords to 3: offsets %d..%d, want 3..15", oldest, newest)
	}
	must(client.Close(), "close client")

	must(admin.AlterConfig(sarama.TopicResource, topic, map[string]*string{"retention.ms": strPtr("7200000")}, false), "alter config")
	entries, err := admin.DescribeConfig(sarama.ConfigResource{Type: sarama.TopicResource, Name: topic, ConfigNames: []string{"retention.ms"}})
	must(err, "describe altered config")
	if len(entries) != 1 || entries[0].Value != "7200000" {
		fail("retention.ms after AlterConfig: %+v", entries)
	}
	// This Sarama has CreatePartitions from Kafka 1.0 on.
	if version.IsAtLeast(sarama.V1_0_0_0) {
		must(admin.CreatePartitions(topic, 3, nil, false), "create partitions")
		meta, err := admin.DescribeTopics([]string{topic})
		must(err, "describe topics")
		if len(meta) != 1 || len(meta[0].Partitions) != 3 {
			fail("after CreatePartitions to 3: %+v", meta)
		}
	}
	must(admin.DeleteTopic(topic), "delete topic")
}

func checkTopicAdmin(admin sarama.ClusterAdmin, topic string) {
	topics, err := admin.ListTopics()
	must(err, "list topics")
	detail, ok := topics[topic]
	if !ok {
		fail("list topics: %s missing from %v", topic, topics)
	}
	if detail.NumPartitions != partitions {
		fail("list topics: %s has %d partitions, want %d", topic, detail.NumPartitions, partitions)
	}
	meta, err := admin.DescribeTopics([]string{topic})
	must(err, "describe topics")
	if len(meta) != 1 || meta[0].Err != sarama.ErrNoError || len(meta[0].Partitions) != partitions {
		fail("describe topics: %+v", meta)
	}
	entries, err := admin.DescribeConfig(sarama.ConfigResource{
		Type: sarama.TopicResource, Name: topic, ConfigNames: []string{"retention.ms"},
	})
	must(err, "describe config")
	if len(entries) != 1 || entries[0].Name != "retention.ms" || entries[0].Value != "3600000" || entries[0].Default {
		fail("describe config retention.ms: %+v", entries)
	}
	all, err := admin.DescribeConfig(sarama.ConfigResource{Type: sarama.TopicResource, Name: topic})
	must(err, "describe all configs")
	if len(all) < 2 {
		fail("describe config without names lists %d entries", len(all))
	}
	// The broker keeps ACLs (without enforcing them): one created is
	// listed by its resource and deleted by the same filter.
	resource := sarama.Resource{ResourceType: sarama.AclResourceTopic, ResourceName: topic}
	acl := sarama.Acl{Principal: "User:alice", Host: "*", Operation: sarama.AclOperationRead, PermissionType: sarama.AclPermissionAllow}
	must(admin.CreateACL(resource, acl), "create acl")
	name := topic
	filter := sarama.AclFilter{ResourceType: sarama.AclResourceTopic, ResourceName: &name, Operation: sarama.AclOperationAny, PermissionType: sarama.AclPermissionAny}
	acls, err := admin.ListAcls(filter)
	must(err, "list acls")
	if len(acls) != 1 || len(acls[0].Acls) != 1 || acls[0].Acls[0].Principal != "User:alice" {
		fail("list acls: %+v", acls)
	}
	deleted, err := admin.DeleteACL(filter, false)
	must(err, "delete acl")
	if len(deleted) != 1 {
		fail("delete acl matched %+v", deleted)
	}
	if acls, err = admin.ListAcls(filter); err != nil || len(acls) != 0 {
		fail("acls after the delete: %+v, %v", acls, err)
	}

	// This Sarama asks for Metadata v0 here, which has no controller field.
	brokers, _, err := admin.DescribeCluster()
	must(err, "describe cluster")
	if len(brokers) != 1 {
		fail("describe cluster: %d brokers, want 1", len(brokers))
	}
}

func produce(brokers []string, version sarama.KafkaVersion, codec sarama.CompressionCodec, topic string, n int) []sent {
	c := config(version)
	c.Producer.Compression = codec
	producer, err := sarama.NewSyncProducer(brokers, c)
	must(err, "new sync producer")
	defer producer.Close()
	var out []sent
	for i := 0; i < n; i++ {
		key := fmt.Sprintf("key-%d", i%7)
		value := fmt.Sprintf("%s-%s-%d", codec, topic, i)
		partition, offset, err := producer.SendMessage(&sarama.ProducerMessage{
			Topic: topic,
			Key:   sarama.StringEncoder(key),
			Value: sarama.StringEncoder(value),
		})
		must(err, fmt.Sprintf("send %s (%s)", value, codec))
		out = append(out, sent{key, value, partition, offset})
	}
	// A batch of messages in one request.
	var batch []*sarama.ProducerMessage
	for i := 0; i < n; i++ {
		batch = append(batch, &sarama.ProducerMessage{
			Topic: topic,
			Key:   sarama.StringEncoder(fmt.Sprintf("key-%d", i%7)),
			Value: sarama.StringEncoder(fmt.Sprintf("%s-%s-batch-%d", codec, topic, i)),
		})
	}
	must(producer.SendMessages(batch), fmt.Sprintf("send batch (%s)", codec))
	for _, m := range batch {
		key, _ := m.Key.Encode()
		value, _ := m.Value.Encode()
		out = append(out, sent{string(key), string(value), m.Partition, m.Offset})
	}
	return out
}

func checkKeyHashing(all []sent) {
	byKey := map[string]int32{}
	for _, s := range all {
		if p, ok := byKey[s.key]; ok && p != s.partition {
			fail("key %s went to partitions %d and %d", s.key, p, s.partition)
		}
		byKey[s.key] = s.partition
	}
	used := map[int32]bool{}
	for _, p := range byKey {
		used[p] = true
	}
	if len(used) < 2 {
		fail("7 keys all hashed to one partition: %v", byKey)
	}
}

func checkPartitionConsumer(brokers []string, version sarama.KafkaVersion, topic string, all []sent) {
	consumer, err := sarama.NewConsumer(brokers, config(version))
	must(err, "new consumer")
	defer consumer.Close()
	ids, err := consumer.Partitions(topic)
	must(err, "partitions")
	var got []sent
	for _, id := range ids {
		want := 0
		for _, s := range all {
			if s.partition == id {
				want++
			}
		}
		pc, err := consumer.ConsumePartition(topic, id, sarama.OffsetOldest)
		must(err, fmt.Sprintf("consume partition %d", id))
		for len(got) < len(all) && want > 0 {
			select {
			case m := <-pc.Messages():
				got = append(got, sent{string(m.Key), string(m.Value), m.Partition, m.Offset})
				want--
			case err := <-pc.Errors():
				fail("partition %d: %v", id, err)
			case <-time.After(20 * time.Second):
				fail("partition %d: timed out with %d records still to come", id, want)
			}
		}
		must(pc.Close(), "close partition consumer")
	}
	checkSame(all, got, "partition consumer")
}

// Runs `members` group members until they have seen `want` records between
// them, committing as they go; returns the records.
func consumeInGroup(brokers []string, version sarama.KafkaVersion, group, topic string, want, members int) []sent {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	records := make(chan sent, want*2)
	assigned := make(chan []int32, 16)
	var wg sync.WaitGroup
	var groups []sarama.ConsumerGroup
	for i := 0; i < members; i++ {
		c := config(version)
		c.ClientID = fmt.Sprintf("sarama-member-%d", i)
		c.Consumer.Offsets.CommitInterval = 100 * time.Millisecond
		g, err := sarama.NewConsumerGroup(brokers, group, c)
		must(err, "new consumer group")
		groups = append(groups, g)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				if err := g.Consume(ctx, []string{topic}, &handler{records, assigned}); err != nil && ctx.Err() == nil {
					fail("consume: %v", err)
				}
			}
		}()
		go func() {
			for err := range g.Errors() {
				if ctx.Err() == nil {
					fail("consumer group error: %v", err)
				}
			}
		}()
	}
	var got []sent
	shared := false
	deadline := time.After(60 * time.Second)
	for len(got) < want || (members > 1 && !shared) {
		select {
		case r := <-records:
			got = append(got, r)
		case a := <-assigned:
			// Each member of a group of two holds some, not all, partitions.
			if members > 1 && len(a) > 0 && len(a) < partitions {
				shared = true
			}
		case <-deadline:
			fail("group %s: %d of %d records, partitions shared: %v", group, len(got), want, shared)
		}
	}
	// The last marks are committed at close.
	time.Sleep(300 * time.Millisecond)
	cancel()
	for _, g := range groups {
		must(g.Close(), "close consumer group")
	}
	wg.Wait()
	return dedupe(got)
}

// A rebalance may hand a partition over before its last marks are
// committed; the new owner then reads those records again.
func dedupe(records []sent) []sent {
	seen := map[string]bool{}
	var out []sent
	for _, r := range records {
		id := fmt.Sprintf("%d/%d", r.partition, r.offset)
		if !seen[id] {
			seen[id] = true
			out = append(out, r)
		}
	}
	return out
}

type handler struct {
	records  chan<- sent
	assigned chan<- []int32
}

func (h *handler) Setup(s sarama.ConsumerGroupSession) error {
	for _, ids := range s.Claims() {
		h.assigned <- ids
	}
	return nil
}

func (h *handler) Cleanup(sarama.ConsumerGroupSession) error { return nil }

func (h *handler) ConsumeClaim(s sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	for m := range claim.Messages() {
		h.records <- sent{string(m.Key), string(m.Value), m.Partition, m.Offset}
		s.MarkMessage(m, "")
	}
	return nil
}

func checkGroupAdmin(admin sarama.ClusterAdmin, group, topic string, all []sent) {
	groups, err := admin.ListConsumerGroups()
	must(err, "list consumer groups")
	if groups[group] != "consumer" {
		fail("list consumer groups: %s missing or not of type consumer: %v", group, groups)
	}
	described, err := admin.DescribeConsumerGroups([]string{group})
	must(err, "describe consumer groups")
	if len(described) != 1 || described[0].Err != sarama.ErrNoError || described[0].GroupId != group {
		fail("describe consumer groups: %+v", described)
	}
	if state := described[0].State; state != "Empty" {
		fail("describe consumer groups: state %s after every member left, want Empty", state)
	}
	ends := map[int32]int64{}
	for _, s := range all {
		if s.offset+1 > ends[s.partition] {
			ends[s.partition] = s.offset + 1
		}
	}
	ids := []int32{0, 1, 2, 3}
	offsets, err := admin.ListConsumerGroupOffsets(group, map[string][]int32{topic: ids})
	must(err, "list consumer group offsets")
	for _, id := range ids {
		block := offsets.GetBlock(topic, id)
		if block == nil || block.Err != sarama.ErrNoError {
			fail("committed offset of %s/%d: %+v", topic, id, block)
		}
		if block.Offset != ends[id] {
			fail("committed offset of %s/%d is %d, want %d", topic, id, block.Offset, ends[id])
		}
	}
}

func checkDefaultVersion(brokers []string) {
	version := sarama.NewConfig().Version
	log.Printf("sarama default version %s: producer, consumer, offset manager", version)
	topic := "sarama-default"
	// Admin requests need a newer version than the default; Kafka 0.10.2's
	// are CreateTopics v0 and DeleteTopics v0.
	admin, err := sarama.NewClusterAdmin(brokers, config(sarama.V0_10_2_0))
	must(err, "new cluster admin")
	must(admin.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: partitions, ReplicationFactor: 1}, false), "create topic")
	must(admin.CreateTopic("sarama-short-lived", &sarama.TopicDetail{NumPartitions: 1, ReplicationFactor: 1}, false), "create topic")
	if err := admin.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: 1, ReplicationFactor: 1}, false); err == nil {
		fail("creating %s twice succeeded", topic)
	} else if te, ok := err.(*sarama.TopicError); !ok || te.Err != sarama.ErrTopicAlreadyExists {
		fail("creating %s twice: want TOPIC_ALREADY_EXISTS, got %v", topic, err)
	}
	must(admin.DeleteTopic("sarama-short-lived"), "delete topic")
	if err := admin.DeleteTopic("sarama-short-lived"); err != sarama.ErrUnknownTopicOrPartition {
		fail("deleting a deleted topic: want UNKNOWN_TOPIC_OR_PARTITION, got %v", err)
	}
	must(admin.Close(), "close cluster admin")
	var all []sent
	for _, codec := range []sarama.CompressionCodec{
		sarama.CompressionNone, sarama.CompressionGZIP, sarama.CompressionSnappy,
	} {
		all = append(all, produce(brokers, version, codec, topic, 10)...)
	}
	checkKeyHashing(all)
	checkPartitionConsumer(brokers, version, topic, all)

	// Offsets committed through the offset manager come back to a new one.
	group := "sarama-default-group"
	client, err := sarama.NewClient(brokers, config(version))
	must(err, "new client")
	defer client.Close()
	manager, err := sarama.NewOffsetManagerFromClient(group, client)
	must(err, "new offset manager")
	pom, err := manager.ManagePartition(topic, 0)
	must(err, "manage partition")
	if offset, _ := pom.NextOffset(); offset != sarama.OffsetOldest {
		fail("a new group's next offset is %d, want the configured initial offset", offset)
	}
	pom.MarkOffset(5, "meta")
	must(pom.Close(), "close partition offset manager")
	must(manager.Close(), "close offset manager")

	again, err := sarama.NewOffsetManagerFromClient(group, client)
	must(err, "second offset manager")
	pom, err = again.ManagePartition(topic, 0)
	must(err, "manage partition again")
	if offset, meta := pom.NextOffset(); offset != 5 || meta != "meta" {
		fail("committed offset read back as %d %q, want 5 \"meta\"", offset, meta)
	}
	must(pom.Close(), "close partition offset manager")
	must(again.Close(), "close second offset manager")

	newest, err := client.GetOffset(topic, 0, sarama.OffsetNewest)
	must(err, "get newest offset")
	oldest, err := client.GetOffset(topic, 0, sarama.OffsetOldest)
	must(err, "get oldest offset")
	count := int64(0)
	for _, s := range all {
		if s.partition == 0 {
			count++
		}
	}
	if oldest != 0 || newest != count {
		fail("partition 0 offsets %d..%d, want 0..%d", oldest, newest, count)
	}
}

func checkSame(want, got []sent, what string) {
	key := func(s sent) string { return fmt.Sprintf("%d/%08d %s=%s", s.partition, s.offset, s.key, s.value) }
	w := make([]string, 0, len(want))
	for _, s := range want {
		w = append(w, key(s))
	}
	g := make([]string, 0, len(got))
	for _, s := range got {
		g = append(g, key(s))
	}
	sort.Strings(w)
	sort.Strings(g)
	if len(w) != len(g) {
		fail("%s: %d records, want %d", what, len(g), len(w))
	}
	for i := range w {
		if w[i] != g[i] {
			fail("%s: record %s, want %s", what, g[i], w[i])
		}
	}
}

func waitFor(done func() bool, what string) {
	deadline := time.Now().Add(20 * time.Second)
	for !done() {
		if time.Now().After(deadline) {
			fail("timed out waiting for %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
