"""The strict YAML loader against hostile input (issue 10 part 7; SAFETY.md K01-K04).

Every case is a file content and the exact one-line refusal ``PATH: [key: ]reason`` (a
regular expression over the part after ``PATH: ``), run through both parsers the loader
may use (libyaml's and PyYAML's pure-Python one), because the rules are ours, not the
parser's. Nothing here measures time: ``bench/yaml_loader.py`` does; the per-test timeout
is only a guard against a hang.
"""

from __future__ import annotations

import math
import os
import random
import re
import stat
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controller import yamlio
from controller.errors import ConfigError
from controller.yamlio import YamlLimits, load_yaml

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = sorted(
    [*ROOT.glob("rigs/*.yaml"), *ROOT.glob("rigs/profiles/*.yaml"), *ROOT.glob("missions/*.yaml"),
     *ROOT.glob("fsm_configs/*.yaml")]
)

PARSERS = ["libyaml", "pure"]


@pytest.fixture(params=PARSERS)
def parser(request, monkeypatch):
    """Run the test with libyaml's parser, then with the pure-Python one."""
    if request.param == "libyaml":
        if not hasattr(yaml, "CSafeLoader"):
            pytest.skip("PyYAML built without libyaml")
        monkeypatch.setattr(yamlio, "_LOADER", yaml.CSafeLoader)
    else:
        monkeypatch.setattr(yamlio, "_LOADER", yaml.SafeLoader)
    return request.param


def refusal(path: Path, **kw) -> str:
    """Load ``path``, expect a ConfigError, check it is one line naming the file; return the rest."""
    with pytest.raises(ConfigError) as info:
        load_yaml(path, **kw)
    line = str(info.value)
    assert "\n" not in line and "\r" not in line
    assert line.startswith(f"{path}: "), line
    return line[len(f"{path}: "):]


def _billion_laughs() -> str:
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"a{i}: &a{i} [{','.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    return "\n".join(lines) + "\n"


def _block_nest(depth: int) -> str:
    return "".join(" " * i + "a:\n" for i in range(depth - 1)) + " " * (depth - 1) + "a: 1\n"


# case -> (file content, regular expression the message after "PATH: " must match in full)
CASES: dict[str, tuple[str | bytes, str]] = {
    # aliases and anchors: refused at the first one, with the key path and the line
    "alias": ("a: &x [1]\nb: *x\n", r"a: YAML aliases/anchors are not allowed \(line 1\)"),
    "anchor_unused": ("a: 1\nb: &x 2\n", r"b: YAML aliases/anchors are not allowed \(line 2\)"),
    "alias_undefined": ("a:\n  - *nowhere\n", r"a\[0\]: YAML aliases/anchors are not allowed \(line 2\)"),
    "anchor_on_mapping": ("a: &m {b: 1}\n", r"a: YAML aliases/anchors are not allowed \(line 1\)"),
    "billion_laughs": (_billion_laughs(), r"a0: YAML aliases/anchors are not allowed \(line 1\)"),
    "merge_key": ("<<: {a: 1}\n", r"YAML merge keys \('<<'\) are not allowed \(line 1\)"),
    "merge_key_nested": ("b:\n  <<: {a: 1}\n", r"b: YAML merge keys \('<<'\) are not allowed \(line 2\)"),
    "merge_as_value": ("b: <<\n", r"b: YAML merge keys \('<<'\) are not allowed \(line 1\)"),
    # nesting and size
    "deep_flow_seq_5000": ("v: " + "[" * 5000 + "]" * 5000 + "\n", r"nesting deeper than 64 levels \(line 1\)"),
    "deep_flow_map_5000": ("v: " + "{a: " * 5000 + "1" + "}" * 5000 + "\n", r"nesting deeper than 64 levels \(line 1\)"),
    "deep_block_map_1000": (_block_nest(1000), r"nesting deeper than 64 levels \(line 65\)"),
    "deep_65": ("[" * 65 + "]" * 65 + "\n", r"nesting deeper than 64 levels \(line 1\)"),
    "list_10001": ("v: [" + "0," * 10_000 + "0]\n", r"v: list longer than 10000 items \(line 1\)"),
    "block_list_10001": ("v:\n" + "  - 0\n" * 10_001, r"v: list longer than 10000 items \(line 10002\)"),
    "mapping_10001_keys": ("".join(f"k{i}: 0\n" for i in range(10_001)),
                           r"mapping with more than 10000 keys \(line 10001\)"),
    "nodes_100001": ("".join(f"l{j}: [" + "0," * 4999 + "0]\n" for j in range(21)),
                     r"more than 100000 YAML nodes \(line 20\): far larger than any QIKI file"),
    "int_10000_digits": ("a: " + "1" * 10_000 + "\n", r"a: number at line 1 is 10000 characters long \(at most 100\)"),
    "int_101_digits": ("a: " + "9" * 101 + "\n", r"a: number at line 1 is 101 characters long \(at most 100\)"),
    "float_long": ("a: 1." + "5" * 200 + "\n", r"a: number at line 1 is 202 characters long \(at most 100\)"),
    "sexagesimal_long": ("a: 1" + ":59" * 40 + "\n", r"a: number at line 1 is 121 characters long \(at most 100\)"),
    # documents
    "two_documents": ("a: 1\n---\nb: 2\n", r"more than one YAML document \(the second starts at line 2\)"),
    "two_documents_marked": ("---\na: 1\n...\n---\na: 2\n", r"more than one YAML document \(the second starts at line 4\)"),
    "empty": ("", r"file is empty"),
    "comments_only": ("# nothing\n\n", r"file is empty"),
    "bare_document_marker": ("---\n", r"file is empty"),
    # tags: plain data only
    "python_object": ("a: !!python/object:os.system x\n",
                      r"a: YAML tag '!!python/object:os.system' is not allowed \(line 1\): plain data only"),
    "python_apply_seq": ("a: !!python/object/apply:os.system [echo hi]\n",
                         r"a: YAML tag '!!python/object/apply:os.system' is not allowed \(line 1\): plain data only"),
    "python_name_key": ("!!python/name:os.system a: 1\n",
                        r"YAML tag '!!python/name:os.system' is not allowed \(line 1\): plain data only"),
    "local_tag": ("a: !thruster x\n", r"a: YAML tag '!thruster' is not allowed \(line 1\): plain data only"),
    "binary_tag": ("a: !!binary aGVsbG8=\n", r"a: YAML tag '!!binary' is not allowed \(line 1\): plain data only"),
    "set_tag": ("a: !!set {x, y}\n", r"a: YAML tag '!!set' is not allowed \(line 1\): plain data only"),
    "omap_tag": ("a: !!omap [x: 1]\n", r"a: YAML tag '!!omap' is not allowed \(line 1\): plain data only"),
    "seq_tag_on_scalar": ("a: !!seq x\n", r"a: YAML tag '!!seq' is not allowed \(line 1\): plain data only"),
    "map_tag_on_list": ("a: !!map [1]\n", r"a: YAML tag '!!map' is not allowed \(line 1\): plain data only"),
    "value_tag": ("a: =\n", r"a: value '=' at line 1 is read by YAML as !!value, not plain data \(quote it\)"),
    "bad_timestamp": ("a: 1\nb: 2024-13-45\n",
                      r"b: cannot read '2024-13-45' \(line 2\) as !!timestamp: month must be in 1\.\.12"),
    # keys (SAFETY.md K03): the messages the rest of the suite relies on
    "duplicate_key": ("a:\n  b:\n    - {c: 1, c: 2}\n", r"a\.b\[0\]\.c: duplicate key \(lines 3 and 3\)"),
    "bool_key": ("states:\n  on: {outputs: zero}\n",
                 r"states\.on: key 'on' is read by YAML as bool, not a name \(quote it\)"),
    "int_key": ("1: a\n", r"1: key '1' is read by YAML as int, not a name \(quote it\)"),
    "null_key": ("~: a\n", r"~: key '~' is read by YAML as null, not a name \(quote it\)"),
    "complex_key": ("? [a, b]\n: 1\n", r"mapping key at line 1 is not a plain name"),
    "complex_key_nested": ("x:\n  ? {a: 1}\n  : 1\n", r"x: mapping key at line 2 is not a plain name"),
    "newline_in_key": ('"a\\nb": 1\n"a\\nb": 2\n', r"'a\\nb': duplicate key \(lines 1 and 2\)"),
    "long_key": ("k" * 300 + ": 1\n" + "k" * 300 + ": 2\n", r"'k{57}'\.\.\.: duplicate key \(lines 1 and 2\)"),
    # text and bytes
    "tab_indent": ("a:\n\t- 1\n", r"not valid YAML at line 2: .+ \(a tab: YAML indents with spaces only\)"),
    "nul_byte": (b"a: 1\x00\n", r"not valid YAML: (control|special) characters are not allowed "
                                r"\(character 0x00 at position 4\)"),
    "bel_byte": (b"a: \x07\n", r"not valid YAML: (control|special) characters are not allowed "
                               r"\(character 0x07 at position 3\)"),
    "not_utf8": (b"a: \xff\xfe\n", r"not utf-8 text: byte 3 is 0xff"),
    "utf16": ("a: 1\n".encode("utf-16"), r"not utf-8 text: byte 0 is 0xff"),
    "latin1": ("name: Düse\n".encode("latin-1"), r"not utf-8 text: byte 7 is 0xfc"),
    "bom_inside": ("a: 1\n\ufeffb: 2\n".encode(), r"not valid YAML at line 2: a byte-order mark \(U\+FEFF\) inside the file"),
    "unclosed_flow": ("a: [1, 2\n", r"not valid YAML at line 2: .+"),
    "unclosed_quote": ('a: "abc\n', r"not valid YAML at line 2: .+"),
    "bad_indent": ("a:\n  b: 1\n c: 2\n", r"not valid YAML at line 3: .+"),
    "directive_twice": ("%YAML 1.1\n%YAML 1.1\n---\na: 1\n", r"not valid YAML at line \d: .+"),
}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("case", sorted(CASES))
def test_hostile_content_is_one_exact_line(tmp_path, parser, case):
    content, pattern = CASES[case]
    p = tmp_path / f"{case}.yaml"
    if isinstance(content, bytes):
        p.write_bytes(content)
    else:
        p.write_text(content, encoding="utf-8")
    rest = refusal(p)
    assert re.fullmatch(pattern, rest), rest


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(ROOT)))
def test_shipped_files_read_as_yaml_safe_load_reads_them(parser, path):
    """The rules refuse hostile files only: a good file means what PyYAML says it means."""
    assert load_yaml(path) == yaml.safe_load(path.read_text(encoding="utf-8"))


# what is accepted, and what it reads as
ACCEPTED: dict[str, tuple[str | bytes, object]] = {
    "bom_at_start": (b"\xef\xbb\xbfa: 1\n", {"a": 1}),
    "explicit_str": ("a: !!str 0x12\nb: !!str on\n", {"a": "0x12", "b": "on"}),
    "explicit_plain_tags": ("a: !!int '7'\nb: !!float '0.5'\nc: !!map {d: !!seq [1]}\n",
                            {"a": 7, "b": 0.5, "c": {"d": [1]}}),
    "quoted_bool_key": ("'on': 1\n", {"on": 1}),
    "yaml11_exponent_is_a_string": ("a: 1e99999\n", {"a": "1e99999"}),
    "document_end_marker": ("a: 1\n...\n", {"a": 1}),
    "int_100_digits": ("a: " + "9" * 100 + "\n", {"a": int("9" * 100)}),
    "hex_and_sexagesimal": ("a: 0x1290\nb: 1:30\n", {"a": 0x1290, "b": 90}),
    "list_10000": ("v: [" + "0," * 9_999 + "0]\n", {"v": [0] * 10_000}),
    "top_level_list": ("- 1\n- 2\n", [1, 2]),
    "null_value": ("a: ~\nb:\n", {"a": None, "b": None}),
}


@pytest.mark.parametrize("case", sorted(ACCEPTED))
def test_plain_data_is_read(tmp_path, parser, case):
    content, expected = ACCEPTED[case]
    p = tmp_path / f"{case}.yaml"
    p.write_bytes(content if isinstance(content, bytes) else content.encode())
    assert load_yaml(p) == expected


def test_overflowing_float_reads_as_infinity_for_the_schema_to_refuse(tmp_path, parser):
    p = tmp_path / "inf.yaml"
    p.write_text("a: 1.0e+99999\n")
    assert math.isinf(load_yaml(p)["a"])


def test_depth_64_is_read_and_65_is_not(tmp_path, parser):
    ok = tmp_path / "d64.yaml"
    ok.write_text("[" * 64 + "]" * 64 + "\n")
    data = load_yaml(ok)
    for _ in range(63):
        data = data[0]
    assert data == []
    bad = tmp_path / "d65.yaml"
    bad.write_text("[" * 65 + "]" * 65 + "\n")
    assert refusal(bad) == "nesting deeper than 64 levels (line 1)"


@pytest.mark.parametrize(
    ("limits", "content", "expected"),
    [
        (YamlLimits(max_nodes=5), "a: [1, 2]\n", {"a": [1, 2]}),  # map, key, list, two items
        (YamlLimits(max_nodes=4), "a: [1, 2]\n", "more than 4 YAML nodes (line 1): far larger than any QIKI file"),
        (YamlLimits(max_items=2), "a: [1, 2]\n", {"a": [1, 2]}),
        (YamlLimits(max_items=2), "a: [1, 2, 3]\n", "a: list longer than 2 items (line 1)"),
        (YamlLimits(max_items=2), "a: 1\nb: 2\nc: 3\n", "mapping with more than 2 keys (line 3)"),
        (YamlLimits(max_depth=2), "a: {b: 1}\n", {"a": {"b": 1}}),
        (YamlLimits(max_depth=2), "a: {b: [1]}\n", "nesting deeper than 2 levels (line 1)"),
        (YamlLimits(max_number_chars=3), "a: 123\n", {"a": 123}),
        (YamlLimits(max_number_chars=3), "a: 1234\n", "a: number at line 1 is 4 characters long (at most 3)"),
        (YamlLimits(max_file_bytes=8), "a: 12\n", {"a": 12}),
        (YamlLimits(max_file_bytes=5), "a: 12\n", "file is 6 bytes, above the 5-byte limit"),
    ],
)
def test_each_limit_is_exact(tmp_path, parser, limits, content, expected):
    p = tmp_path / "f.yaml"
    p.write_text(content)
    if isinstance(expected, str):
        assert refusal(p, limits=limits) == expected
    else:
        assert load_yaml(p, limits=limits) == expected


def test_the_builder_is_iterative(tmp_path):
    """With the depth cap lifted, 1,500 levels (deeper than Python's default recursion
    limit of 1,000 frames) build without recursion (pure-Python parser; its scanner is
    quadratic in flow depth, so deeper costs the test run seconds)."""
    p = tmp_path / "deep.yaml"
    p.write_text("[" * 1500 + "]" * 1500 + "\n")
    orig = yamlio._LOADER
    try:
        yamlio._LOADER = yaml.SafeLoader
        data = load_yaml(p, limits=YamlLimits(max_depth=10_000))
    finally:
        yamlio._LOADER = orig
    depth = 0
    while data:
        data = data[0]
        depth += 1
    assert depth == 1499


@pytest.mark.skipif(not hasattr(yaml, "CSafeLoader"), reason="PyYAML built without libyaml")
def test_libyaml_own_depth_cap_reads_as_ours(tmp_path, monkeypatch):
    monkeypatch.setattr(yamlio, "_LOADER", yaml.CSafeLoader)
    p = tmp_path / "deep.yaml"
    p.write_text("[" * 1200 + "]" * 1200 + "\n")
    assert refusal(p, limits=YamlLimits(max_depth=5000)) == "nesting deeper than 1000 levels (line 1)"


# ---------------------------------------------------------------- what the path names
@pytest.mark.timeout(30)
def test_fifo_is_refused_without_blocking(tmp_path, parser):
    fifo = tmp_path / "rig.yaml"
    os.mkfifo(fifo)
    assert refusal(fifo) == "is a FIFO, not a regular file"


@pytest.mark.timeout(30)
def test_symlink_to_a_fifo_is_refused_without_blocking(tmp_path, parser):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    link = tmp_path / "rig.yaml"
    link.symlink_to(fifo)
    assert refusal(link) == "is a FIFO, not a regular file"


@pytest.mark.timeout(30)
@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="no /dev/zero")
def test_dev_zero_is_refused(tmp_path, parser):
    link = tmp_path / "rig.yaml"
    link.symlink_to("/dev/zero")
    assert refusal(link) == "is a character device, not a regular file"


def test_directory_missing_and_oversize(tmp_path, parser):
    d = tmp_path / "rig.yaml"
    d.mkdir()
    assert refusal(d) in ("is a directory, not a file", "is a directory, not a regular file")
    assert refusal(tmp_path / "nope.yaml") == "file not found"
    big = tmp_path / "big.yaml"
    big.write_text("a: '" + "x" * (1 << 20) + "'\n")
    assert refusal(big) == f"file is {(1 << 20) + 6} bytes, above the 1048576-byte limit"


def test_one_mebibyte_single_line_is_read(tmp_path, parser):
    p = tmp_path / "line.yaml"
    p.write_text("a: '" + "x" * ((1 << 20) - 6) + "'\n")
    assert p.stat().st_size == 1 << 20
    assert len(load_yaml(p)["a"]) == (1 << 20) - 6


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_unreadable_file(tmp_path, parser):
    p = tmp_path / "rig.yaml"
    p.write_text("a: 1\n")
    p.chmod(0)
    try:
        assert refusal(p) == "cannot read file: permission denied"
    finally:
        p.chmod(stat.S_IRUSR | stat.S_IWUSR)


def test_display_name_is_used(tmp_path, parser):
    p = tmp_path / "x.yaml"
    p.write_text("a: &x 1\n")
    with pytest.raises(ConfigError) as info:
        load_yaml(p, "rigs/shown.yaml")
    assert str(info.value) == "rigs/shown.yaml: a: YAML aliases/anchors are not allowed (line 1)"
    assert info.value.path == "rigs/shown.yaml" and info.value.key == "a"


# ---------------------------------------------------------------- fuzz: nothing else escapes
def _check_outcome(p: Path) -> None:
    try:
        load_yaml(p)
    except ConfigError as exc:
        line = str(exc)
        assert "\n" not in line and line.startswith(f"{p}: ")


@pytest.mark.timeout(120)
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=400))
def test_random_bytes_load_or_give_one_line(tmp_path, data):
    p = tmp_path / "fuzz.yaml"
    p.write_bytes(data)
    _check_outcome(p)


_YAML_BITS = ["&a ", "*a ", "!!", "!x ", "<<: ", "? ", ": ", "- ", "[", "]", "{", "}", ",", "\n", "  ", "\t",
              "---\n", "...\n", "%YAML 1.1\n", "'", '"', "#", "|\n", ">\n", "on", "~", "=", "1:2", "0x", "\ufeff", "\x00"]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("seed", range(4))
def test_mutated_rig_loads_or_gives_one_line(tmp_path, parser, seed):
    """The virtual rig with random YAML syntax spliced in: a value or one line, never more."""
    rng = random.Random(seed)
    base = (ROOT / "rigs" / "virtual.yaml").read_text(encoding="utf-8")
    for i in range(100):
        text = base
        for _ in range(rng.randint(1, 4)):
            at = rng.randrange(len(text))
            text = text[:at] + rng.choice(_YAML_BITS) + text[at + rng.randint(0, 3):]
        p = tmp_path / f"m{i}.yaml"
        p.write_text(text, encoding="utf-8")
        _check_outcome(p)


@pytest.mark.parametrize(("name", "shown", "reason"), [
    ("a\0b.yaml", "'a\\x00b.yaml'", "cannot open file: the name holds a NUL byte"),
    ("a\nb.yaml", "'a\\nb.yaml'", "file not found"),
    ("x" * 5000, "x" * 5000, "cannot open file: File name too long"),
])
def test_file_names_the_os_cannot_take(tmp_path, monkeypatch, name, shown, reason):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as info:
        load_yaml(name)
    assert str(info.value) == f"{shown}: {reason}"


def test_a_quoted_empty_document_is_a_string_not_an_empty_file(tmp_path, parser):
    p = tmp_path / "q.yaml"
    p.write_text("''\n")
    assert load_yaml(p) == ""
