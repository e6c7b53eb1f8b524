"""Public keys: parsing, validation and fingerprints.

Every key that reaches an authorized_keys file passes through here first, so a pasted
private key, a weak key or a line that could smuggle in options is refused up front.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from bastion.errors import InputError

KeyRule = Literal[
    "private-key", "dsa", "rsa-too-short", "options", "multi-line", "bad-base64",
    "type-mismatch", "unknown-type", "empty", "malformed", "comment",
]  # fmt: skip

MIN_RSA_BITS = 2048
MAX_RSA_BITS = 16384  # OpenSSH refuses larger moduli
MAX_COMMENT_LENGTH = 256

_LABELS = {  # accepted key type -> its label in `ssh-keygen -l` output
    "ssh-ed25519": "ED25519", "ssh-rsa": "RSA",
    "ecdsa-sha2-nistp256": "ECDSA", "ecdsa-sha2-nistp384": "ECDSA", "ecdsa-sha2-nistp521": "ECDSA",
    "sk-ssh-ed25519@openssh.com": "ED25519-SK", "sk-ecdsa-sha2-nistp256@openssh.com": "ECDSA-SK",
}  # fmt: skip
KEY_TYPES = frozenset(_LABELS)
_NAMED_TYPES = KEY_TYPES | {"ssh-dss"}  # names safe to echo in a message
_CURVES = {f"nistp{c.key_size}": c for c in (ec.SECP256R1(), ec.SECP384R1(), ec.SECP521R1())}
_CERTIFICATE = "-cert-v01@openssh.com"

_COPY = "copy the whole line from the .pub file (e.g. ~/.ssh/id_ed25519.pub) unchanged"
_NEW_KEY = "make a new key with `ssh-keygen -t ed25519` and paste its .pub file"
_FIXES: dict[KeyRule, str] = {
    "dsa": _NEW_KEY,
    "rsa-too-short": f"{_NEW_KEY} (or use `ssh-keygen -t rsa -b 4096`)",
    "options": "paste the key from its type on, e.g. `ssh-ed25519 AAAA… comment`",
    "multi-line": "give each key as its own entry; join a wrapped key back into one line",
    "unknown-type": f"paste one line starting with one of {', '.join(_LABELS)}",
    "comment": "the comment is only a label: use plain text such as user@laptop, or drop it",
}
_PRIVATE_KEY_MESSAGE = (
    "this is a PRIVATE key; paste the public key (the .pub file, one line starting with "
    "ssh-ed25519, ecdsa-sha2-… or ssh-rsa). Treat the private key as leaked: delete it where it "
    "was pasted or stored, and replace it everywhere with a new `ssh-keygen -t ed25519` pair"
)
_PEM_MESSAGE = (
    "this public key is in PEM or RFC 4716 format, not OpenSSH's one-line format; convert it "
    "with `ssh-keygen -i -f FILE` (add `-m PKCS8` for a 'BEGIN PUBLIC KEY' file)"
)
_FIELD_SEPARATOR = re.compile(r"[ \t]+")
_TYPE_NAME = re.compile(r"[a-z][a-z0-9@._-]{0,63}")  # lower case: never base64 key material
_PRIVATE_KEY = re.compile(r"BEGIN [A-Z0-9 ]*PRIVATE KEY|PuTTY-User-Key-File|b3BlbnNzaC1rZXktdjE")
_PEM_PUBLIC_KEY = re.compile(r"BEGIN [A-Z0-9 ]*PUBLIC KEY")
_BASE64 = re.compile(r"[A-Za-z0-9+/]+={0,2}")
_COMMENT_FORBIDDEN = frozenset("\"'`\\")
# authorized_keys options end at the first blank outside double quotes; \" never opens or closes
# a quote (sshd's rule). Possessive quantifiers keep an unterminated quote from matching at all.
_OPTIONS = re.compile(r'((?:\\"|"(?:\\"|[^"])*+"|[^ \t"])++)[ \t]+(.*)', re.DOTALL)


class InvalidKeyError(InputError):
    """A refused key: the message says what is wrong and how to fix it, `rule` names the rule."""

    def __init__(self, message: str, *, rule: KeyRule) -> None:
        super().__init__(message)
        self.rule: KeyRule = rule


@dataclass(frozen=True)
class PublicKey:
    """A validated OpenSSH public key (constructing one checks it), identified by `fingerprint`."""

    key_type: str
    blob: bytes
    comment: str = ""
    bits: int = field(init=False, compare=False)  # as `ssh-keygen -l` shows it

    def __post_init__(self) -> None:
        if self.key_type not in KEY_TYPES:
            raise _unknown_type(self.key_type)
        object.__setattr__(self, "bits", _inspect_blob(self.key_type, self.blob))
        if len(self.comment) > MAX_COMMENT_LENGTH:
            problem = f"is {len(self.comment)} characters long; the limit is {MAX_COMMENT_LENGTH}"
        elif self.comment != self.comment.strip():
            problem = "starts or ends with whitespace"
        elif any(char in _COMMENT_FORBIDDEN for char in self.comment):
            problem = "contains a quote, backtick or backslash"
        elif not self.comment.isprintable():
            problem = "contains a control or other non-printable character"
        else:
            return
        raise _refused("comment", f"the key's comment {problem}")

    @property
    def fingerprint(self) -> str:
        """The SHA256 fingerprint exactly as `ssh-keygen -lf` prints it."""
        digest = hashlib.sha256(self.blob).digest()
        return "SHA256:" + base64.b64encode(digest).decode("ascii").rstrip("=")

    def openssh(self) -> str:
        data = base64.b64encode(self.blob).decode("ascii")
        return " ".join(part for part in (self.key_type, data, self.comment) if part)

    def describe(self) -> str:
        label = _LABELS[self.key_type]
        return " ".join(part for part in (label, self.fingerprint, self.comment) if part)


@dataclass(frozen=True)
class AuthorizedKey:
    """One line of an existing authorized_keys file; `raw` keeps it verbatim."""

    options: str
    key: PublicKey | None
    raw: str
    problem: str = ""  # why `key` is None


def parse_public_key(text: str) -> PublicKey:
    """Parse one pasted public-key line strictly: refuse anything bastion would not write itself."""
    line = text.strip()
    if not line:
        raise _refused("empty", "the public key is empty")
    if _PRIVATE_KEY.search(line):
        raise InvalidKeyError(_PRIVATE_KEY_MESSAGE, rule="private-key")
    if _PEM_PUBLIC_KEY.search(line):
        raise InvalidKeyError(_PEM_MESSAGE, rule="malformed")
    lines = [part for part in line.splitlines() if part.strip()]
    if len(lines) > 1:
        raise _refused("multi-line", f"the value holds {len(lines)} lines, a key is one line")
    return _parse_line(lines[0])


def parse_authorized_keys(text: str) -> list[AuthorizedKey]:
    """Read a host's authorized_keys leniently: lines bastion cannot parse are kept, never refused."""
    raws = [line.removesuffix("\r") for line in text.split("\n")]
    return [_parse_authorized_line(raw) for raw in raws if raw.strip()[:1] not in ("", "#")]


def read_keys_file(path: Path) -> list[PublicKey]:
    """Read one public key per line; blank lines and # comments are skipped."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "it is not UTF-8 text"
        raise InputError(f"cannot read the key file {path}: {reason}") from None
    keys: list[PublicKey] = []
    for number, line in enumerate(text.split("\n"), start=1):
        if line.strip()[:1] in ("", "#"):
            continue
        try:
            keys.append(parse_public_key(line))
        except InvalidKeyError as exc:
            raise InvalidKeyError(f"{path}, line {number}: {exc.message}", rule=exc.rule) from None
    return keys


def find_duplicates(keys: Iterable[PublicKey]) -> list[list[PublicKey]]:
    """Groups of keys sharing a fingerprint: the same key, perhaps under another comment."""
    groups: dict[str, list[PublicKey]] = {}
    for key in keys:
        groups.setdefault(key.fingerprint, []).append(key)
    return [group for group in groups.values() if len(group) > 1]


def _refused(rule: KeyRule, problem: str) -> InvalidKeyError:
    return InvalidKeyError(f"{problem}; {_FIXES.get(rule, _COPY)}", rule=rule)


def _parse_line(line: str, *, lenient: bool = False) -> PublicKey:
    fields = _FIELD_SEPARATOR.split(line.strip(" \t"), maxsplit=2)
    key_type = fields[0]
    if key_type not in KEY_TYPES:
        named = key_type == "ssh-dss" or key_type.endswith(_CERTIFICATE)
        if not named and any(word in _NAMED_TYPES for word in _FIELD_SEPARATOR.split(line)):
            problem = "text precedes the key type, but options are added by bastion itself"
            raise _refused("options", problem)
        raise _unknown_type(key_type)
    if len(fields) < 2:
        raise _refused("malformed", f"the {key_type} key has no key data after its type")
    blob = _decode_base64(key_type, fields[1])
    comment = fields[2].strip(" \t") if len(fields) > 2 else ""
    if lenient:
        comment = "".join(c for c in comment if c.isprintable() and c not in _COMMENT_FORBIDDEN)
        comment = comment[:MAX_COMMENT_LENGTH].strip()
    return PublicKey(key_type, blob, comment)


def _parse_authorized_line(raw: str) -> AuthorizedKey:
    """Like sshd: the line is a key, or options then a key; otherwise it stays unparsed."""
    line = raw.strip()
    try:
        return AuthorizedKey("", _parse_line(line, lenient=True), raw)
    except InvalidKeyError as first:
        split = _OPTIONS.fullmatch(line) if first.rule in ("options", "unknown-type") else None
        if split is None:
            return AuthorizedKey("", None, raw, first.message)
        try:
            return AuthorizedKey(split[1], _parse_line(split[2], lenient=True), raw)
        except InvalidKeyError as second:
            if second.rule == "unknown-type":  # no key after the "options" either: not a key line
                return AuthorizedKey("", None, raw, first.message)
            return AuthorizedKey(split[1], None, raw, second.message)


def _unknown_type(key_type: str) -> InvalidKeyError:
    if key_type == "ssh-dss":
        return _refused("dsa", "DSA (ssh-dss) keys are weak and OpenSSH removed them")
    if key_type.endswith(_CERTIFICATE):
        return _refused("unknown-type", f"{key_type} is a certificate, not a plain public key")
    if not _TYPE_NAME.fullmatch(key_type):
        return _refused("unknown-type", "the line does not start with a key type")
    return _refused("unknown-type", f"unknown key type {key_type!r}")


def _decode_base64(key_type: str, data: str) -> bytes:
    if len(data) > 8192:  # far more than a 16384-bit RSA key needs
        raise _refused("malformed", "the key data is longer than any supported key")
    padded = data + "=" * (-len(data) % 4)
    blob = base64.b64decode(padded) if _BASE64.fullmatch(padded) else b""
    if not blob or base64.b64encode(blob).decode("ascii") != padded:
        raise _refused("bad-base64", f"the key data after {key_type} is not valid base64")
    return blob


def _wire_strings(blob: bytes) -> list[bytes]:
    """Split a key blob into its SSH wire-format strings (RFC 4251); an mpint is one too."""
    strings: list[bytes] = []
    offset = 0
    while offset < len(blob):
        start = offset + 4
        offset = start + int.from_bytes(blob[offset:start], "big")
        if offset > len(blob):
            raise _refused("malformed", "the key data is cut short")
        strings.append(blob[start:offset])
    return strings


def _inspect_blob(key_type: str, blob: bytes) -> int:
    """Check `blob` is a well-formed `key_type` key; return its size in bits as ssh-keygen does."""
    fields = _wire_strings(blob)
    inner = fields[0].decode("ascii", "replace") if fields else ""
    if inner != key_type:
        found = inner if inner in _NAMED_TYPES else "of another or unreadable type"
        raise _refused("type-mismatch", f"the line says {key_type} but its key data is {found}")
    # type, key fields (RSA: e, n; ECDSA: curve, point; Ed25519: point), FIDO application
    expected = 2 + (key_type == "ssh-rsa" or "ecdsa" in key_type) + key_type.startswith("sk-")
    if len(fields) != expected:
        raise _refused("malformed", f"the key data has {len(fields)} fields, not {expected}")
    if key_type == "ssh-rsa":
        return _check_rsa(*fields[1:3])
    if "ecdsa" in key_type:
        return _check_ecdsa(key_type, *fields[1:3])
    if len(fields[1]) != 32:
        raise _refused("malformed", "the Ed25519 key is not 32 bytes long")
    return 256


def _check_ecdsa(key_type: str, curve_name: bytes, point: bytes) -> int:
    expected = key_type.removeprefix("sk-").removeprefix("ecdsa-sha2-").split("@")[0]
    name = curve_name.decode("ascii", "replace")
    if name != expected:
        found = name if name in _CURVES else "another curve"
        raise _refused("type-mismatch", f"the line says {key_type}, its key data is for {found}")
    curve = _CURVES[name]
    if len(point) != 1 + 2 * ((curve.key_size + 7) // 8) or point[0] != 4:
        raise _refused("malformed", "the ECDSA point has the wrong size or encoding")
    try:
        ec.EllipticCurvePublicKey.from_encoded_point(curve, point)
    except (ValueError, UnsupportedAlgorithm):
        raise _refused("malformed", "the ECDSA point is not on the curve") from None
    return curve.key_size


def _check_rsa(exponent: bytes, modulus: bytes) -> int:
    if exponent[:1] >= b"\x80" or modulus[:1] >= b"\x80":
        raise _refused("malformed", "the RSA key holds a negative number")
    e, n = int.from_bytes(exponent, "big"), int.from_bytes(modulus, "big")
    if n.bit_length() < MIN_RSA_BITS:
        problem = f"this RSA key has {n.bit_length()} bits, fewer than {MIN_RSA_BITS}"
        raise _refused("rsa-too-short", problem)
    if n.bit_length() > MAX_RSA_BITS:
        raise _refused("malformed", f"RSA keys over {MAX_RSA_BITS} bits are refused by OpenSSH")
    try:
        rsa.RSAPublicNumbers(e, n).public_key()
    except (ValueError, UnsupportedAlgorithm):
        raise _refused("malformed", "the RSA numbers do not form a valid public key") from None
    return n.bit_length()
