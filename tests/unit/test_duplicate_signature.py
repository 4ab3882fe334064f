"""What a report's signature is made of: its own account of the problem, not the wrapping."""

from __future__ import annotations

from mailbot.duplicates.finder import most_similar
from mailbot.duplicates.index import SignatureIndex
from mailbot.duplicates.signature import normalise, report_lines, signature, subject_words

REPORT = (
    "The upload handler of the image gallery trusts the content type sent by the browser, so a\n"
    "file named shell.php with an image content type is stored under the web root and runs as\n"
    "code when it is requested. Any logged-in user can upload one and execute commands as the\n"
    "web server user. Tested on gallery version 2.4 with the default settings of the package.\n"
)


def test_quoted_lines_are_dropped_when_the_sender_wrote_a_report_of_their_own() -> None:
    body = REPORT + "\nOn Mon, 1 Dec 2026 at 10:00, Someone <s@example.org> wrote:\n> old talk\n"
    assert report_lines(body) == REPORT.strip().splitlines()


def test_a_forward_with_a_short_note_keeps_the_quoted_report_without_its_markers() -> None:
    quoted = "".join(f"> {line}\n" for line in REPORT.splitlines())
    body = ("FYI, see below.\n\n---------- Forwarded message ---------\n"
            "From: Rita <rita@reporter.example>\nDate: Mon, 1 Dec 2026 10:00\n"
            "Subject: upload\nTo: <security@example.org>\n\n" + quoted)
    lines = report_lines(body)
    assert lines[0] == "FYI, see below."
    assert REPORT.splitlines()[0] in lines
    assert not any(line.startswith((">", "From:", "Date:", "Subject:", "To:", "-----"))
                   for line in lines)


def test_the_signature_and_pgp_armour_are_set_aside() -> None:
    body = ("-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\n" + REPORT +
            "-----BEGIN PGP SIGNATURE-----\n\niQEzBAEBCAAdFiEE\n-----END PGP SIGNATURE-----\n"
            "-- \nRita Reporter, Example Labs, +31 20 555 0100\n")
    assert report_lines(body) == REPORT.strip().splitlines()
    quoted_signature = "> " + REPORT.replace("\n", "\n> ") + "-- \n> Rita Reporter\n"
    assert "Rita Reporter" not in " ".join(report_lines(quoted_signature))


def test_links_addresses_long_numbers_and_function_words_are_not_words_of_the_report() -> None:
    text = ("See https://example.org/a?b=1 and www.example.net/x, mail rita@example.org, "
            "ticket 12345678, CVE-2026-1234 in version 2.4 of the gallery")
    assert normalise("", text) == ["see", "mail", "ticket", "cve-2026-1234", "version", "2", "4",
                                   "gallery"]


def test_reply_and_forward_prefixes_and_list_tags_leave_the_subject() -> None:
    assert subject_words("Re: Fwd: [oss-security] AW: [SECURITY] Upload runs code") == \
        "Upload runs code"


def test_a_report_with_too_few_words_has_no_signature() -> None:
    assert signature("hi", "Is this the security address?") is None
    assert signature("Upload runs code", REPORT) is not None


def test_a_forwarded_copy_reads_like_the_report_and_another_report_does_not() -> None:
    original = signature("Upload runs code in the gallery", REPORT)
    forwarded = signature(
        "Fwd: Upload runs code in the gallery",
        "Forwarding this one.\n\n-----Original Message-----\nFrom: Rita\nSent: Monday\n"
        "To: us\nSubject: Upload runs code\n\n" + "".join(f"> {ln}\n" for ln in
                                                          REPORT.splitlines()))
    other = signature("Session fixation in the login",
                      "The login page keeps the session id it was given before the user "
                      "logged in, so an attacker who plants a session id in a victim's browser "
                      "shares the victim's session after the victim logs in. Version 1.0.\n")
    assert original is not None and forwarded is not None and other is not None
    assert original.jaccard(forwarded) > 0.8
    assert original.jaccard(other) < 0.1
    index = SignatureIndex(0.25)
    index.add("SEC-2026-0001", original)
    index.add("SEC-2026-0002", other)
    [(case_id, similarity)] = most_similar(index, forwarded, 0.25)
    assert case_id == "SEC-2026-0001" and similarity > 0.8
    index.remove("SEC-2026-0001")
    assert most_similar(index, forwarded, 0.25) == []


def test_a_stored_report_is_read_back_as_its_subject_and_first_text_part() -> None:
    from email.message import EmailMessage

    from mailbot.duplicates.stored import report_text

    msg = EmailMessage()
    msg["Subject"] = "=?utf-8?q?L=C3=BCcke_im_Upload?="
    msg.set_content("<p>The upload <b>runs</b> code.</p>", subtype="html")
    msg.add_attachment(b"not the report", maintype="application", subtype="octet-stream",
                       filename="poc.bin")
    subject, body = report_text(msg.as_bytes())
    assert subject == "Lücke im Upload"
    assert "The upload runs code." in body and "not the report" not in body
    assert report_text(b"\xff\x00 not mail at all")[0] == ""  # read, never raised
