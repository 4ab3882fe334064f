"""The trip of one message, top to bottom.

    dedupe   -> a message seen before changes nothing (but a Sent-folder copy proves that an
                unproven inbox copy was the team's reply, and applies it)
    store    -> the raw bytes are kept, whatever follows
    parse    -> an InboundMessage (never raises)
    classify -> automatic? our own? the team? trusted?
    correlate-> which case, if any
    apply    -> open a case or add to one; acknowledgement; the team's commands
    reply    -> a receipt into the outbox, in the same transaction

``process`` runs inside the caller's transaction; the caller commits it together with the mailbox
cursor, so a crash at any point leaves either all of a message's effects or none.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from mailbot.cases import service, vocabulary
from mailbot.cases.commands import (
    Command,
    UpdateDueAfter,
    apply_command,
    log_name,
    notifies_reporter,
    parse_commands,
)
from mailbot.cases.models import Case, Message
from mailbot.cases.service import Actor, TransitionRefused
from mailbot.cases.vocabulary import NON_PARTICIPANT, RECEIPT_HELD_BACK
from mailbot.clock import Clock
from mailbot.config import PolicySettings, Settings
from mailbot.deadlines.calendar import BusinessCalendar
from mailbot.deadlines.clocks import update_clock
from mailbot.intake import history, reporter, sealed
from mailbot.intake.claims import extract_claim
from mailbot.intake.classify import Classification, classify
from mailbot.intake.correlate import Correlation, correlate
from mailbot.intake.participants import not_a_participant, reaches_reporter
from mailbot.intake.prepared import Prepared
from mailbot.intake.unwrap import Unwrapper
from mailbot.mail.compose import clean_address
from mailbot.mail.message import Attachment, FetchedMessage, InboundMessage
from mailbot.mail.parse import dedupe_key, header_block_sender, parse_message
from mailbot.notices import queue_status_notice
from mailbot.outbox import enqueue, receipts_sent_recently, receipts_sent_within
from mailbot.outgoing import Writer, receipt
from mailbot.similar import SimilarReports, note_possible_duplicates
from mailbot.store import RawStore

log = logging.getLogger("mailbot.intake")


class Outcome(StrEnum):
    OPENED = "opened"
    ADDED = "added"
    DUPLICATE = "duplicate"


@dataclass(frozen=True)
class Intake:
    """Everything the trip needs, built once by the app."""

    settings: Settings
    calendar: BusinessCalendar
    writer: Writer
    raw_store: RawStore
    clock: Clock
    # Opens encrypted or signed mail (mailbot.pgp); None: every message is read as it arrived.
    unwrapper: Unwrapper | None = None
    # Finds open cases a new report repeats (mailbot.duplicates); None: no such check.
    similar: SimilarReports | None = None


def process(session: Session, fetched: FetchedMessage, intake: Intake,
            prepared: Prepared | None = None) -> Outcome:
    """``prepared``: what was worked out from the bytes ahead of time (a parse process); None,
    and it is worked out here as it is needed."""
    # Stored keyed (when content is encrypted); during a key rotation under either key.
    keys = intake.raw_store.index_keys(
        prepared.dedupe_key if prepared else dedupe_key(fetched.raw))
    key = keys[0]
    seen = _seen_before(session, keys)
    if seen is not None:
        log.debug("%s uid %d: seen before", fetched.folder, fetched.uid)
        _trust_sent_copy(session, seen, fetched, intake)
        return Outcome.DUPLICATE
    raw_id = intake.raw_store.put(session, fetched.raw,
                                  packed=prepared.packed if prepared else None)
    opened = intake.unwrapper.unwrap(fetched.raw) if intake.unwrapper is not None else None
    msg = prepared.message if prepared and not opened else \
        parse_message(opened.raw if opened else fetched.raw,
                      max_bytes=intake.settings.policy.max_message_bytes)
    facts = classify(msg, fetched.folder, intake.settings,
                     signature=opened.signature if opened else None)
    where = correlate(
        session, msg,
        trusted_team=facts.trusted_team.yes,
        case_prefix=intake.settings.policy.case_prefix,
        token_key=intake.writer.token_key,
    )
    if where.case_id is None:
        case = _open_case(session, msg, fetched, facts, where, intake)
        outcome = Outcome.OPENED
    else:
        existing = service.get_case(session, where.case_id, for_update=True)
        assert existing is not None  # correlate only names cases that exist
        case, outcome = existing, Outcome.ADDED
    message = _record_message(session, case, msg, fetched, facts, where, key, raw_id, outcome)
    if outcome is Outcome.ADDED and where.by_thread \
            and not_a_participant(session, case, msg, facts):
        _flag_non_participant(session, case, message, msg, fetched)
    if opened is not None:
        sealed.record(session, case, message, opened, intake)
    _apply_team_message(session, case, msg, facts, message, intake)
    reporter.apply_reporter_commands(session, case, msg, facts, message,
                                     token_key=intake.writer.token_key,
                                     source=_source(msg, fetched))
    history.keep_unarmed(case)
    if outcome is Outcome.OPENED and not (facts.from_team or facts.automatic.yes or facts.own.yes):
        _record_claim(session, case, msg, fetched)
    # A case with an acknowledgement due is a report: not history, automatic, own or team mail.
    if outcome is Outcome.OPENED and case.ack_due is not None and intake.similar is not None:
        note_possible_duplicates(session, case, msg.subject, msg.text_body, intake.similar,
                                 fetched.internal_date,
                                 signed=prepared.signed if prepared and not opened else None)
    if outcome is Outcome.OPENED:
        _send_receipt(session, case, msg, fetched, facts, key, intake,
                      report_encrypted=opened is not None and sealed.ENCRYPTED in opened.flags)
    log.info("%s uid %d -> %s %s (%s)", fetched.folder, fetched.uid, case.id, outcome.value,
             where.reason)
    return outcome


def look_up_batch(session: Session, intake: Intake, digests: list[str]) -> None:
    """Which of a batch's messages (by their dedupe ``digests``) are stored already, in one query
    for the whole batch: ``_seen_before`` then asks the database only about the others."""
    keys = [k for digest in digests for k in intake.raw_store.index_keys(digest)]
    with session.no_autoflush:
        stored = set(session.scalars(_STORED, {"keys": keys}))
    session.info[_LOOKED_UP] = (set(keys), stored)
    session.info[_WRITTEN] = set()


def _seen_before(session: Session, keys: list[str]) -> Message | None:
    """The message stored under one of ``keys``, or written earlier in this transaction and not
    flushed yet: the runner writes a batch's rows together, so the query alone would miss the
    same message twice in one batch, and letting it flush would write them one by one."""
    for obj in session.new:
        if isinstance(obj, Message) and obj.dedupe_key in keys:
            return obj
    looked_up, stored = session.info.get(_LOOKED_UP, (set(), set()))
    if looked_up.issuperset(keys) and stored.isdisjoint(keys) \
            and session.info[_WRITTEN].isdisjoint(keys):
        return None  # not stored before the batch, not written by it since
    with session.no_autoflush:
        found = session.scalar(_SEEN, {"keys": keys})
        return session.get(Message, found) if found is not None else None


# The batch's look-up in ``session.info``: the keys looked up and those found stored; and the
# keys of the messages this transaction has written since (flushed or not).
_LOOKED_UP = "mailbot.intake.looked_up"
_WRITTEN = "mailbot.intake.written"
# Built once: a statement built per message costs more than running it.
_SEEN = select(Message.id).where(Message.dedupe_key.in_(bindparam("keys", expanding=True))) \
    .limit(1)
_STORED = select(Message.dedupe_key).where(
    Message.dedupe_key.in_(bindparam("keys", expanding=True)))


def _open_case(
    session: Session, msg: InboundMessage, fetched: FetchedMessage, facts: Classification,
    where: Correlation, intake: Intake,
) -> Case:
    policy = intake.settings.policy
    sender = msg.sender or (header_block_sender(fetched.raw) if msg.unparseable else None)
    flags = facts.flags()
    if sender is None:
        flags.append("no-sender")
    if fetched.history:
        flags.append(vocabulary.IMPORTED)
    # Only mail that could be a report gets a promise; a bounce has nobody to acknowledge, and
    # the team does not acknowledge itself (its new threads get no receipt either). History
    # was promised nothing.
    promised = not (facts.automatic.yes or facts.own.yes or facts.in_sent_folder
                    or facts.claims_team.yes or fetched.history)
    now = intake.clock.now()
    year = fetched.internal_date.astimezone(intake.calendar.tz).year
    return service.open_case(
        session,
        case_id=service.next_case_id(session, policy.case_prefix, year),
        reporter=sender.addr if sender else "",
        reporter_name=sender.name if sender else "",
        subject=msg.subject,
        received_at=fetched.internal_date,
        ack_due=intake.calendar.add_business_days(fetched.internal_date,
                                                  policy.ack_business_days)
        if promised else None,
        flags=flags,
        mentioned_tag=where.mentioned_tag,
        actor=Actor(sender.addr if sender else "unknown", _source(msg, fetched)),
        now=now,
    )


def _record_message(
    session: Session, case: Case, msg: InboundMessage, fetched: FetchedMessage,
    facts: Classification, where: Correlation, key: str, raw_id: int, outcome: Outcome,
) -> Message:
    kind = _kind(facts, outcome)
    message = Message(
        case_id=case.id,
        direction="in",
        kind=kind,
        dedupe_key=key,
        message_id=msg.message_id[:998],
        from_addr=msg.sender.addr if msg.sender else "",
        to_addrs=[a.addr for a in (*msg.to, *msg.cc)][:100],
        subject=msg.subject[:300],
        # A Date that cannot be believed (year 9999, before 1970, nonsense) is not stored: the
        # arrival time stands in for it, and the ``bad-date`` flag says so.
        date=fetched.internal_date if msg.bad_date else msg.date,
        received_at=fetched.internal_date,
        folder=fetched.folder,
        uid=fetched.uid,
        flags=facts.flags(),
        details={
            "correlation": where.reason,
            "automatic": facts.automatic.reason if facts.automatic.yes else "",
            "trust": facts.trust_reason,
            "reply_to": [a.addr for a in msg.reply_to[:5]],
            "attachments": [_attachment(a) for a in msg.attachments[:200]],
            "defects": list(msg.defects[:20]),
        },
        raw_id=raw_id,
    )
    session.add(message)
    if _WRITTEN in session.info:
        session.info[_WRITTEN].add(key)
    if facts.untrusted_team:
        service.add_flags(case, "unauthenticated-team")
        service.record(session, case, Actor(message.from_addr, _source(msg, fetched)),
                       "unauthenticated-team", {"reason": facts.trust_reason},
                       fetched.internal_date)
    return message


def _record_claim(
    session: Session, case: Case, msg: InboundMessage, fetched: FetchedMessage
) -> None:
    """CVE ids and valid CVSS vectors the report names: the reporter's claim, as an event."""
    claim = extract_claim(msg.text_body)
    if claim["cve"] or claim["cvss"]:
        service.record(session, case, Actor(case.reporter or "unknown", _source(msg, fetched)),
                       "reporter-claim", claim, fetched.internal_date)


def _flag_non_participant(
    session: Session, case: Case, message: Message, msg: InboundMessage, fetched: FetchedMessage,
) -> None:
    """Someone who is neither the reporter nor the team joined the thread by its Message-ID:
    kept on the case (it may well matter), and flagged so that the team sees who."""
    message.flags = sorted({*message.flags, NON_PARTICIPANT})
    service.add_flags(case, NON_PARTICIPANT)
    service.record(session, case, Actor(message.from_addr or "unknown", _source(msg, fetched)),
                   NON_PARTICIPANT, {"from": message.from_addr}, fetched.internal_date)


def _kind(facts: Classification, outcome: Outcome) -> str:
    if facts.own.yes:
        return "own-copy"
    if facts.from_team:
        return "team"
    if facts.untrusted_team:
        return "unverified-team"
    if facts.automatic.yes:
        return "automatic"
    return "report" if outcome is Outcome.OPENED else "follow-up"


def _apply_team_message(
    session: Session, case: Case, msg: InboundMessage, facts: Classification, message: Message,
    intake: Intake,
) -> None:
    """A trusted team message may acknowledge the case and may carry commands.

    Commands are read from the sender's own text only (``msg.own_text``): never from what the
    message encloses, attaches or quotes. A team message acts once: another message with the
    same Message-ID (a re-sent or altered copy) changes nothing."""
    if not facts.from_team:
        return
    policy = intake.settings.policy
    actor = Actor(message.from_addr or intake.settings.own_address,
                  _team_source(session, msg, message))
    # A message's commands take effect when it arrived, not when mailbot got round to it: a
    # backfill or a daemon catching up must not start a deadline from the wrong day.
    at = message.received_at
    if _acted_before(session, msg, message):
        service.record(session, case, actor, "team-message-repeated",
                       {"message_id": msg.message_id}, at)
        log.info("%s: a team message with a Message-ID seen before: not applied again", case.id)
        return

    def assessment_due_after(at: datetime) -> datetime:
        return intake.calendar.add_business_days(at, policy.assessment_business_days)

    update_due_after = update_clock(intake.calendar, policy)
    acknowledged_here = False
    informs_reporter = reaches_reporter(session, case, msg, intake.settings)
    if case.status == vocabulary.NEW and informs_reporter:
        service.acknowledge(session, case, actor, message.received_at, assessment_due_after,
                            explicit=False)
        acknowledged_here = True
    for command in parse_commands(msg.own_text):
        if acknowledged_here and command.name == "ack" and not command.args:
            # A reply-all to the reporter that also says /ack: the reply itself acknowledged
            # the case a moment ago, so the command is done, not refused.
            log.debug("%s: /ack: already acknowledged by this message", case.id)
            service.record(session, case, actor, "command",
                           {"command": command.line, "note": "acknowledged by this message"}, at)
            continue
        reason = _try_command(session, case, command, actor, at, assessment_due_after, intake,
                              update_due_after)
        if reason is None:
            service.record(session, case, actor, "command", {"command": command.line}, at)
            if notifies_reporter(command):
                queue_status_notice(session, case, intake.writer, at)
        else:
            service.record(session, case, actor, "command-refused",
                           {"command": command.line, "reason": str(reason)}, at)
            # The name only: the line's arguments are the sender's text, not the log's.
            log.info("%s: %s refused: %s", case.id, log_name(command), reason.log_reason)
    if informs_reporter and update_due_after is not None:
        reporter.note_reporter_informed(case, update_due_after(at))


def _try_command(
    session: Session, case: Case, command: Command, actor: Actor, now: datetime,
    assessment_due_after: service.DueAfter, intake: Intake,
    update_due_after: UpdateDueAfter | None = None,
) -> TransitionRefused | None:
    """Apply one command in a savepoint; the refusal, or None when it applied.

    Whatever goes wrong inside is a refusal of this command, undone alone: never a failure of
    the message that carried it."""
    try:
        with session.begin_nested():
            apply_command(session, case, command, actor, now,
                          assessment_due_after=assessment_due_after,
                          end_of_day=intake.calendar.end_of_day,
                          update_due_after=update_due_after)
    except TransitionRefused as exc:
        return exc
    except Exception as exc:  # a check we lack; the savepoint took its changes back
        return TransitionRefused(f"could not apply ({type(exc).__name__})",
                                 log_reason=f"could not apply ({type(exc).__name__})")
    return None


def _acted_before(session: Session, msg: InboundMessage, message: Message) -> bool:
    """Another stored message with this Message-ID was already applied as the team's."""
    if not msg.message_id:
        return False
    session.flush()
    return session.scalar(
        select(Message.id).where(Message.message_id == msg.message_id[:998],
                                 Message.kind == "team", Message.id != message.id).limit(1)
    ) is not None


def _team_source(session: Session, msg: InboundMessage, message: Message) -> str:
    if msg.message_id:
        return f"message:{msg.message_id}"
    if message.id is None:
        session.flush()  # without a Message-ID the message is named by its row id
    return f"message:{message.id}"


def _trust_sent_copy(
    session: Session, seen: Message, fetched: FetchedMessage, intake: Intake
) -> None:
    """A reply sent from the shared mailbox may reach the inbox too (reply-all) and be read there
    first, unproven. Its copy in the Sent folder proves it was the team: apply it now."""
    sent_folder = intake.settings.mailbox.sent_folder
    if not sent_folder or fetched.folder != sent_folder or seen.direction != "in":
        return
    if seen.kind == "team":
        return
    msg = parse_message(fetched.raw, max_bytes=intake.settings.policy.max_message_bytes)
    facts = classify(msg, fetched.folder, intake.settings)
    if not facts.from_team:
        return  # mailbot's own copy
    case = service.get_case(session, seen.case_id, for_update=True)
    assert case is not None  # a message's case exists
    seen.kind = "team"
    seen.flags = facts.flags()
    seen.details = {**seen.details, "trust": facts.trust_reason}
    if "unauthenticated-team" in case.flags and not _other_untrusted(session, case, seen):
        case.flags = [f for f in case.flags if f != "unauthenticated-team"]
    service.record(session, case, Actor(seen.from_addr, _source(msg, fetched)),
                   "trusted-by-sent-copy", {"folder": fetched.folder, "uid": fetched.uid},
                   fetched.internal_date)
    _apply_team_message(session, case, msg, facts, seen, intake)


def _other_untrusted(session: Session, case: Case, message: Message) -> bool:
    flags = session.scalars(
        select(Message.flags).where(Message.case_id == case.id, Message.id != message.id)
    )
    return any("unauthenticated-team" in f for f in flags)


def _send_receipt(
    session: Session, case: Case, msg: InboundMessage, fetched: FetchedMessage,
    facts: Classification, key: str, intake: Intake, *, report_encrypted: bool = False,
) -> None:
    now = intake.clock.now()
    reason = facts.no_receipt_reason()
    if reason is None and fetched.history:
        reason = "imported: it was in the mailbox before mailbot first started on it"
    if reason is None and not case.reporter:
        reason = "no single sender address to answer"
    if reason is None and not _answerable(case.reporter):
        # Parsing accepts what senders write (an SMTPUTF8 local part, an odd domain label);
        # composing refuses it. Refusing here keeps the case instead of failing the message.
        reason = f"{case.reporter} cannot be written as a recipient"
    if reason is None:
        reason = history.receipt_too_late(fetched.internal_date, case.ack_due, now,
                                          intake.settings.policy.receipt_max_age_hours)
        if reason is not None:
            service.add_flags(case, vocabulary.RECEIPT_WITHHELD)
    # The outbox queries below read only outbox rows, and count the ones still unflushed in the
    # session too (earlier messages of the batch): no flush before them.
    with session.no_autoflush:
        if reason is None:
            reason = _over_a_receipt_limit(session, case, intake.settings.policy, now)
        if reason is not None:
            # A receipt held back by the hourly limit is its own event: the digest counts them.
            action = RECEIPT_HELD_BACK if RECEIPT_HELD_BACK in case.flags else "no-receipt"
            service.record(session, case, Actor("mailbot", "intake"), action,
                           {"reason": reason}, now)
            return
        enqueue(session, receipt(intake.writer, case, msg, key, now,
                                 report_encrypted=report_encrypted), now)


def _over_a_receipt_limit(
    session: Session, case: Case, policy: PolicySettings, now: datetime
) -> str | None:
    """Why this receipt would be one too many, flagging the case; None when it may go."""
    limit = policy.receipts_per_sender_per_day
    if receipts_sent_recently(session, case.reporter, now) >= limit:
        service.add_flags(case, "rate-limited")
        return f"{case.reporter} already had {limit} receipts in 24 hours"
    if receipts_sent_within(session, timedelta(hours=1), now) >= policy.receipts_per_hour:
        service.add_flags(case, RECEIPT_HELD_BACK)
        return f"{policy.receipts_per_hour} receipts already went out in the last hour"
    return None


def _answerable(address: str) -> bool:
    try:
        clean_address(address)
    except ValueError:
        return False
    return True


def _source(msg: InboundMessage, fetched: FetchedMessage) -> str:
    return f"message:{msg.message_id}" if msg.message_id else \
        f"mailbox:{fetched.folder}/{fetched.uidvalidity}/{fetched.uid}"


def _attachment(a: Attachment) -> dict[str, object]:
    return {"filename": a.filename, "content_type": a.content_type, "size": a.size,
            "sha256": a.sha256}


def reread(session: Session, message: Message, intake: Intake) -> str | None:
    """Open again a message that could not be decrypted (``cases retry-decrypt``).

    None when it opens now: its subject, flags, signature and readable text are recorded, the
    case loses its ``undecryptable`` flag when no other message keeps it, and a trusted team
    message's commands apply as they would have on arrival. Else why not. No case, receipt or
    alert is made again."""
    if intake.unwrapper is None:
        return "PGP is not configured ([pgp] key)"
    if message.raw_id is None:
        return "no raw bytes were kept"
    raw = intake.raw_store.get(session, message.raw_id)
    opened = intake.unwrapper.unwrap(raw)
    if opened is None or opened.problem:
        return opened.problem if opened else "nothing in it to decrypt"
    case = service.get_case(session, message.case_id, for_update=True)
    assert case is not None  # a message's case exists
    msg = parse_message(opened.raw, max_bytes=intake.settings.policy.max_message_bytes)
    facts = classify(msg, message.folder, intake.settings, signature=opened.signature)
    first = session.scalars(select(Message.id).where(Message.case_id == case.id,
                                                     Message.direction == "in")
                            .order_by(Message.id).limit(1)).first()
    if first == message.id and case.subject == message.subject:
        case.subject = msg.subject[:300]
    message.subject = msg.subject[:300]
    message.flags = facts.flags()
    sealed.record(session, case, message, opened, intake)
    if not sealed.still_undecryptable(session, case, message):
        case.flags = [f for f in case.flags if f != sealed.UNDECRYPTABLE]
    service.record(session, case, Actor("mailbot", "retry-decrypt"), "decrypted",
                   {"message_id": message.message_id}, intake.clock.now())
    if facts.from_team and message.kind != "team":
        message.kind = "team"
        _apply_team_message(session, case, msg, facts, message, intake)
    return None
