"""mailbot: runs a security@ mailbox, turns reports into cases and keeps the disclosure clock."""

__version__ = "0.1.0"
