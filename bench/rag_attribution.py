"""Does online RAG scoring blame the right stage? Constructed calls of each kind, attributed
by ``rag.online.assess`` with the embedded MiniLM, against a baseline measured in the same
run: the rule a tracing tool's retrieval scores alone support (the best chunk's retriever
score under the same cut: a retrieval failure; else nothing to blame).

The corpus is twelve short policy passages written for this benchmark (a help centre's HR,
finance and IT pages), each with a question it answers and a correct answer. For every
passage, five calls are built:

* ``ok``: the passage and two others retrieved, the correct answer;
* ``retrieval``: three other passages retrieved (the right one missed), an answer from them;
* ``integration`` (a changed number): the passage retrieved, the correct answer with its
  number changed;
* ``integration`` (an unsupported claim): the passage retrieved, the correct answer plus a
  claim on another subject;
* ``freshness``: the passage retrieved, the correct answer, the passage's source changed
  since the index was built.

It prints the confusion matrix of seamline's attribution, its accuracy and the baseline's,
and their ratio. The cases are ours: they say the thresholds separate clear cases, not how
the method fares on a team's traffic (which ``seamline rag report``'s examples let a team
check).

Run: ``.venv/bin/python -m bench.rag_attribution``.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime

from seamline.providers.local_vectors import embed
from seamline.rag.online import (
    ATTRIBUTIONS,
    FRESHNESS,
    INTEGRATION,
    OK,
    RETRIEVAL,
    RagSample,
    RetrievedChunk,
    assess,
)

# (passage, question, correct answer, an off-subject claim)
PASSAGES = [
    (
        "Employees receive 25 days of paid time off per year, accrued monthly.",
        "How many days of paid time off do employees get?",
        "Employees get 25 days of paid time off each year.",
        "Parking is free for every employee.",
    ),
    (
        "Expense reports must be filed within 30 days of the purchase date.",
        "How long do I have to file an expense report?",
        "You have 30 days from the purchase to file an expense report.",
        "Meals with clients are always reimbursed in full.",
    ),
    (
        "Travel above 5000 dollars requires approval from a vice president.",
        "Who must approve travel that costs over 5000 dollars?",
        "A vice president must approve travel above 5000 dollars.",
        "Business class is allowed on every flight.",
    ),
    (
        "Laptops are replaced every 3 years by the IT department.",
        "How often are laptops replaced?",
        "IT replaces laptops every 3 years.",
        "Employees may install any software they like.",
    ),
    (
        "Parental leave is 16 weeks at full pay for every new parent.",
        "How long is parental leave?",
        "New parents get 16 weeks of parental leave at full pay.",
        "The office gym opens at six in the morning.",
    ),
    (
        "Passwords must be at least 14 characters long and changed every 90 days.",
        "How long must a password be?",
        "A password must have at least 14 characters.",
        "Passwords may be shared with the help desk.",
    ),
    (
        "Remote work is allowed up to 2 days per week with a manager's agreement.",
        "How many days a week can I work remotely?",
        "You can work remotely up to 2 days a week if your manager agrees.",
        "The cafeteria serves breakfast on Sundays.",
    ),
    (
        "The company matches pension contributions up to 5 percent of salary.",
        "How much of my pension contribution does the company match?",
        "The company matches pension contributions up to 5 percent of salary.",
        "Bonuses are paid every month.",
    ),
    (
        "Hardware returns are accepted within 14 days of delivery for a full refund.",
        "What is the return window for hardware?",
        "Hardware can be returned within 14 days of delivery for a full refund.",
        "Gift cards never expire.",
    ),
    (
        "Invoices are paid by the finance team 45 days after they are received.",
        "When are supplier invoices paid?",
        "Finance pays invoices 45 days after receiving them.",
        "Suppliers must visit the office to be paid.",
    ),
    (
        "New hires complete security training within their first 10 working days.",
        "When must new hires finish security training?",
        "New hires must finish security training within 10 working days.",
        "Training certificates are printed on gold paper.",
    ),
    (
        "Sick leave requires a doctor's note after 3 consecutive days of absence.",
        "When do I need a doctor's note for sick leave?",
        "A doctor's note is needed after 3 consecutive days of sick leave.",
        "Sick days are deducted from paid time off.",
    ),
]
NOW = datetime(2026, 11, 29, tzinfo=UTC)
BASELINE_RELEVANT = 0.40  # the same cut as seamline's, on the best chunk's score alone


def _chunk(index: int, score: float = 0.0, stale: bool = False) -> RetrievedChunk:
    return RetrievedChunk(
        f"ch_{index}",
        PASSAGES[index][0],
        score,
        f"file:///kb/{index}.md",
        "2026-11-01T00:00:00.000000Z",
        source_stale=stale,
    )


def _changed_number(answer: str) -> str:
    return re.sub(r"\d+", lambda m: str(int(m.group()) * 2 + 1), answer, count=1)


def cases() -> list[tuple[str, RagSample]]:
    built = []
    for i, (_, question, answer, claim) in enumerate(PASSAGES):
        others = [(i + 3) % len(PASSAGES), (i + 7) % len(PASSAGES)]
        right = [_chunk(i), *(_chunk(o) for o in others)]
        wrong = [_chunk(o) for o in [*others, (i + 5) % len(PASSAGES)]]
        base = RagSample(
            f"case-{i}", 1, NOW, "/v1/chat/completions", None, "kb@1", question, answer, ()
        )
        stale = [_chunk(i, stale=True), *(_chunk(o) for o in others)]
        built += [
            (OK, replace(base, chunks=tuple(right))),
            (RETRIEVAL, replace(base, chunks=tuple(wrong), answer=PASSAGES[others[0]][2])),
            (INTEGRATION, replace(base, chunks=tuple(right), answer=_changed_number(answer))),
            (INTEGRATION, replace(base, chunks=tuple(right), answer=f"{answer} {claim}")),
            (FRESHNESS, replace(base, chunks=tuple(stale))),
        ]
    return built


def main() -> None:
    built = cases()
    # The retriever's score of each chunk: its cosine to the query (what a vector store gives).
    scored = []
    for truth, sample in built:
        vectors = embed([sample.query, *(c.text for c in sample.chunks)])
        chunks = tuple(
            replace(c, score=float(vectors[0] @ v))
            for c, v in zip(sample.chunks, vectors[1:], strict=True)
        )
        scored.append((truth, replace(sample, chunks=chunks)))
    confusion: Counter[tuple[str, str]] = Counter()
    ours = baseline = 0
    for truth, sample in scored:
        found = assess(sample, embed).attribution
        confusion[(truth, found)] += 1
        ours += found == truth
        best = max(c.score or 0.0 for c in sample.chunks)
        baseline += (RETRIEVAL if best < BASELINE_RELEVANT else OK) == truth
    kinds = [k for k in ATTRIBUTIONS if any(t == k for t, _ in scored)]
    print(f"{len(scored)} constructed calls; rows: the true stage, columns: seamline's")
    print(f"{'':>12} " + " ".join(f"{k:>11}" for k in ATTRIBUTIONS))
    for truth in kinds:
        print(f"{truth:>12} " + " ".join(f"{confusion[(truth, k)]:>11}" for k in ATTRIBUTIONS))
    n = len(scored)
    print(
        f"\naccuracy: seamline {ours / n:.3f} ({ours}/{n}); baseline (best retriever score "
        f"only) {baseline / n:.3f} ({baseline}/{n}); ratio {ours / max(baseline, 1):.2f}x"
    )


if __name__ == "__main__":
    main()
