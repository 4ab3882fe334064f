"""The text of corpus messages whose reading once depended on which parser read it.

mailbot used to read the text with mail-parser and, beside it, with its own walk of the MIME
tree; on these messages of ``tests/data/corpus`` the two disagreed. One walk now reads every
message, and each test holds the better of the two readings.
"""

from __future__ import annotations

from pathlib import Path

from mailbot.mail.message import InboundMessage
from mailbot.mail.parse import parse_message

CORPUS = Path(__file__).resolve().parents[1] / "data" / "corpus"
SISIMAI = "sisimai-set-of-emails/maildir/bsd"
SPAMSCOPE = "spamscope-mail-parser/mails"


def corpus(name: str) -> InboundMessage:
    return parse_message((CORPUS / name).read_bytes())


# ---------------------------------------------------------------------------------------------
# Charsets: the declared one's superset, UTF-8 under a wrong label, 7-bit Japanese


def test_gb2312_declared_text_is_read_in_gb18030() -> None:
    # One character of this HTML body is outside GB2312 (inside GBK/GB18030).
    msg = corpus(f"{SPAMSCOPE}/mail_test_9")
    assert "我把镜头拉近些，你们看看这个是什么" in msg.text_body
    assert "\ufffd" not in msg.text_body and "\ufffd" not in msg.own_text


def test_utf8_text_declared_as_gb2312_is_read_as_utf8() -> None:
    msg = corpus(f"{SPAMSCOPE}/mail_test_12")
    assert msg.text_body.startswith("你好！我公司可代开各类增值税发票")
    assert msg.own_text.startswith("你好！我公司可代开各类增值税发票")


def test_utf8_text_declared_as_iso_2022_jp_is_read_as_utf8() -> None:
    msg = corpus(f"{SISIMAI}/lhost-kddi-01.eml")
    assert msg.text_body.startswith("送信先のメールボックスが一杯のため、送信できませんでした。")
    assert msg.own_text.startswith("送信先のメールボックスが一杯のため")


def test_iso_2022_jp_bodies_are_decoded_not_left_as_escapes() -> None:
    mfilter = corpus(f"{SISIMAI}/lhost-mfilter-01.eml")
    assert mfilter.text_body.startswith("このメールは「m-FILTER」が自動的に生成して")
    notes = corpus(f"{SISIMAI}/lhost-notes-01.eml")
    assert "エラー(テストメッセージとしての)" in notes.text_body
    assert "$B" not in mfilter.text_body and "$B" not in notes.text_body


def test_undeclared_8bit_text_that_is_not_utf8_keeps_its_letters() -> None:
    # No header block at all: the whole file is the body, with a Latin-1 "ì" in it.
    msg = corpus("apache-james-mime4j/testmsgs/obsolete.msg")
    assert "Invalìd-Header: this is not valid." in msg.text_body


# ---------------------------------------------------------------------------------------------
# Which parts are text


def test_s_mime_content_labelled_application_plain_is_the_text() -> None:
    msg = corpus("mailgun-flanker/messages/signed.eml")
    assert msg.text_body == "a pöstal sign of our times"
    assert msg.own_text == "a pöstal sign of our times"
    assert [a.filename for a in msg.attachments] == ["smime.p7s"]


def test_the_signature_part_of_a_signed_message_is_not_text() -> None:
    msg = corpus("stalwart-mail-parser-eml/thirdparty/006.eml")  # signature/plain
    assert msg.text_body == "Search me, and Find me here"
    assert [a.content_type for a in msg.attachments] == ["signature/plain"]


def test_an_inline_text_part_with_a_filename_is_text_and_attachment() -> None:
    msg = corpus(f"{SPAMSCOPE}/mail_test_3")
    assert "The WatchGuard Firebox that protects your network" in msg.text_body
    assert [a.filename for a in msg.attachments] == ["message.txt"]
    assert "WatchGuard" not in msg.own_text  # a named part is never the sender's own text


def test_only_the_inline_one_of_two_named_text_parts_is_text() -> None:
    msg = corpus("apache-spamassassin/nice/cjk/iso-2022-jp.1")
    assert "<!--X-Body-of-Message-->" in msg.text_body  # inline; filename test-archive.txt
    assert "Shift_JIS" in msg.text_body
    assert [a.filename for a in msg.attachments] == ["test-sjis.txt", "test-archive.txt"]
    # test-sjis.txt is Content-Disposition: attachment: its Japanese text is not read.
    assert "データ" not in msg.text_body


def test_the_fragment_a_message_partial_encloses_is_read() -> None:
    msg = corpus(f"{SISIMAI}/lhost-bigfoot-02.eml")
    assert "553 Invalid recipient kijitora@example.org" in msg.text_body
    assert "Nyaaaaaaaaaan" in msg.text_body  # inside message/partial
    assert "Nyaaaaaaaaaan" not in msg.own_text


def test_a_delivery_status_that_swallows_the_rest_adds_no_text() -> None:
    # The delivery-status part's closing boundary never comes, so the stdlib reads the rest of
    # the message as its fields; those are not text.
    msg = corpus(f"{SISIMAI}/rhost-google-01.eml")
    assert msg.text_body.rstrip().endswith("<<< 503 5.5.1 RCPT first. g0000000000ggg.00")
    assert "text/rfc822-headers" not in msg.text_body


# ---------------------------------------------------------------------------------------------
# Garbage in every reading: what can be had is had, nothing worse


def test_a_bounce_with_broken_boundaries_keeps_its_text() -> None:
    msg = corpus(f"{SISIMAI}/lhost-sendgrid-01.eml")
    assert msg.text_body.startswith("This is an automatically generated message from SendGrid.")
    assert "550 5.1.1 <kijitora@example.jp>... User Unknown" in msg.text_body


def test_shift_jis_declared_as_us_ascii_stays_readable_where_it_is_ascii() -> None:
    msg = corpus("apache-spamassassin/spam/008")
    assert msg.text_body.startswith("mailto:vacation@btamail.net.cn?subject=Help!")
    assert "info_sst@yahoo.co.jp" in msg.text_body
    assert not any(ch < " " and ch not in "\t\n" for ch in msg.text_body)


def test_an_outlook_msg_file_is_unparseable_and_has_no_text() -> None:
    msg = corpus(f"{SPAMSCOPE}/mail_outlook_1")
    assert msg.unparseable
    assert msg.text_body == "" and msg.own_text == ""
