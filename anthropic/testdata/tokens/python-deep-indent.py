"""Reconcile exported bank statements against the journal.

The bank exports one CSV per account and month.  Each row is matched to a
journal posting by date, amount and a fuzzy comparison of the description;
rows that match nothing are printed so that they can be entered by hand.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import decimal
import difflib
import pathlib
import sys
from typing import Iterable, Iterator


@dataclasses.dataclass(frozen=True)
class Row:
    date: dt.date
    amount: decimal.Decimal
    description: str
    line: int


@dataclasses.dataclass
class Posting:
    date: dt.date
    account: str
    amount: decimal.Decimal
    description: str
    matched: bool = False


class Reconciler:
    def __init__(self, postings: Iterable[Posting], *, window_days: int = 3, threshold: float = 0.6) -> None:
        self.window = dt.timedelta(days=window_days)
        self.threshold = threshold
        self.by_amount: dict[decimal.Decimal, list[Posting]] = {}
        for p in postings:
            self.by_amount.setdefault(p.amount, []).append(p)

    def match(self, row: Row) -> Posting | None:
        candidates = self.by_amount.get(row.amount, [])
        best: Posting | None = None
        best_score = 0.0
        for p in candidates:
            if p.matched:
                continue
            if abs(p.date - row.date) > self.window:
                continue
            score = difflib.SequenceMatcher(
                None,
                normalise(p.description),
                normalise(row.description),
            ).ratio()
            if score > best_score:
                best, best_score = p, score
        if best is not None and best_score >= self.threshold:
            best.matched = True
            return best
        return None

    def unmatched(self, rows: Iterable[Row]) -> Iterator[Row]:
        for row in rows:
            if self.match(row) is None:
                yield row


def normalise(text: str) -> str:
    out = []
    for word in text.lower().split():
        word = word.strip(".,;:*#'\"")
        if not word:
            continue
        if word.isdigit() and len(word) > 4:
            # card numbers, references and dates add noise to the comparison
            continue
        out.append(word)
    return " ".join(out)


def read_rows(path: pathlib.Path) -> Iterator[Row]:
    with path.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f, delimiter=";")
        for n, rec in enumerate(reader, start=2):
            try:
                date = dt.datetime.strptime(rec["Booking date"], "%d.%m.%Y").date()
                amount = decimal.Decimal(rec["Amount"].replace(".", "").replace(",", "."))
            except (KeyError, ValueError, decimal.InvalidOperation) as exc:
                raise SystemExit(f"{path}:{n}: cannot read row: {exc}") from None
            yield Row(
                date=date,
                amount=amount,
                description=" ".join(
                    part
                    for part in (
                        rec.get("Payee", ""),
                        rec.get("Purpose", ""),
                    )
                    if part
                ),
                line=n,
            )


def main(argv: list[str]) -> int:
    if len(argv) < 3:
        print("usage: reconcile JOURNAL STATEMENT.csv...", file=sys.stderr)
        return 2
    journal = pathlib.Path(argv[1])
    postings = list(load_journal(journal))
    rec = Reconciler(postings)
    missing = 0
    for name in argv[2:]:
        path = pathlib.Path(name)
        for row in rec.unmatched(read_rows(path)):
            missing += 1
            print(f"{path}:{row.line}: {row.date} {row.amount:>10} {row.description}")
    if missing:
        print(f"{missing} statement rows have no journal posting", file=sys.stderr)
        return 1
    return 0


def load_journal(path: pathlib.Path) -> Iterator[Posting]:
    date = None
    description = ""
    with path.open(encoding="utf-8") as f:
        for raw in f:
            line = raw.rstrip("\n")
            if not line.strip() or line.lstrip().startswith(";"):
                continue
            if not line[0].isspace():
                head, _, rest = line.partition(" ")
                date = dt.date.fromisoformat(head)
                description = rest.lstrip("*! ").strip()
                continue
            if date is None:
                continue
            fields = line.split()
            if len(fields) >= 3:
                try:
                    amount = decimal.Decimal(fields[1].replace(",", ""))
                except decimal.InvalidOperation:
                    continue
                if fields[0].startswith("assets:bank"):
                    yield Posting(date, fields[0], amount, description)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
