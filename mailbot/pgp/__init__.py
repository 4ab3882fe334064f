"""OpenPGP: the team key, encrypted reports in, encrypted answers out (GnuPG, python-gnupg).

The core never imports this package; the app wires it in through ``mailbot.intake.unwrap``.
"""
