"""The A/B readout: per-arm statistics from the ``ab_arm_stats_since`` SQL function (migration 0002)
and a sample-ratio-mismatch (SRM) check of the observed split against the configured weights.

An SRM — arms receiving calls in proportions the weights do not explain — means units are lost,
duplicated or mis-assigned somewhere, and any comparison of the arms is biased. The check is Pearson's
chi-square goodness-of-fit test of the per-arm call counts against ``total × weight / 100``; its p-value
is the chi-square survival function, in closed form for the integer degrees of freedom a test has
(:func:`chi2_sf`), so the command does not import a statistics library for one number.
"""
from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from modelplatform.config import ABTest, ModelsConfig

SRM_ALPHA = 0.001  # strict on purpose: an SRM check runs on every readout, false alarms must be rare
MIN_EXPECTED_PER_ARM = 5  # below this the chi-square approximation is unreliable
_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}

# Each arm's latencies are sorted in memory for percentile_cont; Postgres' default work_mem (4 MB) sends a
# sort of more than ~150k latencies to temporary files. 64 MB holds an arm of ~2M calls in the window
# (docs/performance.md); the session's own setting wins when it is larger (PGOPTIONS, a role's setting).
REPORT_WORK_MEM = "64MB"
_RAISE_WORK_MEM = sa.text("""
    select set_config('work_mem', :work_mem, true)
    where pg_size_bytes(current_setting('work_mem')) < pg_size_bytes(:work_mem)
""")

ARM_STATS = sa.text("""
    select model, version, routed_by, calls, ok, invalid_input, rejected, error,
           latency_p50_ms, latency_p95_ms, first_seen, last_seen
    from ab_arm_stats_since(:since)
    where experiment = :experiment and (cast(:model as text) is null or model = :model)
    order by model, routed_by, version
""")


@dataclass(frozen=True)
class ArmStats:
    model: str
    version: str
    routed_by: str
    calls: int
    ok: int
    invalid_input: int
    rejected: int
    error: int
    latency_p50_ms: float
    latency_p95_ms: float
    first_seen: datetime
    last_seen: datetime


@dataclass(frozen=True)
class SRMCheck:
    """``checked`` is False when the test cannot be run; ``verdict`` says why, or what it found."""

    checked: bool
    mismatch: bool
    verdict: str
    weights: Mapping[str, int]
    observed: Mapping[str, int]
    expected: Mapping[str, float]
    chi2: float | None = None
    p_value: float | None = None


@dataclass(frozen=True)
class ABReport:
    experiment: str
    model: str | None
    since: datetime | None
    arms: tuple[ArmStats, ...]
    srm: SRMCheck

    def as_dict(self) -> dict[str, Any]:
        return {
            "experiment": self.experiment,
            "model": self.model,
            "since": None if self.since is None else self.since.isoformat(),
            "arms": [{**asdict(a), "first_seen": a.first_seen.isoformat(), "last_seen": a.last_seen.isoformat()}
                     for a in self.arms],
            "srm": {**asdict(self.srm), "weights": dict(self.srm.weights), "observed": dict(self.srm.observed),
                    "expected": dict(self.srm.expected)},
        }


class UnknownTest(LookupError):
    """No A/B test of that name in the config, and no call recorded under it; ``known`` lists the config's."""

    def __init__(self, experiment: str, known: list[str]) -> None:
        self.experiment, self.known = experiment, known
        super().__init__(experiment)


def chi2_sf(x: float, df: int) -> float:
    """P(X ≥ x) for X chi-square distributed with ``df`` (a positive integer) degrees of freedom.

    The regularized upper incomplete gamma function Q(df/2, x/2) has a finite closed form for integer
    ``df`` (Abramowitz & Stegun 26.4.4-5): for even ``df = 2m``, ``e^(-x/2) Σ_{i<m} (x/2)^i / i!``; for
    odd ``df = 2m+1``, ``erfc(√(x/2)) + e^(-x/2) Σ_{1≤i≤m} (x/2)^(i-½) / Γ(i+½)``. Every term is positive
    (no cancellation) and computed through its logarithm (no overflow); it underflows to 0 only below
    1e-308, far past any threshold.
    """
    if df < 1:
        raise ValueError(f"degrees of freedom must be a positive integer, got {df}")
    if x <= 0:
        return 1.0
    half = x / 2
    log_half = math.log(half)
    if df % 2 == 0:
        total = sum(math.exp(-half + i * log_half - math.lgamma(i + 1)) for i in range(df // 2))
    else:
        total = math.erfc(math.sqrt(half)) + sum(
            math.exp(-half + (i - 0.5) * log_half - math.lgamma(i + 0.5)) for i in range(1, df // 2 + 1))
    return min(1.0, total)


def chisquare(observed: list[int], expected: list[float]) -> tuple[float, float]:
    """Pearson's goodness-of-fit statistic and its p-value with ``len(observed) - 1`` degrees of freedom."""
    statistic = sum((o - e) ** 2 / e for o, e in zip(observed, expected, strict=True))
    return statistic, chi2_sf(statistic, len(observed) - 1)


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """An ISO 8601 timestamp (UTC when it has no offset) or a duration back from now: ``90m``, ``24h``,
    ``7d``, ``2w``. Raises ``ValueError`` naming both accepted forms."""
    match = _DURATION.match(text)
    if match:
        now = now if now is not None else datetime.now(UTC)
        return now - timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"{text!r} is neither an ISO timestamp (2026-11-22T08:00:00Z) "
                         "nor a duration (24h, 7d)") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def find_test(config: ModelsConfig, experiment: str) -> tuple[str, ABTest] | None:
    """The model running the A/B test named ``experiment`` and its test, or None."""
    for spec in config:
        if spec.ab_test is not None and spec.ab_test.name == experiment:
            return spec.name, spec.ab_test
    return None


@contextmanager
def report_transaction(engine: sa.Engine) -> Iterator[sa.Connection]:
    """A read-only transaction with at least :data:`REPORT_WORK_MEM` of ``work_mem``, set with
    ``set_config(…, true)`` (``SET LOCAL``): it ends with the transaction, so a pooled connection, a
    PgBouncer server connection in transaction mode included, goes back unchanged."""
    with engine.begin() as conn:
        conn.exec_driver_sql("set transaction read only")
        conn.execute(_RAISE_WORK_MEM, {"work_mem": REPORT_WORK_MEM})
        yield conn


def arm_stats_params(experiment: str, since: datetime | None, model: str | None = None) -> dict[str, Any]:
    """The parameters of :data:`ARM_STATS`. ``since`` is sent as a value that psycopg2 writes into the
    statement as a literal, so the planner reads only the partitions of the window's days."""
    return {"experiment": experiment, "model": model,
            "since": since if since is not None else datetime.min.replace(tzinfo=UTC)}


def fetch_arms(engine: sa.Engine, experiment: str, since: datetime | None, model: str | None = None,
               ) -> tuple[ArmStats, ...]:
    """Per (model, version, routed_by) statistics of ``experiment``. Raises ``SQLAlchemyError``."""
    with report_transaction(engine) as conn:
        rows = conn.execute(ARM_STATS, arm_stats_params(experiment, since, model))
        return tuple(ArmStats(**row._mapping) for row in rows)


def srm_check(observed: Mapping[str, int], weights: Mapping[str, int] | None, *, alpha: float = SRM_ALPHA,
              ) -> SRMCheck:
    """Chi-square test of per-version call counts ``observed`` against ``weights`` (summing to 100)."""
    observed = dict(sorted(observed.items()))
    if weights is None:
        return SRMCheck(False, False, "not checked: the experiment is not in the config, so its weights "
                        "are unknown", {}, observed, {})
    weights = dict(sorted(weights.items()))
    arms = {v: w for v, w in weights.items() if w > 0}
    total = sum(observed.values())
    expected = {v: total * w / sum(arms.values()) for v, w in arms.items()} if arms else {}

    def result(checked: bool, mismatch: bool, verdict: str, chi2: float | None = None,
               p_value: float | None = None) -> SRMCheck:
        return SRMCheck(checked, mismatch, verdict, weights, observed, expected, chi2, p_value)

    stray = {v: n for v, n in observed.items() if n > 0 and v not in arms}
    if stray:
        return result(True, True, f"sample ratio mismatch: {sum(stray.values())} call(s) went to version(s) "
                      f"{', '.join(stray)} that have no weight (weights changed during the window, or routing "
                      "is broken): do not trust this test", p_value=0.0)
    if len(arms) < 2:
        return result(False, False, "not checked: only one arm has a positive weight")
    if total == 0:
        return result(False, False, "not checked: no calls recorded for the arms")
    if min(expected.values()) < MIN_EXPECTED_PER_ARM:
        return result(False, False, f"not checked: too few calls ({total}); every arm needs at least "
                      f"{MIN_EXPECTED_PER_ARM} expected calls")
    chi2, p_value = chisquare([observed.get(v, 0) for v in arms], [expected[v] for v in arms])
    if p_value < alpha:
        return result(True, True, f"sample ratio mismatch (p = {p_value:.2g} < {alpha:g}): the split does not "
                      "match the weights; do not trust this test until the cause is found", chi2, p_value)
    return result(True, False, f"no sample ratio mismatch detected (p = {p_value:.3g} ≥ {alpha:g}): the split "
                  "matches the weights", chi2, p_value)


def build_report(engine: sa.Engine, config: ModelsConfig, experiment: str, since: datetime | None = None,
                 ) -> ABReport:
    """The readout of ``experiment``. Raises ``SQLAlchemyError`` when the database cannot be read, and
    :class:`UnknownTest` when the name is neither a test of the config nor recorded on any call (a typo).
    A test no longer in the config is still reported from its recorded calls."""
    found = find_test(config, experiment)
    model, test = (None, None) if found is None else found
    arms = fetch_arms(engine, experiment, since, model)
    if found is None and not arms and (since is None or not fetch_arms(engine, experiment, None)):
        raise UnknownTest(experiment, sorted(spec.ab_test.name for spec in config if spec.ab_test is not None))
    observed = {a.version: a.calls for a in arms if a.routed_by == "ab_test"}
    if test is not None:
        observed = {**{v: 0 for v, w in test.weights.items() if w > 0}, **observed}
    return ABReport(experiment, model, since, arms, srm_check(observed, None if test is None else test.weights))


def render_text(report: ABReport) -> str:
    """The report as a plain-text table and the SRM lines, for a terminal."""
    window = "all time" if report.since is None else f"since {report.since.isoformat()}"
    lines = [f"A/B test {report.experiment}" + (f" on {report.model}" if report.model else "") + f", {window}", ""]
    header = ("model", "version", "routed_by", "calls", "ok", "invalid", "rejected", "error",
              "p50_ms", "p95_ms", "first_seen", "last_seen")
    rows = [(a.model, a.version, a.routed_by, str(a.calls), str(a.ok), str(a.invalid_input), str(a.rejected),
             str(a.error), f"{a.latency_p50_ms:.2f}", f"{a.latency_p95_ms:.2f}",
             a.first_seen.isoformat(timespec="seconds"), a.last_seen.isoformat(timespec="seconds"))
            for a in report.arms]
    if rows:
        widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header))]
        for row in (header, *rows):
            lines.append("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    else:
        lines.append("no calls recorded for this experiment in the window")
    srm = report.srm
    lines += ["", "sample ratio check (chi-square, arms only):"]
    if srm.weights:
        lines.append("  weights   " + ", ".join(f"{v}={w}" for v, w in srm.weights.items()))
    lines.append("  observed  " + (", ".join(f"{v}={n}" for v, n in srm.observed.items()) or "none"))
    if srm.expected:
        lines.append("  expected  " + ", ".join(f"{v}={x:.1f}" for v, x in srm.expected.items()))
    if srm.chi2 is not None:
        lines.append(f"  chi2 = {srm.chi2:.3f}, p = {srm.p_value:.3g}")
    lines.append(f"  verdict: {srm.verdict}")
    return "\n".join(lines)
