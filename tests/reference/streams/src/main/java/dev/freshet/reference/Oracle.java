package dev.freshet.reference;

import java.io.PrintStream;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;
import java.util.function.BiConsumer;
import java.util.function.Supplier;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.Topology;
import org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler;

/**
 * Java Kafka Streams as the reference ("oracle") for Freshet's differential tests.
 *
 * <pre>
 * Oracle &lt;case&gt; &lt;bootstrap&gt; &lt;applicationId&gt; &lt;stateDir&gt; &lt;topic-map&gt;
 * Oracle run &lt;bootstrap&gt; &lt;stateDir&gt; (&lt;case&gt; &lt;applicationId&gt; &lt;topic-map&gt;)...
 * Oracle describe [&lt;name&gt;]
 * Oracle list
 * Oracle order-totals-avro &lt;bootstrap&gt; &lt;applicationId&gt; &lt;stateDir&gt; &lt;topic-map&gt; &lt;registryUrl&gt; &lt;outputSchemaFile&gt;
 * </pre>
 *
 * A topic map is {@code input=<topic>,table=<topic>,output=<topic>}: the roles a case uses
 * ({@code input}, {@code table}, {@code global}, {@code left}, {@code right}) and its output.
 * {@code run} starts one KafkaStreams instance per case in this JVM, sparing a JVM start-up per
 * case. Each instance runs until SIGTERM, then closes cleanly. Stdout carries one line per state
 * change, {@code STATE <applicationId> <state>}; if any instance fails the process prints
 * {@code FAILED <applicationId>: <error>}, closes everything and exits 1.
 *
 * <p>{@code describe <name>} prints Kafka Streams' describe() of an example's topology, exactly as
 * {@code examples/<name>/describe.txt} should read; without a name, every one, separated by
 * {@code =====} lines. {@code list} prints the case names (of the JSON cases).
 *
 * <p>{@code order-totals-avro} runs the schema-registry case ({@link AvroCases}): Avro through
 * Apicurio's serdes against the registry whose Confluent-compatible API root is
 * {@code registryUrl}, writing records of the Avro schema in {@code outputSchemaFile}.
 */
public final class Oracle {
    private Oracle() {}

    public static void main(String[] args) throws InterruptedException {
        if (args.length == 0) {
            usage("no arguments");
        }
        switch (args[0]) {
            case "describe" -> describe(args);
            case "list" -> Cases.ALL.keySet().forEach(System.out::println);
            case "run" -> {
                if (args.length < 6 || (args.length - 3) % 3 != 0) {
                    usage("run takes <bootstrap> <stateDir> and then triples <case> <applicationId> <topic-map>");
                }
                List<Instance> instances = new ArrayList<>();
                for (int i = 3; i < args.length; i += 3) {
                    instances.add(new Instance(args[i + 1], args[i + 2], jsonCase(args[i])));
                }
                run(args[1], args[2], instances);
            }
            case "order-totals-avro" -> {
                if (args.length != 7) {
                    usage("order-totals-avro takes <bootstrap> <applicationId> <stateDir> <topic-map> <registryUrl> <outputSchemaFile>");
                }
                String registry = args[5];
                Path schema = Path.of(args[6]);
                run(args[1], args[3], List.of(new Instance(args[2], args[4],
                        (b, t) -> AvroCases.orderTotals(b, t, registry, schema))));
            }
            default -> {
                if (args.length != 5) {
                    usage("unknown command '" + args[0] + "'");
                }
                run(args[1], args[3], List.of(new Instance(args[2], args[4], jsonCase(args[0]))));
            }
        }
    }

    /** One KafkaStreams instance to run: its application id, topic map and topology. */
    private record Instance(String applicationId, String topicMap, BiConsumer<StreamsBuilder, Cases.Topics> build) {}

    /** The JSON case of that name (Cases.ALL), or the usage message. */
    private static BiConsumer<StreamsBuilder, Cases.Topics> jsonCase(String name) {
        BiConsumer<StreamsBuilder, Cases.Topics> build = Cases.ALL.get(name);
        if (build == null) {
            usage("unknown case '" + name + "'");
        }
        return build;
    }

    private static void usage(String problem) {
        PrintStream err = System.err;
        err.println("Oracle: " + problem);
        err.println("usage: Oracle <case> <bootstrap> <applicationId> <stateDir> <topic-map>");
        err.println("       Oracle run <bootstrap> <stateDir> (<case> <applicationId> <topic-map>)...");
        err.println("       Oracle describe [<name>]   (names: " + Describe.ALL.keySet() + ")");
        err.println("       Oracle list");
        err.println("       Oracle order-totals-avro <bootstrap> <applicationId> <stateDir> <topic-map> <registryUrl> <outputSchemaFile>");
        err.println("cases: " + Cases.ALL.keySet());
        err.println("topic-map: input=<topic>,table=<topic>,output=<topic> (the roles the case uses)");
        System.exit(2);
    }

    private static void describe(String[] args) {
        if (args.length > 2) {
            usage("describe takes at most one name");
        }
        if (args.length == 2) {
            Supplier<Topology> topology = Describe.ALL.get(args[1]);
            if (topology == null) {
                System.err.println("Oracle: no Java topology named '" + args[1] + "' (have: " + Describe.ALL.keySet()
                        + "); add one to tests/reference/streams/.../Describe.java");
                System.exit(2);
            }
            System.out.print(topology.get().describe());
            return;
        }
        boolean first = true;
        for (var entry : Describe.ALL.entrySet()) {
            if (!first) {
                System.out.println("=====");
            }
            first = false;
            System.out.print(entry.getValue().get().describe());
        }
    }

    private static void run(String bootstrap, String stateDir, List<Instance> instances) throws InterruptedException {
        List<KafkaStreams> running = new ArrayList<>();
        CountDownLatch failed = new CountDownLatch(1);
        for (Instance instance : instances) {
            StreamsBuilder builder = new StreamsBuilder();
            instance.build().accept(builder, Cases.Topics.parse(instance.topicMap()));
            KafkaStreams streams = new KafkaStreams(builder.build(), config(bootstrap, stateDir, instance.applicationId()));
            String app = instance.applicationId();
            streams.setStateListener((now, before) -> {
                System.out.println("STATE " + app + " " + now);
                if (now == KafkaStreams.State.ERROR) {
                    failed.countDown();
                }
            });
            streams.setUncaughtExceptionHandler(e -> {
                System.out.println("FAILED " + app + ": " + e);
                e.printStackTrace();
                // The whole client stops (state ERROR), which ends this process: a dead stream
                // thread must not leave the harness waiting on a half-running oracle.
                return StreamsUncaughtExceptionHandler.StreamThreadExceptionResponse.SHUTDOWN_CLIENT;
            });
            running.add(streams);
        }
        // On SIGTERM close every instance, side by side: each close waits for its stream thread
        // to commit and leave the group, which one after the other adds up to many seconds.
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            List<Thread> closing = new ArrayList<>();
            for (KafkaStreams streams : running) {
                Thread t = new Thread(() -> streams.close(Duration.ofSeconds(30)));
                t.start();
                closing.add(t);
            }
            for (Thread t : closing) {
                try {
                    t.join();
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    return;
                }
            }
        }, "oracle-shutdown"));
        for (KafkaStreams streams : running) {
            streams.start();
        }
        failed.await();
        System.exit(1);
    }

    private static Properties config(String bootstrap, String stateDir, String applicationId) {
        Properties p = new Properties();
        p.put(StreamsConfig.APPLICATION_ID_CONFIG, applicationId);
        p.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(StreamsConfig.STATE_DIR_CONFIG, stateDir);
        p.put(StreamsConfig.DEFAULT_KEY_SERDE_CLASS_CONFIG, Serdes.StringSerde.class);
        p.put(StreamsConfig.DEFAULT_VALUE_SERDE_CLASS_CONFIG, JsonSerde.class);
        p.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, StreamsConfig.AT_LEAST_ONCE);
        p.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, 1);
        // As the manifests' config: commit often, and no record cache, so every update is
        // forwarded (the harness compares final values, which do not depend on either).
        p.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, 100);
        p.put(StreamsConfig.STATESTORE_CACHE_MAX_BYTES_CONFIG, 0);
        p.put(StreamsConfig.consumerPrefix(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG), "earliest");
        // As the stream-stream left and outer join manifests' config: emit a closed window's
        // unmatched records as soon as stream time closes it, not at most once a second of wall
        // clock (Kafka Streams' internal throttle), so what is emitted by the end does not depend
        // on timing. Only left and outer stream-stream joins read it.
        p.put("__emit.interval.ms.kstreams.outer.join.spurious.results.fix__", 0L);
        return p;
    }
}
