// Drives the broker with segmentio/kafka-go the way an application does:
// topics through Conn, a Writer with a hash balancer and every codec, a
// Reader per partition at set offsets and timestamps, two group Readers
// sharing partitions and committing, and a third resuming from the
// commits. This kafka-go speaks the pre-0.11 protocol (Produce and Fetch
// v2 with message sets, CreateTopics v0). Exits non-zero with the first
// mismatch.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"sort"
	"strconv"
	"sync"
	"time"

	kafka "github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/gzip"
	"github.com/segmentio/kafka-go/lz4"
	"github.com/segmentio/kafka-go/snappy"
)

const partitions = 4

func main() {
	bootstrap := flag.String("bootstrap", "127.0.0.1:9092", "broker HOST:PORT")
	flag.Parse()
	check(*bootstrap)
	fmt.Println("kafka-go: all checks passed")
}

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "kafka-go check failed: "+format+"\n", args...)
	os.Exit(1)
}

func must(err error, what string) {
	if err != nil {
		fail("%s: %v", what, err)
	}
}

// A record as written and where it landed.
type record struct {
	key, value string
	partition  int
	offset     int64
}

func (r record) id() string { return fmt.Sprintf("%d/%d", r.partition, r.offset) }

func check(bootstrap string) {
	topic := "kafkago-topic"
	conn, err := kafka.Dial("tcp", bootstrap)
	must(err, "dial")
	defer conn.Close()
	must(conn.CreateTopics(kafka.TopicConfig{
		Topic:             topic,
		NumPartitions:     partitions,
		ReplicationFactor: 1,
		ConfigEntries:     []kafka.ConfigEntry{{ConfigName: "retention.ms", ConfigValue: "3600000"}},
	}), "create topics")
	// CreateTopics of this kafka-go takes TOPIC_ALREADY_EXISTS for success.
	must(conn.CreateTopics(kafka.TopicConfig{Topic: topic, NumPartitions: 1, ReplicationFactor: 1}), "create the topic again")
	found, err := conn.ReadPartitions(topic)
	must(err, "read partitions")
	if len(found) != partitions {
		fail("metadata: %d partitions of %s, want %d", len(found), topic, partitions)
	}

	log.Print("kafka-go: writer")
	var written []record
	start := time.Now()
	for _, codec := range []kafka.CompressionCodec{nil, gzip.NewCompressionCodec(), snappy.NewCompressionCodec(), lz4.NewCompressionCodec()} {
		written = append(written, write(bootstrap, topic, codec, "w", 40)...)
	}
	located := locate(bootstrap, topic, written)
	checkKeyHashing(located)

	log.Print("kafka-go: conn and partition readers")
	checkOffsets(bootstrap, topic, located)
	checkPartitionReaders(bootstrap, topic, located)
	checkTimestamps(bootstrap, topic, start)

	log.Print("kafka-go: group readers")
	group := "kafkago-group"
	shareAndCommit(bootstrap, group, topic, located)
	more := locate(bootstrap, topic, write(bootstrap, topic, nil, "after", 12))
	resumed := readGroup(bootstrap, group, topic, len(more))
	checkSame(more, resumed, "resumed group reader")

	must(conn.DeleteTopics(topic), "delete topics")
	// Metadata v1 creates a topic it is asked about (auto.create.topics),
	// so the deletion shows as a second delete finding nothing.
	if err := conn.DeleteTopics(topic); err != kafka.UnknownTopicOrPartition {
		fail("deleting %s again: want UnknownTopicOrPartition, got %v", topic, err)
	}
}

func write(bootstrap, topic string, codec kafka.CompressionCodec, prefix string, n int) []record {
	w := kafka.NewWriter(kafka.WriterConfig{
		Brokers:          []string{bootstrap},
		Topic:            topic,
		Balancer:         &kafka.Hash{},
		RequiredAcks:     -1,
		BatchSize:        10,
		BatchTimeout:     10 * time.Millisecond,
		CompressionCodec: codec,
	})
	name := "codec0"
	if codec != nil {
		name = fmt.Sprintf("codec%d", codec.Code())
	}
	var msgs []kafka.Message
	var out []record
	for i := 0; i < n; i++ {
		key := "key-" + strconv.Itoa(i%7)
		value := fmt.Sprintf("%s-%s-%d", prefix, name, i)
		msgs = append(msgs, kafka.Message{Key: []byte(key), Value: []byte(value)})
		out = append(out, record{key: key, value: value, partition: -1})
	}
	must(w.WriteMessages(context.Background(), msgs...), "write "+name)
	must(w.Close(), "close writer")
	return out
}

// This Writer does not report where records landed: read every partition
// to find them.
func locate(bootstrap, topic string, written []record) []record {
	want := map[string]bool{}
	for _, r := range written {
		want[r.value] = true
	}
	var out []record
	for _, r := range readAll(bootstrap, topic) {
		if want[r.value] {
			out = append(out, r)
		}
	}
	if len(out) != len(written) {
		fail("found %d of the %d written records", len(out), len(written))
	}
	return out
}

// Every record of the topic, read with a Conn per partition.
func readAll(bootstrap, topic string) []record {
	var out []record
	for p := 0; p < partitions; p++ {
		conn, err := kafka.DialLeader(context.Background(), "tcp", bootstrap, topic, p)
		must(err, "dial leader")
		first, last, err := conn.ReadOffsets()
		must(err, "read offsets")
		if _, err := conn.Seek(first, kafka.SeekAbsolute); err != nil {
			fail("seek partition %d to %d: %v", p, first, err)
		}
		for offset := first; offset < last; {
			must(conn.SetReadDeadline(time.Now().Add(10*time.Second)), "deadline")
			batch := conn.ReadBatch(1, 1<<20)
			for {
				m, err := batch.ReadMessage()
				if err != nil {
					break
				}
				if m.Offset != offset {
					fail("partition %d: read offset %d, want %d", p, m.Offset, offset)
				}
				out = append(out, record{string(m.Key), string(m.Value), p, m.Offset})
				offset++
			}
			if err := batch.Close(); err != nil {
				fail("partition %d: batch at %d: %v", p, offset, err)
			}
		}
		must(conn.Close(), "close leader conn")
	}
	return out
}

func checkKeyHashing(located []record) {
	byKey := map[string]int{}
	for _, r := range located {
		if p, ok := byKey[r.key]; ok && p != r.partition {
			fail("key %s went to partitions %d and %d", r.key, p, r.partition)
		}
		byKey[r.key] = r.partition
	}
	used := map[int]bool{}
	for _, p := range byKey {
		used[p] = true
	}
	if len(used) < 2 {
		fail("7 keys all hashed to one partition: %v", byKey)
	}
}

func checkOffsets(bootstrap, topic string, located []record) {
	counts := map[int]int64{}
	for _, r := range located {
		counts[r.partition]++
	}
	for p := 0; p < partitions; p++ {
		conn, err := kafka.DialLeader(context.Background(), "tcp", bootstrap, topic, p)
		must(err, "dial leader")
		first, err := conn.ReadFirstOffset()
		must(err, "read first offset")
		last, err := conn.ReadLastOffset()
		must(err, "read last offset")
		if first != 0 || last != counts[p] {
			fail("partition %d offsets %d..%d, want 0..%d", p, first, last, counts[p])
		}
		must(conn.Close(), "close leader conn")
	}
}

func checkPartitionReaders(bootstrap, topic string, located []record) {
	for p := 0; p < partitions; p++ {
		var want []record
		for _, r := range located {
			if r.partition == p {
				want = append(want, r)
			}
		}
		if len(want) < 3 {
			continue
		}
		r := kafka.NewReader(kafka.ReaderConfig{
			Brokers:   []string{bootstrap},
			Topic:     topic,
			Partition: p,
			MinBytes:  1,
			MaxBytes:  1 << 20,
			MaxWait:   200 * time.Millisecond,
		})
		from := want[len(want)/2]
		must(r.SetOffset(from.offset), "set offset")
		for _, w := range want[len(want)/2:] {
			m := readOne(r)
			got := record{string(m.Key), string(m.Value), m.Partition, m.Offset}
			if got != w {
				fail("partition reader from %d: got %+v, want %+v", from.offset, got, w)
			}
		}
		must(r.Close(), "close reader")
	}
}

func readOne(r *kafka.Reader) kafka.Message {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	m, err := r.ReadMessage(ctx)
	must(err, "read message")
	return m
}

// Records written after a point in time are found by their timestamps.
func checkTimestamps(bootstrap, topic string, start time.Time) {
	time.Sleep(20 * time.Millisecond)
	mark := time.Now()
	later := write(bootstrap, topic, nil, "late", 8)
	want := map[string]bool{}
	for _, r := range later {
		want[r.value] = true
	}
	seen := 0
	for p := 0; p < partitions; p++ {
		conn, err := kafka.DialLeader(context.Background(), "tcp", bootstrap, topic, p)
		must(err, "dial leader")
		early, err := conn.ReadOffset(start.Add(-time.Hour))
		must(err, "read offset of an early time")
		if early != 0 {
			fail("partition %d: offset for a time before every record is %d, want 0", p, early)
		}
		offset, err := conn.ReadOffset(mark)
		must(err, "read offset at a time")
		last, err := conn.ReadLastOffset()
		must(err, "read last offset")
		must(conn.Close(), "close leader conn")
		r := kafka.NewReader(kafka.ReaderConfig{
			Brokers: []string{bootstrap}, Topic: topic, Partition: p,
			MinBytes: 1, MaxBytes: 1 << 20, MaxWait: 200 * time.Millisecond,
		})
		must(r.SetOffset(offset), "set offset")
		for o := offset; o < last; o++ {
			m := readOne(r)
			if !want[string(m.Value)] {
				fail("partition %d: the offset for time %v holds %q, written before it", p, mark, m.Value)
			}
			if m.Time.Before(mark.Truncate(time.Millisecond)) {
				fail("partition %d: record %q has time %v, before %v", p, m.Value, m.Time, mark)
			}
			seen++
		}
		must(r.Close(), "close reader")
	}
	if seen != len(later) {
		fail("found %d records by timestamp, want %d", seen, len(later))
	}
}

func groupReader(bootstrap, group, topic string) *kafka.Reader {
	return kafka.NewReader(kafka.ReaderConfig{
		Brokers:           []string{bootstrap},
		GroupID:           group,
		Topic:             topic,
		MinBytes:          1,
		MaxBytes:          1 << 20,
		MaxWait:           200 * time.Millisecond,
		HeartbeatInterval: 500 * time.Millisecond,
		SessionTimeout:    10 * time.Second,
		RebalanceTimeout:  10 * time.Second,
	})
}

// Two readers of one group: records keep coming until both have read some
// (the group has split the partitions between them) and every record has
// been read. Each read commits before it returns.
func shareAndCommit(bootstrap, group, topic string, located []record) {
	ctx, cancel := context.WithCancel(context.Background())
	readers := []*kafka.Reader{groupReader(bootstrap, group, topic), groupReader(bootstrap, group, topic)}
	type got struct {
		reader int
		r      record
	}
	records := make(chan got, 1024)
	var wg sync.WaitGroup
	for i, r := range readers {
		wg.Add(1)
		go func(i int, r *kafka.Reader) {
			defer wg.Done()
			for {
				m, err := r.ReadMessage(ctx)
				if err != nil {
					if ctx.Err() == nil {
						fail("group reader %d: %v", i, err)
					}
					return
				}
				records <- got{i, record{string(m.Key), string(m.Value), m.Partition, m.Offset}}
			}
		}(i, r)
	}
	want := map[string]record{}
	for _, r := range located {
		want[r.id()] = r
	}
	seen := map[string]record{}
	byReader := map[int]map[int]bool{0: {}, 1: {}}
	deadline := time.Now().Add(60 * time.Second)
	round := 0
	missing := func() int {
		n := 0
		for id := range want {
			if _, ok := seen[id]; !ok {
				n++
			}
		}
		return n
	}
	for missing() > 0 || len(byReader[0]) == 0 || len(byReader[1]) == 0 {
		if time.Now().After(deadline) {
			fail("group of two: %d of %d records missing, partitions by reader %v", missing(), len(want), byReader)
		}
		select {
		case g := <-records:
			seen[g.r.id()] = g.r
			byReader[g.reader][g.r.partition] = true
		case <-time.After(time.Second):
			// Until the group is settled one reader may hold every
			// partition: keep writing.
			round++
			for _, r := range locate(bootstrap, topic, write(bootstrap, topic, nil, fmt.Sprintf("round%d", round), 8)) {
				want[r.id()] = r
			}
		}
	}
	for id, r := range want {
		if seen[id] != r {
			fail("group of two: %s read as %+v, want %+v", id, seen[id], r)
		}
	}
	cancel()
	for _, r := range readers {
		must(r.Close(), "close group reader")
	}
	wg.Wait()
}

func readGroup(bootstrap, group, topic string, n int) []record {
	r := groupReader(bootstrap, group, topic)
	var out []record
	for len(out) < n {
		m := readOne(r)
		out = append(out, record{string(m.Key), string(m.Value), m.Partition, m.Offset})
	}
	must(r.Close(), "close group reader")
	return out
}

func checkSame(want, got []record, what string) {
	key := func(r record) string { return fmt.Sprintf("%s %s=%s", r.id(), r.key, r.value) }
	var w, g []string
	for _, r := range want {
		w = append(w, key(r))
	}
	for _, r := range got {
		g = append(g, key(r))
	}
	sort.Strings(w)
	sort.Strings(g)
	if len(w) != len(g) {
		fail("%s: %d records %v, want %d %v", what, len(g), g, len(w), w)
	}
	for i := range w {
		if w[i] != g[i] {
			fail("%s: record %s, want %s", what, g[i], w[i])
		}
	}
}
