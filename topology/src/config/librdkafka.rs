//! Every configuration property of the librdkafka the engine links, global and topic-level.
//!
//! The table itself (`librdkafka_table.rs`) is generated, not written, because a hand-kept list
//! drifts and a property librdkafka accepts must pass through untouched: the test
//! `tests/tests/config_librdkafka.rs` builds it from the linked library's
//! `rd_kafka_conf_properties_show()` (one row per property, the first occurrence of a name
//! winning, as librdkafka looks a name up among the global properties before the topic ones) and
//! fails when the checked-in table differs. After a librdkafka upgrade:
//! `FRESHET_REGENERATE=1 cargo test -p freshet-tests --test config_librdkafka`.

/// Which kind of client reads a librdkafka property (the C/P column of CONFIGURATION.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Applies {
    Consumer,
    Producer,
    Both,
}

/// What librdkafka accepts as a value, so that a bad one is refused with the layer it came from
/// rather than later by `rd_kafka_conf_set` with no idea where it was written.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Kind {
    /// An integer in an inclusive range.
    Integer(i64, i64),
    /// A number in an inclusive range (librdkafka's `linger.ms` takes fractions of a millisecond).
    Float(f64, f64),
    Boolean,
    /// One of these words; librdkafka compares them ignoring case.
    Enum(&'static [&'static str]),
    /// Free text, lists and patterns: librdkafka checks them itself.
    Text,
    /// Callbacks and pointers, which only librdkafka's C API can set.
    Api,
}

/// One property of librdkafka.
#[derive(Debug)]
pub(crate) struct RdProp {
    pub name: &'static str,
    pub applies: Applies,
    /// Kept for completeness of the table: librdkafka forwards a topic-level property set on the
    /// client's configuration to its default topic configuration, so the engine treats both alike.
    #[allow(dead_code)]
    pub topic_level: bool,
    /// librdkafka treats both names as one property, and whichever is set last wins; the engine
    /// folds an alias into its target so that precedence, not the order of `set` calls, decides.
    pub alias_of: Option<&'static str>,
    pub kind: Kind,
    pub deprecated: bool,
    /// librdkafka's `_RK_SENSITIVE`: the value is a secret (passwords, keys, SASL credentials).
    pub sensitive: bool,
}

/// Row flags of the generated table.
const TOPIC: u8 = 1;
const DEPRECATED: u8 = 2;
const SENSITIVE: u8 = 4;

const fn rd(name: &'static str, applies: Applies, kind: Kind, flags: u8) -> RdProp {
    RdProp {
        name,
        applies,
        topic_level: flags & TOPIC != 0,
        alias_of: None,
        kind,
        deprecated: flags & DEPRECATED != 0,
        sensitive: flags & SENSITIVE != 0,
    }
}

const fn alias(
    name: &'static str,
    applies: Applies,
    target: &'static str,
    kind: Kind,
    flags: u8,
) -> RdProp {
    RdProp {
        alias_of: Some(target),
        ..rd(name, applies, kind, flags)
    }
}

use Applies::{Both, Consumer, Producer};
use Kind::{Api, Boolean, Enum, Float, Integer, Text};

include!("librdkafka_table.rs");

/// The row for `name`, if librdkafka knows it.
pub(crate) fn lookup(name: &str) -> Option<&'static RdProp> {
    PROPERTIES.iter().find(|p| p.name == name)
}
