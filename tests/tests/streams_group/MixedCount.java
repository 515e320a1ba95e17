// The Java half of the mixed streams group (tests/tests/streams_group_mixed.rs): Kafka Streams
// 4.4 with group.protocol=streams, counting per key as the Freshet manifest does (same store
// name, so the same changelog; same serdes). Runs on the reference classpath
// (FRESHET_REFERENCE_CLASSPATH) with java's single-file launcher; closes cleanly when its
// standard input closes.
//
// args: bootstrap applicationId input output stateDir processingGuarantee
import java.util.Properties;

import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Produced;

public class MixedCount {
    public static void main(String[] a) throws Exception {
        Properties p = new Properties();
        p.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, a[0]);
        p.put(StreamsConfig.APPLICATION_ID_CONFIG, a[1]);
        p.put(StreamsConfig.STATE_DIR_CONFIG, a[4]);
        p.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, a[5]);
        p.put(StreamsConfig.GROUP_PROTOCOL_CONFIG, "streams");
        p.put(StreamsConfig.DEFAULT_KEY_SERDE_CLASS_CONFIG, Serdes.StringSerde.class);
        p.put(StreamsConfig.DEFAULT_VALUE_SERDE_CLASS_CONFIG, Serdes.StringSerde.class);
        p.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, 200);
        StreamsBuilder b = new StreamsBuilder();
        b.<String, String>stream(a[2])
            .groupByKey()
            .count(Materialized.as("counts"))
            .toStream()
            .to(a[3], Produced.with(Serdes.String(), Serdes.Long()));
        KafkaStreams streams = new KafkaStreams(b.build(), p);
        streams.start();
        while (System.in.read() >= 0) {
        }
        streams.close();
    }
}
