"""The AI evaluation set: 20 sales threads and the facts a summary of each must contain.

Built in code from 20 scenarios, so it is the same on every run and easy to read. Each
thread has 4 messages (buyer, seller, buyer, seller): a request with a quantity and a
budget, a proposed meeting, a decision and an open question, and the seller's next
step with its date. Each fact names the message it comes from and the words that show a
summary point holds it (every group must match, one alternative per group).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from pipemail.ai import ThreadMessage


@dataclass(frozen=True)
class Fact:
    name: str
    groups: tuple[tuple[str, ...], ...]  # all groups must match, any word of a group
    source: str  # id of the message it comes from

    def found_in(self, text: str) -> bool:
        lowered = text.lower()
        return all(any(word.lower() in lowered for word in group) for group in self.groups)


@dataclass(frozen=True)
class EvalThread:
    name: str
    messages: tuple[ThreadMessage, ...]
    facts: tuple[Fact, ...]


# buyer, company, product, quantity, budget, meeting, decision, question, next step date
_SCENARIOS = [
    ("Anna Keller", "Acme", "CRM licences", 40, "12,000 EUR", "Tuesday 11 March", "one-year contract", "who signs the contract", "20 March"),
    ("Omar Haddad", "Blue Dune", "office chairs", 120, "18,000 USD", "Monday 7 April", "black fabric", "delivery to two sites", "14 April"),
    ("Lena Vogt", "Nordwerk", "laptops", 25, "30,000 EUR", "Thursday 3 April", "16 GB memory", "the warranty length", "10 April"),
    ("Priya Nair", "Kestrel Labs", "lab freezers", 6, "45,000 GBP", "Wednesday 9 April", "installation by us", "the power supply", "16 April"),
    ("Tom Berg", "Fjord Foods", "delivery vans", 3, "150,000 EUR", "Friday 4 April", "electric model", "the charging stations", "18 April"),
    ("Sofia Rossi", "Vela Design", "design software seats", 15, "9,000 EUR", "Tuesday 1 April", "annual billing", "the student discount", "8 April"),
    ("Jonas Weber", "Alpen Bau", "safety helmets", 300, "6,000 CHF", "Monday 14 April", "white colour", "the logo printing", "22 April"),
    ("Mei Chen", "Lotus Trading", "shipping containers", 10, "80,000 USD", "Thursday 17 April", "Shanghai pickup", "the insurance", "25 April"),
    ("Carlos Mendes", "Sol Energia", "solar panels", 500, "120,000 EUR", "Wednesday 2 April", "installation in May", "the grid permit", "11 April"),
    ("Fatima Zahra", "Atlas Textiles", "sewing machines", 20, "40,000 EUR", "Tuesday 8 April", "two-year service plan", "spare parts stock", "15 April"),
    ("Ivan Petrov", "Neva Logistics", "warehouse scanners", 60, "21,000 EUR", "Friday 11 April", "rugged version", "battery life", "23 April"),
    ("Grace Okafor", "Lagos Clinics", "patient monitors", 12, "36,000 USD", "Monday 31 March", "training included", "the certification", "7 April"),
    ("Hugo Martin", "Bistro Group", "coffee machines", 8, "16,000 EUR", "Thursday 10 April", "monthly maintenance", "the water filters", "17 April"),
    ("Yuki Tanaka", "Sakura Print", "printing presses", 2, "200,000 USD", "Wednesday 16 April", "financing over three years", "the floor space", "30 April"),
    ("Elena Costa", "Porto Wines", "bottling line", 1, "75,000 EUR", "Tuesday 15 April", "start in June", "the bottle sizes", "24 April"),
    ("Noah Levi", "Cedar Apps", "cloud hosting plan", 1, "2,500 USD per month", "Monday 28 April", "European data centre", "the backup policy", "5 May"),
    ("Aisha Bello", "Savanna Farms", "irrigation pumps", 35, "28,000 USD", "Friday 25 April", "solar powered pumps", "the spare seals", "2 May"),
    ("Lucas Dubois", "Lumiere Events", "stage lights", 80, "24,000 EUR", "Thursday 24 April", "rental for six months", "the transport cost", "1 May"),
    ("Nina Larsen", "Polar Fish", "cold storage rooms", 4, "90,000 EUR", "Wednesday 23 April", "steel panels", "the cooling gas", "30 April"),
    ("David Cohen", "Harbor Legal", "document scanners", 18, "13,500 USD", "Tuesday 22 April", "on-site setup", "the data encryption", "29 April"),
]  # fmt: skip

SELLER = "Bob Martin <bob@pipemail-demo.example>"
_START = dt.datetime(2025, 3, 24, 9, 0, tzinfo=dt.timezone.utc)


def _thread(index: int) -> EvalThread:
    buyer, company, product, qty, budget, meeting, decision, question, next_date = _SCENARIOS[index]
    first = buyer.split()[0]
    address = f"{buyer} <{first.lower()}@{company.lower().replace(' ', '')}.example>"
    prefix = f"t{index + 1}"
    bodies = [
        (
            address,
            f"Hello Bob,\n\n{company} needs {qty} {product}. Our budget is {budget}. "
            f"Could you send us an offer?\n\nBest regards,\n{buyer}",
        ),
        (
            SELLER,
            f"Hi {first},\n\nthank you for your request. Could we meet on {meeting} to go "
            "through the details?\n\nBob",
        ),
        (
            address,
            f"Hi Bob,\n\n{meeting} works for us. We decided on the {decision}. One question "
            f"is still open: {question}?\n\n{first}",
        ),
        (
            SELLER,
            f"Hi {first},\n\nnoted. I will send the final offer by {next_date} and answer "
            f"about {question} then.\n\nBob",
        ),
    ]
    messages = tuple(
        ThreadMessage(
            id=f"{prefix}-m{i + 1}",
            sender=sender,
            recipients=(SELLER if sender != SELLER else address,),
            date=_START + dt.timedelta(days=index, hours=i * 5),
            subject=f"{product.capitalize()} for {company}"
            if i == 0
            else f"Re: {product.capitalize()} for {company}",
            body=body,
        )
        for i, (sender, body) in enumerate(bodies)
    )
    key = product.split()[-1]
    facts = (
        Fact("request", ((str(qty),), (key,)), f"{prefix}-m1"),
        Fact("budget", ((budget.split()[0],),), f"{prefix}-m1"),
        Fact("meeting", ((meeting.split()[-2] + " " + meeting.split()[-1], meeting.split()[0]),), f"{prefix}-m2"),
        Fact("decision", ((decision.split()[-1],),), f"{prefix}-m3"),
        Fact("question", ((question.split()[-1],),), f"{prefix}-m3"),
        Fact("next_step", ((next_date,),), f"{prefix}-m4"),
    )  # fmt: skip
    return EvalThread(f"{company}: {product}", messages, facts)


def eval_threads() -> list[EvalThread]:
    return [_thread(i) for i in range(len(_SCENARIOS))]
