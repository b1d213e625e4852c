"""A corpus of malformed rigs, missions, state machines and Modbus device profiles, fed to
the real ``qiki`` command (issue 10: "100+ malformed files ... each gives exit 2, one line").

Each of the four file kinds is reached the way a user reaches it:

* rig: ``qiki rig check FILE``
* state machine: ``qiki fsm check FILE``
* mission: ``qiki run --rig rigs/virtual.yaml --mission FILE`` (the mission is loaded before
  anything is opened or written)
* device profile: ``qiki modbus read --rig RIG bms``, RIG naming FILE as the BMS profile

and every malformed file must end in exit status 2 with exactly one line on stderr that
names the file, nothing on stdout, and no traceback. The same files in a child process
(a sample) prove it for the installed entry point too. No timing is asserted here (see
``bench/yaml_loader.py``); the timeouts only guard against a hang.
"""

from __future__ import annotations

import os
import random
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from controller.cli import main

ROOT = Path(__file__).resolve().parents[2]

#: Data paths a rig names, made absolute so a rig copied to tmp_path still finds them.
_RIG_DATA = ("dbc/qiki.dbc", "dbc/ars408.dbc", "fsm_configs/qiki_vehicle.yaml",
             "rigs/profiles/jk_bms.yaml", "rigs/profiles/qiki_pdu.yaml")


def _good_rig_text() -> str:
    text = (ROOT / "rigs" / "virtual.yaml").read_text(encoding="utf-8")
    for rel in _RIG_DATA:
        text = text.replace(rel, str(ROOT / rel))
    return text


@dataclass(frozen=True)
class Kind:
    """One file kind: its good text, a numeric line to spoil, and how ``qiki`` reads it."""

    name: str
    good: str
    number_line: str  # a line of ``good`` holding a number: "<key>: <value>"

    def argv(self, bad: str, tmp_path: Path) -> list[str]:
        if self.name == "rig":
            return ["rig", "check", bad]
        if self.name == "fsm":
            return ["fsm", "check", bad]
        if self.name == "mission":
            return ["run", "--rig", str(ROOT / "rigs" / "virtual.yaml"), "--mission", bad,
                    "--runs-dir", str(tmp_path / "runs"), "--no-progress"]
        # profile: a good rig whose BMS profile is the bad file
        rig = tmp_path / f"rig-for-{Path(bad).name}.yaml"
        rig.write_text(_good_rig_text().replace(str(ROOT / "rigs/profiles/jk_bms.yaml"), bad), encoding="utf-8")
        return ["modbus", "read", "--rig", str(rig), "bms"]


KINDS = {
    "rig": Kind("rig", _good_rig_text(), "vehicle: {mass_kg: 15.0, inertia_kgm2: 0.35}"),
    "mission": Kind("mission", (ROOT / "missions/square.yaml").read_text(encoding="utf-8"), "timeout_s: 240.0"),
    "fsm": Kind("fsm", (ROOT / "fsm_configs/qiki_vehicle.yaml").read_text(encoding="utf-8"),
                "  - {state: boot, after_s: 5.0, event: post_failed}"),
    "profile": Kind("profile", (ROOT / "rigs/profiles/jk_bms.yaml").read_text(encoding="utf-8"), "poll_period_s: 0.5"),
}


def _spoil_number(kind: Kind, value: str) -> str:
    """``good`` with the number on ``number_line`` replaced by ``value``."""
    line = kind.number_line
    for num in ("15.0", "240.0", "5.0", "0.5"):
        if num in line:
            assert line in kind.good
            return kind.good.replace(line, line.replace(num, value, 1), 1)
    raise AssertionError(line)  # pragma: no cover


def _replace_name(kind: Kind, value: str) -> str:
    """``good`` with the value of its top-level ``name:`` replaced."""
    lines = kind.good.split("\n")
    i = next(i for i, ln in enumerate(lines) if ln.startswith("name:"))
    lines[i] = f"name: {value}"
    return "\n".join(lines)


def _bomb() -> str:
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"a{i}: &a{i} [{','.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    return "\n".join(lines) + "\n"


# content makers: kind -> str (UTF-8 text) or bytes
Maker = Callable[[Kind], "str | bytes"]
CONTENTS: dict[str, Maker] = {
    "alias_bomb": lambda k: _bomb(),
    "alias_bomb_after_good_text": lambda k: k.good + "\n" + _bomb().replace("a", "zz"),
    "anchor_on_name": lambda k: _replace_name(k, "&n x"),
    "deep_flow_seq": lambda k: _replace_name(k, "[" * 5000 + "]" * 5000),
    "deep_flow_map": lambda k: _replace_name(k, "{a: " * 5000 + "1" + "}" * 5000),
    "deep_block_map": lambda k: "".join(" " * i + "a:\n" for i in range(999)) + " " * 999 + "a: 1\n",
    "two_documents": lambda k: k.good + "\n---\n" + k.good,
    "tab_indent": lambda k: k.good.replace("\n  ", "\n\t", 1),
    "nul_byte": lambda k: k.good.replace("\n", "\n\x00", 3),
    "bom_inside": lambda k: k.good.replace("\nname:", "\n\ufeffname:", 1),
    "latin1_byte": lambda k: k.good.encode("utf-8") + "# Düse\n".encode("latin-1"),
    "utf16": lambda k: k.good.encode("utf-16"),
    "binary_garbage": lambda k: random.Random(len(k.name)).randbytes(4096),
    "oversize": lambda k: k.good + ("# " + "x" * 98 + "\n") * 10_500,
    "one_line_over_1mib": lambda k: "name: '" + "x" * (1 << 20) + "'\n",
    "huge_flow_list": lambda k: _replace_name(k, "[" + "0," * 200_000 + "0]"),
    "many_nodes": lambda k: k.good + "".join(f"\nz{j}: [" + "0," * 9_000 + "0]" for j in range(12)) + "\n",
    "huge_int": lambda k: _spoil_number(k, "1" * 10_000),
    "long_sexagesimal": lambda k: _spoil_number(k, "1" + ":59" * 200),
    "infinite_number": lambda k: _spoil_number(k, "1.0e+99999"),
    "nan_number": lambda k: _spoil_number(k, ".nan"),
    "python_tag": lambda k: _replace_name(k, "!!python/object/apply:os.system ['true']"),
    "local_tag": lambda k: _replace_name(k, "!include other.yaml"),
    "binary_tag": lambda k: _replace_name(k, "!!binary aGVsbG8="),
    "merge_key": lambda k: k.good + "\nextra: {<<: {a: 1}}\n",
    "duplicate_name": lambda k: k.good + "\nname: again\n",
    "bool_key": lambda k: k.good + "\non: 1\n",
    "complex_key": lambda k: k.good + "\n? [a]\n: 1\n",
    "unclosed_flow": lambda k: _replace_name(k, "[1, 2"),
    "empty": lambda k: "",
    "comments_only": lambda k: "# nothing here\n",
}

#: Paths that are not regular files (made per case in tmp_path).
SPECIAL_PATHS = ("fifo", "dev_zero", "directory", "missing")

#: What each refusal must say (a regular expression searched in the line): the file is
#: refused for the reason the case was built for, not for some other fault.
EXPECTED = {
    "alias_bomb": r": a0: YAML aliases/anchors are not allowed \(line 1\)$",
    "alias_bomb_after_good_text": r": zz0: YAML aliases/anchors are not allowed \(line \d+\)$",
    "anchor_on_name": r": name: YAML aliases/anchors are not allowed \(line \d+\)$",
    "deep_flow_seq": r": nesting deeper than 64 levels \(line \d+\)$",
    "deep_flow_map": r": nesting deeper than 64 levels \(line \d+\)$",
    "deep_block_map": r": nesting deeper than 64 levels \(line 65\)$",
    "two_documents": r": more than one YAML document \(the second starts at line \d+\)$",
    "tab_indent": r": not valid YAML at line \d+: .*\(a tab: YAML indents with spaces only\)$",
    "nul_byte": r": not valid YAML: (control|special) characters are not allowed \(character 0x00 at position \d+\)$",
    "bom_inside": r": not valid YAML at line \d+: a byte-order mark \(U\+FEFF\) inside the file$",
    "latin1_byte": r": not utf-8 text: byte \d+ is 0xfc$",
    "utf16": r": not utf-8 text: byte 0 is 0xff$",
    "binary_garbage": r": not utf-8 text: byte \d+ is 0x[0-9a-f]{2}$",
    "oversize": r": file is \d+ bytes, above the 1048576-byte limit$",
    "one_line_over_1mib": r": file is 1048585 bytes, above the 1048576-byte limit$",
    "huge_flow_list": r": name: list longer than 10000 items \(line \d+\)$",
    "many_nodes": r": more than 100000 YAML nodes \(line \d+\): far larger than any QIKI file$",
    "huge_int": r": [\w.\[\]]+: number at line \d+ is 10000 characters long \(at most 100\)$",
    "long_sexagesimal": r": [\w.\[\]]+: number at line \d+ is 601 characters long \(at most 100\)$",
    "infinite_number": r": [\w.\[\]]+: Input should be (a finite number|less than or equal to \d+) \(got inf\)$",
    "nan_number": r": [\w.\[\]]+: Input should be (a finite number|less than or equal to \d+) \(got nan\)$",
    "python_tag": r": name: YAML tag '!!python/object/apply:os.system' is not allowed \(line \d+\): plain data only$",
    "local_tag": r": name: YAML tag '!include' is not allowed \(line \d+\): plain data only$",
    "binary_tag": r": name: YAML tag '!!binary' is not allowed \(line \d+\): plain data only$",
    "merge_key": r": extra: YAML merge keys \('<<'\) are not allowed \(line \d+\)$",
    "duplicate_name": r": name: duplicate key \(lines \d+ and \d+\)$",
    "bool_key": r": on: key 'on' is read by YAML as bool, not a name \(quote it\)$",
    "complex_key": r": mapping key at line \d+ is not a plain name$",
    "unclosed_flow": r": not valid YAML at line \d+: .+$",
    "empty": r": file is empty$",
    "comments_only": r": file is empty$",
    "fifo": r": is a FIFO, not a regular file$",
    "dev_zero": r": is a character device, not a regular file$",
    "directory": r": is a directory, not a (regular )?file$",
    "missing": r": file not found$",
}


@dataclass(frozen=True)
class Case:
    kind: str
    content: str  # a CONTENTS key or a SPECIAL_PATHS entry


CORPUS = [Case(k, c) for k in KINDS for c in [*CONTENTS, *SPECIAL_PATHS]]


def make_file(case: Case, tmp_path: Path) -> str:
    """Create the case's file (or special path) in ``tmp_path``; return its path as a str."""
    p = tmp_path / f"{case.kind}-{case.content}.yaml"
    if case.content == "fifo":
        os.mkfifo(p)
    elif case.content == "dev_zero":
        p.symlink_to("/dev/zero")
    elif case.content == "directory":
        p.mkdir()
    elif case.content == "missing":
        pass
    else:
        content = CONTENTS[case.content](KINDS[case.kind])
        if isinstance(content, bytes):
            p.write_bytes(content)
        else:
            p.write_text(content, encoding="utf-8")
    return str(p)


def test_the_corpus_is_large_and_every_good_base_is_accepted(tmp_path, capsys):
    """The corpus holds 100+ cases, and each kind's unspoiled text passes its command
    (so the refusals below come from the spoiling, not from a broken base)."""
    assert len(CORPUS) >= 100
    assert set(EXPECTED) == {*CONTENTS, *SPECIAL_PATHS}
    for kind in KINDS.values():
        p = tmp_path / f"good-{kind.name}.yaml"
        p.write_text(kind.good, encoding="utf-8")
        if kind.name == "mission":  # a run would fly it: check the load alone
            from controller.config import load_mission

            assert load_mission(p).name == "square-1m"
            continue
        assert main(kind.argv(str(p), tmp_path)) == 0, capsys.readouterr().err
    capsys.readouterr()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("case", CORPUS, ids=lambda c: f"{c.kind}-{c.content}")
def test_malformed_file_exits_2_with_one_line(tmp_path, capsys, case):
    if case.content == "dev_zero" and not os.path.exists("/dev/zero"):
        pytest.skip("no /dev/zero")
    bad = make_file(case, tmp_path)
    status = main(KINDS[case.kind].argv(bad, tmp_path))
    out, err = capsys.readouterr()
    assert status == 2, (out, err)
    assert out == ""
    assert err.endswith("\n") and err.count("\n") == 1, err
    assert err.startswith(bad + ": "), err
    assert re.search(EXPECTED[case.content], err.rstrip("\n")), err
    assert "Traceback" not in err
    assert not (tmp_path / "runs").exists()  # a refused mission opens and writes nothing


#: A sample run as a child process, through the same entry point as the ``qiki`` script.
SUBPROCESS_SAMPLE = [Case("rig", "alias_bomb"), Case("fsm", "deep_flow_seq"), Case("mission", "fifo"),
                     Case("profile", "dev_zero"), Case("rig", "many_nodes"), Case("mission", "huge_int"),
                     Case("fsm", "two_documents"), Case("profile", "latin1_byte")]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("case", SUBPROCESS_SAMPLE, ids=lambda c: f"{c.kind}-{c.content}")
def test_malformed_file_in_a_child_process(tmp_path, case):
    if case.content == "dev_zero" and not os.path.exists("/dev/zero"):
        pytest.skip("no /dev/zero")
    bad = make_file(case, tmp_path)
    argv = KINDS[case.kind].argv(bad, tmp_path)
    proc = subprocess.run([sys.executable, "-m", "controller.cli", *argv], cwd=ROOT, capture_output=True,
                          text=True, timeout=100)
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith(bad + ": "), proc.stderr
    assert re.search(EXPECTED[case.content], proc.stderr.rstrip("\n")), proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(("escaped", "shown"), [("a\\0b.yaml", "'a\\x00b.yaml'"), ("a\\nb.yaml", "'a\\nb.yaml'")])
def test_profile_path_with_control_characters_is_one_line(tmp_path, capsys, escaped, shown):
    """A rig may name any string as a profile path; the refusal shows it as repr, one line."""
    rig = tmp_path / "rig.yaml"
    rig.write_text(_good_rig_text().replace(str(ROOT / "rigs/profiles/jk_bms.yaml"), f'"{escaped}"'), encoding="utf-8")
    assert main(["modbus", "read", "--rig", str(rig), "bms"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1
    assert err.startswith(f"{shown}: "), err
