"""The department sidecar: sources publish changes to Kafka, sinks apply deliveries to department systems."""
