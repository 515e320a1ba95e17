// Prints every configuration name Kafka's own config definitions declare, one per line as
// `<definition>\t<name>`, for tests/tests/config_classification.rs. A single-file program, run
// with `java -cp "$FRESHET_REFERENCE_CLASSPATH" ConfigNames.java`: no build, no network.
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;

import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.streams.StreamsConfig;

public class ConfigNames {
    public static void main(String[] args) {
        Map<String, Set<String>> definitions = new TreeMap<>();
        definitions.put("streams", StreamsConfig.configDef().names());
        definitions.put("consumer", ConsumerConfig.configNames());
        definitions.put("producer", ProducerConfig.configNames());
        definitions.put("admin", AdminClientConfig.configNames());
        for (Map.Entry<String, Set<String>> definition : definitions.entrySet()) {
            for (String name : new TreeSet<>(definition.getValue())) {
                System.out.println(definition.getKey() + "\t" + name);
            }
        }
    }
}
