"""Share attributes and field classifications, as the catalog and the policy engine use them."""

from __future__ import annotations

from enum import StrEnum


class ShareAttribute(StrEnum):
    """共享属性 of a resource (国发〔2016〕51号)."""

    UNCONDITIONAL = "unconditional"  # 无条件共享: any subscribed department receives it
    CONDITIONAL = "conditional"  # 有条件共享: only under the owner's approving grant, only what it grants
    NOT_SHARED = "not_shared"  # 不予共享: needs a legal basis; never delivered


class FieldClass(StrEnum):
    """Classification of one field. Deny by default: an unclassified field is never delivered."""

    PUBLIC = "public"  # 公开: may be delivered as is
    INTERNAL = "internal"  # 内部: government use, delivered as granted
    SENSITIVE = "sensitive"  # 敏感: commercial secrets and the like; delivered only when granted explicitly
    PERSONAL = "personal"  # 个人信息: delivered only masked, unless the grant names an approved legal basis
    SECRET = "secret"  # noqa: S105 - a classification name, not a password. 涉密: never delivered

    @property
    def deliverable(self) -> bool:
        return self is not FieldClass.SECRET

    @property
    def needs_mask(self) -> bool:
        return self is FieldClass.PERSONAL
