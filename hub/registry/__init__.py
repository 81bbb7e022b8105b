"""The built-in Confluent-compatible schema registry: HTTP server, Kafka-backed store, replicated state.

The client side (client, serde, wire format, schema parsing, compatibility rules) is shared with the
connectors and lives in ``hub.core.registry``. Typical use::

    store = SchemaStore(settings)            # the _xhub_schemas topic
    store.start()
    server = RegistryServer(store, port=8081)
    server.start()
    serde = AvroSerde(RegistryClient(server.url))
"""
