"""security.txt (RFC 9116) from the config: written by ``mailbot security-txt``, its published
copy's expiry watched by ``mailbot check``. Imports nothing, so ``mailbot --help`` stays quick.

    build.py    the fields, in RFC 9116's format (pure)
    sign.py     an OpenPGP cleartext signature with the team key (GnuPG)
    expiry.py   reading ``Expires`` back from a published file
    cli.py      ``mailbot security-txt``
"""
