//! The app's group as the operator sees it, through Freshet's own client of the group's
//! coordinator (secured as the app's consumer is): under `group.protocol=streams` (KIP-1071)
//! each pod's active, standby and warm-up tasks for the status; under `streams` and `classic`
//! (and `auto`, whichever it chose) the removal of the members whose pods a scale-down took away.
//!
//! Why the removal: each pod is a static member (`group.instance.id` from its name), and a static
//! member that closes keeps its tasks waiting for it until its session times out (45 s by
//! default): a streams-group member leaves with epoch -2, librdkafka's classic member sends no
//! `LeaveGroup` at all. That is what a restarted pod wants, finding its tasks again; a pod past
//! the StatefulSet's replicas does not come back. Once it no longer exists, the operator removes
//! its members, as `kafka-streams-groups`/`kafka-consumer-groups` would by hand, and the
//! coordinator moves their tasks at once, to their standbys where a streams group keeps some. A
//! pod that rolls keeps its ordinal and is never touched.
//!
//! Every call here blocks; the controller runs them on the blocking pool.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use freshet_spec::config::{GroupProtocol, StreamsConfig};
use freshet_streams_group::messages::streams_group_describe_response::DescribedGroup;
use freshet_streams_group::removal::{self, Removal};
use freshet_streams_group::{Connection, GroupError, Security, coordinator, describe};

use freshet_crds::StreamsApp;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::{Api, ListParams};
use kube::runtime::events::EventType;

use crate::classic_group;
use crate::context::Context;
use crate::kafka::AppClients;
use crate::render;

/// The client id of the operator's connections to the coordinator.
const CLIENT_ID: &str = "freshet-operator";
/// The coordinator's answer for a group it does not know.
const GROUP_ID_NOT_FOUND: i16 = 69;

/// A member of the group, by the pod it runs in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMember {
    /// The pod: the member's `group.instance.id` less its thread suffix (`<pod>-<n>`), else
    /// its client host.
    pub pod: String,
    /// The member id the coordinator gave it.
    pub member_id: String,
    /// Its static instance id, when it has one.
    pub instance_id: Option<String>,
}

/// The kind of group the app's instances are members of.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum GroupKind {
    /// A streams group (KIP-1071).
    #[default]
    Streams,
    /// A classic consumer group.
    Classic,
}

/// The group as last described.
#[derive(Debug, Clone, Default)]
pub struct GroupView {
    /// Its kind.
    pub kind: GroupKind,
    /// Each pod's tasks, pods sorted by name (none for a classic group).
    pub pods: Vec<freshet_crds::PodTasks>,
    /// Every member.
    pub members: Vec<GroupMember>,
}

/// A connection to the coordinator of the app's group, or `None` when the operator has no
/// group to look at: a `consumer` (KIP-848) group, or a consumer secured in a way Freshet's
/// client cannot follow, which only `streams` makes an error (its instances cannot either).
fn connect(
    config: &StreamsConfig,
    timeout: Duration,
) -> Result<Option<Connection>, StreamsGroupError> {
    if config.group_protocol == GroupProtocol::Consumer {
        return Ok(None);
    }
    let security = match Security::from_properties(
        config
            .consumer
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str())),
    ) {
        Ok(s) => s,
        Err(e) if config.group_protocol == GroupProtocol::Streams => return Err(e.into()),
        Err(e) => {
            tracing::debug!(error = %e, "the consumer group is not looked at");
            return Ok(None);
        }
    };
    let group = &config.application_id;
    let address = coordinator::find_coordinator(
        &config.bootstrap_servers,
        group,
        CLIENT_ID,
        timeout,
        &security,
    )?;
    Ok(Some(Connection::connect_with(
        &address, CLIENT_ID, timeout, &security,
    )?))
}

/// The group as its coordinator describes it: a streams group under `streams` and under `auto`
/// where one exists, else the classic group. `None` when there is no group to look at
/// ([`connect`]); a view with no member when the group has none yet. Each request waits at most
/// `timeout` (`--kafka-timeout-seconds`).
pub fn view(
    config: &StreamsConfig,
    timeout: Duration,
) -> Result<Option<GroupView>, StreamsGroupError> {
    let Some(mut conn) = connect(config, timeout)? else {
        return Ok(None);
    };
    let group = &config.application_id;
    if config.group_protocol != GroupProtocol::Classic {
        match describe::describe_group(&mut conn, group) {
            Ok(described) => {
                let members = described
                    .members
                    .iter()
                    .map(|m| GroupMember {
                        pod: pod_of(m.instance_id.as_ref().map(|i| i.as_str()), &m.client_host),
                        member_id: m.member_id.as_str().to_owned(),
                        instance_id: m.instance_id.as_ref().map(|i| i.as_str().to_owned()),
                    })
                    .collect();
                return Ok(Some(GroupView {
                    kind: GroupKind::Streams,
                    pods: pods_of(&described),
                    members,
                }));
            }
            // A streams app that has not joined yet.
            Err(e)
                if e.code() == Some(GROUP_ID_NOT_FOUND)
                    && config.group_protocol == GroupProtocol::Streams =>
            {
                return Ok(Some(GroupView::default()));
            }
            // auto that chose classic (or has not joined yet): the classic group, below.
            Err(e) if e.code() == Some(GROUP_ID_NOT_FOUND) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let members = classic_group::members(&mut conn, group)?
        .into_iter()
        .map(|m| GroupMember {
            pod: pod_of(m.instance_id.as_deref(), &m.client_host),
            member_id: m.member_id,
            instance_id: m.instance_id,
        })
        .collect();
    Ok(Some(GroupView {
        kind: GroupKind::Classic,
        pods: Vec::new(),
        members,
    }))
}

/// The group for the status: `Some` with no pod when the app is in no streams group, `None`
/// (keep what the status says) when the coordinator could not be asked this time, which is
/// logged.
pub fn read(clients: &AppClients, config: &StreamsConfig) -> Option<GroupView> {
    match view(config, clients.timeout()) {
        Ok(v) => Some(v.unwrap_or_default()),
        Err(e) => {
            tracing::warn!(error = %e, "tasks per pod not read this time");
            None
        }
    }
}

/// The pod a member runs in: its `group.instance.id` less the thread suffix (`<pod>-<n>`, the
/// static membership the operator's pods have), else its client host.
fn pod_of(instance: Option<&str>, client_host: &str) -> String {
    match instance {
        Some(instance) => instance
            .rsplit_once('-')
            .filter(|(_, n)| n.parse::<u32>().is_ok())
            .map_or(instance, |(pod, _)| pod)
            .to_owned(),
        None => client_host.trim_start_matches('/').to_owned(),
    }
}

/// The static members whose pods a scale-down took away: pods of StatefulSet `set` with an
/// ordinal at or past `replicas` that no longer exist (`existing` are the app's pods now). A pod
/// still terminating exists: it may still commit as its member.
pub fn departed<'a>(
    members: &'a [GroupMember],
    set: &str,
    replicas: i32,
    existing: &BTreeSet<String>,
) -> Vec<&'a GroupMember> {
    members
        .iter()
        .filter(|m| m.instance_id.is_some() && !existing.contains(&m.pod))
        .filter(|m| ordinal(&m.pod, set).is_some_and(|o| o >= replicas))
        .collect()
}

/// Removes `members` from the app's group of `kind`; whether each was removed, in order
/// (`false`: it was gone already, or, in a streams group, its instance came back).
pub fn remove(
    config: &StreamsConfig,
    timeout: Duration,
    kind: GroupKind,
    members: &[&GroupMember],
) -> Result<Vec<bool>, StreamsGroupError> {
    let Some(mut conn) = connect(config, timeout)? else {
        return Ok(Vec::new());
    };
    let group = &config.application_id;
    Ok(match kind {
        GroupKind::Classic => {
            // Only static members are ever departed ones.
            let instances: Vec<&str> = members
                .iter()
                .filter_map(|m| m.instance_id.as_deref())
                .collect();
            classic_group::remove(&mut conn, group, &instances)?
        }
        GroupKind::Streams => members
            .iter()
            .map(|m| {
                removal::remove_member(&mut conn, group, &m.member_id, m.instance_id.as_deref())
                    .map(|r| r == Removal::Removed)
            })
            .collect::<Result<_, _>>()?,
    })
}

/// Removes the members of the pods a scale-down took away (see the module's doc): `group` as
/// last described (nothing to do without one), `running` the app's StatefulSet as it is. Logged and told in an Event;
/// a failure is logged and tried again at the next reconcile (the session timeout removes them
/// anyway).
pub async fn remove_departed(
    ctx: &Context,
    app: &StreamsApp,
    running: Option<&StatefulSet>,
    config: &StreamsConfig,
    group: Option<&GroupView>,
) -> Result<(), kube::Error> {
    let (Some(replicas), Some(GroupView { kind, members, .. })) =
        (running.and_then(|s| s.spec.as_ref()?.replicas), group)
    else {
        return Ok(());
    };
    let kind = *kind;
    // Only a pod past the replicas can have departed: no listing of pods otherwise.
    if !members
        .iter()
        .any(|m| ordinal(&m.pod, &app.name_any()).is_some_and(|o| o >= replicas))
    {
        return Ok(());
    }
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &app.namespace().unwrap_or_default());
    let existing: BTreeSet<String> = pods
        .list_metadata(&ListParams::default().labels(&render::selector(app)))
        .await?
        .items
        .into_iter()
        .filter_map(|p| p.metadata.name)
        .collect();
    let gone: Vec<GroupMember> = departed(members, &app.name_any(), replicas, &existing)
        .into_iter()
        .cloned()
        .collect();
    if gone.is_empty() {
        return Ok(());
    }
    let (cache, key, config) = (ctx.kafka.clone(), Context::key(app), config.clone());
    let removed = tokio::task::spawn_blocking(move || {
        let clients = cache.get(&key, &config)?;
        let refs: Vec<&GroupMember> = gone.iter().collect();
        let outcome = remove(&config, clients.timeout(), kind, &refs)?;
        Ok::<_, StreamsGroupError>(gone.into_iter().zip(outcome).collect::<Vec<_>>())
    })
    .await;
    match removed {
        Ok(Ok(outcome)) => {
            let removed: BTreeSet<&str> = outcome
                .iter()
                .filter(|(_, removed)| *removed)
                .map(|(m, _)| m.pod.as_str())
                .collect();
            for (m, r) in &outcome {
                tracing::info!(pod = %m.pod, instance = ?m.instance_id, removed = r, "a member of a pod the scale-down removed");
            }
            if !removed.is_empty() {
                let pods: Vec<&str> = removed.into_iter().collect();
                ctx.event(
                    app,
                    EventType::Normal,
                    "MembersRemoved",
                    format!(
                        "removed the group members of {}, gone with the scale-down to {replicas}: their tasks move now rather than after the session timeout",
                        pods.join(", ")
                    ),
                )
                .await;
            }
        }
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "the members of pods gone with a scale-down were not removed this time")
        }
        Err(e) => tracing::warn!(error = %e, "removing the members of pods gone with a scale-down"),
    }
    Ok(())
}

/// The ordinal of `pod` in StatefulSet `set` (`<set>-<ordinal>`).
fn ordinal(pod: &str, set: &str) -> Option<i32> {
    pod.strip_prefix(set)?.strip_prefix('-')?.parse().ok()
}

/// Each pod's active, standby and warm-up tasks in a described streams group, pods sorted by
/// name (a member's pod: [`pod_of`]).
fn pods_of(described: &DescribedGroup) -> Vec<freshet_crds::PodTasks> {
    use freshet_streams_group::messages::streams_group_describe_response::TaskIds;
    type Tasks = std::collections::BTreeSet<(String, i32)>;
    fn add(into: &mut Tasks, tasks: &[TaskIds]) {
        for t in tasks {
            for p in &t.partitions {
                into.insert((t.subtopology_id.as_str().to_owned(), *p));
            }
        }
    }
    fn names(tasks: Tasks) -> Vec<String> {
        tasks
            .into_iter()
            .map(|(sub, p)| format!("{sub}_{p}"))
            .collect()
    }
    let mut pods: BTreeMap<String, [Tasks; 3]> = BTreeMap::new();
    for m in &described.members {
        let [active, standby, warmup] = pods
            .entry(pod_of(
                m.instance_id.as_ref().map(|i| i.as_str()),
                &m.client_host,
            ))
            .or_default();
        add(active, &m.assignment.active_tasks);
        add(standby, &m.assignment.standby_tasks);
        add(warmup, &m.assignment.warmup_tasks);
    }
    pods.into_iter()
        .map(|(pod, [active, standby, warmup])| freshet_crds::PodTasks {
            pod,
            tasks: names(active),
            standby_tasks: names(standby),
            warmup_tasks: names(warmup),
        })
        .collect()
}

/// Why the group could not be described or its members removed.
#[derive(Debug, thiserror::Error)]
pub enum StreamsGroupError {
    /// The consumer's security settings are not ones the streams-group client can use.
    #[error(transparent)]
    Security(#[from] freshet_streams_group::SecurityError),
    /// The app's Kafka clients could not be made.
    #[error(transparent)]
    Clients(#[from] freshet_admin::AdminError),
    /// The coordinator could not be asked.
    #[error("the streams group: {0}")]
    Group(#[from] GroupError),
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use freshet_streams_group::StrBytes;
    use freshet_streams_group::messages::streams_group_describe_response::{
        DescribedGroup, Member, TaskIds,
    };

    fn tasks(partitions: &[i32]) -> Vec<TaskIds> {
        vec![TaskIds {
            subtopology_id: StrBytes::from_static_str("0"),
            partitions: partitions.to_vec(),
        }]
    }

    fn member(instance: &str, active: &[i32], standby: &[i32], warmup: &[i32]) -> Member {
        let mut m = Member {
            instance_id: Some(StrBytes::from_string(instance.to_owned())),
            ..Default::default()
        };
        m.assignment.active_tasks = tasks(active);
        m.assignment.standby_tasks = tasks(standby);
        m.assignment.warmup_tasks = tasks(warmup);
        m
    }

    #[test]
    fn each_pod_lists_its_threads_active_standby_and_warmup_tasks() {
        let group = DescribedGroup {
            members: vec![
                member("app-1-2", &[3], &[0], &[]),
                member("app-0-1", &[0, 2], &[1], &[]),
                member("app-1-1", &[1], &[2], &[4]),
            ],
            ..Default::default()
        };
        let pods = super::pods_of(&group);
        assert_eq!(pods.len(), 2, "{pods:?}");
        assert_eq!(pods[0].pod, "app-0");
        assert_eq!(pods[0].tasks, ["0_0", "0_2"]);
        assert_eq!(pods[0].standby_tasks, ["0_1"]);
        assert!(pods[0].warmup_tasks.is_empty());
        assert_eq!(pods[1].pod, "app-1");
        assert_eq!(pods[1].tasks, ["0_1", "0_3"]);
        assert_eq!(pods[1].standby_tasks, ["0_0", "0_2"]);
        assert_eq!(pods[1].warmup_tasks, ["0_4"]);
    }

    fn static_member(pod: &str, thread: u32) -> super::GroupMember {
        super::GroupMember {
            pod: pod.to_owned(),
            member_id: format!("m-{pod}-{thread}"),
            instance_id: Some(format!("{pod}-{thread}")),
        }
    }

    #[test]
    fn departed_members_are_those_of_gone_pods_past_the_replicas() {
        let members = vec![
            static_member("app-0", 1),
            static_member("app-1", 1),
            static_member("app-2", 1),
            static_member("app-2", 2),
            static_member("app-3", 1),
            // Another StatefulSet's pod and a dynamic member are never the operator's to remove.
            static_member("apple-5", 1),
            super::GroupMember {
                pod: "10.0.0.9".to_owned(),
                member_id: "dynamic".to_owned(),
                instance_id: None,
            },
        ];
        // Scaled from 4 to 1: app-1 is still terminating, app-2 and app-3 are gone.
        let existing: BTreeSet<String> = ["app-0", "app-1"].map(str::to_owned).into();
        let gone: Vec<&str> = super::departed(&members, "app", 1, &existing)
            .iter()
            .map(|m| m.instance_id.as_deref().unwrap_or_default())
            .collect();
        assert_eq!(gone, ["app-2-1", "app-2-2", "app-3-1"]);
        // A pod that rolls keeps its ordinal: gone for a moment, but below the replicas.
        let rolling: BTreeSet<String> = ["app-1", "app-2", "app-3"].map(str::to_owned).into();
        assert!(super::departed(&members, "app", 4, &rolling).is_empty());
    }
}
