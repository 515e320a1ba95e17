package dev.freshet.reference;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.apicurio.registry.serde.Default4ByteIdHandler;
import io.apicurio.registry.serde.avro.AvroKafkaDeserializer;
import io.apicurio.registry.serde.avro.AvroKafkaSerializer;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.Map;
import org.apache.avro.Schema;
import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericRecord;
import org.apache.kafka.common.serialization.Serde;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.common.utils.Bytes;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.Grouped;
import org.apache.kafka.streams.kstream.Joined;
import org.apache.kafka.streams.kstream.KStream;
import org.apache.kafka.streams.kstream.KTable;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Produced;
import org.apache.kafka.streams.state.KeyValueStore;

/**
 * The schema-registry differential case ({@code tests/tests/schema_registry_kstreams.rs}): Avro in
 * Confluent's wire format through Apicurio's Kafka serdes, against the same registry Freshet uses.
 *
 * <p>Apicurio's serdes speak Apicurio's own REST API (the registry's {@code /apis/registry/v3},
 * next to the {@code /apis/ccompat/v7} that Freshet and confluent-kafka use) and are configured
 * here for Confluent's framing: no headers, the magic byte 0 and a 4-byte schema id in the
 * payload, and that id being the content id, which is what the Confluent-compatible API hands
 * out as a schema's {@code id}. So a record either side writes is read by the other.
 *
 * <p>The topology is the Java twin of the manifest in that test, step for step: the customers
 * stream (Avro) into a table (JSON store {@code customers}), the orders stream (Avro) re-keyed
 * by customer and joined to it through {@code enrich-repartition}, grouped by region through
 * {@code by-region-repartition}, aggregated into {@code region-totals} (JSON), and written as
 * Avro records of the output schema the test passes (a file).
 */
final class AvroCases {
    private AvroCases() {}

    private static final Serde<String> STRING = Serdes.String();
    private static final Serde<JsonNode> JSON = new JsonSerde();
    private static final JsonNodeFactory NODES = JsonNodeFactory.instance;

    /**
     * Apicurio's Avro serde for values, configured for Confluent's wire format against the
     * registry whose Confluent-compatible API root is {@code ccompatUrl}.
     */
    static Serde<GenericRecord> avroValues(String ccompatUrl) {
        Map<String, Object> config = new HashMap<>();
        config.put("apicurio.registry.url", nativeApi(ccompatUrl));
        // Confluent's framing: the id in the payload (not in headers), 4 bytes, the content id.
        config.put("apicurio.registry.headers.enabled", false);
        config.put("apicurio.registry.id-handler", Default4ByteIdHandler.class.getName());
        config.put("apicurio.registry.use-id", "contentId");
        // As Confluent's auto.register.schemas=true: the writer registers its schema under the
        // subject TopicNameStrategy names (<topic>-value), an artifact of the default group.
        config.put("apicurio.registry.auto-register", true);
        AvroKafkaSerializer<GenericRecord> serializer = new AvroKafkaSerializer<>();
        serializer.configure(config, false);
        AvroKafkaDeserializer<GenericRecord> deserializer = new AvroKafkaDeserializer<>();
        deserializer.configure(config, false);
        return Serdes.serdeFrom(serializer, deserializer);
    }

    /** {@code http://h:p/apis/ccompat/v7} to {@code http://h:p/apis/registry/v3}. */
    static String nativeApi(String ccompatUrl) {
        int at = ccompatUrl.indexOf("/apis/ccompat/");
        if (at < 0) {
            throw new IllegalArgumentException("the registry URL '" + ccompatUrl
                    + "' is not an Apicurio Confluent-compatible API root (…/apis/ccompat/v7)");
        }
        return ccompatUrl.substring(0, at) + "/apis/registry/v3";
    }

    /**
     * An Avro datum as the JSON Freshet's expressions see it: records as objects, enums as their
     * symbol, strings as text, ints and longs as numbers, a union as its branch's value.
     */
    static JsonNode json(Object datum) {
        if (datum == null) {
            return NODES.nullNode();
        }
        if (datum instanceof GenericRecord record) {
            ObjectNode out = NODES.objectNode();
            for (Schema.Field field : record.getSchema().getFields()) {
                out.set(field.name(), json(record.get(field.name())));
            }
            return out;
        }
        if (datum instanceof Long l) {
            return NODES.numberNode(l);
        }
        if (datum instanceof Integer i) {
            return NODES.numberNode(i.longValue());
        }
        if (datum instanceof Boolean b) {
            return NODES.booleanNode(b);
        }
        if (datum instanceof Double d) {
            return NODES.numberNode(d);
        }
        // Utf8, String and GenericEnumSymbol: their text.
        return NODES.textNode(datum.toString());
    }

    /**
     * The manifest's final {@code mapValues}: the region's totals as a record of the output
     * schema ({@code size} an enum, {@code note} a nullable union).
     */
    static GenericRecord regionTotal(Schema schema, String region, JsonNode agg) {
        GenericRecord out = new GenericData.Record(schema);
        long total = agg.get("total").asLong();
        long orders = agg.get("orders").asLong();
        out.put("region", region);
        out.put("total", total);
        out.put("orders", (int) orders);
        out.put("biggest", agg.get("biggest").asLong());
        out.put("paid", agg.get("paid").asLong());
        out.put("size", new GenericData.EnumSymbol(schema.getField("size").schema(), total >= 1000 ? "LARGE" : "SMALL"));
        out.put("note", orders >= 3 ? "busy" : null);
        return out;
    }

    /** The customers pipeline's {@code mapValues}: {@code {'name': value.name, 'region': value.region}}. */
    static JsonNode customerRow(GenericRecord row) {
        ObjectNode out = NODES.objectNode();
        out.set("name", json(row.get("name")));
        out.set("region", json(row.get("region")));
        return out;
    }

    /** The join's value: {@code {'region': right.region, 'customer': right.name, 'amount': left.amount, 'status': left.status}}. */
    static JsonNode enrich(JsonNode order, JsonNode customer) {
        ObjectNode out = NODES.objectNode();
        out.set("region", customer.get("region"));
        out.set("customer", customer.get("name"));
        out.set("amount", order.get("amount"));
        out.set("status", order.get("status"));
        return out;
    }

    /** The aggregate's initializer: {@code {'total': 0, 'orders': 0, 'biggest': 0, 'paid': 0}}. */
    static JsonNode zero() {
        ObjectNode out = NODES.objectNode();
        out.put("total", 0L);
        out.put("orders", 0L);
        out.put("biggest", 0L);
        out.put("paid", 0L);
        return out;
    }

    /** The aggregate's aggregator (CEL's int arithmetic is Java's long arithmetic). */
    static JsonNode add(String region, JsonNode row, JsonNode agg) {
        long amount = row.get("amount").asLong();
        ObjectNode out = NODES.objectNode();
        out.put("total", agg.get("total").asLong() + amount);
        out.put("orders", agg.get("orders").asLong() + 1);
        out.put("biggest", amount > agg.get("biggest").asLong() ? amount : agg.get("biggest").asLong());
        out.put("paid", agg.get("paid").asLong() + ("PAID".equals(row.get("status").asText()) ? amount : 0));
        return out;
    }

    /**
     * The order-totals case: roles {@code customers}, {@code orders} and {@code output} in the
     * topic map; {@code schemaFile} holds the output's Avro schema.
     */
    static void orderTotals(StreamsBuilder b, Cases.Topics t, String registryUrl, Path schemaFile) {
        Schema outputSchema;
        try {
            outputSchema = new Schema.Parser().parse(Files.readString(schemaFile));
        } catch (IOException e) {
            throw new UncheckedIOException("reading the output schema " + schemaFile, e);
        }
        Serde<GenericRecord> avro = avroValues(registryUrl);
        // pipeline customers: mapValues, toTable { store: customers }.
        KTable<String, JsonNode> customers = b.stream(t.get("customers"), Consumed.with(STRING, avro))
                .mapValues(AvroCases::customerRow)
                .toTable(Materialized.<String, JsonNode, KeyValueStore<Bytes, byte[]>>as("customers")
                        .withKeySerde(STRING)
                        .withValueSerde(JSON));
        // pipeline order-totals: selectKey value.customer; enrich: join customers; by-region:
        // groupBy value.region; aggregate { store: region-totals }; toStream; mapValues; to.
        KStream<String, JsonNode> orders = b.stream(t.get("orders"), Consumed.with(STRING, avro))
                .mapValues(AvroCases::json);
        KTable<String, JsonNode> totals = orders
                .selectKey((key, order) -> order.get("customer").asText())
                .join(customers, AvroCases::enrich,
                        Joined.<String, JsonNode, JsonNode>as("enrich").withKeySerde(STRING).withValueSerde(JSON))
                .groupBy((key, row) -> row.get("region").asText(), Grouped.with("by-region", STRING, JSON))
                .aggregate(AvroCases::zero, AvroCases::add,
                        Materialized.<String, JsonNode, KeyValueStore<Bytes, byte[]>>as("region-totals")
                                .withKeySerde(STRING)
                                .withValueSerde(JSON));
        totals.toStream()
                .mapValues((region, agg) -> regionTotal(outputSchema, region, agg))
                .to(t.output(), Produced.with(STRING, avro));
    }
}
