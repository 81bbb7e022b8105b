"""The shared core: what both the hub and the connectors need, and nothing that knows either.

errors (the exception tree), log (structlog setup), kafka_settings (how to reach Kafka, no client
import), kafka (kafka-python client factories), names (topics, consumer groups, transactional ids),
envelope (the change event), dead_letters (the one dead-letter builder), registry (schema-registry
client, Avro serde, wire format). Nothing here imports another ``hub`` package or ``connectors``.
"""
