"""The quarantine: messages that failed intake three times, kept byte for byte for a person.

``mailbot quarantine list`` and ``show`` read it; ``retry`` runs one through intake again from its
kept bytes, after a fix (a new release, a config change). A retry can never double anything: a
message that became a case meanwhile is recognised by its dedupe key and only leaves the
quarantine.
"""
