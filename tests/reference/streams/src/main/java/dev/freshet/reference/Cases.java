package dev.freshet.reference;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.NullNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.time.Duration;
import java.util.Map;
import java.util.TreeMap;
import java.util.function.BiConsumer;
import java.util.function.Function;
import org.apache.kafka.common.serialization.Serde;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.common.utils.Bytes;
import org.apache.kafka.streams.KeyValue;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.GlobalKTable;
import org.apache.kafka.streams.kstream.Grouped;
import org.apache.kafka.streams.kstream.JoinWindows;
import org.apache.kafka.streams.kstream.Joined;
import org.apache.kafka.streams.kstream.KGroupedStream;
import org.apache.kafka.streams.kstream.KStream;
import org.apache.kafka.streams.kstream.KTable;
import org.apache.kafka.streams.kstream.KeyValueMapper;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Produced;
import org.apache.kafka.streams.kstream.SessionWindows;
import org.apache.kafka.streams.kstream.SlidingWindows;
import org.apache.kafka.streams.kstream.StreamJoined;
import org.apache.kafka.streams.kstream.Suppressed;
import org.apache.kafka.streams.kstream.TableJoined;
import org.apache.kafka.streams.kstream.TimeWindows;
import org.apache.kafka.streams.kstream.ValueJoiner;
import org.apache.kafka.streams.kstream.Windowed;
import org.apache.kafka.streams.kstream.WindowedSerdes;
import org.apache.kafka.streams.state.KeyValueStore;
import org.apache.kafka.streams.state.SessionStore;
import org.apache.kafka.streams.state.WindowStore;

/**
 * The differential cases: each one is the Java twin of {@code tests/differential/<case>/app.yaml}
 * and must stay step for step the same topology (same store and repartition names, same serdes).
 *
 * <p>Default serdes are string keys and JSON values, as the manifests' {@code defaultKeySerde:
 * string} and {@code defaultValueSerde: json}.
 */
final class Cases {
    private Cases() {}

    /** Input, table and output topic names of one run, from {@code input=a,table=b,output=c}. */
    record Topics(Map<String, String> names) {
        static Topics parse(String map) {
            Map<String, String> names = new TreeMap<>();
            for (String entry : map.split(",")) {
                String[] kv = entry.split("=", 2);
                if (kv.length != 2 || kv[0].isBlank() || kv[1].isBlank()) {
                    throw new IllegalArgumentException(
                            "bad topic map entry '" + entry + "' in '" + map + "': want role=topic,...");
                }
                names.put(kv[0].trim(), kv[1].trim());
            }
            return new Topics(names);
        }

        String get(String role) {
            String topic = names.get(role);
            if (topic == null) {
                throw new IllegalArgumentException("the topic map " + names + " has no '" + role + "' topic");
            }
            return topic;
        }

        String input() {
            return get("input");
        }

        String table() {
            return get("table");
        }

        String output() {
            return get("output");
        }
    }

    /** Every case by name, in the order the harness lists them. */
    static final Map<String, BiConsumer<StreamsBuilder, Topics>> ALL = new TreeMap<>(Map.ofEntries(
            Map.entry("count", Cases::count),
            Map.entry("reduce", Cases::reduce),
            Map.entry("aggregate", Cases::aggregate),
            Map.entry("groupby-count", Cases::groupByCount),
            Map.entry("table-aggregate", Cases::tableAggregate),
            Map.entry("tumbling-count", Cases::tumblingCount),
            Map.entry("hopping-count", Cases::hoppingCount),
            Map.entry("sliding-count", Cases::slidingCount),
            Map.entry("session-count", Cases::sessionCount),
            Map.entry("suppress", Cases::suppress),
            Map.entry("table-ops", Cases::tableOps),
            Map.entry("stream-table-join", (b, t) -> streamTableJoin(b, t, false)),
            Map.entry("stream-table-left-join", (b, t) -> streamTableJoin(b, t, true)),
            Map.entry("stream-global-join", (b, t) -> streamGlobalJoin(b, t, false)),
            Map.entry("stream-global-left-join", (b, t) -> streamGlobalJoin(b, t, true)),
            Map.entry("stream-stream-join", (b, t) -> streamStreamJoin(b, t, Join.INNER)),
            Map.entry("stream-stream-left-join", (b, t) -> streamStreamJoin(b, t, Join.LEFT)),
            Map.entry("stream-stream-outer-join", (b, t) -> streamStreamJoin(b, t, Join.OUTER)),
            Map.entry("table-table-join", (b, t) -> tableTableJoin(b, t, Join.INNER)),
            Map.entry("table-table-left-join", (b, t) -> tableTableJoin(b, t, Join.LEFT)),
            Map.entry("table-table-outer-join", (b, t) -> tableTableJoin(b, t, Join.OUTER)),
            Map.entry("fk-join", (b, t) -> foreignKeyJoin(b, t, false)),
            Map.entry("fk-left-join", (b, t) -> foreignKeyJoin(b, t, true))));

    private static final Serde<String> STRING = Serdes.String();
    private static final Serde<Long> LONG = Serdes.Long();
    private static final Serde<JsonNode> JSON = new JsonSerde();
    private static final Duration SIZE = Duration.ofSeconds(10);
    private static final Duration GRACE = Duration.ofSeconds(5);

    /** {@code value.amount} of a JSON value; CEL's int arithmetic is Java's long arithmetic. */
    private static long amount(JsonNode value) {
        return value.get("amount").asLong();
    }

    private static KStream<String, JsonNode> input(StreamsBuilder b, Topics t) {
        return b.stream(t.input());
    }

    /** Windowed outputs: {@code keySerde: windowed-string} (inner key bytes + 8-byte start). */
    private static Produced<Windowed<String>, Long> windowedLong() {
        // A WindowedSerializer key also makes the sink partition by the inner key
        // (WindowedStreamPartitioner), so all windows of a key land in one partition.
        return Produced.with(WindowedSerdes.timeWindowedSerdeFrom(String.class, SIZE.toMillis()), LONG);
    }

    // groupByKey, count { store: counts }, toStream, to { valueSerde: long }.
    // Stream aggregations (count, reduce, aggregate) skip records whose value is null.
    static void count(StreamsBuilder b, Topics t) {
        input(b, t)
                .groupByKey()
                .count(Materialized.<String, Long, KeyValueStore<Bytes, byte[]>>as("counts"))
                .toStream()
                .to(t.output(), Produced.with(STRING, LONG));
    }

    // mapValues "value.amount", groupByKey { valueSerde: long }, reduce "agg + value".
    // The input has no tombstones: the mapper (as CEL's value.amount) cannot read a null value.
    static void reduce(StreamsBuilder b, Topics t) {
        input(b, t)
                .mapValues(Cases::amount)
                .groupByKey(Grouped.with(STRING, LONG))
                .reduce(Long::sum)
                .toStream()
                .to(t.output(), Produced.with(STRING, LONG));
    }

    // groupByKey, aggregate { initializer: "{'count': 0, 'total': 0}",
    //   aggregator: "{'count': agg.count + 1, 'total': agg.total + value.amount}", store: totals }.
    static void aggregate(StreamsBuilder b, Topics t) {
        input(b, t)
                .groupByKey()
                .aggregate(
                        () -> totals(0, 0),
                        (key, value, agg) -> totals(agg.get("count").asLong() + 1, agg.get("total").asLong() + amount(value)),
                        Materialized.<String, JsonNode, KeyValueStore<Bytes, byte[]>>as("totals").withValueSerde(JSON))
                .toStream()
                .to(t.output(), Produced.with(STRING, JSON));
    }

    private static JsonNode totals(long count, long total) {
        ObjectNode node = JsonSerde.MAPPER.createObjectNode();
        node.put("count", count);
        node.put("total", total);
        return node;
    }

    // groupBy "value.category" (a repartition topic <app>-per-category-repartition: Grouped.as names
    // it as Freshet's rule does, after the store the aggregation feeds), count { store: per-category }.
    // The input has no tombstones: the key selector (as CEL's value.category) cannot read null.
    static void groupByCount(StreamsBuilder b, Topics t) {
        input(b, t)
                .groupBy((key, value) -> value.get("category").asText(), Grouped.as("per-category"))
                .count(Materialized.<String, Long, KeyValueStore<Bytes, byte[]>>as("per-category"))
                .toStream()
                .to(t.output(), Produced.with(STRING, LONG));
    }

    // tables: users (no store); from users: groupBy "value.category", aggregate { initializer: "0",
    // aggregator: "agg + value.amount", subtractor: "agg - value.amount", store: category-totals,
    // valueSerde: long }. An update of a user sends the subtraction of its old value and the
    // addition of its new one through <app>-category-totals-repartition; a tombstone sends only the
    // subtraction. The key selector and the adder and subtractor never see a null value.
    static void tableAggregate(StreamsBuilder b, Topics t) {
        KTable<String, JsonNode> users = b.table(t.table(), Consumed.with(STRING, JSON));
        users.groupBy((key, value) -> KeyValue.pair(value.get("category").asText(), value), Grouped.as("category-totals"))
                .aggregate(
                        () -> 0L,
                        (key, value, agg) -> agg + amount(value),
                        (key, value, agg) -> agg - amount(value),
                        Materialized.<String, Long, KeyValueStore<Bytes, byte[]>>as("category-totals").withValueSerde(LONG))
                .toStream()
                .to(t.output(), Produced.with(STRING, LONG));
    }

    // windowedBy { tumbling: 10s, grace: 5s }, count { store: tumbling-counts }.
    // Time-window and session aggregations skip only null keys: a tombstone is counted.
    static void tumblingCount(StreamsBuilder b, Topics t) {
        KGroupedStream<String, JsonNode> grouped = input(b, t).groupByKey();
        grouped.windowedBy(TimeWindows.ofSizeAndGrace(SIZE, GRACE))
                .count(Materialized.<String, Long, WindowStore<Bytes, byte[]>>as("tumbling-counts"))
                .toStream()
                .to(t.output(), windowedLong());
    }

    // windowedBy { hopping: { size: 10s, advance: 5s }, grace: 5s }, count { store: hopping-counts }.
    static void hoppingCount(StreamsBuilder b, Topics t) {
        input(b, t)
                .groupByKey()
                .windowedBy(TimeWindows.ofSizeAndGrace(SIZE, GRACE).advanceBy(Duration.ofSeconds(5)))
                .count(Materialized.<String, Long, WindowStore<Bytes, byte[]>>as("hopping-counts"))
                .toStream()
                .to(t.output(), windowedLong());
    }

    // windowedBy { sliding: 10s, grace: 5s }, count { store: sliding-counts }.
    // Unlike the other windows, sliding-window aggregation skips null values (tombstones).
    static void slidingCount(StreamsBuilder b, Topics t) {
        input(b, t)
                .groupByKey()
                .windowedBy(SlidingWindows.ofTimeDifferenceAndGrace(SIZE, GRACE))
                .count(Materialized.<String, Long, WindowStore<Bytes, byte[]>>as("sliding-counts"))
                .toStream()
                .to(t.output(), windowedLong());
    }

    // windowedBy { session: 10s, grace: 5s }, count { store: session-counts },
    // to { keySerde: session-string } (inner key + 8-byte end + 8-byte start). When a record
    // merges sessions, each replaced session's key is forwarded with a null value: a tombstone.
    static void sessionCount(StreamsBuilder b, Topics t) {
        input(b, t)
                .groupByKey()
                .windowedBy(SessionWindows.ofInactivityGapAndGrace(SIZE, GRACE))
                .count(Materialized.<String, Long, SessionStore<Bytes, byte[]>>as("session-counts"))
                .toStream()
                .to(t.output(), Produced.with(WindowedSerdes.sessionWindowedSerdeFrom(String.class), LONG));
    }

    // The tumbling count with suppress { untilWindowCloses: true } before toStream: each window is
    // emitted once, when stream time passes its end plus grace. (The explicit key serde is Java
    // plumbing only: without it the suppress buffer would take the default String serde for the
    // Windowed key.)
    static void suppress(StreamsBuilder b, Topics t) {
        input(b, t)
                .groupByKey()
                .windowedBy(TimeWindows.ofSizeAndGrace(SIZE, GRACE))
                .count(Materialized.<String, Long, WindowStore<Bytes, byte[]>>as("suppressed-counts").withKeySerde(STRING))
                .suppress(Suppressed.untilWindowCloses(Suppressed.BufferConfig.unbounded()))
                .toStream()
                .to(t.output(), windowedLong());
    }

    private enum Join { INNER, LEFT, OUTER }

    /** A joiner's value {@code {'<a>': left, '<b>': right}}; a missing side is JSON null. */
    private static JsonNode pair(String a, JsonNode left, String b, JsonNode right) {
        ObjectNode node = JsonSerde.MAPPER.createObjectNode();
        node.set(a, left == null ? NullNode.getInstance() : left);
        node.set(b, right == null ? NullNode.getInstance() : right);
        return node;
    }

    // streams: input; tables: users (the 'table' topic); from input: selectKey "value.user",
    // { name: enrich, join|leftJoin: { table: users, value: "{'order': left, 'user': right}" } }.
    // The re-keyed stream goes through <app>-enrich-repartition, which takes the table's partition
    // count (4 where the input has 3 in stream-table-join): Joined.as names the join processor and
    // that topic as the step's name does in Freshet.
    static void streamTableJoin(StreamsBuilder b, Topics t, boolean left) {
        KStream<String, JsonNode> orders = input(b, t);
        KTable<String, JsonNode> users = b.table(t.table());
        KStream<String, JsonNode> byUser = orders.selectKey((key, value) -> value.get("user").asText());
        ValueJoiner<JsonNode, JsonNode, JsonNode> joiner = (order, user) -> pair("order", order, "user", user);
        Joined<String, JsonNode, JsonNode> joined = Joined.as("enrich");
        (left ? byUser.leftJoin(users, joiner, joined) : byUser.join(users, joiner, joined))
                .to(t.output(), Produced.with(STRING, JSON));
    }

    // streams: input; globalTables: users (the 'global' topic); from input:
    // join|leftJoin: { globalTable: users, key: "value.user", value: "{'order': left, 'user': right}" }.
    static void streamGlobalJoin(StreamsBuilder b, Topics t, boolean left) {
        KStream<String, JsonNode> orders = input(b, t);
        GlobalKTable<String, JsonNode> users = b.globalTable(t.get("global"));
        KeyValueMapper<String, JsonNode, String> user = (key, value) -> value.get("user").asText();
        ValueJoiner<JsonNode, JsonNode, JsonNode> joiner = (order, row) -> pair("order", order, "user", row);
        (left ? orders.leftJoin(users, user, joiner) : orders.join(users, user, joiner))
                .to(t.output(), Produced.with(STRING, JSON));
    }

    // streams: left, right; from left: { name: pairs, join|leftJoin|outerJoin: { stream: right,
    // window: { within: 10s, grace: 5s }, value: "{'left': left, 'right': right}" } }: stores
    // pairs-this-join-store, pairs-other-join-store (and pairs-outer-shared-join-store). Unmatched
    // records of left and outer joins are emitted when their window closes; the oracle's config
    // sets the spurious-results emit interval to 0, as the manifests do, so that does not wait
    // on the wall clock.
    static void streamStreamJoin(StreamsBuilder b, Topics t, Join kind) {
        KStream<String, JsonNode> left = b.stream(t.get("left"));
        KStream<String, JsonNode> right = b.stream(t.get("right"));
        ValueJoiner<JsonNode, JsonNode, JsonNode> joiner = (l, r) -> pair("left", l, "right", r);
        JoinWindows window = JoinWindows.ofTimeDifferenceAndGrace(Duration.ofSeconds(10), GRACE);
        StreamJoined<String, JsonNode, JsonNode> stores = StreamJoined.with(STRING, JSON, JSON).withStoreName("pairs");
        KStream<String, JsonNode> joined = switch (kind) {
            case INNER -> left.join(right, joiner, window, stores);
            case LEFT -> left.leftJoin(right, joiner, window, stores);
            case OUTER -> left.outerJoin(right, joiner, window, stores);
        };
        joined.to(t.output(), Produced.with(STRING, JSON));
    }

    // tables: left { store: left-store }, right { store: right-store }; from left:
    // join|leftJoin|outerJoin: { table: right, value: "{'left': left, 'right': right}" }, toStream.
    static void tableTableJoin(StreamsBuilder b, Topics t, Join kind) {
        KTable<String, JsonNode> left = b.table(t.get("left"), Consumed.with(STRING, JSON),
                Materialized.<String, JsonNode, KeyValueStore<Bytes, byte[]>>as("left-store"));
        KTable<String, JsonNode> right = b.table(t.get("right"), Consumed.with(STRING, JSON),
                Materialized.<String, JsonNode, KeyValueStore<Bytes, byte[]>>as("right-store"));
        ValueJoiner<JsonNode, JsonNode, JsonNode> joiner = (l, r) -> pair("left", l, "right", r);
        KTable<String, JsonNode> joined = switch (kind) {
            case INNER -> left.join(right, joiner);
            case LEFT -> left.leftJoin(right, joiner);
            case OUTER -> left.outerJoin(right, joiner);
        };
        joined.toStream().to(t.output(), Produced.with(STRING, JSON));
    }

    // tables: orders (the 'left' topic) { store: orders-store }, users (the 'right' topic)
    // { store: users-store }; from orders: { name: order-user, join|leftJoin: { table: users,
    // foreignKey: "value.user", value: "{'order': left, 'user': right}" } }, toStream: the topics
    // <app>-order-user-subscription-registration-topic and -subscription-response-topic.
    static void foreignKeyJoin(StreamsBuilder b, Topics t, boolean left) {
        KTable<String, JsonNode> orders = b.table(t.get("left"), Consumed.with(STRING, JSON),
                Materialized.<String, JsonNode, KeyValueStore<Bytes, byte[]>>as("orders-store"));
        KTable<String, JsonNode> users = b.table(t.get("right"), Consumed.with(STRING, JSON),
                Materialized.<String, JsonNode, KeyValueStore<Bytes, byte[]>>as("users-store"));
        Function<JsonNode, String> user = value -> value.get("user").asText();
        ValueJoiner<JsonNode, JsonNode, JsonNode> joiner = (order, row) -> pair("order", order, "user", row);
        TableJoined<String, String> named = TableJoined.as("order-user");
        KTable<String, JsonNode> joined = left
                ? orders.leftJoin(users, user, joiner, named)
                : orders.join(users, user, joiner, named);
        joined.toStream().to(t.output(), Produced.with(STRING, JSON));
    }

    // tables: users { store: users-store }; from users: filter "value.amount > 3",
    // mapValues "value.amount * 10". An update the filter drops, or a delete, sends a tombstone
    // only if the key's previous value passed the filter: with old values at hand (here, from the
    // materialized source) KTableFilter skips a change whose old and new results are both null.
    // Neither the predicate nor the mapper ever sees a null value.
    static void tableOps(StreamsBuilder b, Topics t) {
        b.table(t.table(), Consumed.with(STRING, JSON), Materialized.<String, JsonNode, KeyValueStore<Bytes, byte[]>>as("users-store"))
                .filter((key, value) -> amount(value) > 3)
                .mapValues(value -> amount(value) * 10)
                .toStream()
                .to(t.output(), Produced.with(STRING, LONG));
    }
}
