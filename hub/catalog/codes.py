"""Resource codes: 一数一码, one code per data resource.

The rule, in the spirit of GB/T 21063.4 (classification code + sequence):

    <REGION>-<CLASS>-<SEQ>      e.g. PD-CRD-0001

- REGION: 2 to 6 capital letters naming the administrative area that keeps the catalog (PD = 浦东新区);
- CLASS: a three-letter classification code from CLASSIFICATION_CODES (the base databases and themes);
- SEQ: a four-digit sequence number within region and class, assigned by the owning department, 0001-9999.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

CLASSIFICATION_CODES: dict[str, str] = {
    "POP": "人口 population base",
    "ENT": "法人 legal-entity base",
    "SPA": "空间地理 spatial base",
    "LIC": "电子证照 electronic licences",
    "CRD": "信用 credit",
    "EST": "不动产 real estate",
    "SOC": "社会保障 social security",
    "TAX": "税务 taxation",
    "TRN": "交通 transport",
    "HEA": "卫生健康 health",
    "EDU": "教育 education",
    "ENV": "生态环境 environment",
}

_CODE = re.compile(r"^(?P<region>[A-Z]{2,6})-(?P<cls>[A-Z]{3})-(?P<seq>\d{4})$")


@dataclass(frozen=True)
class ResourceCode:
    region: str
    classification: str
    sequence: int

    def __str__(self) -> str:
        return f"{self.region}-{self.classification}-{self.sequence:04d}"


def parse_resource_code(code: str) -> ResourceCode:
    """Parse and validate a resource code; raises ValueError saying which part is wrong."""
    match = _CODE.match(code)
    if not match:
        raise ValueError(
            f'resource code "{code}" does not follow REGION-CLASS-SEQ (e.g. PD-CRD-0001: '
            "2-6 capital letters, a three-letter class, four digits)"
        )
    cls = match["cls"]
    if cls not in CLASSIFICATION_CODES:
        raise ValueError(
            f'resource code "{code}": class "{cls}" is not one of {", ".join(sorted(CLASSIFICATION_CODES))}'
        )
    seq = int(match["seq"])
    if seq == 0:
        raise ValueError(f'resource code "{code}": sequence 0000 is reserved; start at 0001')
    return ResourceCode(match["region"], cls, seq)
