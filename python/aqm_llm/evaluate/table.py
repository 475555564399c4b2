"""The evaluation table (mean ± 95% CI across seeds per setting and series) and the target
verdict per scenario family, from the rows a run of the evaluation left in the database."""

from __future__ import annotations

import math
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aqm_llm.evaluate.spec import SPLITS, EvalConfig, EvalPlanRun, Setting
from aqm_llm.metric_catalogue import columns
from aqm_llm.report.stats import MeanCI, mean_ci
from aqm_llm.resultsdb import connect, json_cell, schema_error


COLUMNS = columns("l4s_p99_ms", "l4s_mean_ms", "classic_p99_ms", "util", "loss_pct", "l4s_share_pct",
                  "fallbacks")
#: The target: the policy's L4S p99 at most the
#: reference's, classic p99 at most CLASSIC_P99_FACTOR x the reference's, utilisation at least
#: (1 - tolerance) x, loss at most the reference's + LOSS_MARGIN_PCT percentage points.
CLASSIC_P99_FACTOR = 1.1
LOSS_MARGIN_PCT = 0.01
#: The target's terms, in order: (L4S p99 ms, classic p99 ms, utilisation, loss %).
TARGET_METRICS = ("l4s_p99_ms", "classic_p99_ms", "util", "loss_pct")
#: What the sanity rung must reproduce: the target's terms and how the goodput splits.
RUNG_METRICS = (*TARGET_METRICS, "l4s_share_pct")


def target_terms(policy: tuple[float | None, ...], reference: tuple[float | None, ...],
                 utilisation_tolerance: float) -> tuple[bool | None, ...]:
    """The target, term by term (TARGET_METRICS order): True where ``policy`` meets it against
    ``reference``, None where either side lacks the value (None or NaN)."""
    def known(x: float | None) -> bool:
        return x is not None and not math.isnan(x)

    rules = (lambda a, b: a <= b,
             lambda a, b: a <= CLASSIC_P99_FACTOR * b,
             lambda a, b: a >= (1.0 - utilisation_tolerance) * b,
             lambda a, b: a <= b + LOSS_MARGIN_PCT + 1e-9)
    return tuple(rule(a, b) if known(a) and known(b) else None
                 for rule, a, b in zip(rules, policy, reference))


@dataclass(frozen=True)
class SeriesStats:
    setting: Setting
    label: str
    planned: int                 # runs the evaluation asks for
    stats: list[MeanCI]          # per column, over the runs that succeeded
    wall_s: float                # summed wall time of its successful runs
    by_seed: dict[int, dict[str, Any]] = field(default_factory=dict)  # metrics of each seed's run

    def mean(self, metric: str) -> float:
        return self.stats[[c.name for c in COLUMNS].index(metric)].mean


def paired_difference(a: SeriesStats, b: SeriesStats, metric: str) -> MeanCI:
    """``a`` minus ``b`` seed by seed (same seed: same traffic and link), over the seeds both ran:
    the mean difference and its 95% interval (it says whether the seeds tell the two apart)."""
    column = next(c for c in COLUMNS if c.name == metric)
    diffs = []
    for seed in sorted(a.by_seed.keys() & b.by_seed.keys()):
        x, y = column.get(a.by_seed[seed]), column.get(b.by_seed[seed])
        if x is not None and y is not None:
            diffs.append(x - y)
    return mean_ci(diffs)


@dataclass(frozen=True)
class Verdict:
    """Target policy against the reference on one setting (None: a side has no successful run)."""

    setting: Setting
    p99: tuple[float, float]     # (policy, reference) means: L4S p99 sojourn
    classic_p99: tuple[float, float]
    util: tuple[float, float]
    loss: tuple[float, float]
    p99_delta: MeanCI            # L4S p99: policy minus reference, paired by seed
    p99_ok: bool | None
    classic_ok: bool | None
    util_ok: bool | None
    loss_ok: bool | None
    complete: bool               # every planned run of both series succeeded

    @property
    def met(self) -> bool | None:
        parts = (self.p99_ok, self.classic_ok, self.util_ok, self.loss_ok)
        return None if any(p is None for p in parts) else all(parts)


def collect_stats(cfg: EvalConfig, plan: list[EvalPlanRun], db_path: str | Path) -> list[SeriesStats]:
    """Statistics per (setting, series), in the config's order."""
    keys = {r.run.key() for r in plan}
    rows: dict[str, tuple[dict[str, Any], float]] = {}
    if Path(db_path).is_file():
        conn = connect(db_path, create=False)
        try:
            for key, metrics, wall in conn.execute("SELECT key, metrics, wall_s FROM runs WHERE status = 'ok'"):
                if key in keys:
                    rows[key] = (json_cell(metrics, "metrics", key, db_path), float(wall or 0.0))
        except sqlite3.Error as exc:
            raise schema_error(db_path, exc) from None
        finally:
            conn.close()
    out: list[SeriesStats] = []
    for setting in cfg.settings:
        for label in cfg.labels():
            mine = [r for r in plan if r.setting == setting and r.label == label]
            if not mine:
                continue
            done = [r for r in mine if r.run.key() in rows]
            got = [rows[r.run.key()] for r in done]
            out.append(SeriesStats(setting, label, len(mine),
                                   [mean_ci(c.get(m) for m, _ in got) for c in COLUMNS],
                                   sum(w for _, w in got),
                                   {r.run.spec.seed: rows[r.run.key()][0] for r in done}))
    return out


def _pair(stats: list[SeriesStats], setting: Setting, label: str,
          reference: str) -> tuple[SeriesStats, SeriesStats] | None:
    """The series of ``label`` and of ``reference`` on ``setting``; None unless both ran."""
    mine = next((s for s in stats if s.setting == setting and s.label == label), None)
    ref = next((s for s in stats if s.setting == setting and s.label == reference), None)
    return None if mine is None or ref is None else (mine, ref)


def _complete(*series: SeriesStats) -> bool:
    """Every planned run of these series succeeded."""
    return all(s.stats[0].n == s.planned for s in series)


def verdicts(cfg: EvalConfig, stats: list[SeriesStats], policy: str | None = None,
             reference: str | None = None) -> list[Verdict]:
    """``policy`` (default: the target policy) against ``reference`` (default: the file's),
    per setting where both ran."""
    out = []
    for setting in cfg.settings:
        pair = _pair(stats, setting, policy or cfg.target.policy, reference or cfg.reference)
        if pair is None:
            continue
        pol, ref = pair
        pairs = [(pol.mean(name), ref.mean(name)) for name in TARGET_METRICS]
        (p99, classic, util, loss) = pairs
        p99_ok, classic_ok, util_ok, loss_ok = target_terms(
            tuple(a for a, _ in pairs), tuple(b for _, b in pairs), cfg.target.utilisation_tolerance)
        out.append(Verdict(
            setting, p99, classic, util, loss, paired_difference(pol, ref, "l4s_p99_ms"),
            p99_ok=p99_ok, classic_ok=classic_ok, util_ok=util_ok, loss_ok=loss_ok,
            complete=_complete(pol, ref)))
    return out


@dataclass(frozen=True)
class Resolution:
    """How far the draw alone moves each target term on one setting: the worst of the calibration
    rows (rows that are the reference in distribution) against the reference. ``beyond``: per term,
    whether some calibration row misses it -- where a policy that decides as the reference does
    can miss the term by the draw alone."""

    setting: Setting
    rows: int                          # calibration rows judged on this setting
    l4s_p99_ratio: float | None        # largest row / reference
    classic_p99_ratio: float | None    # largest row / reference
    util_ratio: float | None           # smallest row / reference
    loss_excess_pct: float | None      # largest row - reference, percentage points
    beyond: tuple[bool, bool, bool, bool]


def _ratio(a: float, b: float) -> float | None:
    return a / b if b > 0 and not (math.isnan(a) or math.isnan(b)) else None


def _worst(values: list[float | None], pick: Any) -> float | None:
    known = [x for x in values if x is not None and not math.isnan(x)]
    return pick(known) if known else None


def resolutions(cfg: EvalConfig, stats: list[SeriesStats]) -> list[Resolution]:
    """Per setting where a calibration row ran: each target term's worst calibration row."""
    return _resolutions(cfg.settings, [verdicts(cfg, stats, label) for label in cfg.target.calibration])


def _resolutions(settings: tuple[Setting, ...], per_row: list[list[Verdict]]) -> list[Resolution]:
    """``per_row``: each calibration row's verdicts (the target tables have them already)."""
    judged: dict[str, list[Verdict]] = {}
    for row in per_row:
        for v in row:
            judged.setdefault(v.setting.name, []).append(v)
    out = []
    for setting in settings:
        vs = judged.get(setting.name, [])
        if not vs:
            continue
        out.append(Resolution(
            setting, len(vs),
            _worst([_ratio(*v.p99) for v in vs], max), _worst([_ratio(*v.classic_p99) for v in vs], max),
            _worst([_ratio(*v.util) for v in vs], min), _worst([v.loss[0] - v.loss[1] for v in vs], max),
            tuple(any(ok is False for ok in oks) for oks in zip(*[(v.p99_ok, v.classic_ok, v.util_ok, v.loss_ok)
                                                                 for v in vs]))))
    return out


def _resolution_markdown(cfg: EvalConfig, rs: list[Resolution]) -> list[str]:
    tol = cfg.target.utilisation_tolerance
    lines = [f"#### What the target can resolve: calibration rows against {cfg.reference}", "",
             f"Each term: the worst of the calibration rows (rows that are {cfg.reference} in distribution) "
             f"against {cfg.reference}, i.e. how far the draw alone moves it. The target allows L4S p99 "
             f"1x, classic p99 {CLASSIC_P99_FACTOR:g}x, utilisation {1 - tol:g}x, loss +{LOSS_MARGIN_PCT:g} "
             "points; a **bold** cell is beyond that: there a policy that decides as "
             f"{cfg.reference} does can miss the term by the draw alone.", "",
             "| setting | split | rows | L4S p99 (largest) | classic p99 (largest) | util (smallest) "
             "| loss (largest) |", "|---|---|---|---|---|---|---|"]
    for r in rs:
        cells = [_worst_text(r.l4s_p99_ratio, "{:.2f}x"), _worst_text(r.classic_p99_ratio, "{:.2f}x"),
                 _worst_text(r.util_ratio, "{:.3f}x"), _worst_text(r.loss_excess_pct, "{:+.3f} pp")]
        cells = [f"**{c}**" if beyond and c != "-" else c for c, beyond in zip(cells, r.beyond)]
        lines.append(f"| {r.setting.name} | {r.setting.split} | {r.rows} | " + " | ".join(cells) + " |")
    return lines + [""]


def _worst_text(x: float | None, fmt: str) -> str:
    # Rounded to the three decimals shown, plus 0.0: a tiny negative prints as +0.000, not -0.000.
    return "-" if x is None else fmt.format(round(x, 3) + 0.0)


@dataclass(frozen=True)
class DrawStanding:
    """A series judged by the target against each draw of the reference -- the reference row and
    the calibration rows, all of them the reference in distribution -- instead of against the one
    reference row: per setting, against how many draws it meets the target, of those judged; and
    against how many it meets every held-out family at once."""

    label: str
    per_setting: dict[str, tuple[int, int]]    # setting name -> (draws met against, draws judged)
    all_families: tuple[int, int]              # (draws against which every held-out family is met, judged)
    all_training: tuple[int, int] = (0, 0)     # (draws against which every training setting is met, judged)
    complete: bool = True                      # every counted verdict had all planned runs of both sides


def draw_standings(cfg: EvalConfig, stats: list[SeriesStats]) -> list[DrawStanding]:
    """Every series but the reference (baselines, policies, the calibration rows themselves)
    against each draw of the reference other than itself."""
    draws = (cfg.reference, *cfg.target.calibration)
    held_out = {s.name for s in cfg.settings if s.split == "held-out"}
    training = {s.name for s in cfg.settings if s.split == "training"}
    out = []
    # The file's order, then any series the statistics have besides (a notebook's own rows).
    labels = dict.fromkeys([*cfg.labels(), *(s.label for s in stats)])
    for label in labels:
        if label == cfg.reference:
            continue
        per_setting: dict[str, list[bool]] = {}
        families_met: list[bool] = []
        training_met: list[bool] = []
        complete = True
        for draw in draws:
            if draw == label:
                continue
            vs = verdicts(cfg, stats, label, reference=draw)
            complete = complete and all(v.complete for v in vs if v.met is not None)
            met = {v.setting.name: v.met for v in vs if v.met is not None}
            for name, ok in met.items():
                per_setting.setdefault(name, []).append(ok)
            # All at once: only against a draw with a verdict on each setting of the split.
            if held_out and set(met) >= held_out:
                families_met.append(bool(_all_met(family_verdicts(vs))))
            if training and set(met) >= training:
                training_met.append(all(met[name] for name in training))
        if per_setting:
            out.append(DrawStanding(label, {name: (sum(m), len(m)) for name, m in per_setting.items()},
                                    (sum(families_met), len(families_met)),
                                    (sum(training_met), len(training_met)), complete))
    return out


def median_and_range(counts: list[tuple[int, int]]) -> str:
    """Several (met, judged) counts as "median of N (lowest-highest)"; with different numbers
    judged, "median (lowest-highest) of N1-N2". Counts with nothing judged are left out."""
    judged = [(m, n) for m, n in counts if n]
    if not judged:
        return "-"
    met = sorted(m for m, _ in judged)
    half = len(met) // 2
    median = met[half] if len(met) % 2 else (met[half - 1] + met[half]) / 2
    lo, hi = min(n for _, n in judged), max(n for _, n in judged)
    if lo == hi:
        return f"{median:g} of {lo} ({met[0]}-{met[-1]})"
    return f"{median:g} ({met[0]}-{met[-1]}) of {lo}-{hi}"


def _standing_markdown(cfg: EvalConfig, standings: list[DrawStanding]) -> list[str]:
    calibration = [d for d in standings if d.label in cfg.target.calibration]
    others = [d for d in standings if d.label not in cfg.target.calibration]
    rows = len(cfg.target.calibration)
    lines = [f"#### Against each draw of {cfg.reference}", "",
             f"The same target, judged against each draw of {cfg.reference} in turn -- {cfg.reference}'s "
             f"row and its {rows} calibration rows, all {cfg.reference} in distribution -- instead of "
             f"against {cfg.reference}'s row alone: against how many of them a series meets it (of those "
             f"judged). Last column: the {rows} calibration rows themselves, each against the other draws, "
             f"median of the counts (lowest-highest): what a series that decides as {cfg.reference} does "
             "gets." + ("" if all(d.complete for d in standings) else
                         " (incomplete): some counted verdict lacks planned runs."), "",
             "| setting | split | " + " | ".join(d.label for d in others) + " | calibration rows |",
             "|---|---|" + "---|" * len(others) + "---|"]

    def count(pair: tuple[int, int] | None, standing: DrawStanding) -> str:
        if pair is None or pair[1] == 0:
            return "-"
        return f"{pair[0]} of {pair[1]}" + ("" if standing.complete else " (incomplete)")

    for setting in cfg.settings:
        if not any(setting.name in d.per_setting for d in standings):
            continue
        cells = [count(d.per_setting.get(setting.name), d) for d in others]
        cal = median_and_range([d.per_setting[setting.name] for d in calibration if setting.name in d.per_setting])
        lines.append(f"| {setting.name} | {setting.split} | " + " | ".join(cells) + f" | {cal} |")
    at_once = ((f"all {sum(s.split == 'training' for s in cfg.settings)} training settings", "training",
                lambda d: d.all_training),
               (f"all {len({s.scenario for s in cfg.settings if s.split == 'held-out'})} held-out families",
                "held-out", lambda d: d.all_families))
    for name, split, pick in at_once:
        if any(pick(d)[1] for d in standings):
            lines.append(f"| {name} | {split} | " + " | ".join(count(pick(d), d) for d in others)
                         + f" | {median_and_range([pick(d) for d in calibration])} |")
    return lines + [""]


@dataclass(frozen=True)
class RungCheck:
    """A rung policy against the reference on one setting: per RUNG_METRICS the paired
    difference (rung minus reference, seed by seed) with its 95% interval."""

    label: str
    setting: Setting
    deltas: tuple[MeanCI, ...]
    complete: bool

    @property
    def reproduces(self) -> bool | None:
        """True when every interval contains 0 (the seeds cannot tell the two apart on any
        metric); None when an interval is undefined (fewer than two paired seeds)."""
        if any(math.isnan(d.half_width) for d in self.deltas):
            return None
        return all(_contains_zero(d) for d in self.deltas)


def _contains_zero(d: MeanCI) -> bool:
    """Whether a difference's 95% interval contains 0 (an undefined interval counts as yes)."""
    return math.isnan(d.half_width) or abs(d.mean) <= d.half_width


def rung_checks(cfg: EvalConfig, stats: list[SeriesStats]) -> list[RungCheck]:
    """Each rung policy (``cfg.rung``) against the reference, per setting where both ran."""
    out = []
    for label in cfg.rung:
        for setting in cfg.settings:
            pair = _pair(stats, setting, label, cfg.reference)
            if pair is None:
                continue
            rung, ref = pair
            out.append(RungCheck(label, setting, tuple(paired_difference(rung, ref, m) for m in RUNG_METRICS),
                                 complete=_complete(rung, ref)))
    return out


def _rung_markdown(cfg: EvalConfig, label: str, checks: list[RungCheck]) -> list[str]:
    columns_ = [next(c for c in COLUMNS if c.name == m) for m in RUNG_METRICS]
    headers = [c.header for c in columns_]
    lines = [f"#### Sanity rung: {label} against {cfg.reference}", "",
             f"Each metric: {label}'s minus {cfg.reference}'s seed by seed, mean ± 95% interval. The "
             "rung reproduces the reference on a setting when every interval contains 0 (`*`: one that "
             "does not); a wide interval is a weak test, so the widths are shown, and with five "
             "intervals a rung that truly matches fails a setting by chance up to about 23% of the "
             "time (five independent 95% intervals; less when the metrics move together).", "",
             "| setting | split | " + " | ".join(f"Δ {h}" for h in headers) + " | reproduces |",
             "|---|---|" + "---|" * len(headers) + "---|"]
    for c in checks:
        cells = [_signed(d, col.fmt.replace(".0f", ".1f")) + ("" if _contains_zero(d) else " `*`")
                 for d, col in zip(c.deltas, columns_)]
        ok = _mark(c.reproduces) + ("" if c.complete else " (incomplete)")
        lines.append(f"| {c.setting.name} | {c.setting.split} | " + " | ".join(cells) + f" | {ok} |")
    for split in SPLITS:
        mine = [c for c in checks if c.setting.split == split]
        if mine:
            lines.append(f"\nOn the {split} settings it reproduces {cfg.reference} on "
                         f"{sum(c.reproduces is True for c in mine)} of {len(mine)}.")
    return [*lines, ""]


def _signed(d: MeanCI, fmt: str = "{:.2f}") -> str:
    return d.text(fmt.replace("{:", "{:+", 1)).replace("± +", "± ")


def _mark(ok: bool | None) -> str:
    return "-" if ok is None else ("yes" if ok else "**no**")


def markdown(cfg: EvalConfig, stats: list[SeriesStats], command: str) -> str:
    """The evaluation as Markdown: one table per setting, then the target per family."""
    lines = [f"Evaluation `{cfg.name}`: seeds {', '.join(map(str, cfg.seeds))}; mean ± half-width of the 95% "
             "Student-t interval across seeds; statistics over [warmup, duration]. Reproduce: "
             f"`{command}`.", ""]
    for setting in cfg.settings:
        mine = [s for s in stats if s.setting == setting]
        if not mine:
            continue
        params = {**cfg.params, **setting.params}
        desc = ", ".join(f"{k}={v}" for k, v in params.items()) or "scenario defaults"
        lines += [f"#### {setting.name} ({setting.scenario}, {setting.split}): {desc}", "",
                  "| series | runs | " + " | ".join(c.header for c in COLUMNS) + " | wall s |",
                  "|---|---|" + "---|" * len(COLUMNS) + "---|"]
        for s in mine:
            cells = [st.text(c.fmt) for st, c in zip(s.stats, COLUMNS)]
            lines.append(f"| {s.label} | {s.stats[0].n}/{s.planned} | " + " | ".join(cells) + f" | {s.wall_s:.0f} |")
        lines.append("")
    vs = verdicts(cfg, stats)
    if vs:
        # Each calibration row's verdict per setting (empty: no calibration rows in the file).
        cal_verdicts = [verdicts(cfg, stats, label) for label in cfg.target.calibration]
        cal = [{v.setting.name: v for v in row} for row in cal_verdicts]
        header = _calibration_header(cfg)
        tol = cfg.target.utilisation_tolerance
        lines += [f"#### Target: {cfg.target.policy} against {cfg.reference}", "",
                  f"L4S p99 sojourn at most {cfg.reference}'s, classic p99 at most {CLASSIC_P99_FACTOR:g}x, "
                  f"utilisation at least {1 - tol:.0%} of {cfg.reference}'s, loss at most {cfg.reference}'s "
                  f"+ {LOSS_MARGIN_PCT:g} percentage points (means across seeds). L4S p99 Δ: "
                  f"{cfg.target.policy}'s minus {cfg.reference}'s seed by seed (same seed: same traffic "
                  "and link), mean ± 95% interval; an interval that contains 0 means the seeds do not "
                  "tell the two apart." + _calibration_text(cfg), "",
                  "| setting | family | split | L4S p99 ms (ref) | L4S p99 Δ ms, paired | classic p99 ms (ref) "
                  "| util (ref) | loss % (ref) | L4S p99 | classic p99 | util | loss | met |" + header,
                  "|---|---|---|---|---|---|---|---|---|---|---|---|---|" + ("---|" if cal else "")]
        for v in vs:
            met = _mark(v.met) + ("" if v.complete else " (incomplete)")
            lines.append(f"| {v.setting.name} | {v.setting.scenario} | {v.setting.split} | "
                         f"{v.p99[0]:.2f} ({v.p99[1]:.2f}) | {_signed(v.p99_delta)} | "
                         f"{v.classic_p99[0]:.1f} ({v.classic_p99[1]:.1f}) | "
                         f"{v.util[0]:.3f} ({v.util[1]:.3f}) | {v.loss[0]:.3f} ({v.loss[1]:.3f}) | "
                         f"{_mark(v.p99_ok)} | {_mark(v.classic_ok)} | {_mark(v.util_ok)} | {_mark(v.loss_ok)} | {met} |"
                         + (_calibration_cell([c.get(v.setting.name) for c in cal]) if cal else ""))
        families = family_verdicts(vs)
        cal_families = [family_verdicts(list(c.values())) for c in cal]
        if families:
            lines += ["", "| family (held-out settings) | target met |" + header,
                      "|---|---|" + ("---|" if cal else "")]
        for family, ok in families.items():
            lines.append(f"| {family} | {_mark(ok)} |" + (_calibration_cell([c.get(family) for c in cal_families])
                                                          if cal else ""))
        if len(families) > 1:
            # The bar is every held-out family at once: how often a calibration row meets it
            # is the chance that a policy deciding as the reference does is called a success.
            lines.append(f"| all {len(families)} | {_mark(_all_met(families))} |"
                         + (_calibration_cell([_all_met({f: c.get(f) for f in families}) for c in cal_families])
                            if cal else ""))
        lines.append("")
        rs = _resolutions(cfg.settings, cal_verdicts)
        if rs:
            lines += _resolution_markdown(cfg, rs)
        if len(cfg.target.calibration) > 1:
            # With one calibration row the target table's last column already says it all.
            lines += _standing_markdown(cfg, draw_standings(cfg, stats))
    checks = rung_checks(cfg, stats)
    for label in cfg.rung:
        mine = [c for c in checks if c.label == label]
        if mine:
            lines += _rung_markdown(cfg, label, mine)
    return "\n".join(lines)


def _calibration_header(cfg: EvalConfig) -> str:
    labels = cfg.target.calibration
    if not labels:
        return ""
    return f" {labels[0]} met |" if len(labels) == 1 else f" calibration rows met (of {len(labels)}) |"


def _calibration_text(cfg: EvalConfig) -> str:
    labels = cfg.target.calibration
    if not labels:
        return ""
    if len(labels) == 1:
        return (f" Last column: the same target for {labels[0]} against {cfg.reference}, a row that "
                f"is {cfg.reference} in distribution: where it is **no**, the target does not tell {cfg.reference} "
                f"from itself on that setting, and a verdict there for a policy that tracks {cfg.reference} is "
                "the draw's.")
    return (f" Last column: the same target for each of the {len(labels)} rows named as calibration in the "
            f"evaluation file (rows that are {cfg.reference} in distribution), against {cfg.reference}: in how "
            "many it is met. Where that "
            f"count is short of all, the target does not tell {cfg.reference} from itself on that setting, "
            f"and a verdict there for a policy that tracks {cfg.reference} is the draw's: the count is the rate "
            "at which such a policy is called a success.")


def _calibration_cell(outcomes: list[Verdict | bool | None]) -> str:
    """One calibration row: its mark; several: how many met, of those judged. A Verdict counts as
    met when its target is met; None where a row has no verdict."""
    # A row whose target cannot be judged (no verdict, or a term without a value) is not counted.
    known = [o for o in outcomes if o is not None and (o.met if isinstance(o, Verdict) else o) is not None]
    if not known:
        return " - |"
    met = [o.met if isinstance(o, Verdict) else o for o in known]
    incomplete = any(isinstance(o, Verdict) and not o.complete for o in known)
    if len(outcomes) == 1:
        text = _mark(met[0])
    else:
        text = f"{sum(m is True for m in met)} of {len(known)}"
    return f" {text}{' (incomplete)' if incomplete else ''} |"


def _all_met(families: dict[str, bool | None]) -> bool | None:
    """Every family met (None if any verdict is missing)."""
    return None if any(ok is None for ok in families.values()) else all(families.values())


def family_verdicts(vs: list[Verdict]) -> dict[str, bool | None]:
    """Per scenario family: met when every held-out setting of it meets the target."""
    out: dict[str, bool | None] = {}
    for v in vs:
        if v.setting.split != "held-out":
            continue
        prev = out.get(v.setting.scenario, True)
        out[v.setting.scenario] = None if prev is None or v.met is None else prev and v.met
    return out


def csv_rows(stats: list[SeriesStats]) -> list[dict[str, Any]]:
    rows = []
    for s in stats:
        row: dict[str, Any] = {"setting": s.setting.name, "scenario": s.setting.scenario, "split": s.setting.split,
                               "series": s.label, "runs": s.stats[0].n, "planned": s.planned, "wall_s": s.wall_s}
        for c, st in zip(COLUMNS, s.stats):
            row[f"{c.header} mean"] = st.mean
            row[f"{c.header} ci95"] = st.half_width
        rows.append(row)
    return rows
