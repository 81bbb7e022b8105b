"""Who may do what at the registry: reads for every authenticated party, writes per subject.

A subject is ``<topic>-key`` or ``<topic>-value``; the topic's name says who owns it (DESIGN.md):
a department registers schemas and changes compatibility only for its own topics (``xhub.src.<dept>.*``,
``xhub.dlq.<dept>``, ``xhub.pos.<dept>``), a hub only for its own (``xhub.dlv.<hub>.*``, ``xhub.dlq.<hub>``,
``xhub.audit.<hub>``, ``xhub.state.<hub>``); the apply role and the operator may write any subject and the
global compatibility. A lookup and a compatibility test are reads, though they are POSTs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

PREFIX = "xhub."
DEPARTMENT_FAMILIES = ("src", "dlq", "pos")
HUB_FAMILIES = ("dlv", "dlq", "audit", "state")
WRITE_ANYTHING = frozenset({"apply", "operator", "admin"})


@dataclass(frozen=True)
class Grantee:
    """What a principal stands for: ``kind`` department / hub / a role, ``owner`` its id or name."""

    kind: str
    owner: str = ""


def _topic_owner(subject: str) -> tuple[str, str] | None:
    """(family, owner) of a subject named after an xhub topic; None for any other subject."""
    topic = subject.removesuffix("-value").removesuffix("-key")
    if topic == subject or not topic.startswith(PREFIX):
        return None
    parts = topic.split(".")
    return (parts[1], parts[2]) if len(parts) >= 3 else None


def _write_target(method: str, path: str) -> tuple[bool, str | None]:
    """(whether the request writes, the subject it writes; None = the global config)."""
    parts = [unquote(p) for p in urlsplit(path).path.strip("/").split("/") if p]
    if method == "POST" and len(parts) == 3 and parts[0] == "subjects" and parts[2] == "versions":
        return True, parts[1]
    if method in ("PUT", "DELETE") and parts[:1] == ["config"]:
        return True, parts[1] if len(parts) == 2 else None
    if method == "DELETE" and parts[:1] == ["subjects"] and len(parts) >= 2:
        return True, parts[1]
    return False, None


class SubjectAuthorizer:
    """Decides each request from its principal (``User:<name>``) and the grantees of the config."""

    def __init__(self, grantees: Mapping[str, Grantee]) -> None:
        self.grantees = dict(grantees)

    def refusal(self, principal: str | None, method: str, path: str) -> tuple[int, str] | None:
        """(HTTP status, why) when the request is refused; None when it may go on."""
        if principal is None:
            return 401, "present a client certificate issued by the deployment's CA"
        writes, subject = _write_target(method.upper(), path)
        if not writes:
            return None
        grantee = self.grantees.get(principal)
        if grantee is None:
            return 403, f"{principal} may read, not write (not a party of this config)"
        if grantee.kind in WRITE_ANYTHING or _owns(grantee, subject):
            return None
        if subject is None:
            return 403, f"{principal} may not change the global compatibility (the apply role may)"
        return 403, f'{principal} may not write subject "{subject}": it belongs to another party'


def _owns(grantee: Grantee, subject: str | None) -> bool:
    """Whether a department or hub owns the topic ``subject`` is named after."""
    owned = _topic_owner(subject) if subject is not None else None
    if owned is None or grantee.kind not in ("department", "hub"):
        return False
    family, owner = owned
    families = DEPARTMENT_FAMILIES if grantee.kind == "department" else HUB_FAMILIES
    return owner == grantee.owner and family in families
