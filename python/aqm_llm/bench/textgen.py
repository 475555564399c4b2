"""The text-generation baseline of ``aqm-llm bench inference``: what the L4S-LM head replaces.

The same backbone is given a prompt that describes the state and the K packets in words,
generates its answer greedily token by token, and the answer is parsed into forward / drop /
mark per packet (unparsable answers count as invalid; the packet would be forwarded).
"""

from __future__ import annotations

import re
import time
from typing import Any

import numpy as np

from aqm_llm.bench.machine import peak_rss_mb
from aqm_llm.bench.rows import Row, current_rss_mb

ACTION_WORDS = ("forward", "drop", "mark")
ANSWER_RE = re.compile(r"(\d+)\s*[:.)\-]\s*(forward|drop|mark)\b", re.I)


def describe_request(request: Any) -> str:
    """The state as a prompt: the information the encoder gets, in words."""
    from aqm_llm.channel import Scalar, Series

    s = request.series
    def row(i: int, scale: float, fmt: str) -> str:
        return " ".join(format(v * scale, fmt) for v in s[i]) if i < s.shape[0] else "n/a"
    sc = request.scalars
    lines = [
        f"Decision epoch {request.epoch} of a dual-queue L4S bottleneck (16 ms per interval, oldest first).",
        f"L queue sojourn ms: {row(Series.L_SOJOURN, 1e3, '.2f')}",
        f"C queue sojourn ms: {row(Series.C_SOJOURN, 1e3, '.2f')}",
        f"Queue KB: {row(Series.QUEUE_BYTES, 1e-3, '.0f')}",
        f"Arrival Mb/s: {row(Series.ARRIVAL_RATE, 1e-6, '.0f')}",
        f"Departure Mb/s: {row(Series.DEPARTURE_RATE, 1e-6, '.0f')}",
        f"CE marks: {row(Series.MARKS, 1, '.0f')}",
        f"Drops: {row(Series.DROPS, 1, '.0f')}",
        f"Capacity Mb/s: {row(Series.CAPACITY, 1e-6, '.0f')}",
        f"Burst allowance {sc[Scalar.BURST_ALLOWANCE] * 1e3:.1f} ms; p'={sc[Scalar.P_PRIME]:.3f} "
        f"p_L={sc[Scalar.P_L]:.3f} p_C={sc[Scalar.P_C]:.3f}.",
        "Head-of-queue packets:",
    ]
    ecn_names = ("Not-ECT", "ECT(1)", "ECT(0)", "CE")
    for i, p in enumerate(request.packets, start=1):
        cls = "L" if p["traffic_class"] == 0 else "C"
        lines.append(f"{i}. class {cls}, {int(p['size_bytes'])} B, sojourn "
                     f"{p['sojourn_s'] * 1e3:.2f} ms, {ecn_names[int(p['ecn'])]}, flow {int(p['flow_hash'])}")
    lines.append("For every packet answer forward, drop or mark, one line per packet and nothing "
                 "else, e.g. for three packets:\n1: forward\n2: mark\n3: drop")
    return "\n".join(lines)


def parse_answer(text: str, packets: int) -> tuple[list[int], bool]:
    """Action codes parsed from a generated answer; unparsed packets are forwarded.
    Valid only if every packet got exactly one action."""
    codes: dict[int, int] = {}
    duplicate = False
    for m in ANSWER_RE.finditer(text):
        i = int(m.group(1))
        if 1 <= i <= packets:
            duplicate |= i in codes
            codes[i] = ACTION_WORDS.index(m.group(2).lower())
    return [codes.get(i, 0) for i in range(1, packets + 1)], len(codes) == packets and not duplicate


def measure_text(lm: Any, tokenizer: Any, packets: int, epochs: int, rng: np.random.Generator) -> Row:
    import torch

    from aqm_llm.agent.synthetic import random_request

    row = Row("text generation + parsing")
    max_new = 6 * packets  # "12: forward\n" is about 5 tokens
    for epoch in range(epochs):
        request = random_request(rng, packets=packets, epoch=epoch)
        messages = [{"role": "system", "content": "You are the active queue management controller "
                     "of a router. Answer only in the requested format."},
                    {"role": "user", "content": describe_request(request)}]
        start = time.perf_counter()
        ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True,
                                            return_tensors="pt", return_dict=True)
        with torch.inference_mode():
            out = lm.generate(**ids, max_new_tokens=max_new, do_sample=False,
                              pad_token_id=tokenizer.eos_token_id)
        new = out[0, ids["input_ids"].shape[1]:]
        answer = tokenizer.decode(new, skip_special_tokens=True)
        _, valid = parse_answer(answer, packets)
        row.latencies_ms.append((time.perf_counter() - start) * 1e3)
        row.tokens_in.append(int(ids["input_ids"].shape[1]))
        row.tokens_out.append(int(new.shape[0]))
        row.valid.append(valid)
        if epoch == 0:
            row.note = "first answer: " + " | ".join(answer.strip().splitlines()[:4])[:160]
    row.rss_mb, row.rss_now_mb = peak_rss_mb(), current_rss_mb()
    return row
