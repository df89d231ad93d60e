#!/usr/bin/env python3
"""Loads Grafana dashboards through Grafana's own typed models and back.

Each dashboard JSON goes through the grafana-foundation-sdk's models
(`Dashboard.from_json`, with the SDK's panel and query plugins registered)
and back to JSON (the SDK's `JSONEncoder`). Whatever the round trip drops or
changes is a field Grafana's schema does not have where it was written (a
misspelt key, one in the wrong place, a value of the wrong type): every such
difference is printed, and the exit code is 1. Keys the SDK adds (its
defaults) are not differences. Also a difference: a schemaVersion other than
the models', a panel type or a query with no typed model in the SDK.

Usage: grafana_roundtrip.py [DASHBOARD.json | DIRECTORY]...
(default: dashboards/grafana/dashboards of this repository)

Exit codes: 0 the round trip keeps everything, 1 differences, 2 the pinned
SDK is not installed (the message says how to install it).
"""

import json
import sys
from importlib import metadata
from pathlib import Path

PACKAGE = "grafana-foundation-sdk"
# The SDK generated for Grafana v11.6.x: dashboard schemaVersion 41.
PINNED = "1769699379!11.6.0"
INSTALL = f"pip install '{PACKAGE}=={PINNED}'"

# Grafana's Prometheus datasource keeps its annotation options beside the
# annotation (its AnnotationQueryEditor writes them there), but the SDK's
# AnnotationQuery types an annotation for the built-in Grafana datasource
# only, so the round trip drops them. These keys of an annotation on a
# Prometheus datasource are the one loss accepted; nothing else is.
PROMETHEUS_ANNOTATION_OPTIONS = frozenset(
    {"step", "titleFormat", "textFormat", "tagKeys", "useValueForTime"}
)

DEFAULT_DIR = Path(__file__).resolve().parents[2] / "dashboards/grafana/dashboards"


def load_sdk():
    """The SDK's pieces, or exit 2 saying how to install the pinned one."""
    try:
        found = metadata.version(PACKAGE)
    except metadata.PackageNotFoundError:
        found = None
    if found != PINNED:
        have = f"version {found} is installed" if found else "it is not installed"
        sys.stderr.write(f"{PACKAGE}=={PINNED} is needed, {have}: {INSTALL}\n")
        sys.exit(2)
    from grafana_foundation_sdk.cog import runtime
    from grafana_foundation_sdk.cog.encoder import JSONEncoder
    from grafana_foundation_sdk.cog.plugins import register_default_plugins
    from grafana_foundation_sdk.models.dashboard import Dashboard, RowPanel

    register_default_plugins()
    return runtime, JSONEncoder, Dashboard, RowPanel


def same(a, b):
    """Equal values of the same JSON type (1 and 1.0 alike, True and 1 not)."""
    number = (int, float)
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, number) and isinstance(b, number):
        return a == b
    return type(a) is type(b) and a == b


def short(value):
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 80 else text[:77] + "..."


def accepted(path, key, parent):
    """Whether dropping `key` of the object at `path` is the accepted loss."""
    return (
        len(path) == 3
        and path[:2] == ["annotations", "list"]
        and key in PROMETHEUS_ANNOTATION_OPTIONS
        and isinstance(parent.get("datasource"), dict)
        and parent["datasource"].get("type") == "prometheus"
    )


def diff(before, after, path, out, counts):
    """Appends to `out` what `after` lost or changed of `before`."""
    where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path) or "."
    if isinstance(before, dict) and isinstance(after, dict):
        for key, value in before.items():
            if key in after:
                diff(value, after[key], path + [key], out, counts)
            elif accepted(path, key, before):
                counts["accepted"] += 1
            else:
                out.append(f"{where}.{key}: dropped ({short(value)})")
        counts["added"] += sum(1 for key in after if key not in before)
    elif isinstance(before, list) and isinstance(after, list):
        if len(before) != len(after):
            out.append(f"{where}: {len(before)} items became {len(after)}")
        for i, (b, a) in enumerate(zip(before, after)):
            diff(b, a, path + [i], out, counts)
    elif not same(before, after):
        out.append(f"{where}: {short(before)} became {short(after)}")


def untyped(sdk, dashboard):
    """Panels and queries the SDK read without a typed model of theirs."""
    runtime, _, _, row_panel = sdk
    out = []

    def walk(panels, where):
        for i, p in enumerate(panels or []):
            at = f"{where}[{i}]"
            if isinstance(p, row_panel):
                walk(p.panels, f"{at}.panels")
                continue
            if runtime.panelcfg_config(p.type_val) is None:
                out.append(f"{at}.type: {p.type_val!r} has no panel model in the SDK")
            for j, t in enumerate(p.targets or []):
                if isinstance(t, runtime.UnknownDataquery):
                    out.append(f"{at}.targets[{j}]: no query model in the SDK for its datasource")

    walk(dashboard.panels, ".panels")
    return out


def round_trip(sdk, path):
    """The differences of one dashboard file, and the counts of the rest."""
    _, encoder, dashboard_model, _ = sdk
    counts = {"added": 0, "accepted": 0}
    source = json.loads(path.read_text())
    try:
        dashboard = dashboard_model.from_json(source)
        back = json.loads(json.dumps(dashboard, cls=encoder))
    except Exception as e:  # the SDK's models refused it: that is the finding
        return [f".: the SDK's models do not load it: {type(e).__name__}: {e}"], counts
    out = []
    wanted = dashboard_model().schema_version
    if source.get("schemaVersion") != wanted:
        out.append(
            f".schemaVersion: {short(source.get('schemaVersion'))}, "
            f"the SDK's models are of schema {wanted}"
        )
    diff(source, back, [], out, counts)
    return out + untyped(sdk, dashboard), counts


def files(args):
    paths = [Path(a) for a in args] or [DEFAULT_DIR]
    out = []
    for p in paths:
        out.extend(sorted(p.glob("*.json")) if p.is_dir() else [p])
    return out


def main(args):
    sdk = load_sdk()
    dashboards = files(args)
    if not dashboards:
        sys.stderr.write(f"no dashboard in {args or [str(DEFAULT_DIR)]}\n")
        return 1
    failed = 0
    for path in dashboards:
        differences, counts = round_trip(sdk, path)
        for d in differences:
            print(f"{path.name}: {d}")
        failed += bool(differences)
        print(
            f"{path.name}: {len(differences)} differences "
            f"({counts['added']} defaults added, "
            f"{counts['accepted']} Prometheus annotation options not modelled by the SDK)"
        )
    print(f"{len(dashboards)} dashboards through {PACKAGE} {PINNED}: {failed} with differences")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
