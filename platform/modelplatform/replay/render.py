"""The replay report as plain text for a terminal (``--json`` prints the whole document instead)."""
from __future__ import annotations

import json
from typing import Any

MAX_SHOWN_JSON_CHARS = 160


def _table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header))]
    return ["  " + "  ".join(cell.rjust(w) if i and _numeric(cell) else cell.ljust(w)
                             for i, (cell, w) in enumerate(zip(row, widths, strict=True))).rstrip()
            for row in (header, *rows)]


def _numeric(cell: str) -> bool:
    return bool(cell) and (cell[0].isdigit() or cell[0] in "-.") and cell != "-"


def _num(value: float | None) -> str:
    if value is None:
        return "-"
    if value == 0:
        return "0"
    return f"{value:.6g}" if abs(value) < 1e9 else f"{value:.3e}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.2f}%"


def _show(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, ensure_ascii=False)
    return text if len(text) <= MAX_SHOWN_JSON_CHARS else text[:MAX_SHOWN_JSON_CHARS - 1] + "…"


def _outcome(side: dict[str, Any]) -> str:
    if side["status"] == "ok":
        return _show(side["output"])
    return f"{side['status']} {_show(side['error'])}"


def render_text(report: dict[str, Any]) -> str:
    rows = report["rows"]
    candidate = report["candidate"]
    window = report["window"]
    lines = [
        f"replay {report['run_id']}: {report['model']} {candidate['version']} (sha256 {candidate['sha256'][:12]}…, "
        f"schema from {candidate['schema']}) against {report['baseline']} traffic",
        f"window {window['since'] or 'start'} → {window['until'] or 'now'}"
        + (f", sample {report['sample']:g}" if report["sample"] is not None else "")
        + (f", newest {report['limit']}" if report["limit"] is not None else ""),
        "",
        f"rows read {rows['read']}, replayed {rows['replayed']}, not replayable {rows['not_replayable']}; "
        f"changed {rows['changed']} ({_pct(rows['changed'] / rows['replayed'] if rows['replayed'] else 0)}), "
        f"unchanged {rows['unchanged']}",
        "",
        "status transitions (recorded → candidate):",
    ]
    if report["transitions"]:
        lines += _table(("from", "to", "rows", "share"),
                        [(t["from"], t["to"], str(t["count"]), _pct(t["count"] / rows["replayed"]))
                         for t in report["transitions"]])
    else:
        lines.append("  none: no rows in the window")
    numeric = [leaf for leaf in report["leaves"] if leaf["kind"] == "numeric"]
    other = [leaf for leaf in report["leaves"] if leaf["kind"] != "numeric"]
    if numeric:
        lines += ["", f"numeric leaves (rows where both are ok: {rows['both_ok']}; tolerance {report['tolerance']}):"]
        lines += _table(
            ("leaf", "changed", "abs mean", "abs median", "abs p95", "abs max", "rel median", "rel p95", "rel max",
             "beyond tol."),
            [(leaf["pointer"], _pct(leaf["change_rate"]), _num(leaf["abs"]["mean"]), _num(leaf["abs"]["median"]),
              _num(leaf["abs"]["p95"]), _num(leaf["abs"]["max"]), _pct(leaf["rel"]["median"]),
              _pct(leaf["rel"]["p95"]), _pct(leaf["rel"]["max"]), _pct(leaf["beyond_share"]))
             for leaf in numeric])
    if other:
        lines += ["", "other leaves:"]
        lines += _table(("leaf", "changed", "rate", "added", "removed"),
                        [(leaf["pointer"], str(leaf["changed"]), _pct(leaf["change_rate"]), str(leaf["added"]),
                          str(leaf["removed"])) for leaf in other])
    if report["largest"]:
        lines += ["", f"largest differences (top {len(report['largest'])}, by relative difference):"]
        for example in report["largest"]:
            lines += _example_lines(example)
    shown = [t for t in report["transitions"] if t["examples"]]
    for transition in shown:
        lines += ["", f"examples {transition['from']} → {transition['to']} ({transition['count']} rows):"]
        for example in transition["examples"]:
            lines += _example_lines(example)
    process = report["process"]
    if process["restarts"]:
        lines += ["", f"the candidate's process was restarted {process['restarts']} time(s):"]
        lines += [f"  {failure}" for failure in process["failures"]]
    gates = report["gates"]
    if gates["results"]:
        lines += ["", f"--fail-on {gates['fail_on']}:"]
        lines += [f"  {'FAILED' if g['failed'] else 'ok    '}  {g['condition']}  (observed "
                  f"{_observed(g)})" for g in gates["results"]]
    perf = report["performance"]
    lines += ["", f"{rows['read']} rows in {perf['seconds']:.1f}s ({_num(perf['rows_per_s'])} rows/s); "
                  f"stored as replay_runs.id = '{report['run_id']}'"]
    return "\n".join(lines)


def _observed(gate: dict[str, Any]) -> str:
    if gate["observed"] is None:
        return "n/a: not seen in this replay"
    return _pct(gate["observed"]) if gate["share"] else _num(gate["observed"])


def _example_lines(example: dict[str, Any]) -> list[str]:
    lines = [f"  request_id {example['request_id']}  inference {example['inference_id']}",
             f"    input      {_show(example['input'])}",
             f"    recorded   {_outcome(example['baseline'])}",
             f"    candidate  {_outcome(example['candidate'])}"]
    numeric = {p: d for p, d in example["diffs"].items() if "abs" in d}
    if numeric:
        lines.append("    diff       " + ", ".join(
            f"{p} {_num(d['baseline'])} → {_num(d['candidate'])} ({_pct(d['rel'])})" for p, d in numeric.items()))
    return lines
