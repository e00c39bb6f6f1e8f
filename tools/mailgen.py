"""Deterministic mailbox generator for the demo and the benchmarks.

The same seed gives byte-identical messages, so two runs (and pipemail against a
baseline in the same run) see exactly the same mailbox: conversations with proper
References, HTML + text alternatives, some attachments, incoming and sent mail.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from email.message import EmailMessage
from email.utils import format_datetime

COMPANIES = [
    ("Azure Interior", "azureinterior.example"),
    ("Deco Addict", "decoaddict.example"),
    ("Gemini Furniture", "geminifurniture.example"),
    ("Lumber Inc", "lumberinc.example"),
    ("Ready Mat", "readymat.example"),
    ("Wood Corner", "woodcorner.example"),
]
FIRST = ["Brandon", "Colleen", "Douglas", "Edwin", "Floyd", "Jesse", "Lorraine", "Nicole", "Oscar"]
LAST = ["Freeman", "Diaz", "Fletcher", "Shaw", "Steiner", "Brown", "Douglas", "Ford", "Morgan"]
TOPICS = [
    "Quote for 12 office chairs",
    "Delivery date for the conference tables",
    "Renewal of the maintenance contract",
    "Samples of the oak finish",
    "Invoice 2026/0412 question",
    "Meeting next Tuesday about the showroom",
    "Pricing for the Q3 order",
    "Installation planning",
]
SENTENCES = [
    "Thanks for the quick answer.",
    "Could you send us the updated proposal?",
    "We would like to move forward with the second option.",
    "The budget was approved this morning.",
    "Our team needs the delivery before the end of the month.",
    "Please find the details below.",
    "Let me know if Tuesday at 10:00 works for you.",
    "I have attached the specifications we discussed.",
]


@dataclass
class GeneratedMessage:
    folder: str
    raw: bytes
    date: datetime
    message_id: str
    seen: bool


@dataclass
class Contact:
    name: str
    email: str
    company: str


def contacts(seed: int = 7) -> list[Contact]:
    rng = random.Random(seed)
    out = []
    for company, domain in COMPANIES:
        for _ in range(3):
            first, last = rng.choice(FIRST), rng.choice(LAST)
            out.append(Contact(f"{first} {last}", f"{first}.{last}@{domain}".lower(), company))
    return out


def generate(
    count: int,
    *,
    owner: str = "sales@pipemail.example",
    owner_name: str = "Mitchell Admin",
    seed: int = 1,
    attachment_every: int = 20,
    start: datetime | None = None,
) -> Iterator[GeneratedMessage]:
    """Yield ``count`` messages in conversations, oldest first, INBOX and Sent mixed."""
    rng = random.Random(seed)
    people = contacts(seed + 6)
    now = start or datetime(2026, 11, 1, 9, 0, tzinfo=timezone.utc)
    when = now - timedelta(minutes=7 * count)
    produced = 0
    thread_no = 0
    while produced < count:
        thread_no += 1
        peer = rng.choice(people)
        topic = rng.choice(TOPICS)
        refs: list[str] = []
        for turn in range(min(rng.randint(1, 6), count - produced)):
            when += timedelta(minutes=rng.randint(1, 13))
            incoming = turn % 2 == 0
            mid = f"<{seed}.{thread_no}.{turn}.{produced}@gen.pipemail.example>"
            msg = EmailMessage()
            sender = (peer.name, peer.email) if incoming else (owner_name, owner)
            rcpt = (owner_name, owner) if incoming else (peer.name, peer.email)
            msg["From"] = f"{sender[0]} <{sender[1]}>"
            msg["To"] = f"{rcpt[0]} <{rcpt[1]}>"
            msg["Subject"] = ("Re: " if turn else "") + topic
            msg["Date"] = format_datetime(when)
            msg["Message-ID"] = mid
            if refs:
                msg["In-Reply-To"] = refs[-1]
                msg["References"] = " ".join(refs[-10:])
            body = " ".join(rng.choice(SENTENCES) for _ in range(rng.randint(2, 6)))
            text = f"Hello,\n\n{body}\n\nBest regards,\n{sender[0]}\n"
            msg.set_content(text)
            msg.add_alternative(
                f"<html><body><p>Hello,</p><p>{body}</p>"
                f'<p><a href="https://{peer.email.split("@")[1]}/catalog">Catalog</a></p>'
                f"<p>Best regards,<br/>{sender[0]}</p></body></html>",
                subtype="html",
            )
            if attachment_every and produced % attachment_every == attachment_every - 1:
                payload = rng.randbytes(rng.randint(2_000, 30_000))
                msg.add_attachment(
                    payload, maintype="application", subtype="pdf", filename=f"spec-{produced}.pdf"
                )
            # fixed boundaries: the stdlib draws them from the global random generator,
            # which would make two runs differ byte for byte
            for depth, part in enumerate(msg.walk()):
                if part.is_multipart():
                    part.set_boundary(f"==pm{seed}.{produced}.{depth}==")
            refs.append(mid)
            produced += 1
            yield GeneratedMessage(
                folder="INBOX" if incoming else "Sent",
                raw=bytes(msg),
                date=when,
                message_id=mid.strip("<>"),
                seen=rng.random() < 0.7 or not incoming,
            )
