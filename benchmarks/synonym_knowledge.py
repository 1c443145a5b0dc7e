"""Benchmark: how much the pretrained text models that ship on PyPI know of the held-out colour synonyms,
before any robot training (issue 18, docs/backbones.md "Instructions the robot data never contains").

A policy can only follow "the crimson cube" if its text reader puts "crimson" nearer "red" than the other
training colours. This measures that ceiling for every word of `sim.scene_vqa.HELDOUT_COLOURS` (8 words,
6 training colours, chance 1/6), three ways, and prints ONE JSON line:

    minilm_token      the MiniLM token feature at the word (the features `tiny_vla_minilm*`'s attention pool
                      reads), in each pick template, against the six training colours' in the same
                      template: cosine nearest neighbour, averaged over the templates
    minilm_sentence   MiniLM's sentence embedding (mean-pooled, unit norm) of each filled pick template:
                      the nearest of the six training-colour versions of the same template; the fraction
                      over words x templates
    smollm2_zero_shot SmolLM2-135M-Instruct asked, in its chat template, "Which basic colour is W: red,
                      green, ...? Answer with one word."; the argmax over the six colours' first tokens

    python benchmarks/synonym_knowledge.py                 # ~40 s on one CPU core (SmolLM2 converted once)
    python benchmarks/synonym_knowledge.py --skip-smollm2
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import torch

from sim.scene import COLOUR_NAMES
from sim.scene_vqa import HELDOUT_COLOURS
from sim.tasks import PickTask


def _word_span(tokenizer, text: str, word: str) -> slice:
    """The token positions of `word` inside `text` (with [CLS] first, as the encoder sees it)."""
    ids = tokenizer(text)["input_ids"]
    piece = tokenizer(word, add_special_tokens=False)["input_ids"]
    for i in range(len(ids) - len(piece) + 1):
        if ids[i : i + len(piece)] == piece:
            return slice(i, i + len(piece))
    raise ValueError(f"{word!r} not found in the tokens of {text!r}")


def minilm_scores(words: dict[str, str], colours: list[str], templates: list[str]) -> dict[str, object]:
    from vla.backbones.config import TextEncoderConfig
    from vla.backbones.text_encoder import SentenceEncoder

    enc = SentenceEncoder(TextEncoderConfig(name="minilm", pretrained="package:minilm")).eval()
    norm = torch.nn.functional.normalize

    def token_feature(word: str) -> torch.Tensor:  # [D], the word's features averaged over templates
        rows = []
        for t in templates:
            text = t.format(o=f"{word} cube")
            feats, _ = enc.token_features([text])  # [1,L,D]
            rows.append(feats[0, _word_span(enc.tokenizer, text, word)].mean(0))
        return norm(torch.stack(rows).mean(0), dim=-1)

    with torch.no_grad():
        protos = torch.stack([token_feature(c) for c in colours])  # [6,D]
        token_hits = {w: colours[int((token_feature(w) @ protos.T).argmax())] for w in words}
        sentence_hits: dict[str, list[str]] = {w: [] for w in words}
        for t in templates:
            ref = norm(enc([t.format(o=f"{c} cube") for c in colours]), dim=-1)  # [6,D]
            for w in words:
                sim = norm(enc([t.format(o=f"{w} cube")]), dim=-1) @ ref.T  # [1,6]
                sentence_hits[w].append(colours[int(sim.argmax())])
    n_sentence = sum(h == words[w] for w, hs in sentence_hits.items() for h in hs)
    return {
        "minilm_token": {"correct": sum(token_hits[w] == c for w, c in words.items()), "of": len(words)},
        "minilm_token_nearest": token_hits,
        "minilm_sentence": {"correct": n_sentence, "of": len(words) * len(templates)},
    }


def smollm2_scores(words: dict[str, str], colours: list[str]) -> dict[str, object]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from vla.backbones.weights import resolve_pretrained

    path = resolve_pretrained("package:smollm2_135m")
    tok = AutoTokenizer.from_pretrained(path)
    lm = AutoModelForCausalLM.from_pretrained(path).eval()
    first = [tok(c, add_special_tokens=False)["input_ids"][0] for c in colours]
    listed = ", ".join(colours[:-1]) + f" or {colours[-1]}"
    hits = {}
    for w in words:
        msgs = [{"role": "user", "content": f"Which basic colour is {w}: {listed}? Answer with one word."}]
        prompt = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
        with torch.no_grad():
            logits = lm(**tok(prompt, return_tensors="pt")).logits[0, -1]  # [V]
        hits[w] = colours[int(logits[first].argmax())]
    return {
        "smollm2_zero_shot": {"correct": sum(hits[w] == c for w, c in words.items()), "of": len(words)},
        "smollm2_answers": hits,
    }


def main(argv: list[str] | None = None) -> dict[str, object]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--skip-smollm2", action="store_true", help="MiniLM only (no 517 MB conversion)")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    words = {w: c for c, syns in HELDOUT_COLOURS.items() for w in syns}  # synonym -> training colour
    colours = [c for c in COLOUR_NAMES if c in HELDOUT_COLOURS]
    templates = list(PickTask.templates)
    t0 = time.perf_counter()
    out: dict[str, object] = {"words": words, "colours": colours, "chance": round(1 / len(colours), 3)}
    out |= minilm_scores(words, colours, templates)
    print(f"[synonyms] MiniLM done in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    if not args.skip_smollm2:
        out |= smollm2_scores(words, colours)
    out["wall_s"] = round(time.perf_counter() - t0, 1)
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
