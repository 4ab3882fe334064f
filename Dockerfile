# mailbot: a daemon for a security@ mailbox.
#   docker build -t mailbot .
#   docker run -v $PWD/mailbot.toml:/etc/mailbot/mailbot.toml:ro -v mailbot-data:/var/lib/mailbot \
#     -e MAILBOT_IMAP_PASSWORD -e MAILBOT_SMTP_PASSWORD -e MAILBOT_TOKEN_KEY mailbot
# The read-only case view (docs/web.md) listens on port 8025 when started with `run --web` or as
# `mailbot web`; inside a container set [web] listen = "0.0.0.0:8025" and publish it behind TLS:
#   docker run ... -p 127.0.0.1:8025:8025 mailbot mailbot run --web
#   OAuth2 device-code sign-in (docs/oauth2.md), keeping the refresh token in the volume:
#   docker run -it (the same -v options) mailbot mailbot auth login
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    MAILBOT_CONFIG=/etc/mailbot/mailbot.toml

# gnupg: the [pgp] team key (decrypting reports, signing and encrypting replies).
RUN apt-get update && apt-get install -y --no-install-recommends gnupg \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /src
COPY pyproject.toml README.md ./
COPY mailbot ./mailbot
COPY templates ./templates
COPY migrations ./migrations
RUN pip install ".[postgres,web]" && rm -rf /src
# gpg signs security.txt (and other mail, later) when [pgp] names a key.
RUN apt-get update && apt-get install -y --no-install-recommends gnupg \
    && rm -rf /var/lib/apt/lists/*

RUN useradd --system --home-dir /var/lib/mailbot --create-home mailbot
USER mailbot
WORKDIR /var/lib/mailbot
VOLUME ["/var/lib/mailbot"]
EXPOSE 8025

# The config is mounted at $MAILBOT_CONFIG; a relative sqlite URL lands in /var/lib/mailbot.
HEALTHCHECK --interval=60s --timeout=30s --start-period=30s --retries=3 \
    CMD ["mailbot", "health"]

CMD ["mailbot", "run"]
