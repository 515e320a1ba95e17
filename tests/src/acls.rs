//! ACLs on a test broker, created through librdkafka's own admin API (`rd_kafka_CreateAcls`,
//! which the rdkafka crate does not wrap), so that a test grants exactly the ACLs it means to
//! test, in one request and without starting a JVM tool per ACL.

use std::ffi::{CStr, CString, c_char};
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::admin::AdminClient;
use rdkafka::bindings as rd;
use rdkafka::client::DefaultClientContext;

/// The kinds of resource an ACL names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resource {
    /// A topic (or, prefixed, every topic whose name starts so).
    Topic,
    /// A consumer group.
    Group,
    /// A producer's transactional id.
    TransactionalId,
}

/// How an ACL's name matches resources.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pattern {
    /// Exactly the name.
    Literal,
    /// Every name starting with it.
    Prefixed,
}

/// What an ACL allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    /// Consume from a topic; join and commit in a group.
    Read,
    /// Produce to a topic; use a transactional id.
    Write,
    /// Create a topic.
    Create,
    /// Delete a topic (records or the whole topic).
    Delete,
    /// Read metadata (implied by Read, Write and Delete).
    Describe,
}

/// One ACL allowing `operation` on the resources `name` matches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Acl {
    /// The kind of resource.
    pub resource: Resource,
    /// The name, or the prefix.
    pub name: String,
    /// Literal or prefixed.
    pub pattern: Pattern,
    /// The operation allowed.
    pub operation: Operation,
}

impl Acl {
    /// An ACL on the resources whose names are exactly `name`.
    pub fn literal(resource: Resource, name: &str, operation: Operation) -> Acl {
        Acl {
            resource,
            name: name.to_owned(),
            pattern: Pattern::Literal,
            operation,
        }
    }

    /// An ACL on every resource whose name starts with `prefix`.
    pub fn prefixed(resource: Resource, prefix: &str, operation: Operation) -> Acl {
        Acl {
            resource,
            name: prefix.to_owned(),
            pattern: Pattern::Prefixed,
            operation,
        }
    }
}

/// The ACLs Kafka Streams documents for an application (docs/security.md): on the topics, the
/// group and the transactional ids prefixed by its `application.id`, read on its input topics,
/// write on its output topics.
pub fn kafka_streams_acls(application_id: &str, inputs: &[&str], outputs: &[&str]) -> Vec<Acl> {
    let mut acls = vec![
        Acl::prefixed(Resource::Topic, application_id, Operation::Create),
        Acl::prefixed(Resource::Topic, application_id, Operation::Read),
        Acl::prefixed(Resource::Topic, application_id, Operation::Write),
        Acl::prefixed(Resource::Topic, application_id, Operation::Delete),
        Acl::prefixed(Resource::Group, application_id, Operation::Read),
        Acl::prefixed(Resource::TransactionalId, application_id, Operation::Write),
    ];
    acls.extend(
        inputs
            .iter()
            .map(|t| Acl::literal(Resource::Topic, t, Operation::Read)),
    );
    acls.extend(
        outputs
            .iter()
            .map(|t| Acl::literal(Resource::Topic, t, Operation::Write)),
    );
    acls
}

fn cstring(s: &str) -> CString {
    CString::new(s).unwrap_or_else(|_| panic!("{s:?} holds a NUL byte"))
}

/// Allows `principal` (`User:app`) the `acls`, through a super user's connection at `bootstrap`
/// (the secured test broker's PLAINTEXT listener); panics with the broker's reason when one is
/// refused.
pub fn create_acls(bootstrap: &str, principal: &str, acls: &[Acl]) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin client");
    let rk = admin.inner().native_ptr();
    let principal = cstring(principal);
    let host = cstring("*");
    let mut errstr: [c_char; 512] = [0; 512];
    // SAFETY: every pointer handed to librdkafka is alive for the call (the CStrings and the
    // bindings outlive it); the result event is read before it is destroyed, and every object
    // created here is destroyed once.
    unsafe {
        let mut bindings: Vec<*mut rd::rd_kafka_AclBinding_t> = Vec::new();
        for acl in acls {
            let name = cstring(&acl.name);
            let binding = rd::rd_kafka_AclBinding_new(
                match acl.resource {
                    Resource::Topic => rd::rd_kafka_ResourceType_t::RD_KAFKA_RESOURCE_TOPIC,
                    Resource::Group => rd::rd_kafka_ResourceType_t::RD_KAFKA_RESOURCE_GROUP,
                    Resource::TransactionalId => {
                        rd::rd_kafka_ResourceType_t::RD_KAFKA_RESOURCE_TRANSACTIONAL_ID
                    }
                },
                name.as_ptr(),
                match acl.pattern {
                    Pattern::Literal => {
                        rd::rd_kafka_ResourcePatternType_t::RD_KAFKA_RESOURCE_PATTERN_LITERAL
                    }
                    Pattern::Prefixed => {
                        rd::rd_kafka_ResourcePatternType_t::RD_KAFKA_RESOURCE_PATTERN_PREFIXED
                    }
                },
                principal.as_ptr(),
                host.as_ptr(),
                match acl.operation {
                    Operation::Read => rd::rd_kafka_AclOperation_t::RD_KAFKA_ACL_OPERATION_READ,
                    Operation::Write => rd::rd_kafka_AclOperation_t::RD_KAFKA_ACL_OPERATION_WRITE,
                    Operation::Create => rd::rd_kafka_AclOperation_t::RD_KAFKA_ACL_OPERATION_CREATE,
                    Operation::Delete => rd::rd_kafka_AclOperation_t::RD_KAFKA_ACL_OPERATION_DELETE,
                    Operation::Describe => {
                        rd::rd_kafka_AclOperation_t::RD_KAFKA_ACL_OPERATION_DESCRIBE
                    }
                },
                rd::rd_kafka_AclPermissionType_t::RD_KAFKA_ACL_PERMISSION_TYPE_ALLOW,
                errstr.as_mut_ptr(),
                errstr.len(),
            );
            assert!(
                !binding.is_null(),
                "ACL {acl:?}: {}",
                CStr::from_ptr(errstr.as_ptr()).to_string_lossy()
            );
            bindings.push(binding);
        }
        let queue = rd::rd_kafka_queue_new(rk);
        let options = rd::rd_kafka_AdminOptions_new(
            rk,
            rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_CREATEACLS,
        );
        rd::rd_kafka_CreateAcls(rk, bindings.as_mut_ptr(), bindings.len(), options, queue);
        let timeout = Duration::from_secs(60);
        let event = rd::rd_kafka_queue_poll(queue, timeout.as_millis() as i32);
        let outcome = if event.is_null() {
            Err(format!("no CreateAcls result within {timeout:?}"))
        } else if rd::rd_kafka_event_error(event)
            != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR
        {
            Err(CStr::from_ptr(rd::rd_kafka_event_error_string(event))
                .to_string_lossy()
                .into_owned())
        } else {
            let result = rd::rd_kafka_event_CreateAcls_result(event);
            let mut count = 0usize;
            let results = rd::rd_kafka_CreateAcls_result_acls(result, &mut count);
            let refused: Vec<String> = (0..count)
                .filter_map(|i| {
                    let error = rd::rd_kafka_acl_result_error(*results.add(i));
                    (!error.is_null()).then(|| {
                        format!(
                            "{:?}: {}",
                            acls.get(i),
                            CStr::from_ptr(rd::rd_kafka_error_string(error)).to_string_lossy()
                        )
                    })
                })
                .collect();
            if refused.is_empty() {
                Ok(())
            } else {
                Err(refused.join("; "))
            }
        };
        if !event.is_null() {
            rd::rd_kafka_event_destroy(event);
        }
        rd::rd_kafka_AdminOptions_destroy(options);
        rd::rd_kafka_queue_destroy(queue);
        rd::rd_kafka_AclBinding_destroy_array(bindings.as_mut_ptr(), bindings.len());
        if let Err(e) = outcome {
            panic!("creating ACLs for {principal:?}: {e}");
        }
    }
}
