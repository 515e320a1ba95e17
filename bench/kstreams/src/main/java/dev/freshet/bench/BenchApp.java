package dev.freshet.bench;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.time.Duration;
import java.util.HashMap;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;
import org.apache.kafka.common.errors.SerializationException;
import org.apache.kafka.common.serialization.Deserializer;
import org.apache.kafka.common.serialization.Serde;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.common.serialization.Serializer;
import org.apache.kafka.common.utils.Bytes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.KStream;
import org.apache.kafka.streams.kstream.KTable;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Produced;
import org.apache.kafka.streams.kstream.TimeWindows;
import org.apache.kafka.streams.kstream.WindowedSerdes;
import org.apache.kafka.streams.state.KeyValueStore;
import org.apache.kafka.streams.state.WindowStore;

/**
 * The Java Kafka Streams contender of bench/run.sh: the topologies of the manifests the harness
 * (tests/src/bin/freshet-bench) writes for Freshet, written as a Kafka Streams user would write
 * them (Jackson trees for the JSON values, the DSL, Kafka Streams' defaults otherwise).
 *
 * <p>Arguments are key=value: workload (stateless, count, windowed, join, latest), bootstrap, app,
 * input, output, table (join), guarantee, threads, commit (ms), state (directory), and optionally
 * cache (statestore.cache.max.bytes). Prints {@code RUNNING}
 * on stdout when the client first reaches RUNNING, and exits 1 on an uncaught exception.
 */
public final class BenchApp {
    static final ObjectMapper MAPPER = new ObjectMapper();

    /** JSON values as Jackson trees (a user's JSON serde). */
    static final class JsonSerde implements Serde<JsonNode> {
        @Override
        public Serializer<JsonNode> serializer() {
            return (topic, value) -> {
                if (value == null) {
                    return null;
                }
                try {
                    return MAPPER.writeValueAsBytes(value);
                } catch (IOException e) {
                    throw new SerializationException("cannot write JSON for topic " + topic, e);
                }
            };
        }

        @Override
        public Deserializer<JsonNode> deserializer() {
            return (topic, bytes) -> {
                if (bytes == null) {
                    return null;
                }
                try {
                    return MAPPER.readTree(bytes);
                } catch (IOException e) {
                    throw new SerializationException("invalid JSON in topic " + topic, e);
                }
            };
        }
    }

    public static void main(String[] args) throws Exception {
        Map<String, String> a = new HashMap<>();
        for (String arg : args) {
            int eq = arg.indexOf('=');
            if (eq < 0) {
                throw new IllegalArgumentException("expected key=value, got " + arg);
            }
            a.put(arg.substring(0, eq), arg.substring(eq + 1));
        }
        String workload = need(a, "workload");
        Serde<JsonNode> json = new JsonSerde();
        StreamsBuilder builder = new StreamsBuilder();
        String output = need(a, "output");
        // latest: the last value of each key, as strings (tests/tests/scale_out_latency.rs).
        if (workload.equals("latest")) {
            builder.stream(need(a, "input"), Consumed.with(Serdes.String(), Serdes.String()))
                    .groupByKey()
                    .reduce((agg, value) -> value,
                            Materialized.<String, String, KeyValueStore<Bytes, byte[]>>as("latest"))
                    .toStream()
                    .to(output, Produced.with(Serdes.String(), Serdes.String()));
        }
        KStream<String, JsonNode> input = workload.equals("latest")
                ? null
                : builder.stream(need(a, "input"), Consumed.with(Serdes.String(), json));
        switch (workload) {
            case "latest" -> { }
            case "stateless" -> input
                    .filter((k, v) -> v.path("amount").asDouble() >= 100)
                    .mapValues(v -> {
                        ObjectNode o = MAPPER.createObjectNode();
                        o.set("id", v.get("id"));
                        o.set("amount", v.get("amount"));
                        return (JsonNode) o;
                    })
                    .to(output, Produced.with(Serdes.String(), json));
            case "count" -> input
                    .groupByKey()
                    .count(Materialized.<String, Long, KeyValueStore<Bytes, byte[]>>as("counts"))
                    .toStream()
                    .to(output, Produced.with(Serdes.String(), Serdes.Long()));
            case "windowed" -> input
                    .groupByKey()
                    .windowedBy(TimeWindows.ofSizeAndGrace(Duration.ofMinutes(1), Duration.ofSeconds(10)))
                    .count(Materialized.<String, Long, WindowStore<Bytes, byte[]>>as("windowed-counts"))
                    .toStream()
                    .to(output, Produced.with(
                            WindowedSerdes.timeWindowedSerdeFrom(String.class, Duration.ofMinutes(1).toMillis()),
                            Serdes.Long()));
            case "join" -> {
                KTable<String, JsonNode> customers = builder.table(need(a, "table"), Consumed.with(Serdes.String(), json),
                        Materialized.<String, JsonNode, KeyValueStore<Bytes, byte[]>>as("customers"));
                input.join(customers, (left, right) -> {
                            ObjectNode o = MAPPER.createObjectNode();
                            o.set("id", left.get("id"));
                            o.set("amount", left.get("amount"));
                            o.set("tier", right.get("tier"));
                            return (JsonNode) o;
                        })
                        .to(output, Produced.with(Serdes.String(), json));
            }
            default -> throw new IllegalArgumentException("unknown workload " + workload);
        }

        Properties p = new Properties();
        p.put(StreamsConfig.APPLICATION_ID_CONFIG, need(a, "app"));
        p.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, need(a, "bootstrap"));
        p.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, need(a, "guarantee"));
        p.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, Integer.parseInt(need(a, "threads")));
        p.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, Long.parseLong(need(a, "commit")));
        p.put(StreamsConfig.STATE_DIR_CONFIG, need(a, "state"));
        if (a.containsKey("cache")) {
            p.put(StreamsConfig.STATESTORE_CACHE_MAX_BYTES_CONFIG, Long.parseLong(a.get("cache")));
        }
        KafkaStreams streams = new KafkaStreams(builder.build(), p);
        CountDownLatch done = new CountDownLatch(1);
        boolean[] running = {false};
        streams.setStateListener((now, before) -> {
            if (now == KafkaStreams.State.RUNNING && !running[0]) {
                running[0] = true;
                System.out.println("RUNNING");
                System.out.flush();
            }
            if (now == KafkaStreams.State.ERROR || now == KafkaStreams.State.NOT_RUNNING) {
                done.countDown();
            }
        });
        int[] exit = {0};
        streams.setUncaughtExceptionHandler(e -> {
            System.err.println("uncaught exception: " + e);
            exit[0] = 1;
            return StreamsUncaughtExceptionHandler.StreamThreadExceptionResponse.SHUTDOWN_CLIENT;
        });
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            streams.close(Duration.ofSeconds(30));
            done.countDown();
        }));
        streams.start();
        done.await();
        streams.close(Duration.ofSeconds(30));
        System.exit(exit[0]);
    }

    private static String need(Map<String, String> a, String key) {
        String v = a.get(key);
        if (v == null) {
            throw new IllegalArgumentException("missing argument " + key + "=...");
        }
        return v;
    }
}
