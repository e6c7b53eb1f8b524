"""Public keys as a user pastes them, checked against ssh-keygen itself."""

from __future__ import annotations

import base64
import re
import string
import struct
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bastion.config.keys import (
    KEY_TYPES,
    InvalidKeyError,
    PublicKey,
    find_duplicates,
    parse_authorized_keys,
    parse_public_key,
    read_keys_file,
)
from bastion.errors import InputError

GENERATED = [
    ("ed25519", None),
    ("ecdsa", 256),
    ("ecdsa", 384),
    ("ecdsa", 521),
    ("rsa", 2048),
    ("rsa", 3072),
    ("rsa", 4096),
]
BASE64_MATERIAL = re.compile(r"[A-Za-z0-9+/=]{16,}")
DECLARED_TYPES = sorted(KEY_TYPES | {"ssh-dss"})
Edit = Callable[[str], str]


def ssh_string(data: bytes | str) -> bytes:
    raw = data.encode() if isinstance(data, str) else data
    return struct.pack(">I", len(raw)) + raw


def ssh_mpint(value: int) -> bytes:
    return ssh_string(value.to_bytes(value.bit_length() // 8 + 1, "big"))


def key_line(key_type: str, blob: bytes, comment: str = "") -> str:
    return f"{key_type} {base64.b64encode(blob).decode()} {comment}".strip()


def blob_of(line: str) -> bytes:
    return base64.b64decode(line.split()[1])


def wire_fields(blob: bytes) -> list[bytes]:
    fields, offset = [], 0
    while offset < len(blob):
        (length,) = struct.unpack(">I", blob[offset : offset + 4])
        fields.append(blob[offset + 4 : offset + 4 + length])
        offset += 4 + length
    return fields


def ssh_keygen(directory: Path, key_type: str, bits: int | None, *extra: str) -> Path:
    path = directory / f"id_{key_type}_{bits}_{len(list(directory.iterdir()))}"
    size = ["-b", str(bits)] if bits else []
    command = ["ssh-keygen", "-q", "-t", key_type, *size, "-N", "", "-C", "user@laptop"]
    subprocess.run([*command, *extra, "-f", str(path)], check=True, capture_output=True)
    return path


def ssh_keygen_listing(pub: Path) -> tuple[int, str]:
    """(bits, fingerprint) as `ssh-keygen -lf` prints them."""
    result = subprocess.run(["ssh-keygen", "-lf", str(pub)], check=True, capture_output=True)
    bits, fingerprint = result.stdout.decode().split()[:2]
    return int(bits), fingerprint


def refusal(text: str) -> InvalidKeyError:
    with pytest.raises(InvalidKeyError) as caught:
        parse_public_key(text)
    return caught.value


def leaked_material(text: str, error: Exception) -> list[str]:
    """16-character stretches of the input's base64 found in the message (those with a capital
    letter: a declared type, which may be echoed, is lower case)."""
    message = str(error)
    runs = BASE64_MATERIAL.findall(text)
    windows = {run[i : i + 16] for run in runs for i in range(len(run) - 15)}
    return sorted(w for w in windows if re.search("[A-Z]", w) and w in message)


@pytest.fixture(scope="session")
def key_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("keys")


@pytest.fixture(scope="session", params=GENERATED, ids=lambda spec: f"{spec[0]}-{spec[1] or 256}")
def generated(request: pytest.FixtureRequest, key_dir: Path) -> Path:
    """The private key file; its public half is beside it with .pub."""
    key_type, bits = request.param
    return ssh_keygen(key_dir, key_type, bits)


@pytest.fixture(scope="session")
def ed25519(key_dir: Path) -> Path:
    return ssh_keygen(key_dir, "ed25519", None)


@pytest.fixture(scope="session")
def ed25519_line(ed25519: Path) -> str:
    return ed25519.with_suffix(".pub").read_text().strip()


@pytest.fixture(scope="session")
def rsa_line(key_dir: Path) -> str:
    return ssh_keygen(key_dir, "rsa", 2048).with_suffix(".pub").read_text().strip()


@pytest.fixture(scope="session")
def ecdsa_line(key_dir: Path) -> str:
    return ssh_keygen(key_dir, "ecdsa", 256).with_suffix(".pub").read_text().strip()


@pytest.fixture(scope="session")
def sample_lines(ed25519_line: str, rsa_line: str, ecdsa_line: str) -> list[str]:
    return [ed25519_line, rsa_line, ecdsa_line]


# --- real keys agree with ssh-keygen ----------------------------------------------------------


def test_fingerprint_matches_ssh_keygen(generated: Path) -> None:
    pub = generated.with_suffix(".pub")
    assert parse_public_key(pub.read_text()).fingerprint == ssh_keygen_listing(pub)[1]


def test_bits_match_ssh_keygen(generated: Path) -> None:
    pub = generated.with_suffix(".pub")
    assert parse_public_key(pub.read_text()).bits == ssh_keygen_listing(pub)[0]


def test_openssh_line_is_the_pub_file_line(generated: Path) -> None:
    pub = generated.with_suffix(".pub")
    assert parse_public_key(pub.read_text()).openssh() == pub.read_text().strip()


def test_comment_is_kept(ed25519_line: str) -> None:
    assert parse_public_key(ed25519_line).comment == "user@laptop"


def test_describe_names_kind_fingerprint_and_comment(ed25519: Path, ed25519_line: str) -> None:
    fingerprint = ssh_keygen_listing(ed25519.with_suffix(".pub"))[1]
    assert parse_public_key(ed25519_line).describe() == f"ED25519 {fingerprint} user@laptop"


def test_key_without_comment_prints_without_one(ed25519_line: str) -> None:
    bare = " ".join(ed25519_line.split()[:2])
    assert parse_public_key(bare).openssh() == bare


@pytest.mark.parametrize(
    "wrap",
    ["  {}  ", "{}\n", "{}\r\n", "\t{}\n", "\n{}\n\n"],
    ids=["spaces", "newline", "crlf", "tab", "blank-lines-around"],
)
def test_surrounding_whitespace_is_accepted(ed25519_line: str, wrap: str) -> None:
    assert parse_public_key(wrap.format(ed25519_line)) == parse_public_key(ed25519_line)


def test_tab_between_fields_is_accepted(ed25519_line: str) -> None:
    assert parse_public_key(ed25519_line.replace(" ", "\t")) == parse_public_key(ed25519_line)


def test_unpadded_base64_is_accepted(ecdsa_line: str) -> None:
    key_type, data, comment = ecdsa_line.split()
    assert data.endswith("=")
    unpadded = f"{key_type} {data.rstrip('=')} {comment}"
    assert parse_public_key(unpadded) == parse_public_key(ecdsa_line)


@pytest.mark.parametrize("comment", ["jörg@laptop (work)", "x" * 256, "two  spaces"])
def test_plain_comment_is_accepted(ed25519_line: str, comment: str) -> None:
    line = f"{' '.join(ed25519_line.split()[:2])} {comment}"
    assert parse_public_key(line).comment == comment


# --- security keys (PROTOCOL.u2f), crafted by hand from real keys ------------------------------


@pytest.fixture(
    params=["sk-ssh-ed25519@openssh.com", "sk-ecdsa-sha2-nistp256@openssh.com"],
    ids=["ed25519-sk", "ecdsa-sk"],
)
def security_key_pub(
    request: pytest.FixtureRequest, tmp_path: Path, ed25519_line: str, ecdsa_line: str
) -> Path:
    if request.param.startswith("sk-ssh-ed25519"):
        public = wire_fields(blob_of(ed25519_line))[1:]
    else:
        public = wire_fields(blob_of(ecdsa_line))[1:]
    blob = ssh_string(request.param) + b"".join(map(ssh_string, public)) + ssh_string("ssh:")
    pub = tmp_path / "id_sk.pub"
    pub.write_text(key_line(request.param, blob, "yubikey") + "\n")
    return pub


def test_security_key_parses_with_ssh_keygen_fingerprint(security_key_pub: Path) -> None:
    assert (
        parse_public_key(security_key_pub.read_text()).fingerprint
        == ssh_keygen_listing(security_key_pub)[1]
    )


def test_security_key_is_256_bits(security_key_pub: Path) -> None:
    assert parse_public_key(security_key_pub.read_text()).bits == 256


def test_security_key_without_application_is_refused(ed25519_line: str) -> None:
    blob = ssh_string("sk-ssh-ed25519@openssh.com") + ssh_string(
        wire_fields(blob_of(ed25519_line))[1]
    )
    assert refusal(key_line("sk-ssh-ed25519@openssh.com", blob)).rule == "malformed"


# --- refusals -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key_type", "keygen_args"),
    [("ed25519", ()), ("rsa", ("-m", "PEM")), ("ecdsa", ("-m", "PKCS8"))],
    ids=["openssh-format", "rsa-pem", "ecdsa-pkcs8"],
)
def test_private_key_file_is_refused(
    key_dir: Path, key_type: str, keygen_args: tuple[str, ...]
) -> None:
    private = ssh_keygen(key_dir, key_type, None, *keygen_args).read_text()
    assert refusal(private).rule == "private-key"


@pytest.mark.parametrize(
    "paste",
    [
        lambda text: text,
        lambda text: " ".join(text.split()),
        lambda text: "".join(line for line in text.splitlines() if "-----" not in line),
    ],
    ids=["as-is", "joined-into-one-line", "body-without-armour"],
)
def test_private_key_message_never_shows_the_key(ed25519: Path, paste: Edit) -> None:
    text = paste(ed25519.read_text())
    error = refusal(text)
    assert (error.rule, leaked_material(text, error)) == ("private-key", [])


def test_private_key_message_says_treat_as_leaked(ed25519: Path) -> None:
    message = str(refusal(ed25519.read_text()))
    assert "PRIVATE key" in message and "leaked" in message


def test_putty_private_key_is_refused() -> None:
    putty = (
        "PuTTY-User-Key-File-3: ssh-ed25519\nEncryption: none\nComment: me\nPublic-Lines: 2\n"
        "AAAAC3NzaC1lZDI1NTE5AAAAIOq2NhYzhWTx1xYXxS4SWBpHWPZ0g2Ea\nNT0L9ukbgMhq\n"
        "Private-Lines: 1\nAAAAIGmP9q0QO5I2ZKqF5qT9XbVZ2kRk6kA6b0y4s3eM0y1v\n"
        "Private-MAC: 0f4a0d9b6a2d3c4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6\n"
    )
    error = refusal(putty)
    assert (error.rule, leaked_material(putty, error)) == ("private-key", [])


def test_dsa_key_is_refused() -> None:
    blob = ssh_string("ssh-dss") + b"".join(ssh_mpint(n) for n in (2**1023 + 1, 2**159 + 7, 2, 3))
    line = key_line("ssh-dss", blob, "old@box")
    error = refusal(line)
    assert (error.rule, leaked_material(line, error)) == ("dsa", [])


def test_short_rsa_key_from_ssh_keygen_is_refused(key_dir: Path) -> None:
    line = ssh_keygen(key_dir, "rsa", 1024).with_suffix(".pub").read_text()
    error = refusal(line)
    assert (error.rule, leaked_material(line, error)) == ("rsa-too-short", [])


def test_short_rsa_message_says_the_size_found(key_dir: Path) -> None:
    line = ssh_keygen(key_dir, "rsa", 1024).with_suffix(".pub").read_text()
    assert "1024 bits" in str(refusal(line))


@pytest.mark.parametrize(
    "options",
    [
        'command="echo hi" ',
        "restrict,port-forwarding ",
        "no-pty ",
        'restrict,permitopen="10.0.0.5:5439",expiry-time="20261124101010Z" ',
        'from="10.0.0.0/8"\t',
    ],
)
def test_key_with_options_is_refused(ed25519_line: str, options: str) -> None:
    error = refusal(options + ed25519_line)
    assert (error.rule, leaked_material(ed25519_line, error)) == ("options", [])


def test_options_message_says_bastion_adds_them(ed25519_line: str) -> None:
    assert "options are added by bastion itself" in str(refusal("no-pty " + ed25519_line))


@pytest.mark.parametrize("separator", ["\n", "\r\n", "\n\n"])
def test_several_keys_in_one_value_are_refused(
    ed25519_line: str, rsa_line: str, separator: str
) -> None:
    text = ed25519_line + separator + rsa_line
    error = refusal(text)
    assert (error.rule, leaked_material(text, error)) == ("multi-line", [])


def test_wrapped_key_is_refused_as_multi_line(rsa_line: str) -> None:
    assert refusal(rsa_line[:80] + "\n" + rsa_line[80:]).rule == "multi-line"


@pytest.mark.parametrize(
    "damage",
    [
        lambda data: data[:20] + "!" + data[20:],
        lambda data: data[:20] + "é" + data[20:],
        lambda data: data[:-3],
        lambda data: data + "====",
        lambda data: data[:30] + "=" + data[31:],
    ],
    ids=["punctuation", "non-ascii", "cut-off", "extra-padding", "padding-inside"],
)
def test_bad_base64_is_refused(ed25519_line: str, damage: Edit) -> None:
    key_type, data, comment = ed25519_line.split()
    line = f"{key_type} {damage(data)} {comment}"
    error = refusal(line)
    assert (error.rule, leaked_material(line, error)) == ("bad-base64", [])


def test_base64_with_stray_trailing_bits_is_refused(ecdsa_line: str) -> None:
    key_type, data, comment = ecdsa_line.split()
    alphabet = string.ascii_uppercase + string.ascii_lowercase + string.digits + "+/"
    edited = data[:-2] + alphabet[alphabet.index(data[-2]) ^ 1] + "="  # same bytes decoded
    assert base64.b64decode(edited) == base64.b64decode(data)
    assert refusal(f"{key_type} {edited} {comment}").rule == "bad-base64"


def test_rsa_blob_declared_as_ed25519_is_refused(rsa_line: str) -> None:
    line = key_line("ssh-ed25519", blob_of(rsa_line), "x")
    error = refusal(line)
    assert (error.rule, leaked_material(line, error)) == ("type-mismatch", [])


def test_ecdsa_256_blob_declared_as_384_is_refused(ecdsa_line: str) -> None:
    assert refusal(key_line("ecdsa-sha2-nistp384", blob_of(ecdsa_line))).rule == "type-mismatch"


def test_ecdsa_blob_with_wrong_curve_name_is_refused(ecdsa_line: str) -> None:
    _, _, point = wire_fields(blob_of(ecdsa_line))
    blob = ssh_string("ecdsa-sha2-nistp256") + ssh_string("nistp384") + ssh_string(point)
    assert refusal(key_line("ecdsa-sha2-nistp256", blob)).rule == "type-mismatch"


def test_dsa_blob_declared_as_ed25519_is_refused() -> None:
    blob = ssh_string("ssh-dss") + b"".join(ssh_mpint(n) for n in (2**1023 + 1, 2**159 + 7, 2, 3))
    assert refusal(key_line("ssh-ed25519", blob)).rule == "type-mismatch"


@pytest.mark.parametrize(
    "make_line",
    [
        lambda line: "ssh-foo " + line.split(maxsplit=1)[1],
        lambda line: "rsa-sha2-512 " + line.split(maxsplit=1)[1],
        lambda line: "ssh-ed25519-cert-v01@openssh.com " + line.split(maxsplit=1)[1],
        lambda line: line.split(maxsplit=1)[1],
    ],
    ids=["made-up", "signature-algorithm", "certificate", "type-missing"],
)
def test_unknown_type_is_refused(ed25519_line: str, make_line: Edit) -> None:
    line = make_line(ed25519_line)
    error = refusal(line)
    assert (error.rule, leaked_material(line, error)) == ("unknown-type", [])


def test_unknown_type_message_names_the_declared_type(ed25519_line: str) -> None:
    assert "'ssh-foo'" in str(refusal("ssh-foo " + ed25519_line.split(maxsplit=1)[1]))


@pytest.mark.parametrize("text", ["", "   ", "\n", "\r\n\t \n"])
def test_empty_value_is_refused(text: str) -> None:
    assert refusal(text).rule == "empty"


@pytest.mark.parametrize(
    "make_blob",
    [
        lambda pk: ssh_string("ssh-ed25519") + ssh_string(pk[:31]),
        lambda pk: ssh_string("ssh-ed25519") + ssh_string(pk) + ssh_string("extra"),
        lambda pk: ssh_string("ssh-ed25519") + ssh_string(pk) + b"\x00",
        lambda pk: ssh_string("ssh-ed25519") + struct.pack(">I", 64) + pk,
        lambda pk: ssh_string("ssh-ed25519"),
    ],
    ids=["short-point", "extra-field", "trailing-byte", "length-past-end", "no-point"],
)
def test_malformed_ed25519_blob_is_refused(
    ed25519_line: str, make_blob: Callable[[bytes], bytes]
) -> None:
    line = key_line("ssh-ed25519", make_blob(wire_fields(blob_of(ed25519_line))[1]), "x")
    error = refusal(line)
    assert (error.rule, leaked_material(line, error)) == ("malformed", [])


def test_ecdsa_point_off_the_curve_is_refused() -> None:
    point = b"\x04" + b"\x01" * 64
    blob = ssh_string("ecdsa-sha2-nistp256") + ssh_string("nistp256") + ssh_string(point)
    assert refusal(key_line("ecdsa-sha2-nistp256", blob)).rule == "malformed"


def test_rsa_with_even_exponent_is_refused(rsa_line: str) -> None:
    _, _, modulus = wire_fields(blob_of(rsa_line))
    blob = ssh_string("ssh-rsa") + ssh_mpint(65536) + ssh_string(modulus)
    assert refusal(key_line("ssh-rsa", blob)).rule == "malformed"


def test_rsa_with_negative_modulus_is_refused(rsa_line: str) -> None:
    exponent, modulus = wire_fields(blob_of(rsa_line))[1:]
    blob = ssh_string("ssh-rsa") + ssh_string(exponent) + ssh_string(modulus.lstrip(b"\x00"))
    assert refusal(key_line("ssh-rsa", blob)).rule == "malformed"


def test_type_without_key_data_is_refused() -> None:
    assert refusal("ssh-ed25519").rule == "malformed"


@pytest.mark.parametrize("export_format", ["RFC4716", "PKCS8", "PEM"])
def test_public_key_in_pem_format_is_refused(
    ecdsa_line: str, tmp_path: Path, export_format: str
) -> None:
    pub = tmp_path / "key.pub"
    pub.write_text(ecdsa_line + "\n")
    command = ["ssh-keygen", "-e", "-m", export_format, "-f", str(pub)]
    exported = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    error = refusal(exported)
    assert (error.rule, leaked_material(exported, error)) == ("malformed", [])


@pytest.mark.parametrize(
    "comment",
    ['say "hi"', "it's", "back\\slash", "`id`", "bell\x07", "nul\x00byte", "tab\tinside",
     "del\x7f", "bidi\u202eoverride", "x" * 257],
    ids=["double-quote", "single-quote", "backslash", "backtick", "bell", "nul", "tab",
         "del", "bidi-override", "too-long"],
)  # fmt: skip
def test_unsafe_comment_is_refused(ed25519_line: str, comment: str) -> None:
    line = f"{' '.join(ed25519_line.split()[:2])} {comment}"
    error = refusal(line)
    assert (error.rule, leaked_material(line, error)) == ("comment", [])


def test_public_key_checks_itself_when_built_directly() -> None:
    with pytest.raises(InvalidKeyError):
        PublicKey("ssh-ed25519", b"not a key blob")


# --- authorized_keys as found on a host -------------------------------------------------------

PERMIT = 'restrict,port-forwarding,permitopen="10.0.0.5:5439",expiry-time="20261124101010Z"'
COMMAND = 'command="echo \\"hi, there\\"",no-pty'


@pytest.fixture
def authorized_keys(ed25519_line: str, rsa_line: str, ecdsa_line: str) -> str:
    return "\n".join(
        [
            "# managed by bastion",
            "",
            f"{PERMIT} {ed25519_line}",
            f"{COMMAND} {rsa_line}",
            f"   {ecdsa_line}",
            "this line is garbage",
            'from="10.0.0.1 ssh-ed25519 ' + ed25519_line.split()[1],
            key_line("ssh-dss", ssh_string("ssh-dss") + ssh_mpint(5)),
            "",
        ]
    )


def test_authorized_keys_skips_blank_and_comment_lines(authorized_keys: str) -> None:
    assert len(parse_authorized_keys(authorized_keys)) == 6


def test_authorized_keys_reads_options_with_quoted_values(authorized_keys: str) -> None:
    assert [entry.options for entry in parse_authorized_keys(authorized_keys)[:3]] == [
        PERMIT,
        COMMAND,
        "",
    ]


def test_authorized_keys_reads_the_keys_after_options(
    authorized_keys: str, ed25519_line: str, rsa_line: str, ecdsa_line: str
) -> None:
    keys = [entry.key for entry in parse_authorized_keys(authorized_keys)[:3]]
    assert keys == [parse_public_key(line) for line in (ed25519_line, rsa_line, ecdsa_line)]


def test_authorized_keys_keeps_unparsable_lines_raw(authorized_keys: str) -> None:
    garbage = parse_authorized_keys(authorized_keys)[3:]
    assert [(entry.key, entry.raw) for entry in garbage] == [
        (None, line) for line in authorized_keys.splitlines()[5:8]
    ]


def test_authorized_keys_gives_garbage_line_no_options(authorized_keys: str) -> None:
    assert parse_authorized_keys(authorized_keys)[3].options == ""


def test_authorized_keys_escaped_quote_does_not_close_options(ed25519_line: str) -> None:
    # sshd reads `"x\" ...` as a quote that never closes, so the line grants nothing
    assert parse_authorized_keys(f'command="x\\" {ed25519_line}')[0].key is None


def test_authorized_keys_says_why_a_line_was_not_understood(authorized_keys: str) -> None:
    assert "DSA" in parse_authorized_keys(authorized_keys)[5].problem


def test_authorized_keys_keeps_raw_line_without_crlf(ed25519_line: str) -> None:
    assert parse_authorized_keys(ed25519_line + "\r\n")[0].raw == ed25519_line


def test_authorized_keys_cleans_comment_instead_of_refusing(ed25519_line: str) -> None:
    line = f'{" ".join(ed25519_line.split()[:2])} "quoted" \\ name'
    entry = parse_authorized_keys(line)[0]
    assert entry.key is not None and entry.key.comment == "quoted  name"


# --- keys files and duplicates ----------------------------------------------------------------


def test_keys_file_skips_blank_lines_and_comments(
    tmp_path: Path, ed25519_line: str, rsa_line: str
) -> None:
    path = tmp_path / "keys"
    path.write_text(f"# dbt Cloud\n{ed25519_line}\n\n   # admin\n{rsa_line}\n")
    assert read_keys_file(path) == [parse_public_key(ed25519_line), parse_public_key(rsa_line)]


def test_keys_file_error_names_the_line(tmp_path: Path, ed25519_line: str) -> None:
    path = tmp_path / "keys"
    path.write_text(f"# dbt Cloud\n{ed25519_line}\nno-pty {ed25519_line}\n")
    with pytest.raises(InvalidKeyError, match="line 3") as caught:
        read_keys_file(path)
    assert caught.value.rule == "options"


def test_private_key_as_keys_file_is_refused(ed25519: Path) -> None:
    with pytest.raises(InvalidKeyError, match="line 1") as caught:
        read_keys_file(ed25519)
    assert caught.value.rule == "private-key"


def test_missing_keys_file_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot read"):
        read_keys_file(tmp_path / "absent")


def test_same_key_under_two_comments_is_a_duplicate(ed25519_line: str, rsa_line: str) -> None:
    work, home = parse_public_key(ed25519_line + "-work"), parse_public_key(ed25519_line + "-home")
    assert find_duplicates([work, parse_public_key(rsa_line), home]) == [[work, home]]


# --- properties -----------------------------------------------------------------------------


def parsed_or_refused(text: str) -> PublicKey | None:
    """Anything but a PublicKey or an InvalidKeyError (that leaks no key material) fails."""
    try:
        return parse_public_key(text)
    except InvalidKeyError as error:
        assert leaked_material(text, error) == []
        return None


@given(text=st.text())
def test_any_text_is_parsed_or_refused(text: str) -> None:
    parsed_or_refused(text)


@settings(deadline=None)
@given(data=st.data())
def test_edited_key_line_is_parsed_or_refused(sample_lines: list[str], data: st.DataObject) -> None:
    line = data.draw(st.sampled_from(sample_lines))
    start = data.draw(st.integers(0, len(line)))
    end = data.draw(st.integers(start, min(len(line), start + 8)))
    parsed_or_refused(line[:start] + data.draw(st.text(max_size=4)) + line[end:])


@settings(deadline=None)
@given(data=st.data())
def test_edited_key_blob_is_parsed_or_refused(sample_lines: list[str], data: st.DataObject) -> None:
    blob = blob_of(data.draw(st.sampled_from(sample_lines)))
    start = data.draw(st.integers(0, len(blob)))
    end = data.draw(st.integers(start, min(len(blob), start + 8)))
    edited = blob[:start] + data.draw(st.binary(max_size=8)) + blob[end:]
    parsed_or_refused(key_line(data.draw(st.sampled_from(DECLARED_TYPES)), edited, "x"))


@settings(deadline=None)
@given(
    key_type=st.sampled_from(DECLARED_TYPES),
    fields=st.lists(
        st.one_of(st.binary(max_size=70), st.sampled_from([b"nistp256", b"ssh:"])), max_size=5
    ),
)
def test_framed_blob_of_any_fields_is_parsed_or_refused(key_type: str, fields: list[bytes]) -> None:
    blob = ssh_string(key_type) + b"".join(map(ssh_string, fields))
    parsed_or_refused(key_line(key_type, blob))


@given(text=st.text())
def test_authorized_keys_never_raises_on_any_text(text: str) -> None:
    assert all(entry.raw.strip() for entry in parse_authorized_keys(text))


@settings(deadline=None)
@given(data=st.data())
def test_authorized_keys_never_raises_on_options_and_keys(
    sample_lines: list[str], data: st.DataObject
) -> None:
    options = st.text(alphabet='ab=", \\\t', max_size=12)
    line = st.builds(lambda o, k: f"{o} {k}", options, st.sampled_from(sample_lines))
    text = "\n".join(data.draw(st.lists(st.one_of(line, st.text(max_size=20)), max_size=6)))
    assert len(parse_authorized_keys(text)) <= text.count("\n") + 1


PRINTABLE = st.characters(categories=["L", "N", "P", "S"], exclude_characters="\"'`\\")
COMMENTS = st.text(st.one_of(PRINTABLE, st.just(" ")), max_size=60).map(str.strip)


@settings(deadline=None)
@given(data=st.data(), comment=COMMENTS)
def test_round_trip_through_openssh_line(
    sample_lines: list[str], data: st.DataObject, comment: str
) -> None:
    line = data.draw(st.sampled_from(sample_lines))
    key = PublicKey(line.split()[0], blob_of(line), comment)
    assert parse_public_key(key.openssh()) == key
