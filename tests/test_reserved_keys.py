"""Step keys zart_nb keeps for its own records (``capture:``, ``sleep:``, ``workflow:output``, ...) are
refused where a user gives a key; ordinary keys with ``:``, ``#`` and ``-`` are not; and a journal an
older zart_nb wrote with such a key is still read."""
import subprocess
import sys

import processes
import pytest

import zart_nb as zart
from zart_nb import _definitions, _values
from zart_nb._replay import RESERVED_PREFIXES, Kind


def answer(x):
    return x * 2


def pair(kind, x):
    return x


def test_the_reserved_list_is_every_kinds_namespace_and_the_workflows_own():
    kinds = {f"{kind.value}:" for kind in Kind if kind is not Kind.STEP}
    assert set(RESERVED_PREFIXES) == kinds | {"workflow:"}
    assert {"capture:", "sleep:", "event:", "publish:", "wait:", "child:", "on_failure:"} <= kinds
    assert _values.OUTPUT_KEY == "workflow:output" and _values.OUTPUT_KEY.startswith(RESERVED_PREFIXES)


@pytest.mark.parametrize("prefix", RESERVED_PREFIXES)
def test_a_step_name_in_a_reserved_namespace_is_refused_at_the_decorator(prefix):
    with pytest.raises(zart.DefinitionError) as caught:
        zart.step(f"{prefix}x")(answer)
    message = str(caught.value)
    assert repr(f"{prefix}x") in message and repr(prefix) in message
    assert "capture:, sleep:" in message and "workflow:" in message  # the whole list is named


@pytest.mark.parametrize("prefix", RESERVED_PREFIXES)
def test_a_named_key_in_a_reserved_namespace_is_refused_at_named(prefix):
    step = zart.step("plain")(answer)
    key = "workflow:output" if prefix == "workflow:" else f"{prefix}now#0"
    with pytest.raises(zart.DefinitionError, match=f"step key '{key}' starts with '{prefix}'"):
        step.named(key)


@pytest.mark.parametrize("bad", ["", None, 3])
def test_a_named_key_that_is_not_a_non_empty_string_is_refused(bad):
    with pytest.raises(zart.DefinitionError, match="must be a non-empty string"):
        zart.step("plain")(answer).named(bad)


def test_a_template_giving_a_reserved_key_is_refused_when_the_call_is_made(journal):
    templated = zart.step("{kind}:{x}")(pair)

    @zart.workflow("templated-reserved")
    def flow(kind):
        return templated(kind, 1)

    with pytest.raises(zart.ZartError) as caught:
        zart.run(flow, "sleep", execution_id="tr-1", journal=journal)
    text = f"{caught.value} {caught.value.__cause__!r}"
    assert "step key (from the template '{kind}:{x}') 'sleep:1' starts with 'sleep:'" in text
    assert zart.journal(journal).list_steps("tr-1") == []  # nothing was journaled under it
    # the same template with an ordinary value runs
    assert zart.run(flow, "region", execution_id="tr-2", journal=journal) == 1
    assert [s.step_key for s in zart.journal(journal).list_steps("tr-2")] == ["region:1"]


def test_ordinary_keys_with_colon_hash_and_dash_run_and_are_reused(journal):
    plain = zart.step("fetch:eu-west#a")(answer)
    templated = zart.step("load-{kind}:{x}")(pair)
    named = zart.step("named")(answer)

    failing = [True]

    @zart.workflow("ordinary-keys")
    def flow(n):
        out = [plain(n), zart.schedule(templated, "sleep", n).result(), named.named("sleepy:1#x-y")(n),
               named.named("workflow-output")(n + 1), named.named("Capture:now#0")(n + 2),
               zart.capture("now", lambda: n)]
        if failing[0]:
            raise RuntimeError("the first run fails after its steps")
        return out

    with pytest.raises(zart.ZartError, match="the first run fails"):
        zart.run(flow, 1, execution_id="ok-1", journal=journal)
    failing[0] = False
    assert zart.run(flow, 1, execution_id="ok-1", journal=journal) == [2, 1, 2, 4, 6, 1]
    reader = zart.journal(journal)
    keys = ["fetch:eu-west#a#0", "load-sleep:1", "sleepy:1#x-y", "workflow-output", "Capture:now#0"]
    assert sorted(s.step_key for s in reader.list_steps("ok-1")) == sorted([*keys, "capture:now#0"])
    # the second run reused each under the same key: its one record is the first run's
    assert {s.step_key: s.run_number for s in reader.list_steps("ok-1", current_only=False)
            if s.step_key in keys} == dict.fromkeys(keys, 1)


def test_the_engines_own_keys_are_in_the_reserved_namespaces(journal):
    step = zart.step("work")(answer)

    @zart.workflow("engine-keys")
    def flow(n):
        zart.sleep("nap", 0)
        return step(zart.capture("seed", lambda: n))

    assert zart.run(flow, 5, execution_id="ek-1", journal=journal) == 10
    keys = {s.step_key for s in zart.journal(journal).list_steps("ek-1")}
    assert keys == {"sleep:nap#0", "capture:seed#0", "work#0"}
    assert {k for k in keys if k.startswith(RESERVED_PREFIXES)} == {"sleep:nap#0", "capture:seed#0"}


def test_a_journal_an_older_version_wrote_with_a_reserved_key_is_still_read(journal, monkeypatch, tmp_path):
    # The older zart_nb accepted any key: stand in for it by lifting the check while the journal is written
    monkeypatch.setattr(_definitions, "check_step_key", lambda key, what="step key": key)
    old = zart.step("old")(answer)

    @zart.workflow("old-reserved")
    def flow(n):
        return old.named("sleep:nap#0")(n) + old.named("workflow:output")(n)

    assert zart.run(flow, 3, execution_id="old-1", journal=journal) == 12
    monkeypatch.undo()
    with pytest.raises(zart.DefinitionError):  # this version refuses the key ...
        old.named("sleep:nap#0")
    # ... and reads the journal that has it: the read API, zart.load, a re-run and zart show
    steps = {s.step_key: s for s in zart.journal(journal).list_steps("old-1")}
    assert set(steps) == {"sleep:nap#0", "workflow:output"}
    assert steps["sleep:nap#0"].status is zart.StepStatus.COMPLETED
    assert zart.load("old-1", "sleep:nap#0", journal=journal) == 6
    assert zart.run(flow, 3, execution_id="old-1", journal=journal) == 12  # completed: its journaled output
    shown = subprocess.run([sys.executable, "-m", "zart_nb", "show", "old-1", "--journal", str(journal)],
                           capture_output=True, text=True, timeout=120, cwd=tmp_path, env=processes.env())
    assert shown.returncode == 0, shown.stderr
    assert "sleep:nap#0" in shown.stdout and "workflow:output" in shown.stdout
