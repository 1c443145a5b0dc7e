"""Train the small committed text tokenizer (vla/assets/text_tokenizer/) offline, from a generated corpus.

The corpus is composed here, deterministically from a seed, with no downloads: robot instructions about
colours, objects and spatial relations (including the OpenVLA prompt template), VQA-style questions and
answers about tabletop scenes, and plain English sentences. A byte-level BPE (`tokenizers`) is trained on
it, so any text still encodes (bytes fall back), and saved as a transformers PreTrainedTokenizerFast.

    python scripts/train_text_tokenizer.py                       # -> vla/assets/text_tokenizer/
    python scripts/train_text_tokenizer.py --vocab-size 4096 --out /tmp/tok
"""

from __future__ import annotations

import argparse
import random
import sys
from collections.abc import Iterator
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from tqdm import tqdm

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from vla.core.io import atomic_directory  # noqa: E402

SPECIAL = ["<pad>", "<s>", "</s>", "<unk>"]
COLOURS = [
    "red",
    "green",
    "blue",
    "yellow",
    "orange",
    "purple",
    "pink",
    "white",
    "black",
    "grey",
    "brown",
    "cyan",
]
OBJECTS = [
    "block",
    "cube",
    "ball",
    "bowl",
    "cup",
    "plate",
    "can",
    "bottle",
    "box",
    "sponge",
    "marker",
    "spoon",
    "lid",
    "drawer",
    "button",
    "peg",
    "ring",
    "tray",
    "banana",
    "apple",
]
PLACES = ["table", "shelf", "tray", "bin", "basket", "left side", "right side", "centre", "corner", "edge"]
RELATIONS = [
    "on top of",
    "next to",
    "to the left of",
    "to the right of",
    "in front of",
    "behind",
    "inside",
    "under",
    "near",
    "far from",
    "between the bowl and",
]
VERBS = [
    "pick up",
    "lift",
    "grasp",
    "push",
    "move",
    "place",
    "put",
    "stack",
    "slide",
    "rotate",
    "open",
    "close",
    "press",
    "pour",
    "drop",
    "turn",
]
SUBJECTS = [
    "the robot",
    "the arm",
    "a person",
    "the gripper",
    "the camera",
    "my friend",
    "the student",
    "the engineer",
    "the cat",
    "the team",
]
PREDICATES = [
    "is looking at",
    "moved",
    "found",
    "cleaned",
    "counted",
    "painted",
    "carried",
    "watched",
    "described",
    "remembered",
]
ADVERBS = ["slowly", "carefully", "quickly", "gently", "again", "once more", "right now", "today"]
# A few hundred everyday English words for the plain sentences, so the vocabulary is not only robot talk.
NOUNS = """time year people way day man woman child world life hand part place case week company system
program question work government number night point home water room mother area money story fact month
lot right study book eye job word business issue side kind head house service friend father power hour
game line end member law car city community name president team minute idea kid body information back
parent face others level office door health person art war history party result change morning reason
research girl guy moment air teacher force education foot boy age policy music market sense nation plan
college interest death experience effect class control care field development role effort rate heart
drug show leader light voice wife police mind price report decision son view relationship town road
garden river mountain window kitchen chair computer phone letter picture paper machine tool engine wheel
motor sensor signal camera image screen model train bridge island forest flower tree bird dog horse fish
""".split()
ADJECTIVES = """good new first last long great little own other old big high different small large next
early young important few public bad same able late hard major better economic strong possible whole
free military true federal international full special easy clear recent certain personal open difficult
available likely short single medical current wrong private past foreign fine common poor natural
significant similar hot dead central happy serious ready simple left physical general environmental
financial blue democratic dark various entire close legal religious cold final main green nice huge
popular traditional cultural heavy soft bright quiet loud smooth rough round square empty busy
""".split()
ACTIONS = """say get make go know take see come think look want give use find tell ask work seem feel try
leave call keep let begin help talk turn start show hear play run move like live believe hold bring
happen write provide sit stand lose pay meet include continue set learn change lead understand watch
follow stop create speak read allow add spend grow open walk win offer remember love consider appear buy
wait serve die send expect build stay fall cut reach kill remain suggest raise pass sell require report
decide pull carry break drive explain develop hope thank enjoy measure plan paint clean cook visit
""".split()
NUMBERS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"]


def _obj(rng: random.Random) -> str:
    colour = f"{rng.choice(COLOURS)} " if rng.random() < 0.8 else ""
    return f"the {colour}{rng.choice(OBJECTS)}"


def instruction(rng: random.Random) -> str:
    kind = rng.randrange(4)
    if kind == 0:
        return f"{rng.choice(VERBS)} {_obj(rng)}"
    if kind == 1:
        return f"{rng.choice(VERBS)} {_obj(rng)} {rng.choice(RELATIONS)} {_obj(rng)}"
    if kind == 2:
        return f"{rng.choice(VERBS)} {_obj(rng)} {rng.choice(ADVERBS)}"
    return f"move {_obj(rng)} to the {rng.choice(PLACES)}"


def vqa(rng: random.Random) -> str:
    c, o = rng.choice(COLOURS), rng.choice(OBJECTS)
    kind = rng.randrange(5)
    if kind == 0:
        return f"Question: What colour is the {o}? Answer: {c}"
    if kind == 1:
        return f"Question: How many {o}s are on the table? Answer: {rng.choice(NUMBERS)}"
    if kind == 2:
        rel = rng.choice(RELATIONS)
        return f"Question: Is the {c} {o} {rel} {_obj(rng)}? Answer: {rng.choice(['yes', 'no'])}"
    if kind == 3:
        return f"Question: What is {rng.choice(RELATIONS)} the {c} {o}? Answer: {_obj(rng)}"
    return f"Question: Where is the {c} {o}? Answer: on the {rng.choice(PLACES)}"


def sentence(rng: random.Random) -> str:
    s = f"{rng.choice(SUBJECTS)} {rng.choice(PREDICATES)} {_obj(rng)} {rng.choice(RELATIONS)} {_obj(rng)}"
    s = s[0].upper() + s[1:] + rng.choice([".", ".", "!", "?"])
    if rng.random() < 0.3:
        s += f" Then {rng.choice(SUBJECTS)} {rng.choice(PREDICATES)} it {rng.choice(ADVERBS)}."
    return s


def plain(rng: random.Random) -> str:
    """A composed everyday sentence from the general word lists."""
    n1, n2 = rng.choice(NOUNS), rng.choice(NOUNS)
    a1, a2 = rng.choice(ADJECTIVES), rng.choice(ADJECTIVES)
    v = rng.choice(ACTIONS)
    kind = rng.randrange(4)
    if kind == 0:
        return f"The {a1} {n1} will {v} the {a2} {n2}."
    if kind == 1:
        return f"Did the {n1} {v} a {a1} {n2} this {rng.choice(['morning', 'week', 'year'])}?"
    if kind == 2:
        return f"We {v} {rng.choice(NUMBERS)} {a1} {n1}s because the {n2} was {a2}."
    tail = f"{rng.choice(ACTIONS)}s {rng.choice(ADVERBS)}"
    return f"Every {n1} needs to {v} the {n2}, and the {a1} one {tail}."


def corpus(num_lines: int, seed: int) -> Iterator[str]:
    """Yield `num_lines` generated lines: 40% prompts and instructions, 30% VQA, 30% sentences."""
    rng = random.Random(seed)
    for _ in range(num_lines):
        r = rng.random()
        if r < 0.2:
            yield f"In: What action should the robot take to {instruction(rng)}?\nOut:"
        elif r < 0.4:
            yield instruction(rng).capitalize() + "."
        elif r < 0.7:
            yield vqa(rng)
        elif r < 0.85:
            yield sentence(rng)
        else:
            yield plain(rng)


def train(vocab_size: int, num_lines: int, seed: int) -> Tokenizer:
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    lines = list(tqdm(corpus(num_lines, seed), total=num_lines, desc="composing corpus"))
    tok.train_from_iterator(lines, trainer=trainer, length=len(lines))
    return tok


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vocab-size", type=int, default=2048)
    ap.add_argument("--lines", type=int, default=60000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=REPO / "vla" / "assets" / "text_tokenizer")
    args = ap.parse_args(argv)

    from transformers import PreTrainedTokenizerFast

    tok = train(args.vocab_size, args.lines, args.seed)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", bos_token="<s>", eos_token="</s>", unk_token="<unk>"
    )
    with atomic_directory(args.out) as tmp:
        fast.save_pretrained(str(tmp))
    sample = "In: What action should the robot take to pick up the red block?\nOut:"
    ids = fast(sample)["input_ids"]
    print(f"saved a {len(fast)}-token byte-level BPE to {args.out}; sample prompt -> {len(ids)} tokens")
    return 0


if __name__ == "__main__":
    sys.exit(main())
