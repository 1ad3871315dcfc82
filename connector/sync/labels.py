"""MALL Delivery labels: when the connector pushes ``shipping`` for an MDP order, it asks MALL for its labels.

MALL lets an MDP order reach ``shipped`` only once a carrier label exists (mall-api.md §2.7), so after each push
pass every MDP order the connector moved to shipping gets its label set, all orders of the pass in one
``POST /v1/orders/labels``. The parcel count comes from the feed (``parcel_count``, default 1, at most 100).

Exactly once, as for status pushes: a label row is marked ``sending`` (committed) before the POST. After a crash
or an ambiguous failure the order's consignments are re-read (``GET /v1/orders/{id}/consignments``) before
anything is asked again, so a retry never makes a second label set. A changed parcel count while MALL has the
order in shipping asks for a new set; once shipped MALL freezes it, so the change is refused with the reason in
the ledger. Files go to ``[mdp] labels_dir`` (one per request, written atomically); ``[mdp] print_command``
prints them without a shell.
"""

from __future__ import annotations

import errno
import logging
import os
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from connector.ledger.labels import LabelRow
from connector.ledger.rows import utcnow
from connector.ledger.types import ActionKind, EventKind, LabelState, action_key
from connector.mall.models import Consignment, LabelRequest
from connector.sync.policy import Kind, Op, Outcome, after_failure, outcome_for

log = logging.getLogger("mall_connector.labels")

MAX_BATCH = 100  # orders per POST /v1/orders/labels
FILE_MODE = 0o640
OUTPUT_CHARS = 300  # of a print command's output kept in the ledger


@dataclass
class LabelsResult:
    calls: int = 0  # POST /v1/orders/labels
    made: int = 0  # orders whose labels were made (or found after an interruption)
    refused: int = 0
    failed: int = 0
    files: list[Path] = field(default_factory=list)


# -- hooks called by the outbound engine ---------------------------------------------------------------------------

def note_feed(engine, rows: dict) -> None:
    """Store the feed's parcel counts (a row without one means 1, recorded only for orders that had one) and the
    serial numbers a feed row carries (FastCentrik's SERIAL_NUMBERS field; sent by connector/sync/serials.py)."""
    counts = {oid: row.parcel_count for oid, row in rows.items()}
    ledger = engine.ledger
    try:
        serials = {(oid, item): list(values) for oid, row in rows.items()
                   for item, values in (getattr(row, "serial_numbers", None) or ())}
        changed = ledger.mdp.parcel_count_changes(counts)
        if changed or serials:
            with ledger.write() as c:
                ledger.mdp.store_parcel_counts(c, changed)
                if serials:
                    ledger.mdp.record_serials(c, serials)
    except Exception:  # noqa: BLE001 - labels must never stop the status sync
        log.exception("could not record the feed's parcel counts or serial numbers")


def after_push(engine, result) -> None:
    """Make the labels the push pass made necessary; contained: a failure here never fails the status push."""
    if not engine.config.mdp.labels:
        return
    try:
        made = LabelMaker(engine.ledger, engine.client, engine.config).run(should_stop=engine.should_stop)
    except Exception as e:  # noqa: BLE001 - contained; only a STOP (401/403) ends the job
        if outcome_for(Op.LABELS, e).kind == Kind.STOP:
            raise
        log.exception("MALL Delivery labels failed; the next pass tries again")
        return
    result.labels_made = getattr(result, "labels_made", 0) + made.made
    result.labels_calls = getattr(result, "labels_calls", 0) + made.calls


# -- the work ------------------------------------------------------------------------------------------------------

class LabelMaker:
    def __init__(self, ledger, client, config):
        self.ledger = ledger
        self.repo = ledger.mdp
        self.client = client
        self.config = config
        self.cfg = config.mdp
        self.max_attempts = config.sync.max_attempts

    def run(self, *, should_stop=lambda: False) -> LabelsResult:
        result = LabelsResult()
        self._recover(result)
        self._plan(result)
        pending = self.repo.labels_in((LabelState.PENDING,))
        live = {c.mall_order_id: c for c in self.repo.label_candidates({r.mall_order_id for r in pending})}
        gone = [r for r in pending if r.mall_order_id not in live]
        if gone:
            self._finish(gone, LabelState.FAILED, "MALL no longer has the order in shipping or shipped: no labels",
                         result)
        rows = [r for r in pending if r.mall_order_id in live]
        for i in range(0, len(rows), MAX_BATCH):
            if should_stop():
                break
            self._request(rows[i:i + MAX_BATCH], result)
        return result

    # Which orders need a (new) label set.
    def _plan(self, result: LabelsResult) -> None:
        new, refused = [], []
        for c in self.repo.label_candidates():
            latest, done, wanted = c.latest, c.last_done, c.parcel_count
            if latest is not None and latest.state in (LabelState.PENDING, LabelState.SENDING):
                continue
            if done is not None and done.parcel_count == wanted:
                continue
            if (latest is not None and latest.state in (LabelState.REFUSED, LabelState.FAILED)
                    and latest.parcel_count == wanted):
                continue  # already decided for this count; a new count in the feed is a new request
            if c.mall_status == "shipped":
                if done is not None:
                    reason = (f"parcel_count changed from {done.parcel_count} to {wanted} after MALL has the order "
                              f"shipped: MALL freezes parcel_count once shipped, so the labels for "
                              f"{done.parcel_count} parcel(s) stay valid")
                else:
                    reason = "MALL has the order shipped already, so its labels were made elsewhere: none requested"
                refused.append({"mall_order_id": c.mall_order_id, "parcel_count": wanted, "state": LabelState.REFUSED,
                                "reason": reason})
            else:
                new.append({"mall_order_id": c.mall_order_id, "parcel_count": wanted, "state": LabelState.PENDING})
        if not new and not refused:
            return
        with self.ledger.write() as c:
            self.repo.add_label_rows(c, new + refused)
            self.ledger.orders.add_events(c, [(r["mall_order_id"], EventKind.LABELS, f"labels refused: {r['reason']}")
                                              for r in refused])
            for r in refused:
                self._needs_action(c, r["mall_order_id"], r["parcel_count"], r["reason"])
        for r in refused:
            log.warning("order %s: labels refused: %s", r["mall_order_id"], r["reason"],
                        extra={"order_id": r["mall_order_id"], "reason": r["reason"]})
        result.refused += len(refused)

    # One POST for a batch of orders.
    def _request(self, rows: list[LabelRow], result: LabelsResult) -> None:
        batch = f"{utcnow():%Y%m%dT%H%M%S}-{rows[0].id}"
        with self.ledger.write() as c:
            for r in rows:
                self.repo.update_labels(c, [r.id], state=LabelState.SENDING, batch=batch, attempts=r.attempts + 1,
                                        labels_type=self.cfg.labels_type)
        rows = [_replace(r, attempts=r.attempts + 1) for r in rows]
        result.calls += 1
        try:
            labels = self.client.create_labels(
                [LabelRequest(order_id=r.mall_order_id, parcel_count=r.parcel_count) for r in rows],
                labels_type=self.cfg.labels_type, labels_per_page=self.cfg.labels_per_page,
                first_position=self.cfg.first_position)
        except Exception as e:  # noqa: BLE001 - what it means is the policy's (Op.LABELS)
            outcome = outcome_for(Op.LABELS, e)
            if outcome.kind == Kind.STOP:
                with self.ledger.write() as c:
                    self.repo.update_labels(c, [r.id for r in rows], state=LabelState.PENDING)
                raise
            self._carry_out(outcome, rows, batch, result)
            return
        path, problem = self._write([r.mall_order_id for r in rows], self.cfg.labels_type, labels.content())
        events = []
        with self.ledger.write() as c:
            for r in rows:
                barcodes = labels.barcodes_of(r.mall_order_id)
                self.repo.update_labels(c, [r.id], state=LabelState.DONE, barcodes=barcodes,
                                        file=str(path) if path else None, reason=problem)
                events.append((r.mall_order_id, EventKind.LABELS,
                               f"labels made: {r.parcel_count} parcel(s), barcodes {', '.join(barcodes) or '-'}, "
                               f"file {path or '-'}" + (f" ({problem})" if problem else "")))
            self.ledger.orders.add_events(c, events)
        result.made += len(rows)
        if path is not None:
            result.files.append(path)
            log.info("labels for %d order(s) written to %s", len(rows), path)
            self._print([path], {r.mall_order_id for r in rows})

    def _carry_out(self, outcome: Outcome, rows: list[LabelRow], batch: str, result: LabelsResult) -> None:
        """A failed POST labels, as the policy decided (Op.LABELS)."""
        if outcome.kind == Kind.FAIL and outcome.refused and len(rows) > 1:
            # One order MALL refuses must not hold back the others: ask for each alone.
            log.info("MALL refused a labels request for %d orders (%s); asking for each order alone",
                     len(rows), outcome.message)
            with self.ledger.write() as c:
                self.repo.update_labels(c, [r.id for r in rows], state=LabelState.PENDING, attempts=0)
            for r in rows:
                self._request([_replace(r, attempts=0)], result)
            return
        if outcome.kind == Kind.FAIL:
            self._finish(rows, LabelState.REFUSED if outcome.refused else LabelState.FAILED, outcome.reason, result)
        elif outcome.kind == Kind.REREAD:
            # May have been made: stays "sending", the next pass reads the consignments before asking again.
            log.warning("labels request %s: %s", batch, outcome.reason)
            with self.ledger.write() as c:
                self.repo.update_labels(c, [r.id for r in rows], reason=outcome.reason)
        else:  # RETRY: certainly not made (rate limit, connection never opened): ask again later
            self._again_later(rows, outcome, result)

    def _write(self, order_ids: list[int], labels_type: str, content: bytes) -> tuple[Path | None, str | None]:
        """Write the label file; (path, None), or (None, why) when the folder is unusable: MALL has made the labels,
        so they count as made and ``mall-connector labels`` fetches them again once the folder is fixed."""
        folder = Path(self.cfg.labels_dir)
        try:
            return write_label_file(folder, order_ids, labels_type, content), None
        except OSError as e:
            why = (f"the label file could not be written to {folder}: {e.strerror or e}; fix [mdp] labels_dir, then "
                   f"run mall-connector labels {' '.join(str(i) for i in order_ids)}")
            log.error("%s", why)
            return None, why

    # After a crash or an ambiguous answer: find out on MALL, never ask twice.
    def _recover(self, result: LabelsResult) -> None:
        for row in self.repo.labels_in((LabelState.SENDING,)):
            oid = row.mall_order_id
            try:
                consignments = self.client.get_consignments(oid)
            except Exception as e:  # noqa: BLE001 - the policy's (Op.LABELS_READ): RETRY, or STOP on 401/403
                outcome = outcome_for(Op.LABELS_READ, e)
                if outcome.kind == Kind.STOP:
                    raise
                log.info("order %s: %s", oid, outcome.reason)
                continue
            previous = [r for r in self.repo.labels_of(oid) if r.state == LabelState.DONE and r.id < row.id]
            latest = consignments[-1] if consignments else None
            if latest is not None and _is_ours(latest, row, previous[-1] if previous else None):
                content = _consignment_content(latest)
                path, problem = None, None
                if content:
                    path, problem = self._write([oid], latest.labels_type or row.labels_type or self.cfg.labels_type,
                                                content)
                with self.ledger.write() as c:
                    self.repo.update_labels(c, [row.id], state=LabelState.DONE, barcodes=latest.barcodes,
                                            file=str(path) if path else None, reason=problem)
                    self.ledger.orders.add_event(c, oid, EventKind.LABELS,
                                                 f"labels found on MALL after an interrupted request "
                                                 f"(not asked again): {row.parcel_count} parcel(s), barcodes "
                                                 f"{', '.join(latest.barcodes) or '-'}, file {path or '-'}")
                result.made += 1
                if path:
                    result.files.append(path)
                    self._print([path], {oid})
            elif row.attempts >= self.max_attempts:
                self._finish([row], LabelState.FAILED, f"gave up after {row.attempts} attempts", result)
            else:
                with self.ledger.write() as c:
                    self.repo.update_labels(c, [row.id], state=LabelState.PENDING)

    def _again_later(self, rows: list[LabelRow], outcome: Outcome, result: LabelsResult) -> None:
        sync = self.config.sync
        for r in rows:
            d = after_failure(outcome, r.attempts, max_attempts=self.max_attempts, retry_base_s=sync.retry_base_s,
                              retry_max_s=sync.retry_max_s)
            if d.quarantine:
                self._finish([r], LabelState.FAILED, d.reason, result)
            else:
                with self.ledger.write() as c:
                    self.repo.update_labels(c, [r.id], state=LabelState.PENDING, reason=d.reason)

    def _finish(self, rows: list[LabelRow], state: LabelState, reason: str, result: LabelsResult) -> None:
        with self.ledger.write() as c:
            self.repo.update_labels(c, [r.id for r in rows], state=state, reason=reason)
            self.ledger.orders.add_events(c, [(r.mall_order_id, EventKind.LABELS, f"labels {state}: {reason}")
                                              for r in rows])
            for r in rows:
                self._needs_action(c, r.mall_order_id, r.parcel_count, reason)
        for r in rows:
            log.warning("order %s: labels %s: %s", r.mall_order_id, state, reason,
                        extra={"order_id": r.mall_order_id, "reason": reason})
        if state == LabelState.REFUSED:
            result.refused += len(rows)
        else:
            result.failed += len(rows)

    def _needs_action(self, c, order_id: int, parcel_count: int, reason: str) -> None:
        """A label set MALL will not make needs a human (the parcels on the shelf no longer match): listed by
        ``ledger list --needs-action`` and alerted once."""
        self.ledger.actions.add(
            c, key=action_key(ActionKind.LABELS, f"{order_id}:{parcel_count}"), order_id=order_id,
            kind=ActionKind.LABELS,
            message=f"MALL Delivery order {order_id}: no labels for {parcel_count} parcel(s): {reason}. Send the "
                    f"parcels the existing labels cover, or sort it out with MALL in the Partner portal.")

    def _print(self, files: list[Path], order_ids: set[int]) -> None:
        outcome = print_files(self.cfg.print_command, files, timeout_s=self.cfg.print_timeout_s)
        if outcome is None:
            return
        with self.ledger.write() as c:
            self.ledger.orders.add_events(c, [(oid, EventKind.LABELS, outcome) for oid in sorted(order_ids)])


def _replace(row: LabelRow, **values) -> LabelRow:
    import dataclasses

    return dataclasses.replace(row, **values)


def _is_ours(latest: Consignment, row: LabelRow, previous: LabelRow | None) -> bool:
    """The newest consignment is the set this interrupted request made (not an older one)."""
    if latest.parcel_count is not None and latest.parcel_count != row.parcel_count:
        return False
    if previous is not None and previous.barcodes and latest.barcodes and latest.barcodes == previous.barcodes:
        return False
    return True


def _consignment_content(c: Consignment) -> bytes | None:
    import base64
    import binascii

    if not c.labels_raw:
        return None
    try:
        return base64.b64decode(c.labels_raw, validate=True)
    except (binascii.Error, ValueError):
        return None


# -- files and printing ----------------------------------------------------------------------------------------------

def label_file_name(order_ids: list[int], labels_type: str, now=None) -> str:
    now = now or utcnow()
    shown = "-".join(str(i) for i in order_ids[:10])
    if len(order_ids) > 10:
        shown += f"-and-{len(order_ids) - 10}-more"
    return f"labels-{now:%Y%m%dT%H%M%SZ}-{shown}.{'zpl' if labels_type == 'zpl' else 'pdf'}"


def write_label_file(folder: Path, order_ids: list[int], labels_type: str, content: bytes) -> Path:
    """Write atomically and never over anything: a hidden temp file made by mkstemp in the folder (mode 0640, not
    the umask), fsynced, then hard-linked to its final name (fails rather than replaces, and never follows a
    symlink planted there) and the temp name removed. A taken name gets a ``-2``, ``-3``… suffix."""
    folder.mkdir(parents=True, exist_ok=True, mode=0o750)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".labels-", suffix=".tmp")
    try:
        os.fchmod(fd, FILE_MODE)
        with os.fdopen(fd, "wb") as f:
            f.write(content)
            f.flush()
            os.fsync(f.fileno())
        name = label_file_name(order_ids, labels_type)
        stem, dot, ext = name.rpartition(".")
        for n in range(1, 1000):
            target = folder / (name if n == 1 else f"{stem}-{n}.{ext}")
            try:
                os.link(tmp, target, follow_symlinks=False)
                break
            except FileExistsError:
                continue
        else:
            raise OSError(errno.EEXIST, f"no free label file name in {folder}")
        dir_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        return target
    finally:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass


def print_files(command, files: list[Path], *, timeout_s: float = 60.0) -> str | None:
    """Run ``command`` (argv) with the files as its last arguments, never through a shell. None when there is no
    command; else what happened, for the ledger."""
    if not command or not files:
        return None
    argv = [*command, *(str(f) for f in files)]
    shown = " ".join(str(f.name) for f in files)
    try:
        done = subprocess.run(argv, shell=False, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout_s,
                              check=False)
    except FileNotFoundError:
        message = f"print command {command[0]!r} not found; labels {shown} not printed"
    except subprocess.TimeoutExpired:
        message = f"print command {command[0]!r} ran longer than {timeout_s:g} s and was stopped; check {shown}"
    except OSError as e:
        message = f"print command {command[0]!r} could not run ({e.strerror or e}); labels {shown} not printed"
    else:
        if done.returncode == 0:
            log.info("printed %s with %s", shown, command[0])
            return f"printed {shown} with {command[0]}"
        err = (done.stderr or done.stdout or b"").decode("utf-8", "replace").strip()[:OUTPUT_CHARS]
        message = f"print command {command[0]!r} failed (exit {done.returncode}) for {shown}: {err or 'no output'}"
    log.warning("%s", message)
    return message
