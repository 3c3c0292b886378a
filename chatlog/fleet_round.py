"""A dispatcher's part in a fleet (``state=``): what each of its rounds does with the shared store.

`FleetSide` opens the store on the dispatcher's first round (opening is I/O: never on the
application's thread), hands the round's groups over (`chatlog.fleet.Fleet.sync`), and, while this
process holds the destination's lease, builds the fleet's digest and sends it within the shared
budget. Without a store (``state="memory"``, or one that cannot be opened) every method is neutral
and the dispatcher works alone, as it always did.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable

from chatlog import lifecycle
from chatlog._record import replace
from chatlog._report import Reporter
from chatlog.digest import Context, Digest, GroupTable, Mentions
from chatlog.platforms._base import Destination
from chatlog.sending import Sender
from chatlog.settlement import Settlement
from chatlog.timing import Timing

TYPE_CHECKING = False
if TYPE_CHECKING:
    from chatlog.fleet import Fleet
    from chatlog.incident import Incident
    from chatlog.state.honour import Silencer
    from chatlog.state.url import StateURL

JOIN_AFTER_S = 3.0
"""A process with nothing to alert joins its destination's fleet this long after it started."""


class FleetSide:
    """One dispatcher's membership in the fleet of its destination; dispatcher thread only (but the
    accounting, which `stats()` reads under the dispatcher's lock)."""

    def __init__(self, state: StateURL | None, destination: Destination, timing: Timing, reporter: Reporter,
                 clock: Callable[[], float], *, groups: GroupTable, lock: threading.Lock, sender: Sender,
                 settlement: Settlement, overflow: Callable[[], int]) -> None:
        """`state` None: no fleet. `overflow` counts the records the buffer had no room for; the other
        arguments are the dispatcher's own parts."""
        self._state = state
        self._destination, self._timing, self._reporter, self._clock = destination, timing, reporter, clock
        self._groups, self._lock, self._sender, self._settlement = groups, lock, sender, settlement
        self._overflow = overflow
        self.fleet: Fleet | None = None
        self._join_at = clock() + JOIN_AFTER_S
        self._flush_synced = False
        """This round's hand-over came after a flush() asked (it is answered only then)."""

    @property
    def shared(self) -> bool:
        """True while this process alerts together with the fleet (the store works)."""
        return self.fleet is not None and self.fleet.shared

    def accounting(self) -> tuple[int, int, int, int]:
        """This process's records the fleet settled as delivered, as dropped, as muted, and still holds."""
        fleet = self.fleet
        if fleet is None:
            return (0, 0, 0, 0)
        return (fleet.delivered, fleet.dropped, fleet.muted, fleet.own_pending)

    def handed_over(self) -> int:
        """Records handed to a working store: they outlive this process (close() does not call them lost)."""
        return self.fleet.own_pending if self.fleet is not None and self.fleet.shared else 0

    def leader_owes(self) -> bool:
        """True while this process leads and the store still holds records of its own (a flush waits)."""
        fleet = self.fleet
        return fleet is not None and fleet.shared and fleet.leader and fleet.own_pending > 0

    def round(self, now: float, *, flushing: bool) -> None:
        """Hand this round's groups over (at once while flushing). The store is opened with the first
        record, or `JOIN_AFTER_S` after the start (to send what a dead process left there): a short
        script that logs nothing never touches it."""
        if self._state is not None and (self._groups.unsent or flushing or now >= self._join_at):
            from chatlog.fleet import open_fleet

            self.fleet = open_fleet(self._state, self._destination, self._timing, self._reporter,
                                    self._clock, lifecycle.host_name())
            self._settlement.fleet = self.fleet
            if self._sender.quota is not None and self.fleet is not None:  # one count for the fleet
                self._sender.quota.share(self.fleet.store, self.fleet.scope)
            self._state = None
        fleet = self.fleet
        if fleet is not None:
            self._flush_synced = flushing
            fleet.sync(self._groups, self._lock, now, force=flushing)
            self._sender.window = fleet.solo_window  # its share of the budget once the store failed
            ledger = self._settlement.ledger
            untold = self._overflow() - ledger.dropped_reported
            if fleet.shared and untold > 0 and fleet.tell_dropped(untold):
                ledger.dropped_reported += untold  # the fleet's next message says it, not this process

    def sync_in(self, now: float) -> float:
        """Seconds until the next hand-over or heartbeat is due (``inf`` without a fleet)."""
        fleet = self.fleet
        if fleet is None:
            return math.inf if self._state is None else max(0.0, self._join_at - now)
        return fleet.sync_in(now, local_records=bool(self._groups.unsent))

    def wait(self, now: float, *, ready_at: float, flushing: bool, answer: Callable[[], None]) -> float:
        """Seconds until the leader's next message (``inf``: not the leader, or nothing pending); calls
        `answer` (the flushes) once a hand-over made for them left nothing this process must send."""
        fleet = self.fleet
        assert fleet is not None
        due = fleet.due_at(forced=flushing, ready_at=ready_at)
        if due == math.inf and flushing:
            if not self._flush_synced or self.leader_owes():
                return self._timing.poll_interval
            answer()
        return max(0.0, due - now)

    def launch(self, now: float, context: Context, mentions: Mentions, batch: str,
               silencer: Silencer | None) -> None:
        """While this process leads: send the fleet's digest, if the shared budget allows it now (muted
        groups left out, with a line in the message)."""
        fleet = self.fleet
        if fleet is None or not fleet.leader:
            return
        muted = None
        if silencer is not None:
            silencer.refresh()  # the ChatOps store: read once per send at most
            muted = _muter(silencer)
        sent = fleet.build(context, mentions, batch, muted)
        if sent is None:
            return
        digest = sent.digest if silencer is None else silencer.decorate(sent.digest)
        fleet.flight = replace(sent, digest=digest)
        if self._sender.send(digest, now, admit=lambda sends: fleet.take_budget(sends, now)) > 0:
            fleet.flight = None  # the shared budget is used up: the leader tries again when it allows

    def all_clear(self, now: float, incident: Incident, context: Context, batch: str) -> float:
        """The leader (which settled the fleet's messages) sends the fleet's all-clear, once nothing is
        pending fleet-wide; a member that does not lead forgets its incident. Seconds until it is due."""
        fleet, due = self.fleet, incident.due_at()
        if due > now or fleet is None:
            return due - now
        if not fleet.leader:
            incident.forget()
            return math.inf
        waiting = bool(fleet.pending_records or self._groups.unsent_at_least(incident.level))
        done = incident.all_clear(now, unsent_at_level=waiting)  # after what the fleet still holds
        if done is None or self._sender.busy:
            return math.inf
        digest = Digest((), (), 0.0, 0.0, context=context, batch=batch, all_clear=done)
        return self._sender.send(digest, now, admit=lambda sends: fleet.take_budget(sends, now)) or math.inf

    def sent_alone(self) -> None:
        """This process sent its own message (the store failed): counted in the budget once it is back."""
        if self.fleet is not None:
            self.fleet.sent_alone()

    def final(self, deadline: float, launch: Callable[[], None]) -> bool:
        """At close: hand everything over; the leader sends what is pending (`launch`) and gives the lease
        up. False when the store does not work: the dispatcher delivers alone."""
        fleet = self.fleet
        if fleet is None:
            return False
        fleet.sync(self._groups, self._lock, self._clock(), force=True)
        if not fleet.shared:
            return False
        now = self._clock()
        if fleet.leader and not self._settlement.suspension and not fleet.held(now) \
                and now >= self._settlement.backoff.paused_until:  # a pause the platform asked holds
            launch()
            self._sender.await_answer(deadline)
            # What that message settled is credited in the store: read it back, or stats() at exit
            # would show this process's last records as pending although they were delivered.
            fleet.sync(self._groups, self._lock, self._clock(), force=True)
        fleet.leave()
        return True


def _muter(silencer: Silencer) -> Callable[[str, int], bool]:
    """Whether a group is muted; a muted group's count is noted for the next message's line."""
    def muted(group_id: str, count: int) -> bool:
        if not silencer.is_muted(group_id):
            return False
        silencer.note(group_id, count)
        return True
    return muted
