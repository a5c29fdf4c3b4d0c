#!/usr/bin/env python3
"""Plots of `reformer bench` CSV output (optional; needs matplotlib, never CI).

  tools/plot_bench.py scaling ATTENTION.csv OUT.svg
      time per token against L (log-x), one line per configuration
      (lsh R=1, 2, 4, 8, full) and device: the Reformer paper's Fig. 5.
  tools/plot_bench.py profile PROFILE.csv OUT.svg [--op OP] [--shape SHAPE]
      per-kernel device time of one case (default: the file's first), one
      bar per kernel and device, from `--profile-csv FILE`.
"""
import argparse
import csv
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def read(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def scaling(args):
    rows = [r for r in read(args.csv) if r["bench"] == "attention"]
    if not rows:
        sys.exit(f"{args.csv}: no attention rows")
    lines = {}
    for r in rows:
        us_per_token = float(r["time_ms"]) * 1e3 / float(r["tokens"])
        lines.setdefault((r["device"], r["op"]), []).append((int(r["length"]), us_per_token))
    devices = sorted({d for d, _ in lines})
    styles = ["-", "--", ":", "-."]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for (device, op), pts in sorted(lines.items()):
        pts.sort()
        ax.plot([p[0] for p in pts], [p[1] for p in pts], styles[devices.index(device) % len(styles)],
                marker="o" if op == "full" else ".", label=f"{device} {op}")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("sequence length L (B·L fixed)")
    ax.set_ylabel("µs per token (forward)")
    ax.set_title("LSH vs full attention: time per token")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(args.out)


def profile(args):
    rows = read(args.csv)
    if not rows:
        sys.exit(f"{args.csv}: no profile rows")
    op = args.op or rows[0]["op"]
    shape = args.shape or next(r["shape"] for r in rows if r["op"] == op)
    rows = [r for r in rows if r["op"] == op and r["shape"] == shape]
    if not rows:
        sys.exit(f"{args.csv}: no rows for op '{op}' shape '{shape}'")
    # "gemm (clblast)" and the cpu's "gemm" are one op: the bracket names the backend.
    for r in rows:
        r["kernel"] = r["kernel"].split(" (")[0]
    devices = list(dict.fromkeys(r["device"] for r in rows))
    kernels = list(dict.fromkeys(r["kernel"] for r in rows))
    ms = {(r["device"], r["kernel"]): float(r["ms_per_run"]) for r in rows}
    height = 0.8 / len(devices)
    fig, ax = plt.subplots(figsize=(7, 0.28 * len(kernels) + 1.5))
    for i, device in enumerate(devices):
        ys = [k + i * height for k in range(len(kernels))]
        ax.barh(ys, [ms.get((device, k), 0.0) for k in kernels], height, label=device)
    ax.set_yticks([k + 0.4 - height / 2 for k in range(len(kernels))])
    ax.set_yticklabels(kernels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("ms per run (device time on OpenCL, wall time per op on cpu)")
    ax.set_title(f"profile: {op} {shape}", fontsize=9)
    ax.grid(True, axis="x", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(args.out)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="what", required=True)
    s = sub.add_parser("scaling", help="time per token against L")
    s.add_argument("csv")
    s.add_argument("out")
    s.set_defaults(run=scaling)
    s = sub.add_parser("profile", help="per-kernel bar chart of one case")
    s.add_argument("csv")
    s.add_argument("out")
    s.add_argument("--op")
    s.add_argument("--shape")
    s.set_defaults(run=profile)
    args = p.parse_args()
    args.run(args)


if __name__ == "__main__":
    main()
