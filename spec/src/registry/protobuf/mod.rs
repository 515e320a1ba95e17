//! The `protobuf` serde: Protobuf messages in Confluent's wire format (`KafkaProtobufSerializer`,
//! confluent-kafka's `ProtobufSerializer`): magic byte 0, the 4-byte schema id, the message-index
//! list (zig-zag varints: how many, then the index of the message at each nesting level of the
//! schema's file; `[0]`, the first top-level message, as the single byte 0), then the message.
//!
//! Schemas are compiled at run time with `protox` (a Rust protobuf compiler) into
//! `prost-reflect` descriptors: the registry's `.proto` text, or the base64 of a serialized
//! `FileDescriptorProto`, which some serializers register. Reading: the message the indexes name
//! is decoded into a CEL map (docs/manifest-reference.md lists each field type's CEL type).
//! Writing: the message the manifest names (`keyMessage` / `valueMessage`, nested ones included),
//! else the first of the schema's file (`keySchema` / `valueSchema`, or the subject's latest with
//! `use.latest.version`), is filled from a CEL map and framed with its own message indexes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use base64::Engine;
use cel::Value;
use cel::objects::Key;
use prost_reflect::prost::Message;
use prost_reflect::{
    DescriptorPool, DynamicMessage, FieldDescriptor, FileDescriptor, Kind, MapKey,
    MessageDescriptor, ReflectMessage, Value as Pb,
};
use protox::file::{ChainFileResolver, File, FileResolver, GoogleFileResolver};

use super::{RegistryClient, frame, type_name, unframe};
use crate::serdes::Serde;

/// A Protobuf schema: one `.proto` file compiled, with what it imports from Google's well-known
/// types.
#[derive(Debug)]
pub struct ProtobufSchema {
    /// The schema as given (what is registered).
    pub text: String,
    file: FileDescriptor,
}

/// A `keyMessage` / `valueMessage` that names no message of the schema.
#[derive(Debug, thiserror::Error)]
#[error("the schema has no message '{name}' (its messages: {})", known.join(", "))]
pub struct NoSuchMessage {
    /// The name asked for.
    pub name: String,
    /// The full names of the schema's messages, nested ones included.
    pub known: Vec<String>,
}

/// Why a schema the registry holds cannot be used: its references, or the schema itself.
#[derive(Debug, thiserror::Error)]
pub enum RegisteredSchemaError {
    /// A schema it refers to could not be read.
    #[error("protobuf: {0}")]
    References(#[source] super::ReferenceError),
    /// It (with its imports) is not a usable Protobuf schema.
    #[error("protobuf: schema id {id}: {source}")]
    Schema {
        /// The schema's id in the registry.
        id: u32,
        /// Why.
        #[source]
        source: SchemaError,
    },
}

/// Why a Protobuf schema (a manifest's, or a registry's with its references) cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    /// Neither `.proto` source nor the base64 of a `FileDescriptorProto`.
    #[error("not a Protobuf schema: {0}")]
    NotProtobuf(#[source] Box<protox::Error>),
    /// One of the files it imports is not usable.
    #[error("the imported file {import}: {source}")]
    Import {
        /// The import's name (the registry reference's).
        import: String,
        /// Why.
        #[source]
        source: Box<SchemaError>,
    },
    /// The compiler refused it (an import not given, a type not declared, ...).
    #[error(
        "the Protobuf schema does not compile: {0} (its imports must be its schema references in the registry, or google/protobuf/*.proto)"
    )]
    DoesNotCompile(#[source] Box<protox::Error>),
    /// Compiled, but its own file is not in the result.
    #[error("the Protobuf schema's file {0} is missing once compiled")]
    Missing(String),
    /// It declares no message, so there is nothing to write or read.
    #[error("the Protobuf schema declares no message")]
    NoMessage,
}

/// Serves the schema's own file and the files it imports (its registry references) by their
/// names, for the compiler.
struct Given {
    files: HashMap<String, File>,
}

impl FileResolver for Given {
    fn open_file(&self, name: &str) -> Result<File, protox::Error> {
        self.files
            .get(name)
            .cloned()
            .ok_or_else(|| protox::Error::file_not_found(name))
    }
}

/// `text` as a file named `name`: `.proto` source, or the base64 of a serialized
/// `FileDescriptorProto` (renamed to `name`, the name importers know it by).
fn file_of(name: Option<&str>, text: &str) -> Result<File, SchemaError> {
    match descriptor_from_base64(text) {
        Some(mut proto) => {
            if let Some(name) = name {
                proto.name = Some(name.to_owned());
            }
            Ok(File::from_file_descriptor_proto(proto))
        }
        None => File::from_source(name.unwrap_or("schema.proto"), text)
            .map_err(|e| SchemaError::NotProtobuf(Box::new(e))),
    }
}

impl ProtobufSchema {
    /// Compiles `text`: `.proto` source, or the base64 of a serialized `FileDescriptorProto`.
    /// Imports other than Google's well-known types (schema references) are not resolved.
    pub fn parse(text: &str) -> Result<ProtobufSchema, SchemaError> {
        ProtobufSchema::parse_with_imports(text, &[])
    }

    /// Compiles `text` with the files it imports: `imports` are (import name, text) pairs, the
    /// schema's registry references (Confluent's serializers register each imported file under a
    /// subject and refer to it by its file name), besides Google's well-known types.
    pub fn parse_with_imports(
        text: &str,
        imports: &[(String, String)],
    ) -> Result<ProtobufSchema, SchemaError> {
        let file = file_of(None, text)?;
        let name = file.name().to_owned();
        let mut files = HashMap::new();
        for (import, imported) in imports {
            let imported = file_of(Some(import), imported).map_err(|e| SchemaError::Import {
                import: import.clone(),
                source: Box::new(e),
            })?;
            files.insert(import.clone(), imported);
        }
        files.insert(name.clone(), file);
        let mut chain = ChainFileResolver::new();
        chain.add(Given { files });
        chain.add(GoogleFileResolver::new());
        let mut compiler = protox::Compiler::with_file_resolver(chain);
        compiler.include_imports(true);
        compiler
            .open_file(&name)
            .map_err(|e| SchemaError::DoesNotCompile(Box::new(e)))?;
        let pool: DescriptorPool = compiler.descriptor_pool();
        let file = pool
            .get_file_by_name(&name)
            .ok_or_else(|| SchemaError::Missing(name.clone()))?;
        if file.messages().len() == 0 {
            return Err(SchemaError::NoMessage);
        }
        Ok(ProtobufSchema {
            text: text.to_owned(),
            file,
        })
    }

    /// The message Freshet writes: the file's first.
    pub fn first_message(&self) -> MessageDescriptor {
        // parse() refused files without messages.
        self.file
            .messages()
            .next()
            .expect("a schema with a message")
    }

    /// The message a sink writes: the one `name` names (its full name, or its name within the
    /// file's package: `Order.Line` in package `shop`), else the file's first.
    pub fn message_named(&self, name: Option<&str>) -> Result<MessageDescriptor, NoSuchMessage> {
        let Some(name) = name else {
            return Ok(self.first_message());
        };
        let name = name.trim_start_matches('.');
        let package = self.file.package_name();
        let all = self.messages();
        all.iter()
            .find(|m| {
                m.full_name() == name
                    || (!package.is_empty()
                        && m.full_name()
                            .strip_prefix(package)
                            .and_then(|r| r.strip_prefix('.'))
                            == Some(name))
            })
            .cloned()
            .ok_or_else(|| NoSuchMessage {
                name: name.to_owned(),
                known: all.iter().map(|m| m.full_name().to_owned()).collect(),
            })
    }

    /// Every message of the file, each followed by its nested ones (map entries left out: they
    /// are no message a record is).
    fn messages(&self) -> Vec<MessageDescriptor> {
        fn walk(message: MessageDescriptor, out: &mut Vec<MessageDescriptor>) {
            let children: Vec<MessageDescriptor> = message.child_messages().collect();
            out.push(message);
            for child in children.into_iter().filter(|c| !c.is_map_entry()) {
                walk(child, out);
            }
        }
        let mut out = Vec::new();
        for message in self.file.messages() {
            walk(message, &mut out);
        }
        out
    }

    /// The message at `indexes` (top level, then nested), as Confluent's framing names it.
    pub fn message_at(&self, indexes: &[i64]) -> Result<MessageDescriptor, String> {
        let idx = |i: i64| usize::try_from(i).ok();
        let mut path = indexes.iter().copied();
        let first = path.next().unwrap_or(0);
        let mut message = idx(first)
            .and_then(|i| self.file.messages().nth(i))
            .ok_or_else(|| {
                format!(
                    "message index {first} is out of the schema's {} top-level messages",
                    self.file.messages().len()
                )
            })?;
        for i in path {
            message = idx(i)
                .and_then(|n| message.child_messages().nth(n))
                .ok_or_else(|| {
                    format!("message {} has no nested message {i}", message.full_name())
                })?;
        }
        Ok(message)
    }

    /// The message-index path of `message` in its file.
    pub fn indexes_of(message: &MessageDescriptor) -> Vec<i64> {
        let mut out = Vec::new();
        let mut here = message.clone();
        loop {
            match here.parent_message() {
                Some(parent) => {
                    let i = parent
                        .child_messages()
                        .position(|m| m.full_name() == here.full_name())
                        .unwrap_or(0);
                    out.push(i as i64);
                    here = parent;
                }
                None => {
                    let i = here
                        .parent_file()
                        .messages()
                        .position(|m| m.full_name() == here.full_name())
                        .unwrap_or(0);
                    out.push(i as i64);
                    break;
                }
            }
        }
        out.reverse();
        out
    }
}

/// The `FileDescriptorProto` `text` is the base64 of, if it is one.
fn descriptor_from_base64(text: &str) -> Option<prost_reflect::prost_types::FileDescriptorProto> {
    let text = text.trim();
    if text.contains(char::is_whitespace) || text.contains(';') {
        return None;
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .ok()?;
    prost_reflect::prost_types::FileDescriptorProto::decode(bytes.as_slice()).ok()
}

/// Where a `protobuf` serde writes, and with which schema.
#[derive(Clone, Debug)]
pub struct ProtobufTarget {
    /// The topic written (for the subject), `None` for a serde that only reads.
    pub topic: Option<String>,
    /// Whether it serializes keys (`<topic>-key`) or values.
    pub is_key: bool,
    /// The schema given in the manifest: what a sink registers and writes with.
    pub schema: Option<Arc<ProtobufSchema>>,
    /// The message a sink writes (`keyMessage` / `valueMessage`), else the schema's first.
    pub message: Option<String>,
}

/// The `protobuf` serde over CEL values.
pub struct ProtobufSerde {
    client: Arc<RegistryClient>,
    target: ProtobufTarget,
    /// Writer schemas by id, compiled once.
    parsed: Mutex<HashMap<u32, Arc<ProtobufSchema>>>,
    /// The message a sink writes, with its schema id and framing, once known.
    writer: Mutex<Option<(MessageDescriptor, u32)>>,
}

impl ProtobufSerde {
    /// A `protobuf` serde over `client`'s registry.
    pub fn new(client: Arc<RegistryClient>, target: ProtobufTarget) -> ProtobufSerde {
        ProtobufSerde {
            client,
            target,
            parsed: Mutex::new(HashMap::new()),
            writer: Mutex::new(None),
        }
    }

    fn writer_schema(&self, id: u32) -> Result<Arc<ProtobufSchema>, String> {
        if let Some(s) = lock(&self.parsed).get(&id) {
            return Ok(s.clone());
        }
        let registered = super::fetch_by_id(&self.client, id, "PROTOBUF", "protobuf")?;
        let schema = Arc::new(
            self.parse_registered(&registered, id)
                .map_err(|e| e.to_string())?,
        );
        lock(&self.parsed).insert(id, schema.clone());
        Ok(schema)
    }

    /// A registry's schema (id `id`) compiled with the files it imports (its references).
    fn parse_registered(
        &self,
        registered: &super::RegisteredSchema,
        id: u32,
    ) -> Result<ProtobufSchema, RegisteredSchemaError> {
        let imports = super::referenced_schemas(&self.client, registered, id)
            .map_err(RegisteredSchemaError::References)?;
        ProtobufSchema::parse_with_imports(&registered.schema, &imports)
            .map_err(|source| RegisteredSchemaError::Schema { id, source })
    }

    fn sink(&self) -> Result<(MessageDescriptor, u32), String> {
        if let Some(w) = lock(&self.writer).as_ref() {
            return Ok(w.clone());
        }
        let message = self.target.message.as_deref();
        let record_name = match &self.target.schema {
            Some(s) => Some(
                s.message_named(message)
                    .map_err(|e| format!("protobuf: {e}"))?,
            ),
            None => None,
        }
        .map(|m| m.full_name().to_owned());
        let subject = super::sink_subject(
            &self.client,
            "protobuf",
            self.target.topic.as_deref(),
            self.target.is_key,
            record_name.as_deref(),
        )?;
        let pair = if self.client.settings().use_latest_version {
            let latest = super::latest_of(&self.client, "protobuf", &subject)?;
            let schema = self.parse_registered(&latest, latest.id).map_err(|e| {
                format!("{e} (the latest schema of subject '{subject}', for use.latest.version)")
            })?;
            let written = schema.message_named(message).map_err(|e| {
                format!(
                    "protobuf: the latest schema of subject '{subject}' (id {}): {e}",
                    latest.id
                )
            })?;
            (written, latest.id)
        } else {
            let schema = self.target.schema.as_ref().ok_or_else(|| {
                format!(
                    "protobuf: no schema to write subject '{subject}' with: give the step's {} (.proto text) or set use.latest.version=true",
                    if self.target.is_key { "keySchema" } else { "valueSchema" }
                )
            })?;
            let written = schema
                .message_named(message)
                .map_err(|e| format!("protobuf: {e}"))?;
            let id = super::register(&self.client, "protobuf", &subject, &schema.text, "PROTOBUF")?;
            (written, id)
        };
        *lock(&self.writer) = Some(pair.clone());
        Ok(pair)
    }
}

impl Serde<Value> for ProtobufSerde {
    fn name(&self) -> String {
        "protobuf".to_owned()
    }

    fn serialize(&self, value: &Value) -> Result<Option<Vec<u8>>, String> {
        if matches!(value, Value::Null) {
            return Ok(None);
        }
        let (message, id) = self.sink()?;
        let msg = to_message(value, &message, "")
            .map_err(|e| format!("protobuf (schema id {id}): {e}"))?;
        let mut payload = Vec::with_capacity(64);
        write_indexes(&ProtobufSchema::indexes_of(&message), &mut payload);
        msg.encode(&mut payload)
            .map_err(|e| format!("protobuf (schema id {id}): {e}"))?;
        Ok(Some(frame(id, &payload)))
    }

    fn deserialize(&self, bytes: Option<&[u8]>) -> Result<Value, String> {
        let Some(bytes) = bytes else {
            return Ok(Value::Null);
        };
        let (id, payload) = unframe(bytes).map_err(|e| format!("protobuf: {e}"))?;
        let (indexes, body) = read_indexes(payload)
            .map_err(|e| format!("protobuf: schema id {id}: the message-index list: {e}"))?;
        let schema = self.writer_schema(id)?;
        let message = schema
            .message_at(&indexes)
            .map_err(|e| format!("protobuf: schema id {id}: {e}"))?;
        let msg = DynamicMessage::decode(message.clone(), body).map_err(|e| {
            format!(
                "protobuf: the record does not decode as {} (schema id {id}): {e}",
                message.full_name()
            )
        })?;
        Ok(message_to_cel(&msg))
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic elsewhere does not make these wrong: entries are inserted whole.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Confluent's message-index list: `[0]` as the single byte 0, else the count then each index,
/// zig-zag varints.
fn write_indexes(indexes: &[i64], out: &mut Vec<u8>) {
    if indexes == [0] {
        out.push(0);
        return;
    }
    zigzag(indexes.len() as i64, out);
    for i in indexes {
        zigzag(*i, out);
    }
}

fn zigzag(n: i64, out: &mut Vec<u8>) {
    let mut u = ((n << 1) ^ (n >> 63)) as u64;
    while u >= 0x80 {
        out.push((u as u8) | 0x80);
        u >>= 7;
    }
    out.push(u as u8);
}

fn read_zigzag(bytes: &[u8], at: &mut usize) -> Result<i64, String> {
    let mut u: u64 = 0;
    for shift in (0..64).step_by(7) {
        let b = *bytes
            .get(*at)
            .ok_or("the record ends inside a varint of the message-index list")?;
        *at += 1;
        u |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok((u >> 1) as i64 ^ -((u & 1) as i64));
        }
    }
    Err("a varint longer than 10 bytes".to_owned())
}

/// The message indexes at the start of `payload` and the message's bytes after them.
fn read_indexes(payload: &[u8]) -> Result<(Vec<i64>, &[u8]), String> {
    let mut at = 0;
    let count = read_zigzag(payload, &mut at)?;
    if count == 0 {
        return Ok((vec![0], &payload[at..]));
    }
    if !(0..=100).contains(&count) {
        return Err(format!(
            "{count} indexes (is this record Protobuf in Confluent's format?)"
        ));
    }
    let indexes = (0..count)
        .map(|_| read_zigzag(payload, &mut at))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((indexes, &payload[at..]))
}

fn key(s: &str) -> Key {
    Key::String(Arc::new(s.to_owned()))
}

fn cel_map(map: HashMap<Key, Value>) -> Value {
    Value::Map(cel::objects::Map { map: Arc::new(map) })
}

/// A message as expressions see it: a map of every field (unset message fields are null).
fn message_to_cel(msg: &DynamicMessage) -> Value {
    let map = msg
        .descriptor()
        .fields()
        .map(|field| {
            let v = if field.kind().as_message().is_some()
                && !field.is_list()
                && !field.is_map()
                && !msg.has_field(&field)
            {
                Value::Null
            } else {
                pb_to_cel(&msg.get_field(&field), &field.kind())
            };
            (key(field.name()), v)
        })
        .collect();
    cel_map(map)
}

fn pb_to_cel(v: &Pb, kind: &Kind) -> Value {
    match v {
        Pb::Bool(b) => Value::Bool(*b),
        Pb::I32(i) => Value::Int((*i).into()),
        Pb::I64(i) => Value::Int(*i),
        Pb::U32(u) => Value::UInt((*u).into()),
        Pb::U64(u) => Value::UInt(*u),
        Pb::F32(f) => Value::Float((*f).into()),
        Pb::F64(f) => Value::Float(*f),
        Pb::String(s) => Value::String(Arc::new(s.clone())),
        Pb::Bytes(b) => Value::Bytes(Arc::new(b.to_vec())),
        Pb::EnumNumber(n) => match kind.as_enum().and_then(|e| e.get_value(*n)) {
            Some(value) => Value::String(Arc::new(value.name().to_owned())),
            // A number this schema does not know (written with a newer one): kept as a number.
            None => Value::Int((*n).into()),
        },
        Pb::Message(m) => message_to_cel(m),
        Pb::List(items) => {
            Value::List(Arc::new(items.iter().map(|x| pb_to_cel(x, kind)).collect()))
        }
        Pb::Map(entries) => {
            let value_kind = kind
                .as_message()
                .map(|entry| entry.map_entry_value_field().kind())
                .unwrap_or_else(|| kind.clone());
            cel_map(
                entries
                    .iter()
                    .map(|(k, x)| (map_key_to_cel(k), pb_to_cel(x, &value_kind)))
                    .collect(),
            )
        }
    }
}

fn map_key_to_cel(k: &MapKey) -> Key {
    match k {
        MapKey::Bool(b) => Key::Bool(*b),
        MapKey::I32(i) => Key::Int((*i).into()),
        MapKey::I64(i) => Key::Int(*i),
        MapKey::U32(u) => Key::Uint((*u).into()),
        MapKey::U64(u) => Key::Uint(*u),
        MapKey::String(s) => Key::String(Arc::new(s.clone())),
    }
}

/// A CEL map as a message of `desc`; `at` is the field path, for errors.
fn to_message(v: &Value, desc: &MessageDescriptor, at: &str) -> Result<DynamicMessage, String> {
    let here = if at.is_empty() { "the value" } else { at };
    let Value::Map(map) = v else {
        return Err(format!(
            "{here}: a {} where message {} needs a map",
            type_name(v),
            desc.full_name()
        ));
    };
    let mut msg = DynamicMessage::new(desc.clone());
    for (k, x) in map.map.iter() {
        let name = match k {
            Key::String(s) => s.to_string(),
            other => format!("{other:?}"),
        };
        let path = if at.is_empty() {
            name.clone()
        } else {
            format!("{at}.{name}")
        };
        let field = desc.get_field_by_name(&name).ok_or_else(|| {
            format!(
                "{here}: field '{name}' is not in message {} (fields: {})",
                desc.full_name(),
                desc.fields()
                    .map(|f| f.name().to_owned())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })?;
        if matches!(x, Value::Null) {
            // Null leaves the field unset (its default, or absent for a message).
            continue;
        }
        let value = field_value(x, &field, &path)?;
        msg.try_set_field(&field, value)
            .map_err(|e| format!("{path}: {e}"))?;
    }
    Ok(msg)
}

fn field_value(v: &Value, field: &FieldDescriptor, at: &str) -> Result<Pb, String> {
    if field.is_map() {
        let entry = field
            .kind()
            .as_message()
            .cloned()
            .ok_or_else(|| format!("{at}: a map field without its entry message"))?;
        let (key_field, value_field) = (entry.map_entry_key_field(), entry.map_entry_value_field());
        let Value::Map(map) = v else {
            return Err(format!("{at}: a {} where a map is needed", type_name(v)));
        };
        let mut out = HashMap::new();
        for (k, x) in map.map.iter() {
            let k_value = match k {
                Key::String(s) => Value::String(s.clone()),
                Key::Int(i) => Value::Int(*i),
                Key::Uint(u) => Value::UInt(*u),
                Key::Bool(b) => Value::Bool(*b),
            };
            let k_pb = scalar(&k_value, &key_field.kind(), &format!("{at} key"))?;
            let key = match k_pb {
                Pb::Bool(b) => MapKey::Bool(b),
                Pb::I32(i) => MapKey::I32(i),
                Pb::I64(i) => MapKey::I64(i),
                Pb::U32(u) => MapKey::U32(u),
                Pb::U64(u) => MapKey::U64(u),
                Pb::String(s) => MapKey::String(s),
                _ => return Err(format!("{at}: a map key of an unsupported type")),
            };
            let path = format!("{at}[{k_value:?}]");
            out.insert(key, scalar(x, &value_field.kind(), &path)?);
        }
        return Ok(Pb::Map(out));
    }
    if field.is_list() {
        let Value::List(items) = v else {
            return Err(format!(
                "{at}: a {} where a repeated field needs a list",
                type_name(v)
            ));
        };
        return Ok(Pb::List(
            items
                .iter()
                .enumerate()
                .map(|(i, x)| scalar(x, &field.kind(), &format!("{at}[{i}]")))
                .collect::<Result<_, _>>()?,
        ));
    }
    scalar(v, &field.kind(), at)
}

/// One value of `kind` (a message too) from a CEL value.
fn scalar(v: &Value, kind: &Kind, at: &str) -> Result<Pb, String> {
    let wrong = || format!("{at}: a {} does not fit a {kind:?} field", type_name(v));
    let int = || match v {
        Value::Int(i) => Some(*i),
        Value::UInt(u) => i64::try_from(*u).ok(),
        _ => None,
    };
    let uint = || match v {
        Value::Int(i) => u64::try_from(*i).ok(),
        Value::UInt(u) => Some(*u),
        _ => None,
    };
    Ok(match kind {
        Kind::Double => Pb::F64(match v {
            Value::Float(f) => *f,
            _ => int().ok_or_else(wrong)? as f64,
        }),
        Kind::Float => Pb::F32(match v {
            Value::Float(f) => *f as f32,
            _ => int().ok_or_else(wrong)? as f32,
        }),
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => Pb::I32(
            int()
                .and_then(|i| i32::try_from(i).ok())
                .ok_or_else(wrong)?,
        ),
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => Pb::I64(int().ok_or_else(wrong)?),
        Kind::Uint32 | Kind::Fixed32 => Pb::U32(
            uint()
                .and_then(|u| u32::try_from(u).ok())
                .ok_or_else(wrong)?,
        ),
        Kind::Uint64 | Kind::Fixed64 => Pb::U64(uint().ok_or_else(wrong)?),
        Kind::Bool => match v {
            Value::Bool(b) => Pb::Bool(*b),
            _ => return Err(wrong()),
        },
        Kind::String => match v {
            Value::String(s) => Pb::String(s.to_string()),
            _ => return Err(wrong()),
        },
        Kind::Bytes => match v {
            Value::Bytes(b) => Pb::Bytes(b.to_vec().into()),
            Value::String(s) => Pb::Bytes(s.as_bytes().to_vec().into()),
            _ => return Err(wrong()),
        },
        Kind::Enum(e) => match v {
            Value::String(s) => Pb::EnumNumber(
                e.get_value_by_name(s)
                    .ok_or_else(|| {
                        format!(
                            "{at}: '{s}' is not a value of enum {} ({})",
                            e.full_name(),
                            e.values()
                                .map(|x| x.name().to_owned())
                                .collect::<Vec<_>>()
                                .join(", ")
                        )
                    })?
                    .number(),
            ),
            _ => Pb::EnumNumber(
                int()
                    .and_then(|i| i32::try_from(i).ok())
                    .ok_or_else(wrong)?,
            ),
        },
        Kind::Message(m) => Pb::Message(to_message(v, m, at)?),
    })
}

/// The field names of the message a `protobuf` sink writes with `text` as its schema and
/// `message` (`valueMessage`) naming the message, if any.
pub fn written_fields(text: &str, message: Option<&str>) -> Option<(String, Vec<String>)> {
    let schema = ProtobufSchema::parse(text).ok()?;
    let message = schema.message_named(message).ok()?;
    Some((
        message.full_name().to_owned(),
        message.fields().map(|f| f.name().to_owned()).collect(),
    ))
}

#[cfg(test)]
mod tests;
