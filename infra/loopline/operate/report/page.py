"""The report as one self-contained HTML file: figures as inline PNGs, tables, and the recorded numbers embedded
as JSON (so a reader, or a test, can check every figure against what the functions measured)."""

from __future__ import annotations

import base64
import html
import io
import json
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import matplotlib
from matplotlib.figure import Figure

from loopline.operate.report import figures
from loopline.operate.report.sources import ModelReportInputs, MonitoringReportInputs, alarm_distance_text
from loopline_runtime.config import higher_is_better

MAX_DISTRIBUTIONS = 12  # feature distributions drawn per monitoring run: the drifted ones first, then by PSI


@dataclass(frozen=True)
class DrawnFigure:
    name: str  # stable id: data-figure="<name>" in the page
    caption: str
    figure: Figure


def model_figures(inputs: ModelReportInputs) -> list[DrawnFigure]:
    """The figures of a model's report, in page order."""
    numbers = inputs.numbers or {}
    drawn: list[DrawnFigure] = []
    if classification := numbers.get("classification"):
        drawn += [
            DrawnFigure("confusion-matrix", "Holdout rows by actual and predicted class.",
                        figures.confusion_matrix(classification)),
            DrawnFigure("roc", "True against false positive rate over all thresholds.",
                        figures.roc_curves(classification)),
            DrawnFigure("precision-recall", "Precision against recall over all thresholds.",
                        figures.precision_recall_curves(classification)),
            DrawnFigure("calibration", "Predicted probability against observed frequency, ten bins.",
                        figures.calibration(classification)),
        ]
    if regression := numbers.get("regression"):
        drawn += [
            DrawnFigure("predicted-vs-actual", "Each holdout row: predicted against actual value.",
                        figures.predicted_vs_actual(regression)),
            DrawnFigure("residuals", "Actual minus predicted, against the prediction and as a histogram.",
                        figures.residuals(regression)),
        ]
    if importance := numbers.get("permutation_importance"):
        drawn.append(DrawnFigure("permutation-importance", "How much the metric drops when a feature is shuffled.",
                                 figures.permutation_importance(importance)))
    return drawn


def monitoring_figures(inputs: MonitoringReportInputs) -> list[DrawnFigure]:
    run = inputs.run
    drawn = [DrawnFigure("metric-vs-champion", "This champion's measured metric per run, against its holdout score "
                         "and the alarm threshold.", figures.metric_against_champion(inputs.recent_runs, run))]
    drift = {f["name"]: f for f in run.get("drift", {}).get("features", [])}
    for name in _features_to_draw(run):
        drawn.append(DrawnFigure(f"distribution-{_slug(name)}", f"{name}: training and batch shares per bin.",
                                 figures.feature_distribution(name, run["distributions"][name], drift.get(name))))
    return drawn


def _plain_text() -> AbstractContextManager[None]:
    """Feature names and versions are text, never matplotlib math: `cost_$_usd_$` is drawn as written (mathtext
    would fail on it). Set around drawing and saving both: tick labels are laid out when a figure is saved."""
    return matplotlib.rc_context({"text.parse_math": False, "text.usetex": False})


def render_model_page(inputs: ModelReportInputs, *, progress: Callable[[str], None] = lambda _: None) -> str:
    with _plain_text():
        return _model_page(inputs, progress)


def render_monitoring_page(inputs: MonitoringReportInputs, *, progress: Callable[[str], None] = lambda _: None) -> str:
    with _plain_text():
        return _monitoring_page(inputs, progress)


def _model_page(inputs: ModelReportInputs, progress: Callable[[str], None]) -> str:
    manifest, evaluation, numbers = inputs.manifest, inputs.evaluation, inputs.numbers
    serving = bool(inputs.pointer and inputs.pointer.get("version") == inputs.version)
    progress(f"drawing the figures of {inputs.version}")
    drawn = model_figures(inputs)
    sections = [
        _section("summary", "Summary", _definition_list([
            ("model version", inputs.version + ("  (serving)" if serving else "")),
            ("pipeline", manifest.get("pipeline")), ("task", manifest.get("task")),
            ("target", manifest.get("target")), ("estimator", manifest.get("estimator")),
            ("metric", manifest.get("metric")), ("holdout score", _num(manifest.get("holdout_score"))),
            ("cross-validated score", _num(manifest.get("cv_score"))),
            ("registered", _when(manifest.get("registered_at"))),
        ])),
        _section("gate", "Gate decision", _gate(evaluation, promoted=any(
            record.get("version") == inputs.version for record in inputs.history))),
    ]
    if numbers is None:
        sections.append(_section("figures", "Figures", "<p>No report numbers were recorded for this version "
                                                       "(trained before reports existed).</p>"))
    elif "error" in numbers:
        sections.append(_section("figures", "Figures", f"<p>The numbers could not be computed: "
                                                       f"{_e(numbers['error'])}</p>"))
    else:
        sections.append(_section("figures", "Holdout evaluation",
                                 f"<p>{_e(numbers.get('rows'))} holdout rows.</p>"
                                 + "".join(_figure_html(d) for d in drawn if d.name != "permutation-importance")))
        importance = [d for d in drawn if d.name == "permutation-importance"]
        sections.append(_section("importance", "Feature importance",
                                 "".join(_figure_html(d) for d in importance)
                                 + _importance_table(numbers.get("permutation_importance"))))
    sections += [
        _section("leaderboard", "Model search leaderboard", _leaderboard(manifest)),
        _section("lineage", "Lineage", _lineage(manifest)),
        _section("history", "Champion history", _history(inputs)),
    ]
    recorded = {"manifest": _without(manifest, "training_profile"), "evaluation": evaluation, "numbers": numbers,
                "history": inputs.history}
    return _page(f"Model report {inputs.version}", sections, recorded)


def _monitoring_page(inputs: MonitoringReportInputs, progress: Callable[[str], None]) -> str:
    run = inputs.run
    progress(f"drawing the figures of {inputs.key}")
    drawn = monitoring_figures(inputs)
    holdout = run.get("champion_holdout_score")
    drop = f" ({run['value'] - holdout:+.4f} against the champion's holdout score)" if holdout is not None else ""
    sections = [
        _section("summary", "Summary", _definition_list([
            ("monitoring run", inputs.key), ("measured", _when(run.get("measured_at"))), ("reason", run.get("reason")),
            ("champion", run.get("champion_version")), ("dataset version", run.get("dataset_version")),
            ("labeled rows", run.get("rows")),
            (f"{run['metric']} on this batch", f"{_num(run['value'])}{drop}"),
            ("champion's holdout score", _num(holdout)),
            ("alarm line", _alarm_line(run)), ("alarm", _alarm_verdict(run)),
            ("estimated without labels", _estimate_line(run)),
            ("retraining", _retraining_line(run, inputs.retraining)),
            ("drifted features", f"{len(run.get('drift', {}).get('drifted', []))} of "
                                 f"{len(run.get('drift', {}).get('features', []))}"),
        ])),
        _section("metric", "Every metric against the champion's holdout", _figure_html(drawn[0]) + _scores_table(run)),
        _section("drift", "Drift per feature", _drift_table(run) + _skipped_table(inputs.champion_manifest)),
        _section("distributions", "Distributions: training against this batch",
                 "".join(_figure_html(d) for d in drawn[1:]) or "<p>No distributions recorded for this run.</p>"),
    ]
    recorded = {"run": run, "recent_runs": [
        {k: r.get(k) for k in ("measured_at", "metric", "value", "champion_version")} for r in inputs.recent_runs]}
    title = (f"Monitoring report: champion {run.get('champion_version')} on {run.get('dataset_version')}, "
             f"{_when(run.get('measured_at'))}")
    return _page(title, sections, recorded)


# ------------------------------------------------------------------------------------------------ sections
def _gate(evaluation: dict[str, Any] | None, *, promoted: bool) -> str:
    """The gate's decision, and what came of it: promoted only when a promotion of this version is on record."""
    if evaluation is None:
        return "<p>Not gated yet.</p>"
    if promoted:
        verdict, style = "promoted", "promoted"
    elif evaluation.get("promote") and evaluation.get("approval_required"):
        verdict, style = "passed the gate, awaiting approval", "pending"
    elif evaluation.get("promote"):
        verdict, style = "passed the gate, not promoted", "pending"
    else:
        verdict, style = "rejected", "rejected"
    rows = [("decision", verdict), ("metric", evaluation.get("metric")),
            ("challenger score", _num(evaluation.get("challenger_score"))),
            ("gate threshold", _num(evaluation.get("gate_threshold"))),
            ("passes the gate", evaluation.get("passes_gate")),
            ("champion at the time", evaluation.get("champion_version") or "none"),
            ("champion's score on the same rows", _num(evaluation.get("champion_score"))),
            ("beats the champion", evaluation.get("beats_champion")), ("evaluated", evaluation.get("evaluated_at"))]
    regime = evaluation.get("regime") or {}
    if regime:  # a run started by the alarm: judged on the batches that breached and on the rest
        rows[-1:-1] = [
            ("batches that breached the alarm", ", ".join(regime.get("breached_versions", [])) or "none"),
            ("on them (holdout rows)", f"challenger {_num(regime.get('challenger_recent'))} vs champion "
                                       f"{_num(regime.get('champion_recent'))} ({regime.get('recent_rows')} rows)"),
            ("on the rest of the holdout", f"challenger {_num(regime.get('challenger_rest'))} vs champion "
                                           f"{_num(regime.get('champion_rest'))} ({regime.get('rest_rows')} rows, "
                                           f"margin {_num(regime.get('margin'))})"),
            *([("note", regime["note"])] if regime.get("note") else []),
        ]
    shadow = evaluation.get("shadow") or {}
    if shadow:  # gate.shadow: judged on live labeled traffic before serving
        if shadow.get("status") == "active" and not promoted:
            verdict, style = "passed the gate, in shadow on live traffic", "pending"
        rows[-1:-1] = [
            ("shadow", f"{shadow.get('status')} (started {shadow.get('started_at')}, decided by "
                       f"{shadow.get('decided_by') or '-'} {shadow.get('ended_at') or ''})"),
            ("on live labeled rows", f"challenger {_num(shadow.get('shadow_live_score'))} vs champion "
                                     f"{_num(shadow.get('champion_live_score'))} ({shadow.get('rows', 0)} rows, "
                                     f"at least {shadow.get('min_rows')})"),
            *[("shadow decision", reason) for reason in shadow.get("reasons") or []],
        ]
    reasons = "".join(f"<li>{_e(r)}</li>" for r in evaluation.get("reasons", []))
    return (f'<p class="verdict {style}">{_e(verdict.upper())}</p>' + _definition_list(rows)
            + f"<h3>Reasons</h3><ul class=\"reasons\">{reasons}</ul>"
            + "<h3>All holdout scores</h3>" + _table(["metric", "score"], [
                (k, _num(v)) for k, v in sorted(evaluation.get("challenger_scores", {}).items())]))


def _importance_table(importance: dict[str, Any] | None) -> str:
    if not importance:
        return ""
    rows = [(f, f"{m:.4f}", f"{s:.4f}") for f, m, s in
            zip(importance["features"], importance["mean"], importance["std"], strict=True)]
    return _table(["feature", "mean drop", "sd"], rows)


def _leaderboard(manifest: dict[str, Any]) -> str:
    board = manifest.get("leaderboard", [])
    if not board:
        return "<p>No leaderboard recorded.</p>"
    rows = [(str(i + 1), e.get("candidate"), json.dumps(e.get("params", {}), sort_keys=True),
             _num(e.get("cv_score")), f"{e.get('elapsed_seconds', 0):.1f} s", e.get("error", ""))
            for i, e in enumerate(board)]
    how = ("scored by successive halving (more rows for fewer settings at each rung) in a sample of"
           if manifest.get("search_method") == "successive_halving" else "cross-validated on")
    note = (f"<p>{len(board)} settings {how} {_e(manifest.get('search_rows'))} rows "
            f"(budget {_e(manifest.get('search_budget_seconds'))} s"
            f"{', exhausted' if manifest.get('search_budget_exhausted') else ''}); the winner was refit on all "
            f"{_e(manifest.get('training_rows'))} training rows.</p>")
    return note + _table(["rank", "candidate", "settings", f"cv {manifest.get('metric')}", "elapsed", "error"], rows)


def _lineage(manifest: dict[str, Any]) -> str:
    artifact = manifest.get("artifact", {})
    rows = [("dataset versions", ", ".join(manifest.get("dataset_versions", []))),
            ("training rows", manifest.get("training_rows")), ("holdout rows", manifest.get("holdout_rows")),
            ("search rows", manifest.get("search_rows")), ("seed", manifest.get("seed")),
            ("trigger", json.dumps(manifest.get("trigger", {}), sort_keys=True)),
            ("chosen settings", json.dumps(manifest.get("params", {}), sort_keys=True)),
            ("features", ", ".join(f"{k} ({v})" for k, v in manifest.get("schema", {}).get("features", {}).items())),
            ("artifact", f"{artifact.get('key')}  sha256 {artifact.get('sha256')}  {artifact.get('bytes')} bytes"),
            ("training time", f"{manifest.get('training_seconds')} s")]
    rows += [(name, version) for name, version in sorted(manifest.get("libraries", {}).items())]
    return _definition_list(rows)


def _history(inputs: ModelReportInputs) -> str:
    if not inputs.history:
        return "<p>This version has not served.</p>"
    rows = [(_when(r.get("promoted_at")), r.get("version"), r.get("previous_version") or "", r.get("reason"),
             r.get("requested_by", ""), r.get("note", "")) for r in inputs.history]
    return _table(["when", "champion", "replaced", "reason", "by", "note"], rows)


def _scores_table(run: dict[str, Any]) -> str:
    """Every metric on this batch next to the champion's holdout value; the configured one decides the alarm."""
    table = run.get("metrics") or {name: {"value": value} for name, value in run.get("scores", {}).items()}
    rows = [(name, _num(entry.get("value")), _num(entry.get("holdout")), _num(entry.get("drop")),
             "decides the alarm" if name == run.get("metric") else "recorded")
            for name, entry in sorted(table.items())]
    return _table(["metric", "on this batch", "champion's holdout", "drop (positive is worse)", "role"], rows)


def _alarm_line(run: dict[str, Any]) -> str:
    """Where the alarm fires, and how it is derived: holdout minus max_drop, or the absolute threshold."""
    line = run.get("alarm_line")
    if line is None:
        return _num(run.get("alarm_threshold"))
    metric = run.get("metric", "")
    if run.get("alarm_max_drop") is not None:
        holdout, max_drop = run.get("reference_score"), run["alarm_max_drop"]
        how = (f"holdout {_num(holdout)} - max_drop {_num(max_drop)}" if higher_is_better(metric)
               else f"holdout {_num(holdout)} + {max_drop:.0%}")
        return f"{metric} {_num(line)} ({how})"
    return f"{metric} {_num(line)} (alarm.threshold)"


def _alarm_verdict(run: dict[str, Any]) -> str:
    distance = alarm_distance_text(run)
    before = run.get("alarm_state_before")
    if not run.get("alarm_breached"):
        return f"not breached ({distance})" if distance else "not breached"
    fired = ("already in ALARM before: this measurement started the retraining itself" if before == "ALARM"
             else "breached: the alarm goes to ALARM and its EventBridge rule starts a retraining")
    return f"{fired} ({distance})" if distance else fired


def _estimate_line(run: dict[str, Any]) -> str:
    estimate = run.get("estimate")
    if not estimate or run.get("estimated_value") is None:
        return "not estimated (a regressor, or a champion without a recorded calibration)"
    trust = "trusted" if estimate.get("trusted") else "not to be trusted: " + "; ".join(estimate.get("reasons", []))
    return (f"{run['metric']} {_num(run['estimated_value'])} estimated from the probabilities vs "
            f"{_num(run.get('value'))} measured with the labels ({trust})")


def _retraining_line(run: dict[str, Any], retraining: dict[str, Any] | None) -> str:
    if not run.get("alarm_breached"):
        return "none (the alarm line was not crossed)"
    if retraining is None:
        started = run.get("retraining_execution")
        return f"started: {started}" if started else "none on record yet (started by the alarm, or still training)"
    text = f"{retraining['version']} ({retraining['reason']}): {retraining['outcome'].upper()}"
    regime = retraining.get("regime") or {}
    if "challenger_recent" in regime:
        text += (f"; on the batches that breached {_num(regime['challenger_recent'])} vs the old champion's "
                 f"{_num(regime['champion_recent'])}, on the rest {_num(regime.get('challenger_rest'))} vs "
                 f"{_num(regime.get('champion_rest'))} (margin {_num(regime.get('margin'))})")
    if retraining["outcome"] == "rejected" and retraining.get("reasons"):
        text += "; " + "; ".join(retraining["reasons"])
    return text


def _skipped_table(manifest: dict[str, Any] | None) -> str:
    skipped = ((manifest or {}).get("training_profile") or {}).get("skipped") or {}
    if not skipped:
        return ""
    return "<h3>Features not checked for drift</h3>" + _table(["feature", "why"], sorted(skipped.items()))


def _drift_table(run: dict[str, Any]) -> str:
    drift = run.get("drift", {})
    features = sorted(drift.get("features", []), key=lambda f: (not f.get("drifted"), -(f.get("psi") or 0)))
    rule = drift.get("rule", {})
    note = (f"<p>A feature drifts when its test gives p &lt; {_e(rule.get('p_value'))}, or PSI &gt; "
            f"{_e(rule.get('psi_threshold'))} on a batch of at least {_e(rule.get('min_psi_rows'))} rows.</p>")
    rows = [(f["name"], f["kind"], _num(f.get("psi")), f.get("test") or "", _num(f.get("p_value")),
             "DRIFTED" if f.get("drifted") else "", "; ".join(f.get("notes", []))) for f in features]
    return note + _table(["feature", "kind", "PSI", "test", "p", "verdict", "notes"], rows)


def _features_to_draw(run: dict[str, Any]) -> list[str]:
    distributions = run.get("distributions", {})
    features = sorted(run.get("drift", {}).get("features", []),
                      key=lambda f: (not f.get("drifted"), -(f.get("psi") or 0)))
    return [f["name"] for f in features if f["name"] in distributions][:MAX_DISTRIBUTIONS]


# ------------------------------------------------------------------------------------------------ HTML
_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2rem auto;max-width:1100px;color:#222;
padding:0 1rem}
h1{font-size:1.5rem}h2{border-bottom:1px solid #ddd;padding-bottom:.2rem;margin-top:2rem}
dl{display:grid;grid-template-columns:max-content auto;gap:.2rem 1rem}dt{font-weight:600}dd{margin:0}
table{border-collapse:collapse;font-size:.9rem;margin:.5rem 0}td,th{border:1px solid #ddd;padding:.2rem .5rem;
text-align:left;vertical-align:top}th{background:#f4f4f4}
figure{display:inline-block;margin:.5rem;vertical-align:top}figure img{max-width:100%}
figcaption{font-size:.85rem;color:#555;max-width:520px}
.verdict{font-weight:700;font-size:1.2rem}.promoted{color:#1a7f37}.rejected{color:#c62828}.pending{color:#9a6700}
footer{margin-top:3rem;font-size:.8rem;color:#777}
"""

# Marks the page once every figure has decoded: the headless-browser check reads this from the DOM.
_RENDER_CHECK = """
window.addEventListener("load", function () {
  var images = Array.prototype.slice.call(document.images);
  var drawn = images.filter(function (i) { return i.complete && i.naturalWidth > 0; });
  document.body.setAttribute("data-figures-rendered", drawn.length + "/" + images.length);
});
"""


def _page(title: str, sections: list[str], recorded: dict[str, Any]) -> str:
    # inside <script> no "<" may appear ("<!--<script>" would swallow the page, "</script>" end the block): JSON's
    # own escapes keep the value the same
    numbers = (json.dumps(recorded, sort_keys=True, default=str)
               .replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026"))
    generated = _when(datetime.now(UTC).isoformat())
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{_e(title)}</title>"
            f"<style>{_STYLE}</style></head><body><h1>{_e(title)}</h1>{''.join(sections)}"
            f"<footer>Generated by <code>loopline report</code> at {generated} from the numbers the functions "
            f"recorded (embedded below as JSON).</footer>"
            f"<script type=\"application/json\" id=\"recorded-numbers\">{numbers}</script>"
            f"<script>{_RENDER_CHECK}</script></body></html>\n")


def _figure_html(drawn: DrawnFigure) -> str:
    buffer = io.BytesIO()
    drawn.figure.savefig(buffer, format="png", dpi=100)
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return (f'<figure id="figure-{drawn.name}" data-figure="{drawn.name}"><img alt="{_e(drawn.caption)}" '
            f'src="data:image/png;base64,{data}"><figcaption>{_e(drawn.caption)}</figcaption></figure>')


def _section(anchor: str, title: str, body: str) -> str:
    return f'<section id="{anchor}"><h2>{_e(title)}</h2>{body}</section>'


def _definition_list(rows: list[tuple[str, Any]]) -> str:
    return "<dl>" + "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in rows) + "</dl>"


def _table(header: list[str], rows: list[tuple[Any, ...]]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _when(value: Any) -> str:
    """An ISO timestamp as a person reads it: the reader's local time, to the second, with its zone."""
    if not value:
        return "-"
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        return str(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)  # the functions record UTC
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")


def _num(value: Any) -> str:
    return "-" if value is None else f"{float(value):.4f}"


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-")


def _without(mapping: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v for k, v in mapping.items() if k not in keys}
