"""Confluent's own Avro serdes (confluent-kafka's AvroSerializer / AvroDeserializer with its
SchemaRegistryClient), the independent implementation of the wire format the schema_registry
suite checks Freshet against.

  confluent_avro.py produce BOOTSTRAP REGISTRY TOPIC SCHEMA_FILE RECORDS_FILE
      writes each JSON line of RECORDS_FILE ({"key": ..., "value": {...}}) with the schema
  confluent_avro.py consume BOOTSTRAP REGISTRY TOPIC COUNT TIMEOUT_S
      reads COUNT records from the start of TOPIC and prints each as a JSON line
      {"key": ..., "value": {...}, "schema_id": N}: timestamps as epoch milliseconds,
      decimals as their exact text, so the suite compares them field for field.

Run from the venv scripts/serdes-venv.sh makes.
"""
import datetime
import decimal
import json
import sys
import time
import uuid

from confluent_kafka import Consumer, Producer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext, StringDeserializer, StringSerializer


def decimals(schema, value):
    """Turns decimal text into decimal.Decimal where the schema has a decimal (fastavro wants it)."""
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
        return int(value.timestamp() * 1000)
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def produce(bootstrap, registry, topic, schema_file, records_file):
    schema_text = open(schema_file).read()
    schema = json.loads(schema_text)
    client = SchemaRegistryClient({"url": registry})
    value_ser = AvroSerializer(client, schema_text)
    key_ser = StringSerializer()
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    n = 0
    for line in open(records_file):
        if not line.strip():
            continue
        record = json.loads(line)
        value = decimals(schema, record["value"])
        producer.produce(
            topic,
            key=key_ser(record["key"]),
            value=value_ser(value, SerializationContext(topic, MessageField.VALUE)),
        )
        n += 1
    left = producer.flush(30)
    if left:
        sys.exit(f"{left} records not delivered to {topic}")
    print(json.dumps({"produced": n}))


def consume(bootstrap, registry, topic, count, timeout_s):
    client = SchemaRegistryClient({"url": registry})
    value_de = AvroDeserializer(client)
    key_de = StringDeserializer()
    consumer = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": f"confluent-avro-{uuid.uuid4()}",
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "isolation.level": "read_committed",
    })
    consumer.subscribe([topic])
    deadline = time.time() + timeout_s
    got = 0
    while got < count and time.time() < deadline:
        msg = consumer.poll(0.5)
        if msg is None:
            continue
        if msg.error():
            sys.exit(f"consuming {topic}: {msg.error()}")
        raw = msg.value()
        value = value_de(raw, SerializationContext(topic, MessageField.VALUE))
        print(json.dumps({
            "key": key_de(msg.key(), None),
            "value": plain(value),
            "schema_id": int.from_bytes(raw[1:5], "big"),
        }), flush=True)
        got += 1
    consumer.close()
    if got < count:
        sys.exit(f"read {got} of {count} records from {topic} in {timeout_s} s")


if __name__ == "__main__":
    mode, args = sys.argv[1], sys.argv[2:]
    if mode == "produce":
        produce(*args)
    elif mode == "consume":
        consume(args[0], args[1], args[2], int(args[3]), float(args[4]))
    else:
        sys.exit("usage: confluent_avro.py produce|consume ...")
