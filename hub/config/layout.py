"""The folder layout of a config directory: which department's team owns which file.

Code review is the control over who writes what (DESIGN.md "Policy"): the subscriber writes
``subscriptions/<dept>/``, the owner writes its catalog files and ``grants/<owner>/``, the platform team
writes ``hubs.yaml`` and ``departments/``. `xhub codeowners` turns that into a CODEOWNERS file; it holds
only while every file sits where its department's team reviews it, which is what this module checks:

    subscriptions/<dept>/*.yaml   only subscriptions of <dept>             (error otherwise)
    catalog/<owner>/*.yaml        only resources owned by <owner>          (error otherwise)
    grants/<owner>/*.yaml         only grants of <owner>'s resources       (hub.config.grant_checks)
    subscriptions/*.yaml,         one department's entries per file: the file is given to its team;
    catalog/*.yaml                a file mixing departments can be given to no department's team
                                  (a warning: it stays with the platform team until it is split)

The layout is a property of a directory: snapshots (``xhub.cfg.<hub>``) have no files and are not checked.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import PurePosixPath

from hub.config.loader import ConfigDir
from hub.core.errors import ConfigProblem

# (folder, kind of object, attribute naming its department, what the department is to it)
_FOLDERS = (
    ("subscriptions", "subscription", "subscriber", "subscriber"),
    ("catalog", "resource", "owner", "owner"),
)


@dataclass(frozen=True, slots=True)
class ConfigFile:
    """One file of ``subscriptions/`` or ``catalog/`` and the departments of its entries.

    Attributes:
        path: relative to the config directory, with "/" (``subscriptions/tax/credit.yaml``).
        folder: the department folder it sits in (``tax``), or "" for a file directly in the kind's folder.
        departments: the subscribers (subscriptions) or owners (catalog) of its entries, sorted.
    """

    path: str
    folder: str
    departments: tuple[str, ...]


def config_files(cfg: ConfigDir, top: str) -> list[ConfigFile]:
    """The files of ``top`` ("subscriptions" or "catalog") that define entries, with their departments."""
    kind, attr = next((k, a) for folder, k, a, _ in _FOLDERS if folder == top)
    found: dict[str, set[str]] = defaultdict(set)
    for (origin_kind, ident), origin in cfg.origins.items():
        if origin_kind != kind:
            continue
        obj = cfg.subscriptions.get(ident) if kind == "subscription" else cfg.resources.get(ident)
        if obj is not None:
            found[origin.doc.file].add(str(getattr(obj, attr)))
    out = []
    for path, depts in sorted(found.items()):
        parts = PurePosixPath(path).parts
        folder = parts[1] if len(parts) == 3 else ""
        out.append(ConfigFile(path, folder, tuple(sorted(depts))))
    return out


def check_layout(cfg: ConfigDir) -> list[ConfigProblem]:
    """Entries in another department's folder, folders of no department, folders nested too deep."""
    problems: list[ConfigProblem] = []
    for top, kind, attr, role in _FOLDERS:
        for (origin_kind, ident), origin in sorted(cfg.origins.items()):
            if origin_kind != kind:
                continue
            obj = cfg.subscriptions.get(ident) if kind == "subscription" else cfg.resources.get(ident)
            if obj is None:
                continue
            parts = PurePosixPath(origin.doc.file).parts
            dept = str(getattr(obj, attr))
            label = f'subscription "{ident}"' if kind == "subscription" else f"resource {ident}"
            if len(parts) > 3:
                problems.append(
                    origin.problem(
                        (),
                        f"{label}: {top}/ holds files and one level of department folders "
                        f"({top}/<dept>/*.yaml), not {'/'.join(parts[1:-1])}/",
                    )
                )
                continue
            if len(parts) != 3:
                continue
            folder = parts[1]
            if folder not in cfg.departments and "department" not in cfg.incomplete:
                problems.append(
                    origin.problem(
                        (),
                        f"folder {top}/{folder}/ is not a known department's "
                        f"({top}/<dept>/ holds one department's files)",
                    )
                )
            elif dept != folder:
                problems.append(
                    origin.problem(
                        (attr,),
                        f"{label} has {role} {dept} but sits in {top}/{folder}/, which {folder}'s team "
                        f"reviews: move it to {top}/{dept}/",
                    )
                )
    return problems


def layout_warnings(cfg: ConfigDir) -> list[str]:
    """What keeps `xhub codeowners` from giving every file to one team (a config still valid without it).

    Files mixing departments; and, once teams are used at all (any ``team`` or ``platform_team``), each
    department and the platform without one.
    """
    out: list[str] = []
    for top, _, _, role in _FOLDERS:
        out.extend(
            f"{f.path} holds entries of several {role}s ({', '.join(f.departments)}): no one "
            f"department's team can own it (CODEOWNERS); split it into {top}/<dept>/ folders"
            for f in config_files(cfg, top)
            if not f.folder and len(f.departments) > 1
        )
    teams_used = cfg.hubs_file.platform_team is not None or any(d.team for d in cfg.departments.values())
    if teams_used:
        if cfg.hubs_file.platform_team is None:
            out.append(
                "hubs.yaml gives no platform_team: hubs.yaml and departments/ have no CODEOWNERS owner"
            )
        for dept in sorted(cfg.departments.values(), key=lambda d: d.id):
            if not dept.team:
                where = (
                    cfg.origins[("department", dept.id)].where
                    if ("department", dept.id) in cfg.origins
                    else ""
                )
                out.append(
                    f"department {dept.id} ({where}) has no team: its files have no CODEOWNERS owner "
                    "but the platform team"
                )
    return out
