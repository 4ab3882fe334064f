"""All the yes/no rules about one message, asked once, in one place.

The rules themselves live in ``rules.py``; this module only gathers their answers into one value
that the pipeline acts on, so that "what is this message" and "what do we do about it" stay apart.
"""

from __future__ import annotations

from dataclasses import dataclass

from mailbot.config import Settings
from mailbot.intake import rules
from mailbot.intake.rules import Verdict
from mailbot.intake.unwrap import Signature
from mailbot.mail.message import InboundMessage


@dataclass(frozen=True)
class Classification:
    automatic: Verdict
    own: Verdict
    claims_team: Verdict
    imitates_team: Verdict
    trusted_team: Verdict
    in_sent_folder: bool
    oversize: bool
    unparseable: bool
    bad_date: bool = False
    repeated_fields: tuple[str, ...] = ()

    @property
    def untrusted_team(self) -> bool:
        """Claims or imitates the team but could not prove it: recorded, flagged, never obeyed.

        Our own mail coming back is not a team claim, even when our address is in a team domain."""
        claims = self.claims_team.yes or self.imitates_team.yes
        return claims and not self.trusted_team.yes and not self.own.yes

    @property
    def trust_reason(self) -> str:
        return self.imitates_team.reason if self.imitates_team.yes else self.trusted_team.reason

    @property
    def from_team(self) -> bool:
        return self.trusted_team.yes

    def flags(self) -> list[str]:
        out = []
        if self.automatic.yes:
            out.append("automatic")
        if self.own.yes:
            out.append("own-mail")
        if self.untrusted_team:
            out.append("unauthenticated-team")
        if self.oversize:
            out.append("oversize")
        if self.unparseable:
            out.append("unparseable")
        if self.in_sent_folder and not self.own.yes:
            out.append("sent-folder")
        if self.bad_date:
            out.append("bad-date")
        if self.repeated_fields:
            out.append("repeated-fields")
        return out

    def no_receipt_reason(self) -> str | None:
        """Why this message must not be answered, or None when a receipt may go out."""
        if self.own.yes:
            return f"our own mail ({self.own.reason})"
        if self.automatic.yes:
            return f"automatic mail ({self.automatic.reason})"
        if self.in_sent_folder:
            return "sent by the team from the shared mailbox"
        if self.claims_team.yes:
            return "from the team"
        if self.unparseable:
            return "unparseable"
        return None


def classify(msg: InboundMessage, folder: str, settings: Settings,
             signature: Signature | None = None) -> Classification:
    """``signature``: the sender's signature over the whole message, when an unwrapper found
    one (``mailbot.intake.unwrap``)."""
    in_sent = bool(settings.mailbox.sent_folder) and folder == settings.mailbox.sent_folder
    # The team replying from the shared mailbox writes From: security@ itself; in Sent only our
    # loop header tells mailbot's own copies apart.
    own = rules.is_our_own(msg, own_address="" if in_sent else settings.own_address)
    return Classification(
        automatic=rules.is_automatic(msg),
        own=own,
        claims_team=rules.claims_team(msg, settings.team),
        imitates_team=rules.imitates_team(msg, settings.team),
        # Our own copies in Sent are not the team speaking.
        trusted_team=rules.is_trusted_team(msg, settings.team, in_sent_folder=in_sent,
                                           signature=signature)
        if not own.yes
        else Verdict(False, "our own mail"),
        in_sent_folder=in_sent,
        oversize="oversize" in msg.defects,
        unparseable=msg.unparseable,
        bad_date=msg.bad_date,
        repeated_fields=msg.repeated_fields,
    )
