"""What ``mailbot health`` reports, and the records the daemon keeps for it.

Three questions, answered separately: is this host's daemon alive (it ran its jobs lately), has
someone (which host) read the mailbox within a few poll intervals, and is there a failure that a
person must fix (a refused login, with the config key to change). The answers live in the
database's ``meta`` table, so every instance and every operator machine sees the same ones.
"""
