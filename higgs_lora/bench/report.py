"""gpu-check's report: the device block, and the table printed at the end."""

from __future__ import annotations

import math

import torch


def device_info(device: str) -> dict:
    info = {"device": device, "torch": torch.__version__}
    if device.startswith("cuda"):
        props = torch.cuda.get_device_properties(torch.device(device))
        info.update(name=props.name, memory_gb=round(props.total_memory / 2**30, 1), cuda=torch.version.cuda)
    else:
        info.update(name="cpu", threads=torch.get_num_threads())
    import transformers

    info["transformers"] = transformers.__version__
    return info


def _fmt(v, spec=""):
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return format(v, spec)


def table(report: dict) -> str:
    d = report["device"]
    lines = [
        f"gpu-check ({report['shape']} shape, {report['parameters']['total']:,} params, {report['precision']}) "
        f"on {d.get('name')}: {report['total_s']} s"
    ]
    if report["train"]:
        lines.append(f"{'train':<26}{'step s':>8}{'tok/s':>9}{'samp/s':>8}{'peak GB':>9}{'TFLOP/s':>9}{'MFU':>7}")
    for r in report["train"]:
        if "median_step_s" not in r:
            lines.append(f"{r.get('phase', '?'):<26}FAILED: {r.get('error', '')[:90]}")
            continue
        lines.append(
            f"{r['phase']:<26}{r['median_step_s']:>8.3f}{r['tokens_per_s']:>9,}{r['samples_per_s']:>8.2f}"
            f"{_fmt(r['peak_memory_gb'], '.1f'):>9}{r['tflops']:>9.1f}{_fmt(r['mfu'], '.1%'):>7}"
        )
    inf = report.get("infer")
    if inf:
        lines.append(
            "infer: FAILED: " + inf["error"][:90]
            if "error" in inf
            else f"infer ({inf['adapter']} {inf['adapter_dtype']} adapter on {inf['base_dtype']}, {inf['cache']} cache"
            f"{', CUDA graphs' if inf['cuda_graphs'] else ''}): {inf['generated_columns']} columns in "
            f"{inf['seconds']} s = {inf['columns_per_s']} columns/s, {inf['realtime_factor']}x real time; "
            f"{inf['codec']} decode of {inf['decoded_columns']} columns {inf['decode_seconds']} s"
        )
    if report.get("attention"):
        lines.append(f"attention: {report['attention']}")
    al = report.get("alignment")
    if al:
        if "error" in al:
            lines.append("alignment: FAILED: " + al["error"][:90])
        else:
            s = al["settings"] or {}
            lines.append(
                f"alignment: {'OK' if al['ok'] else 'FAILED'} in {al['seconds']} s ({s.get('mode')}, {al['params']} weights, "
                f"lr {s.get('learning_rate')}, {s.get('precision')})"
            )
            lines += [f"  [{'PASS' if c['ok'] else 'FAIL'}] {k}: {c['summary']}" for k, c in al["checks"].items()]
    if report.get("steps"):
        lines.append("steps (--full: each CLI command once):")
    for st in report.get("steps", []):
        state = "PASS" if st["ok"] else ("skip" if st.get("skipped") else "FAIL")
        mem = f", peak {st['peak_memory_gb']} GB" if st.get("peak_memory_gb") is not None else ""
        lines.append(
            f"  [{state}] {st['name']} ({st['seconds']} s{mem})" + (f": {st['error'][:100]}" if st["error"] else "")
        )
    return "\n".join(lines)
