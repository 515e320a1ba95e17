//! The client against the real broker (`FRESHET_KAFKA_BOOTSTRAP`, default 127.0.0.1:9092, as
//! the other suites): a member joins a streams group with a one-sub-topology topology, is
//! assigned its tasks, the group's description (StreamsGroupDescribe) lists it with them, and
//! the coordinator accepts an offset commit at the member's epoch and refuses one at a stale
//! epoch or from an unknown member: the fencing exactly-once relies on.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use freshet_streams_group::connection::Connection;
use freshet_streams_group::coordinator::find_coordinator;
use freshet_streams_group::describe::describe_group;
use freshet_streams_group::heartbeat::{Member, MemberConfig, Outcome, TaskId, TaskOffsets};
use freshet_streams_group::messages::streams_group_heartbeat_request as hq;
use freshet_streams_group::offsets::commit_offsets;
use freshet_streams_group::{Security, StrBytes};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::{CreateTopicsRequest, TopicName};

const TIMEOUT: Duration = Duration::from_secs(10);
const STALE_MEMBER_EPOCH: i16 = 113;
const UNKNOWN_MEMBER_ID: i16 = 25;

fn bootstrap() -> String {
    std::env::var("FRESHET_KAFKA_BOOTSTRAP").unwrap_or_else(|_| "127.0.0.1:9092".to_owned())
}

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_owned())
}

fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{prefix}-{}-{nanos}", std::process::id())
}

fn create_topic(name: &str, partitions: i32) {
    let first = bootstrap().split(',').next().unwrap().to_owned();
    let mut conn = Connection::connect(&first, "streams-group-test", TIMEOUT)
        .unwrap_or_else(|e| panic!("no broker at {first} ({e}): start one with `make kafka-up`"));
    let request = CreateTopicsRequest::default()
        .with_topics(vec![
            CreatableTopic::default()
                .with_name(TopicName(s(name)))
                .with_num_partitions(partitions)
                .with_replication_factor(1),
        ])
        .with_timeout_ms(10_000);
    let response = conn.send(&request, 5).expect("CreateTopics");
    for t in response.topics {
        assert_eq!(t.error_code, 0, "creating {name}: {:?}", t.error_message);
    }
}

#[test]
fn a_member_is_assigned_described_and_fenced_by_its_epoch() {
    let group = unique("sg-client");
    let topic = format!("{group}-in");
    create_topic(&topic, 2);
    let topology = hq::Topology {
        epoch: 0,
        subtopologies: vec![hq::Subtopology {
            subtopology_id: s("0"),
            source_topics: vec![s(&topic)],
            ..Default::default()
        }],
    };
    let mut member = Member::new(MemberConfig {
        bootstrap: bootstrap(),
        group_id: group.clone(),
        client_id: format!("{group}-StreamThread-1-consumer"),
        instance_id: None,
        rack_id: None,
        process_id: "5f0d4a3e-8f7e-4d55-9a2c-1b7e3c9d0a11".to_owned(),
        user_endpoint: None,
        rebalance_timeout_ms: 30_000,
        topology,
        request_timeout: TIMEOUT,
        security: Security::plaintext(),
    });
    let all: BTreeSet<TaskId> = (0..2)
        .map(|p| TaskId {
            subtopology: "0".to_owned(),
            partition: p,
        })
        .collect();
    // The coordinator holds the first assignment back for group.streams.initial.rebalance.delay.ms.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        assert!(Instant::now() < deadline, "no assignment of {all:?}");
        if !member.due() {
            std::thread::sleep(Duration::from_millis(100));
            continue;
        }
        // A fresh broker answers CoordinatorNotAvailable until its offsets topic exists: the
        // member waits that out as the runtime does (the next heartbeat finds it again).
        let outcome = match member.heartbeat() {
            Ok(outcome) => outcome,
            Err(e) if e.is_retriable() => {
                std::thread::sleep(Duration::from_millis(200));
                continue;
            }
            Err(e) => panic!("heartbeat: {e}"),
        };
        match outcome {
            Outcome::Assigned(tasks) => {
                member.set_owned(tasks.clone());
                if tasks.active == all {
                    break;
                }
            }
            Outcome::Unchanged => {}
            Outcome::Fenced(e) => panic!("fenced: {e}"),
        }
    }
    // Acknowledge the assignment, as a stream thread does once its tasks are created.
    assert!(member.due(), "an acknowledgement is due at once");
    member.heartbeat().expect("acknowledging heartbeat");
    let epoch = member.epoch();
    assert!(epoch > 0, "epoch {epoch}");

    // Task offsets (position and end offset sums of each task's changelogs) go with the next
    // heartbeat once the member has joined; the coordinator keeps them for its assignor and
    // describes them.
    assert!(
        member.task_offsets_due(),
        "the first report is due on joining"
    );
    let task = |p| TaskId {
        subtopology: "0".to_owned(),
        partition: p,
    };
    let reported = TaskOffsets {
        offsets: [(task(0), 7), (task(1), 3)].into(),
        end_offsets: [(task(0), 9), (task(1), 3)].into(),
    };
    member.report_task_offsets(reported.clone());
    member.heartbeat().expect("heartbeat with task offsets");
    assert_eq!(member.reported_task_offsets(), Some(&reported));
    assert!(
        !member.task_offsets_due(),
        "reported; next after the interval"
    );
    eprintln!("task offset interval: {:?}", member.task_offset_interval());

    let coordinator = find_coordinator(
        &bootstrap(),
        &group,
        "streams-group-test",
        TIMEOUT,
        &Security::plaintext(),
    )
    .expect("coordinator");
    let mut conn = Connection::connect(&coordinator, "streams-group-test", TIMEOUT).unwrap();
    let described = describe_group(&mut conn, &group).expect("describe");
    let me = described
        .members
        .iter()
        .find(|m| m.member_id.as_str() == member.member_id())
        .unwrap_or_else(|| panic!("the member is not in {described:#?}"));
    assert_eq!(me.member_epoch, epoch);
    let offsets = |list: &[freshet_streams_group::messages::streams_group_describe_response::TaskOffset]| {
        list.iter()
            .map(|o| (task(o.partition), o.offset))
            .collect::<std::collections::BTreeMap<_, _>>()
    };
    assert_eq!(offsets(&me.task_offsets), reported.offsets, "{me:#?}");
    assert_eq!(
        offsets(&me.task_end_offsets),
        reported.end_offsets,
        "{me:#?}"
    );
    assert_eq!(
        me.client_id.as_str(),
        format!("{group}-StreamThread-1-consumer")
    );
    assert_eq!(
        me.process_id.as_str(),
        "5f0d4a3e-8f7e-4d55-9a2c-1b7e3c9d0a11"
    );
    let active: Vec<(String, Vec<i32>)> = me
        .assignment
        .active_tasks
        .iter()
        .map(|t| (t.subtopology_id.as_str().to_owned(), t.partitions.clone()))
        .collect();
    assert_eq!(active, vec![("0".to_owned(), vec![0, 1])]);
    let sub = described
        .topology
        .as_ref()
        .and_then(|t| t.subtopologies.as_ref())
        .and_then(|s| s.first())
        .expect("the group's topology");
    assert_eq!(sub.source_topics, vec![s(&topic)]);

    // Commits: at the member's epoch accepted; at a stale one, or from no member, refused.
    let offsets = vec![(topic.clone(), 0, 5)];
    member
        .commit_offsets(&offsets)
        .expect("commit at the member's epoch");
    let stale = commit_offsets(&mut conn, &group, member.member_id(), epoch - 1, &offsets)
        .expect_err("a commit at a stale epoch");
    assert_eq!(stale.code(), Some(STALE_MEMBER_EPOCH), "{stale}");
    let unknown = commit_offsets(&mut conn, &group, "not-a-member", epoch, &offsets)
        .expect_err("a commit from no member");
    assert_eq!(unknown.code(), Some(UNKNOWN_MEMBER_ID), "{unknown}");
    member.leave();
}
