"""Steps made at the call site (``zart.step(name)(fn)()`` in a loop): each runs its own function.

The engine once cached definitions by ``id()`` of the ``Step`` object without holding it; a freed
``Step``'s id was reused by the next one, which then ran the old function."""
import gc

import zart_nb as zart


def one():
    return "one"


def two():
    return "two"


def test_call_site_steps_each_run_their_own_function(journal):
    @zart.workflow("call-site")
    def flow(n):
        results = []
        for i in range(n):
            results.append(zart.step(f"a{i}")(one)())
            results.append(zart.step(f"b{i}")(two)())
            gc.collect()  # frees the Step objects just used, so their ids are free for the next ones
        return results

    assert zart.run(flow, 40, execution_id="cs-1", journal=journal) == ["one", "two"] * 40
    steps = zart.journal(journal).list_steps("cs-1")
    assert {s.step_key[0]: s.output_preview for s in steps} == {"a": "'one'", "b": "'two'"}


def test_call_site_steps_scheduled_in_parallel(journal):
    @zart.workflow("call-site-par")
    def flow(n):
        handles = []
        for i in range(n):
            handles.append(zart.schedule(zart.step(f"a{i}")(one)))
            handles.append(zart.schedule(zart.step(f"b{i}")(two)))
        return zart.wait(handles)

    assert zart.run(flow, 50, execution_id="cs-2", journal=journal) == ["one", "two"] * 50
