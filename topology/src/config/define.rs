//! How a Kafka Streams (or Freshet) property is declared: once, with everything about it.
//!
//! Kafka's `ConfigDef` is the model: one declaration per property carries its name, its older
//! spellings, how a value is checked and parsed, its default, its documentation, whether its
//! value is secret, and the [`StreamsConfig`](super::StreamsConfig) field it fills. The
//! [`streams_properties!`] macro turns the list of declarations (in `streams.rs`) into the
//! `StreamsConfig` struct, the table the resolver looks names up in, and the code that reads
//! every field, so that adding a property is adding one declaration.

use super::ProcessingGuarantee;
use super::parse::Parsed;

/// An older spelling of a property: it still works, but loses to the current name written in the
/// same layer, as Kafka Streams prefers the new name when both are set.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Alias {
    pub name: &'static str,
    /// Whether using it deserves a warning (a deprecated Kafka Streams name does; librdkafka's
    /// own spelling of `bootstrap.servers` does not).
    pub deprecated: bool,
}

/// A deprecated older name.
pub(crate) const fn deprecated(name: &'static str) -> Alias {
    Alias {
        name,
        deprecated: true,
    }
}

/// An equally valid other name.
pub(crate) const fn synonym(name: &'static str) -> Alias {
    Alias {
        name,
        deprecated: false,
    }
}

/// What a property is when nobody set it.
pub(crate) enum Fallback<T> {
    /// Computed from the processing guarantee, which some Kafka Streams defaults depend on
    /// (`commit.interval.ms`).
    Of(fn(ProcessingGuarantee) -> T),
    /// No default: the configuration is refused without it, with this fix.
    Required(&'static str),
}

/// One Kafka Streams or Freshet property, as the resolver and the documentation see it. Built
/// only by [`streams_properties!`].
pub(crate) struct StreamsDef {
    /// The name users are told to write.
    pub name: &'static str,
    pub aliases: &'static [Alias],
    /// `FRESHET_*` variables that set it: the dedicated name first, then shorter spellings it
    /// beats when both are set. Every property can also be set as `FRESHET_CONFIG_<NAME>`.
    pub env: &'static [&'static str],
    /// The `StreamsConfig` field it fills.
    pub field: &'static str,
    /// The field's type (source text), for documentation.
    #[cfg_attr(not(test), allow(dead_code))] // read by the declaration tests
    pub ty: &'static str,
    /// The declaration's doc comment.
    #[cfg_attr(not(test), allow(dead_code))] // read by the declaration tests
    pub doc: &'static str,
    /// The default as declared (source text), for documentation.
    #[cfg_attr(not(test), allow(dead_code))] // read by the declaration tests
    pub default: &'static str,
    /// Whether values are secrets: never shown in errors, warnings or `Debug` output.
    pub sensitive: bool,
    /// Why a client prefix (`consumer.`...) may not address it; `None` for the generic reason.
    pub prefixed: Option<&'static str>,
    /// Checks a value on its own, with the same parser that fills the field.
    pub check: fn(&str) -> Parsed<()>,
}

impl StreamsDef {
    /// Whether `name` is this property's current name or one of its aliases; the alias if so.
    pub(crate) fn spelling(&self, name: &str) -> Option<Option<&'static Alias>> {
        if self.name == name {
            Some(None)
        } else {
            self.aliases.iter().find(|a| a.name == name).map(Some)
        }
    }
}

/// Where `read_streams` takes each property's value from. The resolver implements it; the
/// macro's output names only this trait, because the resolver itself needs the table the macro
/// generates.
pub(crate) trait PropertyValues {
    /// The value of property `name`: the winning layer's text through `parse`, else `fallback`.
    fn value<T: Default>(
        &mut self,
        name: &'static str,
        parse: impl Fn(&str) -> Parsed<T>,
        fallback: Fallback<T>,
        guarantee: ProcessingGuarantee,
    ) -> T;
}

/// The first of zero or one optional declaration parts.
pub(crate) const fn first(parts: &[&'static str]) -> Option<&'static str> {
    match parts {
        [part, ..] => Some(part),
        [] => None,
    }
}

/// Declares every property Freshet reads, and from that one list generates: the public
/// [`StreamsConfig`](super::StreamsConfig) (one field per property, with the declaration's doc
/// comment, then the client lists), its `Debug` that hides sensitive values, the table
/// `STREAMS`, and `read_streams`, which fills each field from the winning value with the
/// declared parser, or the declared default.
///
/// ```text
/// /// doc comment (becomes the field's)
/// field: Type = "property.name" {
///     aliases: [deprecated("old.name")],   // optional
///     env: ["FRESHET_NAME", "FRESHET_N"],  // optional: dedicated variable, then shorter ones
///     sensitive: true,                     // optional, false when absent
///     prefixed: "why no prefix",           // optional
///     parse: parse::function,              // fn(&str) -> Parsed<Type>
///     default: Fallback::Of(|guarantee| value) | Fallback::Required("fix"),
/// }
/// ```
macro_rules! streams_properties {
    (
        $(
            $(#[doc = $doc:literal])*
            $field:ident : $ty:ty = $name:literal {
                $(aliases: [$($alias:expr),* $(,)?],)?
                $(env: [$($env:literal),+ $(,)?],)?
                $(sensitive: $sensitive:literal,)?
                $(prefixed: $prefixed:literal,)?
                parse: $parse:expr,
                default: $default:expr $(,)?
            }
        )*
    ) => {
        /// The resolved configuration of one engine instance. The property fields are declared
        /// in `config/streams.rs`, one declaration per property.
        #[derive(Clone, PartialEq, Eq)]
        pub struct StreamsConfig {
            $(
                $(#[doc = $doc])*
                #[doc = ""]
                #[doc = concat!("Property `", $name, "`.")]
                pub $field: $ty,
            )*
            /// librdkafka properties of the main consumer, sorted by name.
            pub consumer: Vec<(String, String)>,
            /// librdkafka properties of a consumer that restores stores from changelogs.
            pub restore_consumer: Vec<(String, String)>,
            /// librdkafka properties of the consumer that reads global tables.
            pub global_consumer: Vec<(String, String)>,
            /// librdkafka properties of the producers.
            pub producer: Vec<(String, String)>,
            /// librdkafka properties of the admin client.
            pub admin: Vec<(String, String)>,
            /// Settings that were accepted but have no effect, or are deprecated; for the caller
            /// to log.
            pub warnings: Vec<String>,
        }

        /// Every property Freshet reads, in declaration order.
        pub(crate) static STREAMS: &[$crate::config::define::StreamsDef] = &[
            $(
                $crate::config::define::StreamsDef {
                    name: $name,
                    aliases: &[$($($alias),*)?],
                    env: &[$($($env),+)?],
                    field: stringify!($field),
                    ty: stringify!($ty),
                    doc: concat!($($doc, "\n"),*),
                    default: stringify!($default),
                    sensitive: false $(|| $sensitive)?,
                    prefixed: $crate::config::define::first(&[$($prefixed)?]),
                    check: |value| {
                        let parse: fn(&str) -> $crate::config::parse::Parsed<$ty> = $parse;
                        parse(value).map(drop)
                    },
                },
            )*
        ];

        /// Fills every property field from the layers (client lists and warnings empty).
        pub(crate) fn read_streams(
            resolver: &mut impl $crate::config::define::PropertyValues,
            guarantee: $crate::config::ProcessingGuarantee,
        ) -> StreamsConfig {
            StreamsConfig {
                $(
                    $field: resolver.value::<$ty>($name, $parse, $default, guarantee),
                )*
                consumer: Vec::new(),
                restore_consumer: Vec::new(),
                global_consumer: Vec::new(),
                producer: Vec::new(),
                admin: Vec::new(),
                warnings: Vec::new(),
            }
        }

        /// Hides the values of sensitive properties, since configurations end up in logs.
        impl ::std::fmt::Debug for StreamsConfig {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                let mut out = f.debug_struct("StreamsConfig");
                $(
                    {
                        const SENSITIVE: bool = false $(|| $sensitive)?;
                        if SENSITIVE {
                            out.field(stringify!($field), &$crate::config::REDACTED);
                        } else {
                            out.field(stringify!($field), &self.$field);
                        }
                    }
                )*
                out.field("consumer", &$crate::config::Props(&self.consumer))
                    .field("restore_consumer", &$crate::config::Props(&self.restore_consumer))
                    .field("global_consumer", &$crate::config::Props(&self.global_consumer))
                    .field("producer", &$crate::config::Props(&self.producer))
                    .field("admin", &$crate::config::Props(&self.admin))
                    .field("warnings", &self.warnings)
                    .finish()
            }
        }
    };
}

pub(crate) use streams_properties;

/// Declares the manifest's spec fields that are properties, once each: generates
/// [`SpecFields`](super::SpecFields), its conversion into a layer, and the lookup from a
/// property to the field that sets it (for messages naming what the user wrote).
macro_rules! spec_fields {
    ($( $field:ident : $ty:ty => $property:literal as $camel:literal ),* $(,)?) => {
        /// The manifest's spec fields that are properties, so that errors can name the field the
        /// user wrote.
        ///
        /// `None` means "not written", which lets a lower layer (`config`) decide; a spec whose
        /// deserializer fills in a default for an absent field should pass `None` for it, or
        /// that default silently overrides `config`.
        #[derive(Clone, Debug, Default, PartialEq, Eq)]
        pub struct SpecFields {
            $(
                #[doc = concat!("`spec.", $camel, "`: property `", $property, "`.")]
                pub $field: Option<$ty>,
            )*
        }

        impl SpecFields {
            /// The fields that were written, as a [`LayerSource::Spec`] layer.
            pub fn into_layer(self) -> Layer {
                let mut entries: Vec<(&str, String)> = Vec::new();
                $(
                    if let Some(value) = self.$field {
                        entries.push(($property, value.to_string()));
                    }
                )*
                Layer::new(LayerSource::Spec, entries)
            }
        }

        /// The spec field (camelCase, as in the manifest) that sets `property`, if one does.
        pub(crate) fn spec_field(property: &str) -> Option<&'static str> {
            match property {
                $($property => Some($camel),)*
                _ => None,
            }
        }
    };
}

pub(crate) use spec_fields;
