// Prints the bytes Kafka's own message classes write for sample StreamsGroupHeartbeat and
// StreamsGroupDescribe requests and responses, one `<name> <version> <hex>` line each; run on
// the kafka-clients classpath by streams-group/tests/java_bytes.rs, which builds the same
// samples with the generated Rust codec and compares the bytes both ways.
import java.nio.ByteBuffer;
import java.util.List;

import org.apache.kafka.common.message.StreamsGroupDescribeRequestData;
import org.apache.kafka.common.message.StreamsGroupDescribeResponseData;
import org.apache.kafka.common.message.StreamsGroupHeartbeatRequestData;
import org.apache.kafka.common.message.StreamsGroupHeartbeatResponseData;
import org.apache.kafka.common.protocol.ByteBufferAccessor;
import org.apache.kafka.common.protocol.Message;
import org.apache.kafka.common.protocol.ObjectSerializationCache;

public class WireSamples {
    static void print(String name, Message m, short version) {
        ObjectSerializationCache cache = new ObjectSerializationCache();
        int size = m.size(cache, version);
        ByteBuffer buf = ByteBuffer.allocate(size);
        m.write(new ByteBufferAccessor(buf), cache, version);
        StringBuilder hex = new StringBuilder();
        for (byte b : buf.array()) hex.append(String.format("%02x", b));
        System.out.println(name + " " + version + " " + hex);
    }

    public static void main(String[] args) {
        StreamsGroupHeartbeatRequestData.KeyValue compact =
            new StreamsGroupHeartbeatRequestData.KeyValue().setKey("cleanup.policy").setValue("compact");
        StreamsGroupHeartbeatRequestData.Subtopology s0 = new StreamsGroupHeartbeatRequestData.Subtopology()
            .setSubtopologyId("0")
            .setSourceTopics(List.of("input"))
            .setRepartitionSinkTopics(List.of("app-KSTREAM-AGGREGATE-STATE-STORE-0000000002-repartition"))
            .setStateChangelogTopics(List.of())
            .setRepartitionSourceTopics(List.of())
            .setCopartitionGroups(List.of());
        StreamsGroupHeartbeatRequestData.Subtopology s1 = new StreamsGroupHeartbeatRequestData.Subtopology()
            .setSubtopologyId("1")
            .setSourceTopics(List.of("other"))
            .setStateChangelogTopics(List.of(new StreamsGroupHeartbeatRequestData.TopicInfo()
                .setName("app-counts-changelog").setPartitions(0).setReplicationFactor((short) -1)
                .setTopicConfigs(List.of(compact))))
            .setRepartitionSourceTopics(List.of(new StreamsGroupHeartbeatRequestData.TopicInfo()
                .setName("app-KSTREAM-AGGREGATE-STATE-STORE-0000000002-repartition").setPartitions(4)
                .setReplicationFactor((short) -1)))
            .setCopartitionGroups(List.of(new StreamsGroupHeartbeatRequestData.CopartitionGroup()
                .setSourceTopics(List.of((short) 0)).setRepartitionSourceTopics(List.of((short) 0))));
        StreamsGroupHeartbeatRequestData join = new StreamsGroupHeartbeatRequestData()
            .setGroupId("app").setMemberId("member-1").setMemberEpoch(0).setEndpointInformationEpoch(-1)
            .setInstanceId("pod-0-1").setRackId("rack-a").setRebalanceTimeoutMs(300000)
            .setTopology(new StreamsGroupHeartbeatRequestData.Topology().setEpoch(0).setSubtopologies(List.of(s0, s1)))
            .setActiveTasks(List.of()).setStandbyTasks(List.of()).setWarmupTasks(List.of())
            .setProcessId("5f0d4a3e-8f7e-4d55-9a2c-1b7e3c9d0a11")
            .setUserEndpoint(new StreamsGroupHeartbeatRequestData.Endpoint().setHost("pod-0.app").setPort(8080))
            .setClientTags(List.of())
            .setTaskOffsets(List.of(new StreamsGroupHeartbeatRequestData.TaskOffset().setSubtopologyId("1").setPartition(3).setOffset(1L << 40)));
        print("heartbeat-request-join", join, (short) 1);
        print("heartbeat-request-join", join, (short) 0);
        StreamsGroupHeartbeatRequestData ack = new StreamsGroupHeartbeatRequestData()
            .setGroupId("app").setMemberId("member-1").setMemberEpoch(7).setEndpointInformationEpoch(2)
            .setActiveTasks(List.of(new StreamsGroupHeartbeatRequestData.TaskIds().setSubtopologyId("0").setPartitions(List.of(0, 2))))
            .setStandbyTasks(List.of()).setWarmupTasks(List.of()).setShutdownApplication(true);
        print("heartbeat-request-ack", ack, (short) 1);

        StreamsGroupHeartbeatResponseData response = new StreamsGroupHeartbeatResponseData()
            .setThrottleTimeMs(3).setErrorCode((short) 0).setMemberId("member-1").setMemberEpoch(7)
            .setHeartbeatIntervalMs(5000).setAcceptableRecoveryLag(10000L)
            .setTaskOffsetIntervalMs(60000)
            .setStatus(List.of(new StreamsGroupHeartbeatResponseData.Status().setStatusCode((byte) 2).setStatusDetail("missing internal topics")))
            .setActiveTasks(List.of(new StreamsGroupHeartbeatResponseData.TaskIds().setSubtopologyId("0").setPartitions(List.of(1, 3))))
            .setStandbyTasks(List.of()).setWarmupTasks(null)
            .setTopologyDescriptionRequired(true)
            .setEndpointInformationEpoch(2)
            .setPartitionsByUserEndpoint(List.of(new StreamsGroupHeartbeatResponseData.EndpointToPartitions()
                .setUserEndpoint(new StreamsGroupHeartbeatResponseData.Endpoint().setHost("pod-0.app").setPort(8080))
                .setActivePartitions(List.of(new StreamsGroupHeartbeatResponseData.TopicPartition().setTopic("input").setPartitions(List.of(1, 3))))
                .setStandbyPartitions(List.of())));
        print("heartbeat-response", response, (short) 1);
        // Version 0 has the legacy recovery lag and no TopologyDescriptionRequired.
        response.setAcceptableRecoveryLagLegacy(10000).setTopologyDescriptionRequired(false);
        print("heartbeat-response", response, (short) 0);

        print("describe-request", new StreamsGroupDescribeRequestData().setGroupIds(List.of("app", "other"))
            .setIncludeAuthorizedOperations(true).setIncludeTopologyDescription(true), (short) 1);
        StreamsGroupDescribeResponseData.TaskIds t = new StreamsGroupDescribeResponseData.TaskIds().setSubtopologyId("0").setPartitions(List.of(0, 2));
        StreamsGroupDescribeResponseData describe = new StreamsGroupDescribeResponseData().setThrottleTimeMs(0)
            .setGroups(List.of(new StreamsGroupDescribeResponseData.DescribedGroup()
                .setGroupId("app").setGroupState("Stable").setGroupEpoch(4).setAssignmentEpoch(4)
                .setTopology(new StreamsGroupDescribeResponseData.Topology().setEpoch(0).setSubtopologies(List.of(
                    new StreamsGroupDescribeResponseData.Subtopology().setSubtopologyId("0").setSourceTopics(List.of("input"))
                        .setRepartitionSinkTopics(List.of()).setRepartitionSourceTopics(List.of())
                        .setStateChangelogTopics(List.of(new StreamsGroupDescribeResponseData.TopicInfo().setName("app-counts-changelog").setPartitions(4).setReplicationFactor((short) 1))))))
                .setMembers(List.of(new StreamsGroupDescribeResponseData.Member().setMemberId("member-1").setMemberEpoch(4)
                    .setInstanceId(null).setRackId(null).setClientId("app-StreamThread-1-consumer").setClientHost("/127.0.0.1")
                    .setTopologyEpoch(0).setProcessId("5f0d4a3e-8f7e-4d55-9a2c-1b7e3c9d0a11")
                    .setUserEndpoint(null).setClientTags(List.of()).setTaskOffsets(List.of()).setTaskEndOffsets(List.of())
                    .setAssignment(new StreamsGroupDescribeResponseData.Assignment().setActiveTasks(List.of(t)).setStandbyTasks(List.of()).setWarmupTasks(List.of()))
                    .setTargetAssignment(new StreamsGroupDescribeResponseData.Assignment().setActiveTasks(List.of(t)).setStandbyTasks(List.of()).setWarmupTasks(List.of()))
                    .setIsClassic(false)))
                .setAuthorizedOperations(Integer.MIN_VALUE)
                .setTopologyDescriptionStatus((byte) 1)
                .setAssignorName("sticky")));
        print("describe-response", describe, (short) 1);
        describe.groups().get(0).setTopologyDescriptionStatus((byte) 0).setAssignorName(null);
        print("describe-response", describe, (short) 0);
    }
}
