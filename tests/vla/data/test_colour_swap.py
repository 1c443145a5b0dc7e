"""ColourSwap (vla/data/colour_swap.py): words and pixels of paired colours trade places, nothing else moves,
inputs stay as they were; bad pairs and mismatched shapes are clear errors."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.scene import PALETTE, palette_rgb
from vla.data.colour_swap import ColourSwap, check_pairs

PAIRS = [["red", "yellow"], ["green", "purple"], ["blue", "orange"]]
WORDS = ["red", "yellow", "green", "purple", "blue", "orange", "grey", "cube", "on", "the", "reddish", "tray"]


def _num(name: str) -> int:
    return PALETTE.index(name) + 1


def _base(name: str) -> np.ndarray:
    return np.array(dict(palette_rgb())[name], np.float32)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(WORDS), min_size=1, max_size=10), st.sets(st.integers(0, 2)))
def test_swapping_words_twice_gives_the_text_back_and_moves_only_paired_words(words, chosen):
    aug = ColourSwap(PAIRS, palette_rgb())
    swaps = [tuple(PAIRS[i]) for i in sorted(chosen)]
    text = " ".join(words)
    once = aug.swap_words(text, swaps)
    assert aug.swap_words(once, swaps) == text
    partner = {**{a: b for a, b in swaps}, **{b: a for a, b in swaps}}
    assert once.split(" ") == [partner.get(w, w) for w in words]  # "reddish" and "grey" never move


def test_pixels_of_a_swapped_colour_take_the_partner_colour_in_the_same_shade():
    aug = ColourSwap([["red", "yellow"]], palette_rgb())
    ids = torch.zeros(1, 2, 4, dtype=torch.uint8)
    ids[0, 0, :2] = _num("red")
    ids[0, 0, 2:] = _num("yellow")
    ids[0, 1, 0] = _num("blue")  # not in a drawn pair
    images = torch.full((1, 2, 4, 3), 90, dtype=torch.uint8)  # the table where ids are 0
    shades = [1.0, 0.6, 0.9, 0.5]
    for j, (name, shade) in enumerate(zip(["red", "red", "yellow", "yellow"], shades)):
        images[0, 0, j] = torch.from_numpy((_base(name) * shade).round()).to(torch.uint8)
    images[0, 1, 0] = torch.tensor([20, 60, 200], dtype=torch.uint8)
    before = images.clone()
    out = aug.swap_pixels(images, ids, [("red", "yellow")])
    assert torch.equal(images, before)  # the input is not changed
    for j, (name, shade) in enumerate(zip(["yellow", "yellow", "red", "red"], shades)):
        want = _base(name) * shade
        assert np.abs(out[0, 0, j].numpy().astype(np.float32) - want).max() <= 1.0, (j, name)
    assert torch.equal(out[0, 1], images[0, 1])  # blue and the table stay
    swapped_ids = ids.clone()  # what the maps of the swapped images say
    swapped_ids[ids == _num("red")], swapped_ids[ids == _num("yellow")] = _num("yellow"), _num("red")
    back = aug.swap_pixels(out, swapped_ids, [("red", "yellow")])
    assert (back.int() - images.int()).abs().max() <= 1


def test_a_batch_of_samples_swaps_images_of_every_camera_and_the_instruction_together():
    rng = np.random.default_rng(0)
    ids = torch.from_numpy(rng.integers(0, len(PALETTE) + 1, (2, 8, 8)).astype(np.uint8))  # [T,H,W]
    sample = {
        "instruction": "stack the red cube on the blue cube",
        "images/static": torch.from_numpy(rng.integers(0, 256, (2, 8, 8, 3)).astype(np.uint8)),
        "images/wrist": torch.from_numpy(rng.integers(0, 256, (2, 8, 8, 3)).astype(np.uint8)),
        "colours/static": ids,
        "colours/wrist": ids.flip(-1),
        "action": torch.zeros(1, 7),
    }
    keep = {k: v.clone() if torch.is_tensor(v) else v for k, v in sample.items()}
    out = ColourSwap(PAIRS, palette_rgb(), p=1.0)([sample])[0]
    assert out["instruction"] == "stack the yellow cube on the orange cube"
    assert not any(k.startswith("colours/") for k in out)  # the maps are used, then dropped
    for cam, cam_ids in (("static", ids), ("wrist", ids.flip(-1))):
        moved = out[f"images/{cam}"] != sample[f"images/{cam}"]  # [T,H,W,3]
        still = (cam_ids == 0) | (cam_ids == _num("grey")) | (cam_ids == _num("white"))
        assert not moved[still].any()  # unnamed and unpaired colours never move
        assert moved.any()
    assert set(sample) == set(keep) and all(
        torch.equal(sample[k], keep[k]) if torch.is_tensor(keep[k]) else sample[k] == keep[k] for k in keep
    )
    none = ColourSwap(PAIRS, palette_rgb(), p=0.0)([sample])[0]
    assert none["instruction"] == sample["instruction"] and "colours/static" not in none
    assert torch.equal(none["images/static"], sample["images/static"])


def test_draws_are_seeded_and_about_p():
    a, b = ColourSwap(PAIRS, palette_rgb(), p=0.3, seed=7), ColourSwap(PAIRS, palette_rgb(), p=0.3, seed=7)
    draws = [a.draw() for _ in range(2000)]
    assert draws == [b.draw() for _ in range(2000)]
    share = sum(len(d) for d in draws) / (3 * len(draws))
    assert 0.27 < share < 0.33


def test_bad_pairs_and_shapes_are_clear_errors():
    names = list(PALETTE)
    with pytest.raises(ValueError, match="'pink' is not a palette colour"):
        check_pairs([["red", "pink"]], names)
    with pytest.raises(ValueError, match="'red' is in two pairs"):
        check_pairs([["red", "yellow"], ["red", "blue"]], names)
    with pytest.raises(ValueError, match="pairs of two different colours"):
        check_pairs([["red", "red"]], names)
    with pytest.raises(ValueError, match="colour_swap_p must be in"):
        ColourSwap(PAIRS, palette_rgb(), p=1.5)
    with pytest.raises(ValueError, match="at least one pair"):
        ColourSwap([], palette_rgb())
    aug = ColourSwap(PAIRS, palette_rgb())
    with pytest.raises(ValueError, match=r"images \(2, 8, 8, 3\) and colour maps \(2, 8, 7\)"):
        aug.swap_pixels(
            torch.zeros(2, 8, 8, 3, dtype=torch.uint8), torch.zeros(2, 8, 7, dtype=torch.uint8), []
        )


def test_a_batch_is_recoloured_as_its_samples_one_by_one():
    """The batch path (one pass over stacked images) gives what each sample alone would, draw for draw."""
    rng = np.random.default_rng(1)
    samples = [
        {
            "instruction": "push the red cube to the purple marker",
            "images/static": torch.from_numpy(rng.integers(0, 256, (1, 6, 6, 3)).astype(np.uint8)),
            "colours/static": torch.from_numpy(rng.integers(0, len(PALETTE) + 1, (1, 6, 6)).astype(np.uint8)),
        }
        for _ in range(12)
    ]
    batch = ColourSwap(PAIRS, palette_rgb(), p=0.5, seed=3)(samples)
    alone = ColourSwap(PAIRS, palette_rgb(), p=0.5, seed=3)
    for got, sample in zip(batch, samples):
        want = alone([sample])[0]
        assert got["instruction"] == want["instruction"]
        assert torch.equal(got["images/static"], want["images/static"])
    assert len({s["instruction"] for s in batch}) > 1  # the draws differ between samples
