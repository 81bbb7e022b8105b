"""What a plan is compiled from, as the policy package sees it: read-only shapes, no config models.

The config layer's pydantic models (``hub.config.models``) fit these protocols as they are; the policy
package names only the attributes it reads, so it depends on nothing above the catalog.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Protocol

from hub.catalog.model import FieldClass, ShareAttribute


class GrantTerms(Protocol):
    """The owning department's answer to one subscription, as far as a plan depends on it."""

    @property
    def decision(self) -> str: ...

    @property
    def reference(self) -> str | None: ...

    @property
    def legal_basis(self) -> str | None: ...

    @property
    def fields(self) -> Sequence[str] | None: ...

    @property
    def clear(self) -> Sequence[str]: ...

    @property
    def min_masks(self) -> Mapping[str, str]: ...

    @property
    def filterable(self) -> Sequence[str]: ...

    @property
    def release_sensitive(self) -> Sequence[str]: ...

    @property
    def valid_until(self) -> datetime | None: ...


class ResourceTerms(Protocol):
    """A catalog entry: code, owner, business key, share attribute and field classes."""

    @property
    def code(self) -> str: ...

    @property
    def owner(self) -> str: ...

    @property
    def key(self) -> str: ...

    @property
    def share(self) -> ShareAttribute: ...

    @property
    def fields(self) -> Mapping[str, FieldClass]: ...

    @property
    def default_masks(self) -> Mapping[str, str]: ...

    @property
    def filterable(self) -> Sequence[str]: ...


class SubscriptionTerms(Protocol):
    """A subscription: who asks for which fields, masked, filtered and valid how.

    Its legal basis is not read: it is the subscriber's stated purpose and never lifts a mask.
    """

    @property
    def id(self) -> str: ...

    @property
    def subscriber(self) -> str: ...

    @property
    def resource(self) -> str: ...

    @property
    def hub(self) -> str: ...

    @property
    def fields(self) -> Sequence[str]: ...

    @property
    def filter(self) -> str | None: ...

    @property
    def masks(self) -> Mapping[str, str]: ...

    @property
    def valid_from(self) -> datetime | None: ...

    @property
    def valid_until(self) -> datetime | None: ...

    @property
    def active(self) -> bool: ...
