"""Authenticated enabling of the VLA node: a shared secret that never travels on the wire (HMAC challenge).

Anyone on a DDS domain can publish on any topic, and without DDS Security (the `cyclonedds` pip build
has none: its config parser rejects `<Security>`) a publisher's identity (its GUID, its user data) is
whatever it declares in discovery, so an allow-list of publishers would authenticate nothing. The node
therefore checks a secret instead, without ever sending it: it publishes a random nonce on
`vla/enable_challenge` (latched), and an enable request on `vla/enable_auth` (std_msgs/String) is
accepted only if it is `HMAC-SHA256(token, "vla-enable:" + nonce)` in hex. After each accepted request
the node draws a new nonce, so a request seen on the wire cannot be replayed. Disabling needs no token:
`vla/enable` false from anyone stops the arm (the fail-safe direction).

    python -m robot_io.enable --token-file ~/.vla_enable_token            # enable (token from the file)
    VLA_ENABLE_TOKEN=... python -m robot_io.enable --domain-id 7            # token from the environment
    python -m robot_io.enable --disable                                     # std_msgs/Bool false

The node reads its token from `enable_token_file=` or `$VLA_ENABLE_TOKEN` (at least 16 characters).
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import os
import secrets
import sys
import time
from pathlib import Path
from typing import Any

from robot_io import msgs
from robot_io.config import TopicNames
from robot_io.dds import DdsTransport, loopback_config
from robot_io.transport import LATCHED, RELIABLE, spin_until

TOKEN_ENV = "VLA_ENABLE_TOKEN"
MIN_TOKEN_CHARS = 16


def load_token(path: str | os.PathLike | None = None, env: str = TOKEN_ENV) -> bytes | None:
    """The enable token from `path` (surrounding whitespace stripped) or the environment; None if neither.
    A token shorter than MIN_TOKEN_CHARS is a ValueError (it could be guessed)."""
    if path:
        p = Path(path).expanduser()
        if not p.is_file():
            raise FileNotFoundError(f"enable token file not found: {p}")
        text, where = p.read_text().strip(), str(p)
    elif os.environ.get(env):
        text, where = os.environ[env].strip(), f"${env}"
    else:
        return None
    if len(text) < MIN_TOKEN_CHARS:
        raise ValueError(f"enable token ({where}): at least {MIN_TOKEN_CHARS} characters, got {len(text)}")
    return text.encode()


def new_nonce() -> str:
    return secrets.token_hex(16)


def sign(token: bytes, nonce: str) -> str:
    """The enable request for one challenge: hex HMAC-SHA256 of "vla-enable:<nonce>" under the token."""
    return hmac.new(token, f"vla-enable:{nonce}".encode(), hashlib.sha256).hexdigest()


def verify(token: bytes, nonce: str, request: str) -> bool:
    return hmac.compare_digest(sign(token, nonce).encode(), request.strip().encode("utf-8", "replace"))


def request_enable(
    transport: Any, token: bytes, topics: TopicNames | None = None, timeout_s: float = 5.0
) -> str:
    """Read the node's challenge on `transport`, publish the signed request; return the request sent.
    `topics` is a robot_io.config.TopicNames (default names when None)."""
    t = topics or TopicNames()
    challenge: list[str] = []
    transport.create_subscription(
        t.enable_challenge, msgs.String, lambda m: challenge.append(m.data), LATCHED
    )
    pub = transport.create_publisher(t.enable_auth, msgs.String, RELIABLE)
    if not spin_until(transport, lambda: bool(challenge), timeout_s):
        raise TimeoutError(
            f"no challenge on {t.enable_challenge!r} within {timeout_s:.0f} s: is the node running, on this "
            f"domain, with an enable token configured?"
        )
    matched = getattr(pub, "matched", None)
    if matched is not None and not spin_until(transport, lambda: matched() > 0, timeout_s):
        raise TimeoutError(
            f"the node's {t.enable_auth!r} subscription did not match within {timeout_s:.0f} s"
        )
    request = sign(token, challenge[-1])
    pub.publish(msgs.String(data=request))
    transport.spin_once(0.2)  # let the reliable writer deliver before the caller closes the transport
    return request


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m robot_io.enable", description=__doc__.splitlines()[0])
    ap.add_argument("--disable", action="store_true", help="publish vla/enable false (no token needed)")
    ap.add_argument("--token-file", help=f"file holding the token (default: ${TOKEN_ENV})")
    ap.add_argument("--domain-id", type=int, default=None, help="DDS domain (default: $ROS_DOMAIN_ID or 0)")
    ap.add_argument("--timeout", type=float, default=5.0)
    args = ap.parse_args(argv)
    os.environ.setdefault("CYCLONEDDS_URI", loopback_config())
    with DdsTransport(domain_id=args.domain_id) as tr:
        if args.disable:
            pub = tr.create_publisher(TopicNames().enable, msgs.Bool, LATCHED)
            pub.publish(msgs.Bool(data=False))
            time.sleep(0.5)  # latched: a node that matches shortly after still gets it
            print("published vla/enable false")
            return 0
        try:
            token = load_token(args.token_file)
            if token is None:
                raise ValueError(f"no token: pass --token-file or set ${TOKEN_ENV}")
            request_enable(tr, token, timeout_s=args.timeout)
        except (ValueError, FileNotFoundError, TimeoutError) as e:
            print(f"robot_io.enable: {e}", file=sys.stderr)
            return 2
    print("enable request sent; check vla/status (state leaves hold_disabled)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
