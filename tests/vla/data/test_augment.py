"""Instruction augmentation (vla/data/augment.py): whole colour words replaced by training-only synonyms,
the share of samples rephrased, inputs never changed, and a held-out word never produced (hypothesis)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.scene import COLOUR_NAMES, SHAPE_NAMES
from sim.scene_vqa import HELDOUT_COLOURS, TRAIN_COLOUR_SYNONYMS
from sim.tasks import get_task
from vla.data.augment import SYNONYM_TABLES, InstructionSynonyms

HELDOUT_WORDS = {s for ss in HELDOUT_COLOURS.values() for s in ss}


def test_training_synonyms_are_new_words_and_never_the_heldout_ones():
    words = {s for ss in TRAIN_COLOUR_SYNONYMS.values() for s in ss}
    assert set(TRAIN_COLOUR_SYNONYMS) == set(COLOUR_NAMES)
    assert not words & HELDOUT_WORDS and not words & set(COLOUR_NAMES) and not words & set(SHAPE_NAMES)


@settings(max_examples=60, deadline=None)
@given(
    template=st.sampled_from(get_task("pick_colour").templates),
    colour=st.sampled_from(COLOUR_NAMES),
    shape=st.sampled_from(SHAPE_NAMES),
    seed=st.integers(0, 2**16),
)
def test_rephrase_swaps_the_colour_word_only(template, colour, shape, seed):
    aug = InstructionSynonyms(SYNONYM_TABLES["colours"], p=1.0, seed=seed)
    text = template.format(o=f"{colour} {shape}")
    new = aug.rephrase(text)
    synonym = new.split()[text.split().index(colour)]
    assert synonym in TRAIN_COLOUR_SYNONYMS[colour]
    assert new.replace(synonym, colour, 1) == text
    assert not set(re.findall(r"[a-z]+", new)) & HELDOUT_WORDS


def test_share_of_rephrased_samples_and_inputs_untouched():
    samples = [{"instruction": "pick up the red cube", "frame_index": i} for i in range(2000)]
    out = InstructionSynonyms(SYNONYM_TABLES["colours"], p=0.3, seed=1)(samples)
    changed = sum(s["instruction"] != "pick up the red cube" for s in out)
    assert 500 < changed < 700  # 30% of 2000, binomial sd ~20
    assert all(s["instruction"] == "pick up the red cube" for s in samples)
    assert [s["frame_index"] for s in out] == list(range(2000))
    assert "reddish" == InstructionSynonyms({"red": ["ruby"]}, p=1.0).rephrase("reddish")  # whole words


def test_bad_augmentation_settings_are_clear():
    with pytest.raises(ValueError, match=r"probability must be in \[0, 1\]"):
        InstructionSynonyms(SYNONYM_TABLES["colours"], p=1.5)
    with pytest.raises(ValueError, match="at least one synonym"):
        InstructionSynonyms({"red": []})
