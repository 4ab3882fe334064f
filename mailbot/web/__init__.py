"""The read-only case view: ``mailbot web`` (and ``mailbot run --web``).

A small server-rendered Starlette app over the same database as the daemon. It only reads cases;
the one thing it writes is its own audit trail (``access_log``: logins and case views). Nothing
in the core imports this package.

- ``access``: who may look (argon2 passwords, a header from trusted proxies), signed session
  cookies, the per-address login limit;
- ``board`` and ``casepage``: the data behind the two pages, as plain values;
- ``attachments``: an attachment's bytes, found again in the stored raw message;
- ``app``: routes, security headers, the login gate;
- ``server``: uvicorn, alone or in a thread beside the daemon.
"""
