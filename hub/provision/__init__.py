"""What `xhub plan` and `xhub apply` do: compare the config directory with the cluster, then converge."""

from __future__ import annotations

from hub.provision.apply import apply_plan
from hub.provision.desired import Desired, SchemaSpec, TopicSpec, desired_state
from hub.provision.diff import ClusterState, Plan, compute_plan, read_cluster_state

__all__ = [
    "ClusterState",
    "Desired",
    "Plan",
    "SchemaSpec",
    "TopicSpec",
    "apply_plan",
    "compute_plan",
    "desired_state",
    "read_cluster_state",
]
