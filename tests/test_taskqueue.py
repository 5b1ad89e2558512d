"""The executors' shared TaskQueue and the limits it keeps, without processes: what is ready, due
later or held back, what a cancel or a shutdown hands back (each as CANCELLED), and slots given back
as outcomes are delivered, waking every task queue that waits on the limit."""
from __future__ import annotations

import time
import uuid

from zart_nb._executors.base import Outcome, OutcomeKind, Task
from zart_nb._executors.taskqueue import Limit, TaskQueue, cancelled


class Consumer:
    def on_outcomes(self, outcomes):
        pass

    def fail_outcomes(self, outcomes, exc):
        pass


def task(task_id: int, consumer=None, limit=None, not_before: float = 0.0) -> Task:
    return Task(task_id, "fn", b"", b"", "ex", f"k{task_id}", 1, not_before=not_before, consumer=consumer,
                limit=limit)


def limit(concurrency=None, rate=None) -> Limit:
    return Limit.named(f"unit-{uuid.uuid4().hex[:8]}", concurrency, rate)


def ids(tasks) -> list[int]:
    return [t.task_id for t in tasks]


def test_ready_delayed_and_held_attempts_come_out_in_order():
    queue = TaskQueue()
    now = time.time()
    one = limit(concurrency=1)
    queue.put([task(1), task(2, not_before=now + 0.05), task(3, limit=one), task(4, limit=one)], now)
    assert ids(queue.ready) == [1, 3]  # 4 waits for 3's slot; 2 for its time
    assert ids(queue.held()) == [4] and not queue.empty
    assert queue.next_deadline(now) == now + 0.05  # a full limit sets no deadline: a delivery wakes it
    queue.release_due(now + 0.1)
    assert ids(queue.ready) == [1, 3, 2]
    assert one.active == 1


def test_a_delivered_outcome_gives_the_slot_back_and_wakes_every_queue_waiting_on_it():
    woken = []
    first, second = TaskQueue(wake=lambda: woken.append("first")), TaskQueue(wake=lambda: woken.append("second"))
    delivered = []
    sink = first.delivering(delivered.extend)
    shared = limit(concurrency=1)
    now = time.time()
    first.put([task(1, limit=shared)], now)
    second.put([task(2, limit=shared)], now)  # another executor of the process: the limit is shared
    assert ids(first.ready) == [1] and ids(second.held()) == [2]
    running = first.ready.popleft()
    sink([Outcome(running, OutcomeKind.OK)])
    assert delivered and shared.active == 0 and woken == ["second"]
    second.release_due(time.time())
    assert ids(second.ready) == [2] and shared.active == 1
    first.put([task(3, limit=limit(concurrency=5))], time.time())  # first holds a slot again
    sink([Outcome(running, OutcomeKind.OK)])  # delivered twice (it cannot be): no slot given back twice
    assert shared.active == 1


def test_a_rate_holds_attempts_until_its_window_moves():
    queue = TaskQueue()
    rated = limit(rate=(2, 0.2))
    now = time.time()
    queue.put([task(i, limit=rated) for i in range(3)], now)
    assert ids(queue.ready) == [0, 1] and ids(queue.held()) == [2]
    deadline = queue.next_deadline(now)
    assert deadline is not None and now < deadline <= now + 0.2 + 0.05
    while time.time() < deadline:  # the deadline the executor would sleep until
        time.sleep(deadline - time.time())
    queue.release_due(time.time())
    assert ids(queue.ready) == [0, 1, 2]


def test_drop_and_drain_hand_back_every_attempt_once():
    mine, other = Consumer(), Consumer()
    queue = TaskQueue()
    one = limit(concurrency=1)
    now = time.time()
    queue.put([task(1, mine, one), task(2, mine, one), task(3, other), task(4, mine, not_before=now + 60),
               task(5, other, one)], now)
    dropped = queue.drop(mine)
    assert sorted(ids(dropped)) == [1, 2, 4]
    assert ids(queue.ready) == [3] and ids(queue.held()) == [5]
    outcomes = cancelled(dropped, "why")
    assert {o.kind for o in outcomes} == {OutcomeKind.CANCELLED} and {o.error for o in outcomes} == {"why"}
    assert sorted(ids(queue.drain())) == [3, 5] and queue.empty
    assert not one._waiters  # nothing waits on it any more
