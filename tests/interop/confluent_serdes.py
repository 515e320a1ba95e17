"""Confluent's own serdes (confluent-kafka's AvroSerializer, JSONSerializer, ProtobufSerializer and
their deserializers, with its SchemaRegistryClient): the independent implementation of Confluent's
wire format the schema-registry suites check Freshet against.

  confluent_serdes.py FORMAT produce BOOTSTRAP REGISTRY TOPIC SCHEMA_FILE RECORDS_FILE [MESSAGE]
      writes each JSON line of RECORDS_FILE ({"key": ..., "value": {...}}, optionally with a
      "timestamp" in epoch milliseconds) with the schema
  confluent_serdes.py FORMAT consume BOOTSTRAP REGISTRY TOPIC COUNT TIMEOUT_S [SCHEMA_FILE MESSAGE]
      reads COUNT records from the start of TOPIC and prints each as a JSON line
      {"key": ..., "value": {...}, "schema_id": N, "partition": P, "offset": O, "raw": HEX,
      "message_indexes": [...]} ("raw": the value's bytes as written): Avro timestamps as
      epoch milliseconds, decimals as their exact text, Protobuf enums by name, so the suite
      compares them field for field.

FORMAT is avro, json or protobuf. For protobuf, SCHEMA_FILE is a .proto file and MESSAGE the full
name of its message to write or read (Python needs the generated class: grpcio-tools' protoc
generates it into a temporary directory).

FRESHET_REGISTRY_CA names a CA certificate (PEM) to trust for an https REGISTRY;
FRESHET_REGISTRY_USER_INFO (user:password) is sent as basic auth (the client's
basic.auth.user.info), for a REGISTRY behind a proxy that checks it.

Every step has a deadline: the registry client's requests time out after 10 s, the consumer reads
its partitions by assignment (no group coordinator to wait for, as on a fresh broker), and a
watchdog ends the process (exit 3, naming the step) if it is still running 30 s past TIMEOUT_S or
past 90 s for produce, so the calling test never hangs on it.

Run from the venv scripts/serdes-venv.sh makes.
"""
import datetime
import decimal
import importlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid

from confluent_kafka import Consumer, Producer, TopicPartition, OFFSET_BEGINNING
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.serialization import MessageField, SerializationContext, StringDeserializer, StringSerializer

step = "starting"


def watchdog(seconds):
    def fire():
        sys.stderr.write(f"confluent_serdes.py: still at '{step}' after {seconds} s; giving up\n")
        sys.stderr.flush()
        os._exit(3)

    timer = threading.Timer(seconds, fire)
    timer.daemon = True
    timer.start()


def registry_client(url):
    conf = {"url": url, "timeout": 10}
    # An https registry whose certificate a test CA signed (scripts/registry.sh's TLS mode).
    ca = os.environ.get("FRESHET_REGISTRY_CA")
    if ca:
        conf["ssl.ca.location"] = ca
    # A registry behind nginx's auth_basic (scripts/registry.sh's basic-auth mode).
    user_info = os.environ.get("FRESHET_REGISTRY_USER_INFO")
    if user_info:
        conf["basic.auth.user.info"] = user_info
    return SchemaRegistryClient(conf)


def decimals(schema, value):
    """Turns decimal text into decimal.Decimal where the Avro schema has a decimal (fastavro wants it)."""
    if isinstance(schema, dict) and schema.get("logicalType") == "decimal" and isinstance(value, str):
        return decimal.Decimal(value)
    if isinstance(schema, dict) and schema.get("type") == "record" and isinstance(value, dict):
        return {f["name"]: decimals(f["type"], value[f["name"]]) for f in schema["fields"] if f["name"] in value}
    if isinstance(schema, list) and value is not None:
        for branch in schema:
            if branch != "null":
                return decimals(branch, value)
    return value


def plain(value):
    if isinstance(value, datetime.datetime):
        # Integer arithmetic: value.timestamp() * 1000 is a float product that can land just
        # below the integer, one millisecond short once truncated.
        epoch = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
        if value.tzinfo is None:
            value = value.replace(tzinfo=datetime.timezone.utc)
        return (value - epoch) // datetime.timedelta(milliseconds=1)
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def proto_class(proto_file, message):
    """The class of MESSAGE, generated from PROTO_FILE (and the .proto files beside it, which it may
    import) with grpcio-tools' protoc."""
    out = tempfile.mkdtemp(prefix="freshet-pb2-")
    include = os.path.dirname(os.path.abspath(proto_file))
    from grpc_tools import protoc
    import grpc_tools

    well_known = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
    # Every .proto beside it too: the files it imports (schema references) need their modules.
    protos = sorted({os.path.join(include, f) for f in os.listdir(include) if f.endswith(".proto")} | {os.path.abspath(proto_file)})
    rc = protoc.main(["protoc", f"-I{include}", f"-I{well_known}", f"--python_out={out}", *protos])
    if rc != 0:
        sys.exit(f"protoc failed on {proto_file} (exit {rc})")
    sys.path.insert(0, out)
    module = importlib.import_module(os.path.splitext(os.path.basename(proto_file))[0] + "_pb2")
    package = module.DESCRIPTOR.package
    local = message[len(package) + 1:] if package and message.startswith(package + ".") else message
    cls = module
    for part in local.split("."):
        cls = getattr(cls, part)
    return cls


def repeated(field):
    """Whether a field is repeated (`is_repeated` in newer protobuf releases, `label` before)."""
    from google.protobuf.descriptor import FieldDescriptor

    if hasattr(field, "is_repeated"):
        return field.is_repeated
    return field.label == FieldDescriptor.LABEL_REPEATED


def proto_plain(msg):
    """A protobuf message as plain JSON values: ints as ints, enums by name, nested messages as maps."""
    from google.protobuf.descriptor import FieldDescriptor

    def one(field, v):
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            return proto_plain(v)
        if field.type == FieldDescriptor.TYPE_ENUM:
            return field.enum_type.values_by_number[v].name
        if field.type == FieldDescriptor.TYPE_BYTES:
            return v.hex()
        return v

    out = {}
    for field in msg.DESCRIPTOR.fields:
        v = getattr(msg, field.name)
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            value_field = field.message_type.fields_by_name["value"]
            out[field.name] = {k: one(value_field, x) for k, x in v.items()}
        elif repeated(field):
            out[field.name] = [one(field, x) for x in v]
        elif field.type == FieldDescriptor.TYPE_MESSAGE and not msg.HasField(field.name):
            out[field.name] = None
        else:
            out[field.name] = one(field, v)
    return out


def value_serializer(fmt, client, schema_file, message):
    text = open(schema_file).read()
    if fmt == "avro":
        from confluent_kafka.schema_registry.avro import AvroSerializer

        ser, schema = AvroSerializer(client, text), json.loads(text)
        return lambda v, ctx: ser(decimals(schema, v), ctx)
    if fmt == "json":
        from confluent_kafka.schema_registry.json_schema import JSONSerializer

        ser = JSONSerializer(text, client)
        return lambda v, ctx: ser(v, ctx)
    if fmt == "protobuf":
        from confluent_kafka.schema_registry.protobuf import ProtobufSerializer
        from google.protobuf.json_format import ParseDict

        cls = proto_class(schema_file, message)
        ser = ProtobufSerializer(cls, client, {"use.deprecated.format": False})
        return lambda v, ctx: ser(ParseDict(v, cls()), ctx)
    sys.exit(f"unknown format {fmt}: avro, json or protobuf")


def value_deserializer(fmt, client, schema_file, message):
    if fmt == "avro":
        from confluent_kafka.schema_registry.avro import AvroDeserializer

        de = AvroDeserializer(client)
        return lambda raw, ctx: plain(de(raw, ctx))
    if fmt == "json":
        from confluent_kafka.schema_registry.json_schema import JSONDeserializer

        de = JSONDeserializer(None, schema_registry_client=client)
        return lambda raw, ctx: de(raw, ctx)
    if fmt == "protobuf":
        from confluent_kafka.schema_registry.protobuf import ProtobufDeserializer

        de = ProtobufDeserializer(proto_class(schema_file, message), {"use.deprecated.format": False})
        return lambda raw, ctx: proto_plain(de(raw, ctx))
    sys.exit(f"unknown format {fmt}: avro, json or protobuf")


def read_varint(data, at):
    shift = result = 0
    while True:
        b = data[at]
        at += 1
        result |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return (result >> 1) ^ -(result & 1), at


def message_indexes(raw):
    """Confluent's Protobuf message-index list after the 5-byte header, as written ([0] as [])."""
    count, at = read_varint(raw, 5)
    out = []
    for _ in range(count):
        i, at = read_varint(raw, at)
        out.append(i)
    return out


def produce(fmt, bootstrap, registry, topic, schema_file, records_file, message=None):
    global step
    watchdog(90)
    step = "making the serializer"
    value_ser = value_serializer(fmt, registry_client(registry), schema_file, message)
    key_ser = StringSerializer()
    # Java's partitioner (murmur2 of the key bytes), not librdkafka's default CRC32: a table topic
    # written here is then partitioned as Kafka Streams' repartition topics are, so a join of
    # a re-keyed stream with it finds each key's row in the partition the stream's records go to.
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "partitioner": "murmur2_random"})
    failed = []

    def delivered(err, msg):
        if err is not None:
            failed.append(f"{msg.topic()}: {err}")

    n = 0
    for line in open(records_file):
        if not line.strip():
            continue
        record = json.loads(line)
        step = f"serializing record {n}"
        value = value_ser(record["value"], SerializationContext(topic, MessageField.VALUE))
        extra = {"timestamp": record["timestamp"]} if "timestamp" in record else {}
        producer.produce(topic, key=key_ser(record["key"]), value=value, on_delivery=delivered, **extra)
        n += 1
    step = f"flushing {n} records to {topic}"
    left = producer.flush(30)
    if left:
        sys.exit(f"{left} records not delivered to {topic} in 30 s")
    if failed:
        sys.exit(f"{len(failed)} of {n} records failed: {failed[0]}")
    print(json.dumps({"produced": n}))


def consume(fmt, bootstrap, registry, topic, count, timeout_s, schema_file=None, message=None):
    global step
    watchdog(timeout_s + 30)
    step = "making the deserializer"
    value_de = value_deserializer(fmt, registry_client(registry), schema_file, message)
    key_de = StringDeserializer()
    consumer = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": f"confluent-serdes-{uuid.uuid4()}",
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "isolation.level": "read_committed",
    })
    step = f"reading {topic}'s partitions"
    meta = consumer.list_topics(topic, timeout=10)
    partitions = meta.topics[topic].partitions if topic in meta.topics else {}
    if not partitions:
        sys.exit(f"topic {topic} has no partitions (does it exist?)")
    # Assigned, not subscribed: no group coordinator, no rebalance to wait for.
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
    deadline = time.time() + timeout_s
    got = 0
    while got < count and time.time() < deadline:
        step = f"polling {topic} ({got} of {count} records)"
        msg = consumer.poll(0.5)
        if msg is None:
            continue
        if msg.error():
            sys.exit(f"consuming {topic}: {msg.error()}")
        raw = msg.value()
        step = f"deserializing {topic}-{msg.partition()} offset {msg.offset()}"
        value = value_de(raw, SerializationContext(topic, MessageField.VALUE))
        record = {
            "key": key_de(msg.key(), None),
            "value": value,
            "schema_id": int.from_bytes(raw[1:5], "big"),
            "partition": msg.partition(),
            "offset": msg.offset(),
            "raw": raw.hex(),
        }
        if fmt == "protobuf":
            record["message_indexes"] = message_indexes(raw)
        print(json.dumps(record), flush=True)
        got += 1
    step = "closing the consumer"
    consumer.close()
    if got < count:
        sys.exit(f"read {got} of {count} records from {topic} in {timeout_s} s")


if __name__ == "__main__":
    fmt, mode, args = sys.argv[1], sys.argv[2], sys.argv[3:]
    if mode == "produce":
        produce(fmt, *args)
    elif mode == "consume":
        consume(fmt, args[0], args[1], args[2], int(args[3]), float(args[4]), *args[5:])
    else:
        sys.exit("usage: confluent_serdes.py avro|json|protobuf produce|consume ...")
