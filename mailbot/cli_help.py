"""What each command's ``--help`` says about it: the description under its usage line.

Kept apart from the parser so that ``cli.py`` stays a list of commands and their arguments; the
parser takes each description from here by the command's name (``"cases list"``).
"""

from __future__ import annotations

DESCRIPTIONS: dict[str, str] = {
    "run": "The daemon: reads the mailbox (IDLE on the inbox and the Sent folder, with polling as "
           "the safety net), turns reports into cases, sends receipts, watches deadlines and "
           "sends reminders, until SIGTERM or SIGINT, which finish the message in hand and exit "
           "0. It migrates the database on start.",
    "migrate": "Bring the database schema to the latest version (run does this by itself on "
               "start).",
    "check": "Validate the config, then connect to the database, IMAP and SMTP and log in; "
             "print one line per check and notes worth reading. Exit 1 when a check fails.",
    "ingest": "Process .eml files or mbox files as if the messages had arrived (a backfill or a "
              "replay). A message seen before changes nothing.",
    "cases": "List, show and change cases, as the team's email commands do.",
    "cases list": "The cases, oldest first: id, status, the deadline now running, reporter, "
                  "subject and flags.",
    "cases show": "One case with its messages and events (its audit trail).",
    "cases ack": "Acknowledge the case (the acknowledgement deadline is met; the assessment "
                 "clock starts).",
    "cases resolve": "Mark the case resolved.",
    "cases reopen": "Reopen a resolved or closed case.",
    "cases assess": "Record the severity and the target resolution date.",
    "cases close": "Close the case with a reason.",
    "cases duplicate": "Mark the case as a duplicate of another one, and close it.",
    "cases cve": "Record the CVE id assigned to the case.",
    "cases credit": "Record how the reporter wishes to be credited: a name (consent named), "
                    "or none (consent anonymous). Reporters can say it themselves by replying "
                    "to our mail with /credit \"Name, Org\", /credit none or /anonymous.",
    "cases disclose": "Record the agreed disclosure (embargo) date, or none to clear it. On-call "
                      "is reminded policy.disclosure_warning_business_days business days "
                      "before it, and alerted when it arrives while the case is still open.",
    "deadlines": "The deadline watch: reminders before a deadline, escalations after it.",
    "deadlines check": "Run the deadline watch once (as if at --now: business hours are judged "
                       "at that time), then send what it queued. For cron and tests; the "
                       "daemon runs the watch every minute.",
    "auth": "OAuth2 sign-in for the mailbox (see docs/oauth2.md).",
    "health": "Says separately whether this host's daemon is alive, who read the mailbox last "
              "and when, and any failure a person must fix (a refused login, with the config key "
              "to change). Exit 0 only when the daemon here (or a `run --once` from cron) ran "
              "lately and someone read the mailbox within three poll intervals (at least 5 "
              "minutes); the Docker HEALTHCHECK.",
    "quarantine": "Messages that failed intake three times are quarantined: their raw bytes "
                  "are kept and on-call was told. List them, show one, or retry one after a fix.",
    "quarantine list": "The quarantined messages: id, folder and UID, when, and the error.",
    "quarantine show": "One quarantined message: its headers, the error and the tries.",
    "quarantine retry": "Process a quarantined message again from its kept bytes. A message "
                        "that had become a case meanwhile changes nothing; one that works now "
                        "leaves the quarantine.",
    "web": "Serve the read-only case view (login required).",
    "web hash-password": "Read a password and print its argon2 hash, for web.users.",
    "demo": "A self-contained demonstration on embedded servers (IMAP, SMTP, SQLite) with a "
            "fixed clock: reports, receipts, the team's replies, a deadline approaching, the "
            "reminder to on-call and an escalation.",
}
