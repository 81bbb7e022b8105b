"""Governance of the sharing rules: share requests (共享申请) and their answer deadlines. Pure: no Kafka."""
