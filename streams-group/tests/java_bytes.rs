//! The generated codec against Kafka's own message classes: tests/java/WireSamples.java prints
//! the bytes the Java classes write for sample requests and responses; the same samples built
//! here must encode to those bytes, and the Java bytes must decode to the samples.

mod common;

use std::collections::HashMap;

use bytes::{Bytes, BytesMut};
use freshet_streams_group::messages::streams_group_describe_request::StreamsGroupDescribeRequest;
use freshet_streams_group::messages::streams_group_describe_response as dr;
use freshet_streams_group::messages::streams_group_heartbeat_request as hq;
use freshet_streams_group::messages::streams_group_heartbeat_response as hr;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_owned())
}

/// `<name> <version>` → bytes, as the Java classes write them (one JVM start for all tests).
fn java_samples() -> &'static HashMap<(String, i16), Vec<u8>> {
    static SAMPLES: std::sync::OnceLock<HashMap<(String, i16), Vec<u8>>> =
        std::sync::OnceLock::new();
    SAMPLES.get_or_init(run_java)
}

fn run_java() -> HashMap<(String, i16), Vec<u8>> {
    let jar = common::kafka_clients_jar();
    let src = common::root().join("streams-group/tests/java/WireSamples.java");
    let out = std::process::Command::new("java")
        .arg("-cp")
        .arg(&jar)
        .arg(&src)
        .output()
        .expect("running java (the JDK scripts/deps.sh installs)");
    assert!(
        out.status.success(),
        "WireSamples.java failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut samples = HashMap::new();
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let mut parts = line.split(' ');
        let (name, version, hex) = (
            parts.next().unwrap(),
            parts.next().unwrap(),
            parts.next().unwrap(),
        );
        let bytes = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        samples.insert((name.to_owned(), version.parse().unwrap()), bytes);
    }
    samples
}

/// `value` encodes to Java's bytes at `version`, and Java's bytes decode to `value`.
fn check<T: Encodable + Decodable + PartialEq + std::fmt::Debug>(
    samples: &HashMap<(String, i16), Vec<u8>>,
    name: &str,
    version: i16,
    value: &T,
) {
    let java = samples
        .get(&(name.to_owned(), version))
        .unwrap_or_else(|| panic!("WireSamples.java printed no {name} v{version}"));
    let mut buf = BytesMut::new();
    value.encode(&mut buf, version).unwrap();
    assert_eq!(
        value.compute_size(version).unwrap(),
        buf.len(),
        "{name} v{version}: compute_size"
    );
    assert_eq!(&buf[..], &java[..], "{name} v{version}: encoded bytes");
    let mut bytes = Bytes::from(java.clone());
    let decoded = T::decode(&mut bytes, version).unwrap();
    assert_eq!(&decoded, value, "{name} v{version}: decoded");
    assert!(bytes.is_empty(), "{name} v{version}: bytes left over");
}

fn join_request() -> hq::StreamsGroupHeartbeatRequest {
    let repartition = "app-KSTREAM-AGGREGATE-STATE-STORE-0000000002-repartition";
    hq::StreamsGroupHeartbeatRequest {
        group_id: s("app"),
        member_id: s("member-1"),
        member_epoch: 0,
        endpoint_information_epoch: -1,
        instance_id: Some(s("pod-0-1")),
        rack_id: Some(s("rack-a")),
        rebalance_timeout_ms: 300_000,
        topology: Some(hq::Topology {
            epoch: 0,
            subtopologies: vec![
                hq::Subtopology {
                    subtopology_id: s("0"),
                    source_topics: vec![s("input")],
                    repartition_sink_topics: vec![s(repartition)],
                    ..Default::default()
                },
                hq::Subtopology {
                    subtopology_id: s("1"),
                    source_topics: vec![s("other")],
                    state_changelog_topics: vec![hq::TopicInfo {
                        name: s("app-counts-changelog"),
                        partitions: 0,
                        replication_factor: -1,
                        topic_configs: vec![hq::KeyValue {
                            key: s("cleanup.policy"),
                            value: s("compact"),
                        }],
                    }],
                    repartition_source_topics: vec![hq::TopicInfo {
                        name: s(repartition),
                        partitions: 4,
                        replication_factor: -1,
                        topic_configs: vec![],
                    }],
                    copartition_groups: vec![hq::CopartitionGroup {
                        source_topics: vec![0],
                        source_topic_regex: vec![],
                        repartition_source_topics: vec![0],
                    }],
                    ..Default::default()
                },
            ],
        }),
        active_tasks: Some(vec![]),
        standby_tasks: Some(vec![]),
        warmup_tasks: Some(vec![]),
        process_id: Some(s("5f0d4a3e-8f7e-4d55-9a2c-1b7e3c9d0a11")),
        user_endpoint: Some(hq::Endpoint {
            host: s("pod-0.app"),
            port: 8080,
        }),
        client_tags: Some(vec![]),
        task_offsets: Some(vec![hq::TaskOffset {
            subtopology_id: s("1"),
            partition: 3,
            offset: 1 << 40,
        }]),
        task_end_offsets: None,
        shutdown_application: false,
    }
}

#[test]
fn heartbeat_requests_match_the_java_classes() {
    let samples = java_samples();
    check(samples, "heartbeat-request-join", 1, &join_request());
    check(samples, "heartbeat-request-join", 0, &join_request());
    let ack = hq::StreamsGroupHeartbeatRequest {
        group_id: s("app"),
        member_id: s("member-1"),
        member_epoch: 7,
        endpoint_information_epoch: 2,
        active_tasks: Some(vec![hq::TaskIds {
            subtopology_id: s("0"),
            partitions: vec![0, 2],
        }]),
        standby_tasks: Some(vec![]),
        warmup_tasks: Some(vec![]),
        shutdown_application: true,
        ..Default::default()
    };
    check(samples, "heartbeat-request-ack", 1, &ack);
}

fn heartbeat_response(version: i16) -> hr::StreamsGroupHeartbeatResponse {
    hr::StreamsGroupHeartbeatResponse {
        throttle_time_ms: 3,
        error_code: 0,
        error_message: None,
        member_id: s("member-1"),
        member_epoch: 7,
        heartbeat_interval_ms: 5000,
        // Each version carries one of the two: the other keeps its default.
        acceptable_recovery_lag_legacy: if version == 0 { 10_000 } else { 0 },
        task_offset_interval_ms: 60_000,
        acceptable_recovery_lag: if version >= 1 { 10_000 } else { -1 },
        status: Some(vec![hr::Status {
            status_code: 2,
            status_detail: s("missing internal topics"),
        }]),
        active_tasks: Some(vec![hr::TaskIds {
            subtopology_id: s("0"),
            partitions: vec![1, 3],
        }]),
        standby_tasks: Some(vec![]),
        warmup_tasks: None,
        topology_description_required: version >= 1,
        endpoint_information_epoch: 2,
        partitions_by_user_endpoint: Some(vec![hr::EndpointToPartitions {
            user_endpoint: hr::Endpoint {
                host: s("pod-0.app"),
                port: 8080,
            },
            active_partitions: vec![hr::TopicPartition {
                topic: s("input"),
                partitions: vec![1, 3],
            }],
            standby_partitions: vec![],
        }]),
    }
}

#[test]
fn heartbeat_responses_match_the_java_classes() {
    let samples = java_samples();
    check(samples, "heartbeat-response", 1, &heartbeat_response(1));
    check(samples, "heartbeat-response", 0, &heartbeat_response(0));
}

#[test]
fn describe_messages_match_the_java_classes() {
    let samples = java_samples();
    let request = StreamsGroupDescribeRequest {
        group_ids: vec![s("app"), s("other")],
        include_authorized_operations: true,
        include_topology_description: true,
    };
    check(samples, "describe-request", 1, &request);
    let tasks = dr::TaskIds {
        subtopology_id: s("0"),
        partitions: vec![0, 2],
    };
    let assignment = dr::Assignment {
        active_tasks: vec![tasks],
        standby_tasks: vec![],
        warmup_tasks: vec![],
    };
    let response = |version: i16| dr::StreamsGroupDescribeResponse {
        throttle_time_ms: 0,
        groups: vec![dr::DescribedGroup {
            error_code: 0,
            error_message: None,
            group_id: s("app"),
            group_state: s("Stable"),
            group_epoch: 4,
            assignment_epoch: 4,
            topology: Some(dr::Topology {
                epoch: 0,
                subtopologies: Some(vec![dr::Subtopology {
                    subtopology_id: s("0"),
                    source_topics: vec![s("input")],
                    repartition_sink_topics: vec![],
                    state_changelog_topics: vec![dr::TopicInfo {
                        name: s("app-counts-changelog"),
                        partitions: 4,
                        replication_factor: 1,
                        topic_configs: vec![],
                    }],
                    repartition_source_topics: vec![],
                }]),
            }),
            members: vec![dr::Member {
                member_id: s("member-1"),
                member_epoch: 4,
                instance_id: None,
                rack_id: None,
                client_id: s("app-StreamThread-1-consumer"),
                client_host: s("/127.0.0.1"),
                topology_epoch: 0,
                process_id: s("5f0d4a3e-8f7e-4d55-9a2c-1b7e3c9d0a11"),
                user_endpoint: None,
                client_tags: vec![],
                task_offsets: vec![],
                task_end_offsets: vec![],
                assignment: assignment.clone(),
                target_assignment: assignment.clone(),
                is_classic: false,
            }],
            authorized_operations: i32::MIN,
            topology_description: None,
            topology_description_status: if version >= 1 { 1 } else { 0 },
            assignor_name: (version >= 1).then(|| s("sticky")),
        }],
    };
    check(samples, "describe-response", 1, &response(1));
    check(samples, "describe-response", 0, &response(0));
}
