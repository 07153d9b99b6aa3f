"""results.csv (one row per sample and system), summary.json, report.md and PNG plots."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np

from ..constants import FRAME_SILENCE_DBFS
from .metrics import METRICS

SYSTEM_ORDER = ["ground_truth", "baseline", "fine_tuned"]
COLORS = {"ground_truth": "#7f7f7f", "baseline": "#1f77b4", "fine_tuned": "#d62728"}
LABELS = {"ground_truth": "ground truth\n(ceiling)", "baseline": "baseline", "fine_tuned": "fine-tuned"}
TITLES = {
    "sim": "Speaker similarity to the reference (SIM, higher = closer voice)",
    "wer": "Word error rate (lower = more intelligible)",
    "cer": "Character error rate (lower = better)",
    "duration_ratio": "Duration / target duration (1 = same length)",
    "leading_silence_s": "Leading silence, s",
    "trailing_silence_s": "Trailing silence, s",
    "clipped_fraction": "Clipped samples, fraction",
}
CSV_COLUMNS = [
    "index",
    "system",
    "speaker",
    "language",
    "sim",
    "sim_other_speaker",
    "wer",
    "cer",
    "duration_s",
    "duration_ratio",
    "stopped_at_eos",
    "leading_silence_s",
    "trailing_silence_s",
    "clipped_fraction",
    "peak",
    "max_new_tokens",
    "generation_s",
    "wav",
    "target_text",
    "transcript",
    "reference_audio",
    "error",
]


def _values(rows: list[dict], system: str, key: str) -> list[float]:
    return [
        float(r[key]) for r in rows if r["system"] == system and r.get(key) is not None and math.isfinite(float(r[key]))
    ]


def _stats(values: list[float]) -> dict | None:
    if not values:
        return None
    a = np.asarray(values)
    return {
        "mean": round(float(a.mean()), 4),
        "median": round(float(np.median(a)), 4),
        "min": round(float(a.min()), 4),
        "max": round(float(a.max()), 4),
        "n": len(values),
    }


def systems_in(rows: list[dict]) -> list[str]:
    present = {r["system"] for r in rows}
    return [s for s in SYSTEM_ORDER if s in present] + sorted(present - set(SYSTEM_ORDER))


def summarize(rows: list[dict]) -> dict:
    summary = {}
    for system in systems_in(rows):
        mine = [r for r in rows if r["system"] == system]
        entry = {"samples": len(mine)}
        for key in METRICS:
            entry[key] = _stats(_values(rows, system, key))
        stops = [r["stopped_at_eos"] for r in mine if r.get("stopped_at_eos") is not None]
        entry["eos_rate"] = round(sum(stops) / len(stops), 4) if stops else None
        words = sum(r.get("ref_words") or 0 for r in mine if r.get("wer") is not None)
        errors = sum(r.get("word_errors") or 0 for r in mine if r.get("wer") is not None)
        entry["wer_corpus"] = round(errors / words, 4) if words else None
        if system == "ground_truth":
            entry["sim_other_speaker"] = _stats(_values(rows, system, "sim_other_speaker"))
        summary[system] = entry
    return summary


def paired(rows: list[dict], key: str, better: str, a: str = "fine_tuned", b: str = "baseline") -> dict | None:
    """Per-sample comparison of system a against b on one metric: mean difference and wins."""
    va = {r["index"]: r.get(key) for r in rows if r["system"] == a}
    vb = {r["index"]: r.get(key) for r in rows if r["system"] == b}
    both = [(va[i], vb[i]) for i in va if i in vb and va[i] is not None and vb[i] is not None]
    if not both:
        return None
    diffs = np.asarray([x - y for x, y in both], dtype=float)
    wins = int((diffs > 0).sum() if better == "higher" else (diffs < 0).sum())
    return {
        "mean_difference": round(float(diffs.mean()), 4),
        "wins": wins,
        "ties": int((diffs == 0).sum()),
        "samples": len(both),
    }


def write_csv(rows: list[dict], path: Path) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in CSV_COLUMNS})


def plot_metrics(rows: list[dict], path: Path) -> Path:
    """One panel per metric: every clip as a dot, the mean as a bar, one column per system."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    systems = systems_in(rows)
    keys = [
        k
        for k in ("sim", "wer", "cer", "duration_ratio", "leading_silence_s", "trailing_silence_s")
        if any(_values(rows, s, k) for s in systems)
    ]
    panels = keys + ["eos_rate"]
    ncols = 3
    nrows = math.ceil(len(panels) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.2 * ncols, 3.8 * nrows), squeeze=False)
    rng = np.random.default_rng(0)
    for ax, key in zip(axes.flat, panels):
        if key == "eos_rate":
            names = [s for s in systems if s != "ground_truth"]
            summary = summarize(rows)
            rates = [summary[s]["eos_rate"] or 0.0 for s in names]
            ax.bar(range(len(names)), rates, color=[COLORS.get(s, "#2ca02c") for s in names], width=0.6)
            for x, r in enumerate(rates):
                ax.text(x, r + 0.02, f"{100 * r:.0f}%", ha="center")
            ax.set_xticks(range(len(names)), [LABELS.get(s, s) for s in names])
            ax.set_ylim(0, 1.12)
            ax.set_title("Reached the stream EOS (higher = stops by itself)", fontsize=10)
            continue
        for x, system in enumerate(systems):
            values = _values(rows, system, key)
            if not values:
                continue
            jitter = rng.uniform(-0.15, 0.15, len(values))
            color = COLORS.get(system, "#2ca02c")
            ax.scatter(x + jitter, values, s=18, alpha=0.6, color=color, zorder=3)
            mean = float(np.mean(values))
            ax.hlines(mean, x - 0.3, x + 0.3, color=color, linewidth=3, zorder=4)
            ax.annotate(f"{mean:.2f}", (x + 0.32, mean), va="center", fontsize=9, color=color)
        if key == "duration_ratio":
            ax.axhline(1.0, color="black", linewidth=0.8, linestyle="--")
        floor = _values(rows, "ground_truth", "sim_other_speaker") if key == "sim" else []
        if floor:
            ax.axhline(float(np.mean(floor)), color="black", linewidth=0.8, linestyle=":")
            ax.annotate("another speaker", (-0.55, float(np.mean(floor))), va="bottom", fontsize=8)
        ax.set_xticks(range(len(systems)), [LABELS.get(s, s) for s in systems])
        ax.set_xlim(-0.6, len(systems) - 0.2)
        ax.set_title(TITLES[key], fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    fig.suptitle("Per-clip metrics (dots) and means (bars)", fontsize=12)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_paired(rows: list[dict], path: Path) -> Path | None:
    """Fine-tuned against baseline, sample by sample: dots above the diagonal = fine-tuned scored higher."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [k for k in ("sim", "wer") if paired(rows, k, METRICS[k])]
    if not keys:
        return None
    fig, axes = plt.subplots(1, len(keys), figsize=(5 * len(keys), 4.6), squeeze=False)
    for ax, key in zip(axes.flat, keys):
        va = {r["index"]: r.get(key) for r in rows if r["system"] == "fine_tuned"}
        vb = {r["index"]: r.get(key) for r in rows if r["system"] == "baseline"}
        idx = [i for i in va if i in vb and va[i] is not None and vb[i] is not None]
        x = np.asarray([vb[i] for i in idx], dtype=float)
        y = np.asarray([va[i] for i in idx], dtype=float)
        lo, hi = float(min(x.min(), y.min())), float(max(x.max(), y.max()))
        pad = 0.05 * (hi - lo or 1.0)
        ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], color="black", linewidth=0.8, linestyle="--")
        better = y > x if METRICS[key] == "higher" else y < x
        ax.scatter(x[better], y[better], color=COLORS["fine_tuned"], label="fine-tuned better", zorder=3)
        ax.scatter(x[~better], y[~better], color=COLORS["baseline"], label="baseline better or tie", zorder=3)
        ax.set_xlim(lo - pad, hi + pad)
        ax.set_ylim(lo - pad, hi + pad)
        ax.set_xlabel(f"baseline {key.upper()}")
        ax.set_ylabel(f"fine-tuned {key.upper()}")
        ax.set_title(f"{key.upper()} per sample ({METRICS[key]} is better)", fontsize=10)
        ax.legend(fontsize=8, loc="best")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _fmt(stat: dict | None, key: str = "mean", pct: bool = False) -> str:
    if not stat:
        return "–"
    value = stat[key] if isinstance(stat, dict) else stat
    return f"{100 * value:.1f}%" if pct else f"{value:.3f}"


def render_markdown(summary: dict, comparisons: dict, settings: dict, plots: list[str], rows: list[dict]) -> str:
    systems = list(summary)
    header = "| metric | better | " + " | ".join(LABELS.get(s, s).replace("\n", " ") for s in systems) + " |"
    lines = [
        "# Voice-cloning evaluation",
        "",
        f"- data: `{settings.get('data')}` ({summary[systems[0]]['samples']} samples)",
        f"- fine-tuned: `{settings.get('model_path')}`"
        + (f" + adapter `{settings['lora_path']}`" if settings.get("lora_path") else ""),
        f"- baseline: `{settings.get('baseline_model') or 'none'}`",
        f"- speaker encoder: `{settings.get('speaker_encoder') or 'none'}`; ASR: `{settings.get('asr') or 'none'}`;"
        f" language: {settings.get('language')}",
        f"- generation: temperature {settings.get('temperature')}, top_k {settings.get('top_k')}, top_p {settings.get('top_p')},"
        f" seed {settings.get('seed')} + sample index (the same for both models), at most"
        f" {settings.get('max_length_ratio')} x the target's length / {settings.get('max_new_tokens')} tokens",
        "",
        "## Summary (means over samples)",
        "",
        header,
        "|" + "---|" * (len(systems) + 2),
    ]
    names = {
        "sim": "SIM",
        "wer": "WER",
        "cer": "CER",
        "duration_ratio": "duration ratio",
        "leading_silence_s": "leading silence (s)",
        "trailing_silence_s": "trailing silence (s)",
        "clipped_fraction": "clipped samples",
    }
    for key, better in METRICS.items():
        cells = [_fmt(summary[s][key], pct=key in ("wer", "cer", "clipped_fraction")) for s in systems]
        lines.append(f"| {names[key]} | {better} | " + " | ".join(cells) + " |")
    floor = summary.get("ground_truth", {}).get("sim_other_speaker")
    if floor:
        lines.append(
            "| SIM of another speaker's recording (floor) | – | "
            + " | ".join(_fmt(floor) if s == "ground_truth" else "" for s in systems)
            + " |"
        )
    lines.append(
        "| WER over all words | lower | "
        + " | ".join(
            "–" if summary[s]["wer_corpus"] is None else f"{100 * summary[s]['wer_corpus']:.1f}%" for s in systems
        )
        + " |"
    )
    lines.append(
        "| reached stream EOS | higher | "
        + " | ".join("–" if summary[s]["eos_rate"] is None else f"{100 * summary[s]['eos_rate']:.0f}%" for s in systems)
        + " |"
    )
    if comparisons:
        lines += ["", "## Fine-tuned against baseline, sample by sample", ""]
        for key, c in comparisons.items():
            if c:
                lines.append(
                    f"- {names[key]}: fine-tuned better on {c['wins']} of {c['samples']} samples"
                    f" (ties {c['ties']}), mean difference {c['mean_difference']:+.3f} ({METRICS[key]} is better)"
                )
    lines += ["", "## Plots", ""] + [f"![{p}]({p})" for p in plots]
    lines += [
        "",
        "## How to read this",
        "",
        "- SIM is the cosine similarity of speaker embeddings of the generated clip and the reference clip;"
        " the ground-truth row (the real target recording against the same reference) is the ceiling a"
        " perfect clone would reach with this encoder; the floor row is what a real recording of another speaker"
        " in this set scores against the same reference. Values depend on the encoder: compare rows, not papers.",
        "- WER/CER compare the ASR transcript of each clip with the target text after normalisation"
        " (Arabic: no diacritics or tatweel, alef/ya/ta-marbuta unified; English: lower case, no punctuation)."
        " The ground-truth row is the ASR's own error on real speech: a system cannot be judged more precisely"
        " than that floor. Samples in a language the ASR does not cover have no WER.",
        "- Duration ratio far from 1 and a low EOS rate mean the model rambles or stops early; clips that never"
        " reached the EOS were cut at the token cap above.",
        f"- Silence is measured with a {FRAME_SILENCE_DBFS:g} dBFS threshold on 10 ms frames; clipping counts samples at"
        " full scale.",
        "",
        "## Per sample",
        "",
        "| # | system | SIM | WER | dur. ratio | EOS | transcript | audio |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:

        def num(k):
            return "–" if r.get(k) is None else f"{r[k]:.3f}"

        eos = "" if r.get("stopped_at_eos") is None else ("yes" if r["stopped_at_eos"] else "no")
        transcript = (r.get("transcript") or "").replace("|", "/")
        lines.append(
            f"| {r['index']} | {r['system']} | {num('sim')} | {num('wer')} | {num('duration_ratio')} | {eos}"
            f" | {transcript} | [wav]({r['wav']}) |"
        )
    return "\n".join(lines) + "\n"


def write_report(rows: list[dict], settings: dict, out: Path) -> Path:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_csv(rows, out / "results.csv")
    summary = summarize(rows)
    comparisons = {k: paired(rows, k, METRICS[k]) for k in ("sim", "wer", "cer")}
    comparisons = {k: v for k, v in comparisons.items() if v}
    (out / "summary.json").write_text(
        json.dumps(
            {"settings": settings, "systems": summary, "fine_tuned_vs_baseline": comparisons},
            indent=2,
            ensure_ascii=False,
        )
        + "\n",
        encoding="utf-8",
    )
    plots = [plot_metrics(rows, out / "metrics.png").name]
    pair_plot = plot_paired(rows, out / "paired.png")
    if pair_plot:
        plots.append(pair_plot.name)
    report = out / "report.md"
    report.write_text(render_markdown(summary, comparisons, settings, plots, rows), encoding="utf-8")
    return report
