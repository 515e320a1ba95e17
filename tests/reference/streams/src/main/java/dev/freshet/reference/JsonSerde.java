package dev.freshet.reference;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import org.apache.kafka.common.errors.SerializationException;
import org.apache.kafka.common.serialization.Deserializer;
import org.apache.kafka.common.serialization.Serde;
import org.apache.kafka.common.serialization.Serializer;

/**
 * JSON values as Jackson trees: Freshet's {@code json} serde on the Java side. Null bytes (a
 * tombstone) are a null tree and back. Jackson writes object fields in insertion order, not
 * Freshet's sorted order, which is why the harness compares JSON values parsed.
 *
 * <p>Public with a no-argument constructor so {@code default.value.serde} can name the class.
 */
public final class JsonSerde implements Serde<JsonNode> {
    static final ObjectMapper MAPPER = new ObjectMapper();

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
