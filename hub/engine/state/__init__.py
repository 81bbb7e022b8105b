"""The hub's state store, kept the way Kafka Streams and quix-streams keep state.

A local store per owned source partition (store.py, SQLite), backed by the compacted changelog topic
``xhub.state.<hub>`` (changelog.py) whose records go out in the SAME Kafka transaction as the
deliveries and offsets they account for (transaction.py sends them), and restored from it when a worker
gains the partition (restore.py). What it holds per source partition: where each subscription stands
(handover.py: live from an offset, or being backfilled) and, per filtered subscription, which keys the
subscriber holds (as keyed hashes, never the business key: see keys.py).
"""
