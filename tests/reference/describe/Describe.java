// Prints Kafka Streams' own describe() of the topologies whose Freshet descriptions are checked
// in engine/src/dsl (unit tests) and examples/*/describe.txt. Run with kafka-streams 4.4.0 on the
// classpath: java -cp "<kafka-streams and its dependencies>/*" Describe.java
import org.apache.kafka.streams.*;
import org.apache.kafka.streams.kstream.*;
import org.apache.kafka.common.serialization.Serdes;

public class Describe {
    public static void main(String[] a) {
        StreamsBuilder b = new StreamsBuilder();
        KStream<String, String> s = b.stream("branch-orders");
        var branches = s.filter((k, v) -> true)
            .split(Named.as("by-region-"))
            .branch((k, v) -> true, Branched.as("eu"))
            .branch((k, v) -> true, Branched.as("us"))
            .defaultBranch(Branched.as("other"));
        branches.get("by-region-eu").to("branch-orders-eu");
        branches.get("by-region-us").to("branch-orders-us");
        branches.get("by-region-other").to("branch-orders-other");
        System.out.print(b.build().describe());
        System.out.println("=====");
        StreamsBuilder b2 = new StreamsBuilder();
        b2.<String, String>stream("route-events").mapValues(v -> v).to((k, v, ctx) -> "x");
        System.out.print(b2.build().describe());
        System.out.println("=====");
        StreamsBuilder b3 = new StreamsBuilder();
        b3.<String, String>stream("input").selectKey((k, v) -> v).repartition(Repartitioned.as("by-value")).to("output");
        System.out.print(b3.build().describe());
    }
}
