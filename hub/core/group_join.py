"""A consumer group member stranded in a rebalance by kafka-python 3.0.12, and the way out of it.

kafka-python runs a (re)join as a task that ``poll`` awaits, but only while ``need_rejoin()`` is true
(``BaseCoordinator.join_group_async``: ``while self.need_rejoin()``). Two of the reasons for a rejoin
are used up by the join itself, before it completes:

- the leader's metadata changed (``_assignment_snapshot != _metadata_snapshot``): reset by
  ``_perform_assignment``, when the JoinGroup answer came and before the SyncGroup is answered;
- the subscription changed (``_joined_subscription``): reset by ``group_protocols()``, when the JoinGroup
  is sent.

When the poll that started such a join returns before the join is over (the poll's time is up, or the
SyncGroup / JoinGroup failed on a broker that died and the loop goes round once more), no later poll
awaits it: the member stays REBALANCING, with heartbeats off, for good. Its finished join is never
applied, so it keeps the partitions it had before (none, when it was its first assignment). Seen in
`make chaos` (transport's sink consumed nothing for a whole run: it rebalanced 0.4 s after its first
assignment and never completed the rejoin) and reproduced in tests/integration/test_sink_rejoin.py (a
short poll) and test_broker_chaos.py (its coordinator SIGKILLed during the rejoin). The flag
``rejoin_needed`` (set by heartbeat errors, a failed SyncGroup, ...) is not reset before the join
completes, so asking for a rejoin through it makes the next poll join again.

This reads kafka-python's private coordinator state: the public API has no group state. Without those
attributes (another kafka-python) it does nothing.
"""

from __future__ import annotations

from typing import Any


def rejoin_if_stranded(consumer: Any) -> bool:
    """Ask for a fresh join when ``consumer`` is stranded in a rebalance that no poll drives any more.

    Call it between polls, on the thread that polls. Stranded: the member is rebalancing, no join
    request of it is in flight (none, or one that is over: its answer is never used) and nothing makes
    the next poll join. A join still in flight is left alone (a second JoinGroup beside it would confuse
    the coordinator); once it is over, the next call sees it.

    Returns:
        True when a rejoin was requested (the next poll sends a new JoinGroup).
    """
    coordinator = getattr(consumer, "_coordinator", None)
    rebalancing = getattr(coordinator, "rebalance_in_progress", None)
    need_rejoin = getattr(coordinator, "need_rejoin", None)
    if coordinator is None or rebalancing is None or need_rejoin is None:
        return False
    if not getattr(consumer, "_subscription", None) or not consumer._subscription.partitions_auto_assigned():
        return False  # assigned by hand: no group membership
    if not rebalancing():
        return False
    task = getattr(coordinator, "_join_task", None)
    if task is not None and not getattr(task, "is_done", True):
        return False
    if need_rejoin():
        return False  # the next poll drives the join
    coordinator.request_rejoin()
    return True
