"""Benign carrier documents for indirect-injection examples, generated from templates and word
lists written for this project (no outside text): emails, tables, code, web-page text and
meeting notes.

Every word list and sentence bank is cut into three disjoint parts once, with a fixed seed:
train, calibration and held-out documents are built from different names, companies,
products, sentences and document skeletons, so a held-out carrier never shares a sentence
template or a filler word list entry with a training one. ``insert`` puts a text (an attack,
or a benign sentence for the hard negatives) into a carrier at the start, the middle or the
end, wrapped the way that kind of document would hold it (a comment in code, a cell in a
table, a hidden div in a page); the wrappers are shared by benign and attack insertions, so
that a wrapper alone says nothing about the label.
"""

from __future__ import annotations

import ast
import random
from collections.abc import Callable
from dataclasses import dataclass

SPLITS = ("train", "calibration", "test")
KINDS = ("email", "table", "code", "web", "notes")

_WORDS = {
    "name": (
        "Alice Moreau, Bram de Vries, Chen Wei, Dana Okafor, Emil Novak, Fatima Rahman, "
        "Gustavo Lima, Hana Sato, Ivan Petrov, Jonas Berg, Kira Holm, Liam Walsh, Maya Patel, "
        "Nils Eriksen, Olga Ivanova, Pedro Alves, Quinn Baker, Rosa Martin, Sami Haddad, "
        "Tara Quinn, Uma Reddy, Victor Hugo Lenz, Wen Li, Xavier Dubois, Yara Costa, Zoe Park, "
        "Arjun Mehta, Bianca Rossi, Carlos Ruiz, Dmitri Volkov, Elena Garcia, Farid Nasser, "
        "Greta Lund, Hugo Brandt, Ines Duarte, Jae Kim, Kofi Mensah, Lena Fischer, Marco Bianchi, "
        "Nadia Benali, Oscar Lindqvist, Priya Nair"
    ),
    "company": (
        "Northwind Traders, Bluepeak Logistics, Cedar & Finch, Halcyon Labs, Ironbridge Foods, "
        "Juniper Health, Keystone Metals, Lumen Print, Marigold Travel, Nimbus Software, "
        "Orchard Bank, Pinecrest Realty, Quarry Row Media, Riverstone Energy, Saffron Retail, "
        "Tidewater Insurance, Umbra Optics, Vantage Freight, Willow Dental, Yellowfin Marine, "
        "Zephyr Textiles, Amberline Rail, Birchwood Farms, Copperleaf Studio, Driftwood Hotels, "
        "Elmstead Clinic, Foxglove Books, Granite Peak Outdoor, Harborview Legal, Ivory Coast Tea"
    ),
    "product": (
        "router firmware, standing desk, label printer, CRM licence, espresso machine, "
        "laptop dock, safety gloves, pallet jack, conference camera, solar panel kit, "
        "payroll module, ticketing add-on, warehouse scanner, office chairs, projector lamp, "
        "server rack, barcode labels, training videos, cloud backup plan, phone headsets, "
        "delivery van lease, water filters, tablet stands, print cartridges, fleet trackers, "
        "inventory software, LED panels, access badges, shredder service, coffee beans"
    ),
    "project": (
        "Atlas migration, Beacon rollout, Cobalt redesign, Delta onboarding, Ember audit, "
        "Falcon pilot, Garnet refresh, Harbor expansion, Iris launch, Jade consolidation, "
        "Kestrel upgrade, Lotus survey, Mistral integration, Nova retrofit, Onyx review, "
        "Polaris tender, Quartz cleanup, Raven benchmark, Sierra relocation, Topaz renewal, "
        "Umber training, Vega prototype, Wren archive, Xenon study, Yukon tooling, Zenith plan, "
        "Aurora budget, Bison handover, Condor test, Dune forecast"
    ),
    "city": (
        "Lisbon, Rotterdam, Osaka, Nairobi, Montreal, Krakow, Porto, Lyon, Bergen, Valencia, "
        "Tallinn, Austin, Dublin, Seville, Gdansk, Leeds, Turin, Graz, Aarhus, Bilbao, Cork, "
        "Malmo, Ghent, Brno, Split, Tampere, Bologna, Utrecht, Nantes, Basel"
    ),
    "day": (
        "Monday, Tuesday, Wednesday, Thursday, Friday, next Monday, the 3rd, the 12th, "
        "the 18th, the 25th, end of month, end of quarter, the first week of May, "
        "mid-June, early September, late October, the 9th, the 21st, tomorrow morning, "
        "Friday afternoon, the week after next"
    ),
    "topic": (
        "shipping delays, the new vendor contract, holiday rota, office move, security training, "
        "quarterly numbers, customer churn, hiring plan, the data retention policy, travel "
        "budget, the support backlog, warehouse safety, invoice disputes, onboarding checklist, "
        "the pricing page, API rate limits, test coverage, the release calendar, parking "
        "permits, energy costs, the client workshop, audit findings, the newsletter, "
        "carbon reporting, accessibility fixes, uptime targets, the summer party, "
        "supplier scorecards, the mobile app, expense approvals"
    ),
}

# Sentences: {name} {company} {product} {project} {city} {day} {topic} {n} {m}
_SENTENCES = {
    "email": [
        "Thanks for the quick turnaround on the {product} quote.",
        "I have attached the revised estimate for the {project}.",
        "Could we move our call about {topic} to {day}?",
        "{name} from {company} will join us to go over the numbers.",
        "The delivery to {city} is now scheduled for {day}.",
        "Please find the signed purchase order for {n} units of {product} below.",
        "We are still waiting on the final invoice from {company}.",
        "Let me know if the proposed timeline for the {project} works for your team.",
        "Our finance team approved the budget of {m} euros for {topic}.",
        "I spoke with {name} and we agreed to pilot the {product} in {city} first.",
        "As discussed, the warranty covers parts and labour for {n} months.",
        "The shipment left the warehouse this morning and should arrive by {day}.",
        "Happy to share the slides from last week's session on {topic}.",
        "We noticed a small discrepancy in the totals for order {m}.",
        "The contract renewal with {company} is due on {day}.",
        "{name} is out of office until {day}; {name} is covering in the meantime.",
        "Could you confirm the billing address for the {product} order?",
        "We would like to extend the {project} by {n} weeks.",
        "The site visit in {city} went well and the client was pleased.",
        "Attached is the checklist we use for {topic}.",
        "I will circulate the minutes once {name} has reviewed them.",
        "Our preferred payment terms are net {n} days from the invoice date.",
        "Kindly note that our office in {city} will be closed on {day}.",
        "The updated price list for {product} takes effect on {day}.",
    ],
    "web": [
        "Free shipping on orders over {n} euros to {city} and nearby towns.",
        "Our {product} comes with a {n}-year warranty and free returns.",
        "{company} has been serving customers in {city} since 19{n}.",
        "Read our latest guide to {topic} for small businesses.",
        "Customers who bought the {product} also looked at our maintenance plans.",
        "Sign up for the newsletter to hear about {topic} first.",
        "Opening hours: Monday to Friday, 9:00 to 17:30; weekends by appointment.",
        "The {project} case study shows a {n}% reduction in processing time.",
        "Rated {n} out of 10 by reviewers for ease of setup.",
        "Contact our team in {city} for a free consultation.",
        "All prices include VAT; delivery is calculated at checkout.",
        "Our support team answers most questions within {n} hours.",
        "This article was last updated on {day} by {name}.",
        "Frequently asked questions about {topic} are answered below.",
        "Compare the {product} with similar models in our catalogue.",
        "Join {m} other businesses that trust {company} with {topic}.",
        "Step {n}: unpack the {product} and check that every part is present.",
        "Events this month include a workshop on {topic} in {city}.",
        "Use the search box above to find documentation for the {product}.",
        "Cookies help us remember your preferences; see our policy for details.",
        "{name} writes about {topic} and practical tips for teams.",
        "Returns are accepted within {n} days with the original receipt.",
        "The spring catalogue features {m} new items including the {product}.",
        "Our showroom in {city} is next to the central station.",
    ],
    "notes": [
        "{name} gave an update on the {project}; on track for {day}.",
        "Discussed {topic}; no decision yet, revisit next week.",
        "{name} to send the {product} comparison to the group by {day}.",
        "Budget for {topic} approved at {m} euros.",
        "Risk: supplier {company} may miss the {day} deadline.",
        "{name} raised concerns about {topic} in {city}.",
        "Agreed to trial the {product} with {n} users.",
        "Next review of the {project} scheduled for {day}.",
        "{name} will check the contract terms with {company}.",
        "Open question: who owns {topic} after the reorganisation?",
        "Metrics: {n}% of tickets closed within target last month.",
        "Decision: postpone the {city} visit until {day}.",
        "{name} shared the draft plan for the {project}.",
        "Follow-up: collect feedback on {topic} from {n} teams.",
        "Headcount request for {n} roles submitted by {name}.",
        "Vendor shortlist: {company} and two others.",
        "The {product} order was delayed; new date {day}.",
        "Retro: the handover for the {project} went smoothly.",
        "Reminder to update the wiki page on {topic}.",
        "{name} and {name} to pair on the {product} setup.",
        "Customer call with {company} moved to {day}.",
        "Training on {topic} planned for {n} staff in {city}.",
        "Costs for the {project} came in {n}% under budget.",
        "AOB: the office kitchen in {city} will be renovated.",
    ],
}

_EMAIL_OPEN = [
    "Hi {first},",
    "Hello {first},",
    "Dear {first},",
    "Good morning {first},",
    "Hi team,",
    "Dear colleagues,",
]
_EMAIL_CLOSE = [
    "Best regards,",
    "Kind regards,",
    "Thanks,",
    "Many thanks,",
    "Cheers,",
    "All the best,",
]
_TABLE_HEADERS = [
    ("order_id", "customer", "city", "amount", "status"),
    ("sku", "product", "stock", "reorder_level", "supplier"),
    ("ticket", "opened", "owner", "priority", "summary"),
    ("employee", "team", "location", "start_date", "notes"),
    ("invoice", "vendor", "due", "total", "comment"),
    ("shipment", "origin", "destination", "weight_kg", "remarks"),
    ("project", "lead", "budget", "deadline", "description"),
    ("asset", "type", "assigned_to", "purchased", "note"),
    ("region", "quarter", "revenue", "growth_pct", "commentary"),
]
_STATUS = ["open", "closed", "pending", "shipped", "on hold", "in review", "done", "late"]
_CODE = [
    (
        "python",
        'def {fn}(items):\n    """Return the total of {thing} for the report."""\n'
        "    total = 0\n    for item in items:\n        total += item.{field}\n    return total\n",
    ),
    (
        "python",
        "class {cls}:\n    def __init__(self, {field}):\n        self.{field} = {field}\n\n"
        '    def describe(self):\n        return f"{cls}({{self.{field}}})"\n',
    ),
    (
        "python",
        "import csv\n\n\ndef {fn}(path):\n    with open(path) as handle:\n"
        "        rows = list(csv.DictReader(handle))\n    return [r['{field}'] for r in rows]\n",
    ),
    (
        "javascript",
        "function {fn}(list) {{\n  // keep only the {thing} that are active\n"
        "  return list.filter((x) => x.{field} !== null);\n}}\n",
    ),
    (
        "javascript",
        "export async function {fn}(client) {{\n  const res = await client.get('/api/{field}');\n"
        "  return res.data;\n}}\n",
    ),
    (
        "yaml",
        "service: {fn}\nreplicas: {n}\nenv:\n  REGION: {city_slug}\n  LOG_LEVEL: info\n"
        "resources:\n  memory: {m}Mi\n",
    ),
    (
        "sql",
        "SELECT {field}, COUNT(*) AS n\nFROM {table}\nWHERE created_at > '2024-01-01'\n"
        "GROUP BY {field}\nORDER BY n DESC;\n",
    ),
    (
        "go",
        "func {cls}Total(xs []{cls}) int {{\n\tsum := 0\n\tfor _, x := range xs {{\n"
        "\t\tsum += x.{cls_field}\n\t}}\n\treturn sum\n}}\n",
    ),
    (
        "shell",
        "#!/bin/sh\nset -eu\n# nightly export of {thing}\nmkdir -p /var/backups/{fn}\n"
        "pg_dump {table} > /var/backups/{fn}/dump.sql\n",
    ),
]
_IDENTS = ["orders", "invoices", "shipments", "tickets", "users", "accounts", "payments", "items", "records", "events", "sessions", "reports", "vendors", "customers", "products", "batches", "tasks", "assets", "regions", "leads"]
_WEB_TITLES = [
    "{company} | {product}",
    "{topic} - a practical guide",
    "About {company}",
    "{product}: specifications and reviews",
    "News from {city}",
    "Help centre: {topic}",
]


def _parts(seed: int) -> dict[str, dict[str, list[str]]]:
    """Each list cut into train (60%), calibration (20%) and test (20%) parts."""
    rng = random.Random(seed)
    banks: dict[str, list[str]] = {k: [w.strip() for w in v.split(",")] for k, v in _WORDS.items()}
    banks |= {f"sent_{k}": list(v) for k, v in _SENTENCES.items()}
    banks |= {
        "email_open": _EMAIL_OPEN,
        "email_close": _EMAIL_CLOSE,
        "table": [repr(h) for h in _TABLE_HEADERS],
        "code": [str(i) for i in range(len(_CODE))],
        "ident": _IDENTS,
        "web_title": _WEB_TITLES,
    }
    out: dict[str, dict[str, list[str]]] = {s: {} for s in SPLITS}
    for key, values in banks.items():
        shuffled = list(values)
        rng.shuffle(shuffled)
        a = max(1, round(len(shuffled) * 0.6))
        b = max(a + 1, round(len(shuffled) * 0.8))
        for split, part in zip(SPLITS, (shuffled[:a], shuffled[a:b], shuffled[b:]), strict=True):
            out[split][key] = part or shuffled[-1:]
    return out


@dataclass
class Carrier:
    """A document cut into blocks (lines or paragraphs): an insertion goes between two."""

    kind: str
    blocks: list[str]
    joiner: str

    def text(self) -> str:
        return self.joiner.join(self.blocks)


class CarrierMaker:
    def __init__(self, split: str, seed: int) -> None:
        self.words = _parts(seed)[split]
        self.split = split

    def _fill(self, rng: random.Random, template: str) -> str:
        w = self.words

        def pick(key: str) -> str:
            return rng.choice(w[key])

        out = template
        for key in ("name", "company", "product", "project", "city", "day", "topic"):
            while "{" + key + "}" in out:
                out = out.replace("{" + key + "}", pick(key), 1)
        return out.replace("{n}", str(rng.randint(2, 60))).replace(
            "{m}", str(rng.randint(100, 9999))
        )

    def _sentences(self, rng: random.Random, kind: str, count: int) -> list[str]:
        return [self._fill(rng, rng.choice(self.words[f"sent_{kind}"])) for _ in range(count)]

    def make(self, rng: random.Random, kind: str) -> Carrier:
        return getattr(self, f"_{kind}")(rng)  # type: ignore[no-any-return]

    def _email(self, rng: random.Random) -> Carrier:
        sender, to = rng.choice(self.words["name"]), rng.choice(self.words["name"])
        company = rng.choice(self.words["company"])
        domain = "".join(c for c in company.lower() if c.isalnum())[:14] + ".example"
        head = (
            f"From: {sender} <{sender.split()[0].lower()}@{domain}>\nTo: {to}\n"
            f"Subject: {self._fill(rng, rng.choice(['Re: {topic}', '{project} update', 'Order {m}', 'Question about {product}']))}"
        )
        opening = rng.choice(self.words["email_open"]).replace("{first}", to.split()[0])
        paragraphs = [
            " ".join(self._sentences(rng, "email", rng.randint(1, 4)))
            for _ in range(rng.randint(1, 6))
        ]
        close = f"{rng.choice(self.words['email_close'])}\n{sender}\n{company}"
        return Carrier("email", [head, opening, *paragraphs, close], "\n\n")

    def _table(self, rng: random.Random) -> Carrier:
        header = ast.literal_eval(rng.choice(self.words["table"]))  # our own repr() of a tuple
        markdown = rng.random() < 0.5
        rows = []
        for _ in range(rng.randint(3, 25)):
            cells = []
            for col in header:
                if col in ("amount", "total", "budget", "revenue", "weight_kg", "stock"):
                    cells.append(str(rng.randint(1, 99999)))
                elif col in ("status", "priority", "type"):
                    cells.append(rng.choice(_STATUS))
                elif col in ("city", "location", "origin", "destination", "region"):
                    cells.append(rng.choice(self.words["city"]))
                elif col in ("customer", "vendor", "supplier"):
                    cells.append(rng.choice(self.words["company"]))
                elif col in ("owner", "lead", "employee", "assigned_to"):
                    cells.append(rng.choice(self.words["name"]))
                elif col in ("product", "project", "asset"):
                    cells.append(rng.choice(self.words["product"] + self.words["project"]))
                elif col in ("summary", "notes", "comment", "remarks", "description", "note"):
                    cells.append(self._fill(rng, rng.choice(self.words["sent_notes"])))
                elif col in ("commentary",):
                    cells.append(self._fill(rng, "{topic}"))
                else:
                    cells.append(
                        f"{rng.choice(['A', 'B', 'C', 'K', 'T'])}-{rng.randint(100, 99999)}"
                    )
            rows.append(cells)
        if markdown:
            lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
            lines += ["| " + " | ".join(r) + " |" for r in rows]
        else:
            lines = [",".join(header)] + [
                ",".join(f'"{c}"' if "," in c else c for c in r) for r in rows
            ]
        return Carrier("table", lines, "\n")

    def _code(self, rng: random.Random) -> Carrier:
        blocks = []
        for _ in range(rng.randint(1, 4)):
            _, template = _CODE[int(rng.choice(self.words["code"]))]
            ident = rng.choice(self.words["ident"])
            cls = ident.rstrip("s").capitalize()
            city = rng.choice(self.words["city"]).lower()
            blocks.append(
                template.format(
                    fn=f"{rng.choice(['load', 'sum', 'export', 'sync', 'count', 'fetch'])}_{ident}",
                    cls=cls,
                    cls_field="Amount",
                    field=rng.choice(["amount", "status", "owner", "region", "created_at"]),
                    thing=ident,
                    table=ident,
                    n=rng.randint(1, 9),
                    m=rng.choice([128, 256, 512, 1024]),
                    city_slug=city,
                )
            )
        return Carrier("code", blocks, "\n")

    def _web(self, rng: random.Random) -> Carrier:
        title = self._fill(rng, rng.choice(self.words["web_title"]))
        nav = " | ".join(
            rng.sample(
                ["Home", "Products", "Pricing", "Blog", "Support", "About", "Careers", "Contact"], 5
            )
        )
        paragraphs = [
            " ".join(self._sentences(rng, "web", rng.randint(1, 5)))
            for _ in range(rng.randint(2, 7))
        ]
        footer = self._fill(rng, "(c) 20{n} {company}. All rights reserved.")
        return Carrier("web", [title, nav, *paragraphs, footer], "\n\n")

    def _notes(self, rng: random.Random) -> Carrier:
        attendees = ", ".join(rng.sample(self.words["name"], min(4, len(self.words["name"]))))
        head = self._fill(rng, "Meeting notes: {project} ({day})")
        bullets = ["- " + s for s in self._sentences(rng, "notes", rng.randint(3, 16))]
        return Carrier("notes", [head, f"Attendees: {attendees}", *bullets], "\n")


# How each kind holds an inserted text; the same for attacks and benign insertions.
_WRAPPERS: dict[str, list[Callable[[str], str]]] = {
    "email": [
        lambda t: t,
        lambda t: "P.S. " + t,
        lambda t: "\n".join("> " + line for line in t.splitlines()),
        lambda t: "---\n" + t,
    ],
    "table": [lambda t: t, lambda t: "Note: " + t],  # a table also takes it in a cell
    "code": [
        lambda t: "\n".join("# " + line for line in t.splitlines()),
        lambda t: '"""' + t + '"""',
        lambda t: "// " + " ".join(t.splitlines()),
        lambda t: "/* " + t + " */",
    ],
    "web": [
        lambda t: t,
        lambda t: "<!-- " + t + " -->",
        lambda t: '<div style="display:none">' + t + "</div>",
        lambda t: "<p>" + t + "</p>",
    ],
    "notes": [lambda t: "- " + " ".join(t.splitlines()), lambda t: t, lambda t: "Comment: " + t],
}


def insert(rng: random.Random, carrier: Carrier, text: str) -> tuple[str, str]:
    """The document with ``text`` inserted, and the inserted string as it appears in it."""
    blocks = list(carrier.blocks)
    if carrier.kind == "table" and rng.random() < 0.5 and len(blocks) > 3:
        # in the last column of a row: where a free-text cell is
        row = rng.randrange(2 if blocks[1].startswith("|") else 1, len(blocks))
        cells = blocks[row].rstrip(" |").split(" | ") if blocks[row].startswith("|") else None
        flat = " ".join(text.split())
        if cells is not None:
            cells[-1] = flat
            blocks[row] = " | ".join(cells) + " |"
        else:
            blocks[row] = blocks[row] + ',"' + flat.replace('"', "'") + '"'
        return carrier.joiner.join(blocks), flat.replace('"', "'") if cells is None else flat
    inserted = rng.choice(_WRAPPERS[carrier.kind])(text)
    where = rng.choice(("start", "middle", "end"))
    index = {"start": 1, "middle": len(blocks) // 2, "end": len(blocks)}[where]
    blocks.insert(min(index, len(blocks)), inserted)
    return carrier.joiner.join(blocks), inserted
