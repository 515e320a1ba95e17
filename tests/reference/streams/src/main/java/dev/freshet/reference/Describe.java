package dev.freshet.reference;

import java.time.Duration;
import java.util.Map;
import java.util.TreeMap;
import java.util.function.Supplier;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.Topology;
import org.apache.kafka.streams.kstream.Branched;
import org.apache.kafka.streams.kstream.GlobalKTable;
import org.apache.kafka.streams.kstream.KStream;
import org.apache.kafka.streams.kstream.KTable;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Named;
import org.apache.kafka.streams.kstream.Repartitioned;
import org.apache.kafka.streams.kstream.TimeWindows;
import org.apache.kafka.streams.processor.RecordContext;
import org.apache.kafka.streams.processor.TopicNameExtractor;

/**
 * Kafka Streams' own {@code describe()} of the topologies whose Freshet descriptions are checked
 * in: {@code examples/<name>/describe.txt} (compared by tests/tests/differential.rs) and the
 * constants in engine/src/dsl (unit tests). Each topology is built as Kafka Streams users would
 * write the example's manifest, so the generated node names line up. The predicates and mappers
 * are placeholders: describe() shows only the shape.
 */
final class Describe {
    private Describe() {}

    static final Map<String, Supplier<Topology>> ALL = new TreeMap<>(Map.of(
            "branch-by-region", Describe::branchByRegion,
            "route-by-type", Describe::routeByType,
            "per-customer-10m", Describe::perCustomer10m,
            "dsl-repartition", Describe::dslRepartition,
            "enriched-orders", Describe::enrichedOrders,
            "orders-with-product", Describe::ordersWithProduct));

    // examples/branch-by-region/app.yaml: filter, then split with branches eu, us and the default other.
    static Topology branchByRegion() {
        StreamsBuilder b = new StreamsBuilder();
        KStream<String, String> orders = b.stream("branch-orders");
        var branches = orders.filter((k, v) -> true)
                .split(Named.as("by-region-"))
                .branch((k, v) -> true, Branched.as("eu"))
                .branch((k, v) -> true, Branched.as("us"))
                .defaultBranch(Branched.as("other"));
        branches.get("by-region-eu").to("branch-orders-eu");
        branches.get("by-region-us").to("branch-orders-us");
        branches.get("by-region-other").to("branch-orders-other");
        return b.build();
    }

    // examples/route-by-type/app.yaml: mapValues, then to { topicExpr }.
    static Topology routeByType() {
        StreamsBuilder b = new StreamsBuilder();
        b.<String, String>stream("route-events")
                .mapValues(v -> v)
                .to(new Expression<>("'route-events-' + value.type"));
        return b.build();
    }

    // examples/per-customer-10m/app.yaml: groupBy customer, 10-minute tumbling windows with a
    // minute of grace, count into the store orders-per-customer, to customer-counts.
    static Topology perCustomer10m() {
        StreamsBuilder b = new StreamsBuilder();
        b.<String, String>stream("customer-orders")
                .groupBy((k, v) -> v)
                .windowedBy(TimeWindows.ofSizeAndGrace(Duration.ofMinutes(10), Duration.ofMinutes(1)))
                .count(Materialized.as("orders-per-customer"))
                .toStream()
                .to("customer-counts");
        return b.build();
    }

    // examples/enriched-orders/app.yaml: the orders stream and the customers table (store
    // customers), declared in that order; selectKey customer, then join the table. Freshet names the join's repartition
    // topic after the pipeline and the step (enriched-2); Repartitioned.as gives Java that name
    // (Joined.as would also rename the join processor).
    static Topology enrichedOrders() {
        StreamsBuilder b = new StreamsBuilder();
        KStream<String, String> orders = b.stream("enrich-orders");
        KTable<String, String> customers = b.table("enrich-customers", Materialized.as("customers"));
        orders.selectKey((k, v) -> v)
                .repartition(Repartitioned.as("enriched-2"))
                .join(customers, (order, customer) -> order)
                .to("enriched-orders");
        return b.build();
    }

    // examples/orders-with-product/app.yaml: the orders stream and the products global table;
    // join on a key taken from the order's value, to orders-with-product.
    static Topology ordersWithProduct() {
        StreamsBuilder b = new StreamsBuilder();
        KStream<String, String> orders = b.stream("product-orders");
        GlobalKTable<String, String> products = b.globalTable("products");
        orders.join(products, (k, v) -> v, (order, product) -> order).to("orders-with-product");
        return b.build();
    }

    // engine/src/dsl's repartition test: selectKey, repartition named by-value, to output.
    static Topology dslRepartition() {
        StreamsBuilder b = new StreamsBuilder();
        b.<String, String>stream("input")
                .selectKey((k, v) -> v)
                .repartition(Repartitioned.as("by-value"))
                .to("output");
        return b.build();
    }

    /**
     * A topic-name extractor standing for a {@code topicExpr}. describe() prints a dynamic sink as
     * {@code (extractor class: <extractor.toString()>)}; Freshet prints the expression there.
     */
    private record Expression<K, V>(String text) implements TopicNameExtractor<K, V> {
        @Override
        public String extract(K key, V value, RecordContext recordContext) {
            throw new UnsupportedOperationException("describe only");
        }

        @Override
        public String toString() {
            return text;
        }
    }
}
