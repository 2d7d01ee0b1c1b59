#!/usr/bin/env python3
"""Time per token of transformers + Accelerate big-model inference on a
checkpoint, under a max_memory budget: the peer figure for strata bench.

Greedy decoding of --tokens new tokens after a fixed --prompt-tokens prompt
(the same pseudo-random ids strata bench uses for row 0). The time per token
is (t(N tokens) - t(1 token)) / (N - 1), so the prompt and the first token
are not counted, as strata bench counts generation only. Prints one JSON
object.

    python3 bench/accelerate_offload.py MODEL_DIR --gpu 4GiB --cpu 100GiB
"""
import argparse
import json
import time

import torch
from transformers import AutoConfig, AutoModelForCausalLM


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model")
    parser.add_argument("--gpu", default="4GiB", help="max_memory for GPU 0")
    parser.add_argument("--cpu", default="100GiB", help="max_memory for the CPU")
    parser.add_argument("--tokens", type=int, default=16)
    parser.add_argument("--prompt-tokens", type=int, default=8)
    parser.add_argument("--reps", type=int, default=2)
    args = parser.parse_args()

    config = AutoConfig.from_pretrained(args.model)
    start = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(
        args.model, device_map="auto", max_memory={0: args.gpu, "cpu": args.cpu}, torch_dtype=torch.bfloat16)
    load_seconds = time.perf_counter() - start
    ids = [(i * 7919 + 13) % config.vocab_size for i in range(args.prompt_tokens)]
    input_ids = torch.tensor([ids], device="cuda:0")

    def generate_seconds(new_tokens):
        torch.cuda.synchronize()
        begin = time.perf_counter()
        with torch.no_grad():
            model.generate(input_ids, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False)
        torch.cuda.synchronize()
        return time.perf_counter() - begin

    generate_seconds(1)  # warm-up
    per_token = []
    for _ in range(args.reps):
        one = generate_seconds(1)
        many = generate_seconds(args.tokens)
        per_token.append((many - one) / (args.tokens - 1))
    placement = {}
    for name, device in getattr(model, "hf_device_map", {}).items():
        placement.setdefault(str(device), []).append(name)
    print(json.dumps({
        "peer": "transformers+accelerate",
        "torch": torch.__version__,
        "max_memory": {"0": args.gpu, "cpu": args.cpu},
        "load_seconds": load_seconds,
        "ms_per_token": [1000 * t for t in per_token],
        "ms_per_token_mean": 1000 * sum(per_token) / len(per_token),
        "modules_per_device": {d: len(m) for d, m in placement.items()},
    }, indent=2))


if __name__ == "__main__":
    main()
