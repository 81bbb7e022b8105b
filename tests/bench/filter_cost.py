"""Per-record cost of row filters (subset closures vs cel-python) and of masks.

Run: ``.venv/bin/python -m tests.bench.filter_cost`` (or ``make bench``). Prints nanoseconds per record;
numbers depend on the machine, so nothing here asserts on them.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from typing import Any

from hub.policy.filters import compile_filter
from hub.policy.masks import build_mask

FIELD_TYPES: dict[str, Any] = {
    "credit_code": "string",
    "name": "string",
    "district": "string",
    "status": ["null", "string"],
    "capital": ["null", "double"],
    "employees": "int",
    "registered_on": {"type": "int", "logicalType": "date"},
}

RECORDS: list[dict[str, Any]] = [
    {
        "credit_code": f"91310115MA1K{i:06d}",
        "name": f"上海某某科技有限公司{i}",
        "district": ("浦东新区", "黄浦区", "徐汇区")[i % 3],
        "status": ("存续", "在业", "注销", None)[i % 4],
        "capital": None if i % 5 == 0 else 100.0 * i,
        "employees": i % 500,
        "registered_on": dt.date(2000, 1, 1) + dt.timedelta(days=i),
    }
    for i in range(1000)
]

EXPRESSIONS = [
    'district == "浦东新区" && status in ["存续", "在业"]',
    'credit_code.startsWith("9131") && employees >= 50 && !(status == "注销")',
    'registered_on >= "2001-01-01" || capital > 50000.0',
]


def ns_per_call(fn: Callable[[Any], Any], items: list[Any], *, min_seconds: float = 0.3) -> float:
    """Best-of-5 mean nanoseconds per call of ``fn`` over ``items``."""
    loops = 1
    while True:
        start = time.perf_counter()
        for _ in range(loops):
            for item in items:
                fn(item)
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds / 5:
            break
        loops *= 2
    best = elapsed
    for _ in range(4):
        start = time.perf_counter()
        for _ in range(loops):
            for item in items:
                fn(item)
        best = min(best, time.perf_counter() - start)
    return best / (loops * len(items)) * 1e9


def main() -> None:
    baseline = ns_per_call(lambda _r: True, RECORDS)
    print(f"loop baseline (a no-op call): {baseline:8.0f} ns/record")
    print("\nrow filters, ns/record (typed fields; loop baseline included)")
    for expr in EXPRESSIONS:
        subset = compile_filter(expr, FIELD_TYPES)
        cel = compile_filter(expr, FIELD_TYPES, engine="cel")
        assert subset.engine == "subset"
        assert [subset(r) for r in RECORDS] == [cel(r) for r in RECORDS], expr
        untyped = compile_filter(expr)
        s, u, c = (
            ns_per_call(subset, RECORDS),
            ns_per_call(untyped, RECORDS),
            ns_per_call(cel, RECORDS, min_seconds=1),
        )
        print(f"  {expr}")
        print(f"    subset {s:8.0f}   subset untyped {u:8.0f}   cel-python {c:10.0f}   ratio {c / s:6.0f}x")

    print("\nmasks, ns/value (Mask.function)")
    secret = b"bench-secret-0123456789abcdef"
    samples: dict[str, list[Any]] = {
        "id_number": ["310115198503071234"],
        "phone": ["13812345678"],
        "name": ["张三丰"],
        "address": ["上海市浦东新区世纪大道100号3号楼1201室"],
        "email": ["zhangsan@example.gov.cn"],
        "pseudonym": ["310115198503071234"],
        "date_year": [dt.date(1985, 3, 7)],
        "date_month": ["1985-03-07"],
    }
    for kind, values in samples.items():
        fn = build_mask(kind, secret=secret).function
        print(f"  {kind:<11} {ns_per_call(fn, values * 100):8.0f}")


if __name__ == "__main__":
    main()
