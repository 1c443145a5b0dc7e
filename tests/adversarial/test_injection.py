"""Probes that try to run code through the files a command reads (issue 21: "Nothing executed injected
code (two pickles and a custom-code tokenizer were refused)"): a pickled object array given to
`vla tokenizer fit`, a train_state.pt whose pickle would run a command (test_checkpoints.py), and a
checkpoint tokenizer that asks for its own Python class. Each is refused and its payload never runs."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest


class Payload:
    """Unpickling this runs `touch <marker>`."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_pickled_action_file_is_refused(tmp_path, vla):
    marker, source = tmp_path / "pwned", tmp_path / "actions.npy"
    np.save(source, np.array([Payload(marker), 1.0], dtype=object), allow_pickle=True)
    code, err = vla("tokenizer", "fit", source, f"out={tmp_path / 'tok'}")
    assert code != 0 and len(err) == 1 and "allow_pickle" in err[0], err
    assert not marker.exists() and not (tmp_path / "tok").exists()


def test_a_tokenizer_with_custom_code_is_not_run(tmp_path, monkeypatch):
    """Refused in one line, and never asked about: transformers asks "Do you wish to run the custom code?
    [y/N]" on a terminal unless trust_remote_code is given (here any prompt fails the test)."""
    import builtins

    from transformers import dynamic_module_utils

    from vla.backbones.language import BUILTIN_TOKENIZERS, load_text_tokenizer

    asked = []
    monkeypatch.setattr(builtins, "input", lambda *a: asked.append(a) or "n")
    monkeypatch.setattr(dynamic_module_utils, "TIME_OUT_REMOTE_CODE", 15)  # the prompt's default (CI sets 0)

    marker, tok = tmp_path / "pwned", tmp_path / "tokenizer"
    shutil.copytree(BUILTIN_TOKENIZERS["builtin:tiny"], tok)
    (tok / "evil.py").write_text(
        f"open({str(marker)!r}, 'w').close()\n"
        "from transformers import PreTrainedTokenizerFast\n\n\n"
        "class EvilTokenizer(PreTrainedTokenizerFast):\n    pass\n"
    )
    cfg_file = tok / "tokenizer_config.json"
    cfg = json.loads(cfg_file.read_text()) if cfg_file.is_file() else {}
    cfg.update(auto_map={"AutoTokenizer": [None, "evil.EvilTokenizer"]}, tokenizer_class="EvilTokenizer")
    cfg_file.write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="contains custom code") as info:
        load_text_tokenizer(str(tok))
    assert not marker.exists() and not asked
    assert len(str(info.value).splitlines()) == 1 and "never run" in str(info.value)
