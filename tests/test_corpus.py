"""Every message of the shared real-world corpora goes through ``parse_message``.

What each file must give (RELIABILITY.md test 10): no exception; either its text or
attachments extracted, or ``parse_error`` set with the raw bytes kept (a message whose
body is empty has nothing to extract and needs neither); every string valid UTF-8 and
free of NUL (PostgreSQL refuses both). The slowest file is reported in one summary line.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterator
from dataclasses import fields
from pathlib import Path

import pytest
from loud_skip import in_ci, loud_skip

from pipemail.mime import parse_message
from pipemail.types import Address, Attachment, ParsedMessage

# the real-world corpus (docs/corpus.md): PIPEMAIL_CORPUS, else shared/corpus beside the
# checkout, where CI lays it.
CORPUS = Path(
    os.environ.get("PIPEMAIL_CORPUS") or Path(__file__).resolve().parents[2] / "shared" / "corpus"
)
SKIP_NAMES = {"LICENSE", "README", "README.md", ".gitattributes"}


def corpus_files() -> list[Path]:
    if not CORPUS.is_dir():
        return []
    return sorted(
        p
        for p in CORPUS.rglob("*")
        if p.is_file() and p.name not in SKIP_NAMES and not p.name.startswith("LICENSE")
    )


FILES = corpus_files()
TIMINGS: dict[str, float] = {}
OUTCOMES: dict[str, str] = {}


@pytest.fixture(scope="module", autouse=True)
def corpus_summary(request: pytest.FixtureRequest) -> Iterator[None]:
    """Print files, outcomes and the slowest message once the module has run."""
    yield
    if not TIMINGS:
        return
    worst = max(TIMINGS, key=lambda k: TIMINGS[k])
    errors = sum(1 for v in OUTCOMES.values() if v == "raw+error")
    line = (
        f"corpus: {len(TIMINGS)} files, {len(TIMINGS) - errors} parsed, "
        f"{errors} raw+error; max {TIMINGS[worst]:.1f} ms/message ({worst}); "
        f"total {sum(TIMINGS.values()):.0f} ms"
    )
    # Shown even without -s: step out of output capture for this one line.
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if capture is not None:
        with capture.global_and_fixture_disabled():
            print("\n" + line)
    else:  # pragma: no cover - plain runners
        print(line)


def iter_strings(parsed: ParsedMessage) -> Iterator[tuple[str, str]]:
    for f in fields(parsed):
        value = getattr(parsed, f.name)
        if isinstance(value, str):
            yield f.name, value
        elif isinstance(value, Address):
            yield f.name, value.email
            yield f.name, value.name
        elif isinstance(value, list):
            for item in value:
                if isinstance(item, str):
                    yield f.name, item
                elif isinstance(item, Address):
                    yield f.name, item.email
                    yield f.name, item.name
                elif isinstance(item, Attachment):
                    yield f.name, item.filename
                    yield f.name, item.content_type
                    yield f.name, item.content_id


def body_is_blank(raw: bytes) -> bool:
    for sep in (b"\r\n\r\n", b"\n\n"):
        idx = raw.find(sep)
        if idx >= 0:
            return not raw[idx + len(sep) :].strip()
    return True


def test_corpus_is_present() -> None:
    """A missing corpus must not turn the corpus tests into no tests unseen: in CI, where
    it is laid beside the checkout, it fails; elsewhere (a clone alone) the run ends with
    a CORPUS SKIPPED banner."""
    if FILES:
        return
    why = f"no corpus at {CORPUS}"
    if in_ci():
        pytest.fail(f"{why}: CI lays shared/corpus beside the checkout; PIPEMAIL_CORPUS overrides")
    loud_skip(
        "CORPUS SKIPPED",
        why,
        "The real-world corpus tests did not run: put the shared/ folder beside the "
        "checkout or set PIPEMAIL_CORPUS to its corpus folder (docs/corpus.md).",
    )


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(CORPUS)))
def test_corpus_file(path: Path) -> None:
    raw = path.read_bytes()
    start = time.perf_counter()
    parsed = parse_message(raw)
    elapsed = (time.perf_counter() - start) * 1000
    name = str(path.relative_to(CORPUS))
    TIMINGS[name] = elapsed

    assert parsed.content_hash == hashlib.sha256(raw).hexdigest()
    assert parsed.raw_size == len(raw)
    assert parsed.message_id
    extracted = bool(parsed.text.strip() or parsed.html.strip() or parsed.attachments)
    if parsed.parse_error:
        assert parsed.raw == raw, "an error without the raw bytes would lose the message"
        OUTCOMES[name] = "raw+error"
    else:
        assert extracted or body_is_blank(raw), "body present but nothing extracted"
        OUTCOMES[name] = "parsed"
    for field_name, value in iter_strings(parsed):
        value.encode("utf-8")  # raises on lone surrogates
        assert "\x00" not in value, field_name
    if parsed.date is not None:
        assert parsed.date.utcoffset() is not None
    for att in parsed.attachments:
        assert att.size == len(att.content)
        assert att.filename and "/" not in att.filename and "\\" not in att.filename


# ------------------------------------------------------------------ known files


def parse(rel: str) -> ParsedMessage:
    if not FILES:
        pytest.skip(f"no corpus at {CORPUS}")  # one line for all: test_corpus_is_present says why
    path = CORPUS / rel
    if not path.exists():
        pytest.skip(f"{rel} not in corpus")
    return parse_message(path.read_bytes())


def test_iso_2022_jp_body() -> None:
    p = parse("mime/mikel-mail/multi_charset/japanese_iso_2022.eml")
    assert p.subject == "まみむめも"
    assert p.to[0].name == "みける"
    assert p.text.strip() == "すみません。"


def test_shift_jis_and_korean_bodies() -> None:
    p = parse("mime/mikel-mail/multi_charset/japanese_shift_jis.eml")
    assert p.text.startswith("あいうえお\n")
    assert "このメールはテスト用のメールです。" in p.text
    k = parse("mime/mikel-mail/multi_charset/ks_c_5601-1987.eml")
    assert k.text.strip() == "스티해"


def test_japanese_attachment_names() -> None:
    p = parse("mime/mikel-mail/multi_charset/japanese_attachment.eml")
    (att,) = p.attachments
    assert att.filename == "てすと.txt"
    assert att.content == "this is a test\nこれわてすと".encode()
    assert att.size == 33
    long = parse("mime/mikel-mail/multi_charset/japanese_attachment_long_name.eml")
    assert long.attachments[0].filename == "かきくけこ" * 5 + ".txt"
    assert long.subject == "まみむめも" * 10


def test_pdf_attachment() -> None:
    p = parse("mime/flanker/attached-pdf.eml")
    (att,) = p.attachments
    assert att.filename == "test.pdf"
    assert att.content_type == "application/pdf"
    assert att.size == 6940 and att.content.startswith(b"%PDF")


def test_utf8_headers() -> None:
    p = parse("mime/mikel-mail/rfc6532/utf8_headers.eml")
    assert p.subject == "Säying Hello"
    assert p.sender is not None
    assert p.sender.name == "Jöhn Doe"
    assert p.sender.email == "jdöe@xn--mchine-bua.example"


def test_bounces_are_automated() -> None:
    for rel in (
        "mime/mikel-mail/multipart_report_emails/multi_address_bounce1.eml",
        "mime/mikel-mail/multipart_report_emails/report_530.eml",
        "mime/flanker/bounce/office365.eml",
        "mime/flanker/bounce/delayed-broken.eml",
        "mime/flanker/disposition-notification.eml",
    ):
        assert parse(rel).is_automated, rel
    human = parse("mime/mikel-mail/rfc2822/example06.eml")
    assert not human.is_automated


def test_bounce_keeps_the_returned_message() -> None:
    p = parse("mime/mikel-mail/multipart_report_emails/multi_address_bounce1.eml")
    types = [a.content_type for a in p.attachments]
    assert "message/delivery-status" in types
    assert "message/rfc822" in types


def test_enclosed_endless_is_one_attachment() -> None:
    p = parse("mime/flanker/enclosed-endless.eml")
    assert p.subject == "Wow"
    (eml,) = p.attachments
    assert eml.filename == "thanks.eml"
    assert eml.size > 2_900_000


def test_long_header() -> None:
    p = parse("mime/flanker/long-header.eml")
    assert p.subject.startswith("Die heiße Zypernsonne quälte Max und Victoria ja böse")


def test_broken_8bit_headers() -> None:
    p = parse("mime/flanker/mailformed-headers.eml")
    assert p.sender is not None
    assert p.sender.name.startswith("Юникод запрещен")
    assert p.sender.email == "headers@gmail.com"


def test_rfc2822_reply_threading_headers() -> None:
    p = parse("mime/mikel-mail/rfc2822/example07.eml")
    assert p.message_id == "abcd.1234@local.machine.tld"
    assert p.in_reply_to == "3456@example.net"
    assert p.references == ["1234@local.machine.example", "3456@example.net"]


def test_broken_references_keep_the_good_ones() -> None:
    p = parse("mime/mikel-mail/error_emails/multiple_references_with_one_invalid.eml")
    assert p.references == ["foo@bar.net", "baz@bar.net"]
