"""Replies sent from the shared mailbox are seen at once: the daemon keeps IDLE on the Sent folder
too (a connection of its own), so a reply filed there acknowledges the case without waiting for
the next poll. Real Dovecot, ``mailbot run`` as a process, a poll interval of an hour.
"""

from __future__ import annotations

import time
from pathlib import Path

from sqlalchemy import create_engine, select
from sqlalchemy.pool import NullPool

from mailbot.cases.models import Case
from tests import daemons, mailflow
from tests.daemons import DaemonProcess
from tests.servers.dovecot import SENT, ImapAccount
from tests.servers.smtp_sink import SmtpSink

# The brief the daemon is held to: acknowledged within 2 s of the reply being filed. Polling
# (every hour here) cannot do it; only IDLE on the Sent folder can.
ACK_WITHIN_SECONDS = 2.0


def test_a_reply_filed_in_sent_acknowledges_the_case_within_two_seconds(
    tmp_path: Path, imap_account: ImapAccount, smtp_sink: SmtpSink
) -> None:
    url = f"sqlite:///{tmp_path / 'mailbot.db'}"
    config = daemons.write_config(tmp_path, imap_account.mailbox_settings(),
                                  smtp_sink.smtp_settings(), url,
                                  extra={"mailbox": {"poll_seconds": 3600}})
    engine = create_engine(url, poolclass=NullPool)

    def acknowledged() -> bool:
        with engine.connect() as conn:
            return conn.scalar(select(Case.acknowledged_at)) is not None

    report_id = mailflow.new_message_id()
    daemon = DaemonProcess(config, tmp_path / "daemon.log")
    try:
        imap_account.server.deliver(imap_account, mailflow.raw(
            [("From", f"Rita <{mailflow.REPORTER}>"), ("To", imap_account.username),
             ("Subject", "XSS in the login form")], message_id=report_id))
        smtp_sink.wait_for(1, timeout=30)  # the receipt: the case is open
        # Three sessions: the mailbox job's, and an IDLE watcher on INBOX and one on Sent.
        daemons.wait_until(lambda: daemon.log_text().count("IDLE in use") >= 3, 30,
                           "both IDLE watchers", alive=[daemon])
        time.sleep(0.5)  # let the watchers enter IDLE; the bound below is what is asserted
        assert not acknowledged()

        reply = mailflow.team_reply(answering=report_id,
                                    sender=f"Security <{imap_account.username}>",
                                    cc=None, authentication_results=None)
        imap_account.server.append(imap_account, SENT, reply)
        filed = time.monotonic()
        daemons.wait_until(acknowledged, 30, "the acknowledgement", every=0.01, alive=[daemon])
        took = time.monotonic() - filed
    finally:
        assert daemon.stop() == 0
        engine.dispose()
    assert took < ACK_WITHIN_SECONDS, f"acknowledged {took:.2f} s after the reply was filed"
