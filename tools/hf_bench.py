#!/usr/bin/env python3
"""One case of `reformer bench model --config FILE --against-hf`: the HF
transformers Reformer of the same config.json, in the same process layout
as the C side (one case per process, 2 threads, batch B, length L, one
warm-up then the median of --runs timed runs).

Phases:  training  forward + backward of the LM loss (no optimiser), train()
         forward   inference forward, eval() under torch.no_grad()

Prints one line per run set on stdout, the format bench_model.c reads:
    RF_CASE hf <phase> <median ms> <total ms> <runs> 0 0
(the zeros: device bytes, which the C side reports and HF has not).
The peak RSS is taken by the parent (wait4's ru_maxrss), the same measure
as for its own cases. Exit 3 when torch or transformers are missing.
"""
import argparse
import json
import statistics
import sys
import time


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", required=True)
    ap.add_argument("--length", type=int, required=True)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--phase", choices=["training", "forward"], required=True)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    try:
        import torch
        from transformers import ReformerConfig, ReformerModelWithLMHead
    except ImportError as e:
        print(f"hf_bench.py: {e}", file=sys.stderr)
        return 3
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    with open(a.config) as f:
        cfg = ReformerConfig(**json.load(f))
    model = ReformerModelWithLMHead(cfg)
    # The same token pattern as bench_model.c (any ids below the vocabulary).
    ids = torch.tensor([[(2 + (i * 31) % (cfg.vocab_size - 2)) for i in range(a.length)]] * a.batch)

    if a.phase == "training":
        model.train()

        def run():
            model.zero_grad(set_to_none=True)
            model(input_ids=ids, labels=ids).loss.backward()
    else:
        model.eval()

        def run():
            with torch.no_grad():
                model(input_ids=ids)

    run()  # warm-up
    times = []
    for _ in range(a.runs):
        t0 = time.perf_counter()
        run()
        times.append((time.perf_counter() - t0) * 1e3)
    print(f"RF_CASE hf {a.phase} {statistics.median(times):.4f} {sum(times):.4f} {a.runs} 0 0", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
