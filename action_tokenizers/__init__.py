"""Action tokenizers: continuous action chunks [..., T, D] <-> discrete token ids for language models.

One protocol (`ActionTokenizer`, `base.py`) and a registry table (`base.TOKENIZERS`, name ->
"module:class", imported on first use); the built-in entries are `uniform` (RT-2 equal-width bins,
`uniform.py`), `quantile` and `openvla` (q01/q99 normalisation then OpenVLA's 256 linspace bins or
equal-mass bins, `quantile.py`) and `fast` (DCT + BPE, `fast.py`). Importing this package imports only
`base.py`; the classes live in their modules (`from action_tokenizers.fast import FASTTokenizer`).
`vocab.py` places a tokenizer's ids in a language model's vocabulary (appended special tokens, or
OpenVLA's overwrite of the last ids) with constrained-decoding masks. See docs/action_tokenizers.md.

    from action_tokenizers import make_tokenizer, load_tokenizer
    tok = make_tokenizer("fast", action_dim=7, chunk_len=10).fit(chunks)   # chunks [N, 10, 7]
    ids = tok.encode(chunks[0]); actions, valid = tok.decode(ids)
"""

from action_tokenizers.base import (
    TOKENIZERS,
    ActionTokenizer,
    DecodeResult,
    get_tokenizer_class,
    list_tokenizers,
    load_tokenizer,
    make_tokenizer,
    tokenizer_from_dict,
)

__all__ = [
    "TOKENIZERS",
    "ActionTokenizer",
    "DecodeResult",
    "get_tokenizer_class",
    "list_tokenizers",
    "load_tokenizer",
    "make_tokenizer",
    "tokenizer_from_dict",
]
