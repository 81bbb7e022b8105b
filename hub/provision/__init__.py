"""What `xhub plan` and `xhub apply` do: compare the config directory with the cluster, then converge."""

from __future__ import annotations

from hub.provision.apply import apply_changes
from hub.provision.desired import Desired, SchemaSpec, TopicSpec, desired_state
from hub.provision.diff import ClusterChanges, ClusterState, compute_changes, read_cluster_state

__all__ = [
    "ClusterChanges",
    "ClusterState",
    "Desired",
    "SchemaSpec",
    "TopicSpec",
    "apply_changes",
    "compute_changes",
    "desired_state",
    "read_cluster_state",
]
