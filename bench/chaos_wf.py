"""The probe of `bench.py chaos --durability`: a workflow that keeps what it is told."""

from __future__ import annotations

from temporalio import workflow


@workflow.defn(sandboxed=False)
class Tally:
    """Records every number sent by update or signal until told `finish`; returns them."""

    def __init__(self) -> None:
        self.numbers: list[int] = []
        self.finished = False

    @workflow.run
    async def run(self) -> list[int]:
        await workflow.wait_condition(lambda: self.finished)
        return self.numbers

    @workflow.update
    def add(self, number: int) -> int:
        self.numbers.append(number)
        return len(self.numbers)

    @workflow.signal
    def note(self, number: int) -> None:
        self.numbers.append(number)

    @workflow.signal
    def finish(self) -> None:
        self.finished = True
