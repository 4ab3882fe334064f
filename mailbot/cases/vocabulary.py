"""The words of a case: statuses, severities and close reasons.

Kept apart from the service (and free of database imports) so that the CLI can offer them as
choices without slowing ``mailbot --help``.
"""

NEW = "new"
ACKNOWLEDGED = "acknowledged"
ASSESSED = "assessed"
RESOLVED = "resolved"
CLOSED = "closed"
STATUSES = (NEW, ACKNOWLEDGED, ASSESSED, RESOLVED, CLOSED)
OPEN_STATUSES = (NEW, ACKNOWLEDGED, ASSESSED)
SEVERITIES = ("low", "medium", "high", "critical")
CLOSE_REASONS = ("fixed", "duplicate", "invalid", "spam", "out-of-scope")
# Flags that change what mailbot does with a case (most flags only describe it).
IMPORTED = "imported"  # there before mailbot first read the mailbox: no receipt, no deadlines
RECEIPT_WITHHELD = "receipt-withheld"  # a receipt would have come too late: a person answers
# Flags (and events) that more than one part of mailbot speaks of.
NON_PARTICIPANT = "non-participant"  # someone outside the case joined its thread
RECEIPT_HELD_BACK = "receipt-held-back"  # policy.receipts_per_hour kept its receipt back
POSSIBLE_DUPLICATE = "possible-duplicate"  # a new report reads like an open case's (similar.py)
# What the reporter said about being credited in the advisory.
NAMED = "named"
ANONYMOUS = "anonymous"
UNKNOWN = "unknown"
CREDIT_CONSENTS = (NAMED, ANONYMOUS, UNKNOWN)
