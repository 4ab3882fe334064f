"""OAuth2 access tokens for the mailbox and the relay: where they come from, and how long to keep
them.

- ``settings``: the ``[oauth2]`` table as a frozen value (read by ``mailbot.config``);
- ``tokens``: the cache every edge shares: a token is reused until shortly before it expires,
  refreshed before then, and dropped when a server refuses it;
- one module per provider: ``microsoft`` (MSAL, client credentials), ``google`` (google-auth,
  a service account with domain-wide delegation), ``refresh`` (Authlib, a stored refresh token)
  and ``command`` (a helper program that prints a token);
- ``device``: ``mailbot auth login``, the device-code flow that stores a refresh token;
- ``wiring``: the ``Credentials`` the IMAP and SMTP edges receive.

Kept free of imports here: ``mailbot.config`` imports ``settings`` on every start, and the
provider libraries are only loaded when a provider is actually used.
"""
