use super::*;

const PROTO: &str = r#"
syntax = "proto3";
package shop;
message Order {
  int64 id = 1;
  string customer = 2;
  enum Status { NEW = 0; PAID = 1; }
  Status status = 3;
  message Line { string sku = 1; uint32 qty = 2; }
  repeated Line lines = 4;
  map<string, int32> attrs = 5;
  Line first = 6;
  message Other { message Deeper { bool ok = 1; } }
}
"#;

#[test]
fn message_indexes_follow_confluents_encoding() {
    let mut out = Vec::new();
    write_indexes(&[0], &mut out);
    assert_eq!(out, [0]);
    let mut out = Vec::new();
    write_indexes(&[1, 2], &mut out);
    // count 2 -> 4, 1 -> 2, 2 -> 4 (zig-zag)
    assert_eq!(out, [4, 2, 4]);
    out.extend_from_slice(b"rest");
    assert_eq!(read_indexes(&out).unwrap(), (vec![1, 2], &b"rest"[..]));
    assert_eq!(read_indexes(&[0, 9]).unwrap(), (vec![0], &[9u8][..]));
}

#[test]
fn nested_messages_are_found_by_index_and_back() {
    let schema = ProtobufSchema::parse(PROTO).unwrap();
    // Order's nested types as its descriptor lists them: Line, the map field's AttrsEntry
    // (which counts, as in Confluent's serializers), Other.
    let deeper = schema.message_at(&[0, 2, 0]).unwrap();
    assert_eq!(deeper.full_name(), "shop.Order.Other.Deeper");
    assert_eq!(ProtobufSchema::indexes_of(&deeper), vec![0, 2, 0]);
    assert!(schema.message_at(&[3]).unwrap_err().contains("out of"));
}

#[test]
fn the_written_message_is_found_by_full_or_package_relative_name() {
    let schema = ProtobufSchema::parse(PROTO).unwrap();
    assert_eq!(
        schema.message_named(None).unwrap().full_name(),
        "shop.Order"
    );
    let line = schema.message_named(Some("shop.Order.Line")).unwrap();
    assert_eq!(line.full_name(), "shop.Order.Line");
    assert_eq!(ProtobufSchema::indexes_of(&line), vec![0, 0]);
    let deeper = schema.message_named(Some("Order.Other.Deeper")).unwrap();
    assert_eq!(ProtobufSchema::indexes_of(&deeper), vec![0, 2, 0]);
    let err = schema.message_named(Some("Line")).unwrap_err().to_string();
    assert_eq!(
        err,
        "the schema has no message 'Line' (its messages: shop.Order, shop.Order.Line, shop.Order.Other, shop.Order.Other.Deeper)"
    );
    assert_eq!(
        written_fields(PROTO, Some("Order.Line")),
        Some((
            "shop.Order.Line".to_owned(),
            vec!["sku".to_owned(), "qty".to_owned()]
        ))
    );
}

#[test]
fn messages_round_trip_through_cel_values() {
    let schema = ProtobufSchema::parse(PROTO).unwrap();
    let order = schema.first_message();
    let line = |sku: &str, qty: u64| {
        cel_map(
            [
                (key("sku"), Value::String(Arc::new(sku.to_owned()))),
                (key("qty"), Value::UInt(qty)),
            ]
            .into_iter()
            .collect(),
        )
    };
    let value = cel_map(
        [
            (key("id"), Value::Int(7)),
            (key("customer"), Value::String(Arc::new("ann".to_owned()))),
            (key("status"), Value::String(Arc::new("PAID".to_owned()))),
            (
                key("lines"),
                Value::List(Arc::new(vec![line("a", 1), line("b", 2)])),
            ),
            (
                key("attrs"),
                cel_map([(key("w"), Value::Int(3))].into_iter().collect()),
            ),
            (key("first"), line("a", 1)),
        ]
        .into_iter()
        .collect(),
    );
    let msg = to_message(&value, &order, "").unwrap();
    let back =
        message_to_cel(&DynamicMessage::decode(order, msg.encode_to_vec().as_slice()).unwrap());
    assert_eq!(back, value);
}

#[test]
fn a_field_the_message_lacks_is_named() {
    let schema = ProtobufSchema::parse(PROTO).unwrap();
    let value = cel_map([(key("colour"), Value::Int(1))].into_iter().collect());
    let err = to_message(&value, &schema.first_message(), "").unwrap_err();
    assert!(
        err.contains("field 'colour' is not in message shop.Order"),
        "{err}"
    );
}

#[test]
fn base64_descriptors_compile_like_source() {
    let schema = ProtobufSchema::parse(PROTO).unwrap();
    let encoded = base64::engine::general_purpose::STANDARD
        .encode(schema.file.file_descriptor_proto().encode_to_vec());
    let again = ProtobufSchema::parse(&encoded).unwrap();
    assert_eq!(again.first_message().full_name(), "shop.Order");
    assert!(ProtobufSchema::parse("message {").is_err());
}

#[test]
fn imports_compile_from_the_referenced_files_as_text_or_descriptors() {
    let dep = "syntax = \"proto3\";\npackage common;\nmessage Money { int64 cents = 1; string currency = 2; }\n";
    let main = "syntax = \"proto3\";\npackage shop;\nimport \"common/money.proto\";\nmessage Order { int64 id = 1; common.Money total = 2; }\n";
    let err = ProtobufSchema::parse(main).unwrap_err().to_string();
    assert!(
        err.contains("its imports must be its schema references"),
        "{err}"
    );
    let imports = [("common/money.proto".to_owned(), dep.to_owned())];
    let schema = ProtobufSchema::parse_with_imports(main, &imports).unwrap();
    let order = schema.message_at(&[0]).unwrap();
    assert_eq!(order.full_name(), "shop.Order");
    let total = order.get_field_by_name("total").unwrap();
    assert!(matches!(total.kind(), Kind::Message(m) if m.full_name() == "common.Money"));
    // The imported file as the base64 descriptor Python's serializer registers, under
    // whatever name its descriptor has: importers know it by the reference's name.
    let dep_schema = ProtobufSchema::parse(dep).unwrap();
    let mut proto = dep_schema.file.file_descriptor_proto().clone();
    proto.name = Some("elsewhere.proto".to_owned());
    let encoded = base64::engine::general_purpose::STANDARD.encode(proto.encode_to_vec());
    let imports = [("common/money.proto".to_owned(), encoded)];
    let schema = ProtobufSchema::parse_with_imports(main, &imports).unwrap();
    assert_eq!(schema.first_message().full_name(), "shop.Order");
}
