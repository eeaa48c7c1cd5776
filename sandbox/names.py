"""Word lists for the synthetic book: people, companies, titles, topics, and the mess real CRMs hold."""

from __future__ import annotations

import random
import unicodedata

FIRST_NAMES = (
    "James", "Mary", "Robert", "Patricia", "John", "Jennifer", "Michael", "Linda", "David", "Elizabeth",
    "William", "Barbara", "Richard", "Susan", "Joseph", "Jessica", "Thomas", "Sarah", "Charles", "Karen",
    "Daniel", "Nancy", "Matthew", "Lisa", "Anthony", "Betty", "Mark", "Sandra", "Steven", "Ashley",
    "Priya", "Arjun", "Wei", "Mei", "Hiroshi", "Yuki", "Lars", "Ingrid", "Sofia", "Mateo",
    "Fatima", "Omar", "Chloé", "François", "Zoë", "Renée", "Björn", "Søren", "Ana", "Luis",
)
LAST_NAMES = (
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez", "Martinez",
    "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Taylor", "Moore", "Jackson", "Martin", "Lee",
    "Thompson", "White", "Harris", "Clark", "Lewis", "Walker", "Hall", "Young", "King", "Wright",
    "Patel", "Chen", "Nakamura", "Larsen", "Rossi", "Novak", "Kowalski", "Dubois", "Schmidt", "Silva",
)
# Names that break naive quoting, escaping and ASCII assumptions; a small share of people get one.
MESSY_LAST_NAMES = (
    "O'Brien", "O'Brien\\", "D'Angelo", "Müller", "Øster-Hansen", "Nuñez", "山田", "Иванов", "Ó Súilleabháin",
)
MESSY_FIRST_NAMES = ("Zoë", "José", "Ævar", "太郎", "Дмитрий", "Mary-Kate", "Jean\\Luc")

COMPANY_STEMS = (
    "Acme", "Globex", "Initech", "Umbrella", "Stark", "Wayne", "Wonka", "Hooli", "Vandelay", "Soylent",
    "Cyberdyne", "Tyrell", "Aperture", "Gringotts", "Oscorp", "Monarch", "Nakatomi", "Pied Piper", "Dunder",
    "Bluth", "Sterling", "Prestige", "Massive", "Vortex", "Northwind", "Contoso", "Fabrikam", "Tailspin",
    "Litware", "Proseware", "Adatum", "Alpine", "Coho", "Fourth Coffee", "Lucerne", "Margie", "Relecloud",
    "Trey", "Wingtip", "Woodgrove", "Blue Yonder", "Humongous", "Consolidated", "Bright", "Summit", "Cascade",
    "Harbor", "Granite", "Redwood", "Silverline", "Evergreen", "Ironclad", "Keystone", "Lighthouse", "Meridian",
)
COMPANY_SUFFIXES = (
    "Logistics", "Analytics", "Systems", "Labs", "Health", "Foods", "Capital", "Robotics", "Energy", "Media",
    "Software", "Networks", "Retail", "Manufacturing", "Pharma", "Security", "Cloud", "Bio", "Motors", "Partners",
)
LEGAL_FORMS = ("Inc.", "LLC", "Ltd", "GmbH", "SA", "BV", "AB", "Corp.", "", "", "")
# Companies whose names break naive quoting, escaping and ASCII assumptions: (display name, ASCII slug).
MESSY_COMPANIES = (
    ("O'Brien\\ Holdings", "obrien-holdings"),
    ("Müller & Söhne GmbH", "mueller-soehne"),
    ("株式会社サクラ", "sakura-kk"),
    ("Björk Å Kompaniet AB", "bjork-kompaniet"),
    ("Société Générale d'Informatique", "sgi-informatique"),
    ("ООО Ромашка", "romashka"),
    ("D'Angelo \"Premium\" Foods", "dangelo-foods"),
    ("北京数据科技有限公司", "beijing-data-tech"),
)
TLDS = ("com", "com", "com", "io", "co", "net", "de", "co.uk", "fr", "jp")
INDUSTRIES = (
    "Software", "Financial Services", "Healthcare", "Manufacturing", "Retail", "Logistics", "Education",
    "Media", "Energy", "Telecommunications", "Professional Services", "Government",
)
PERSONAL_DOMAINS = ("gmail.com", "yahoo.com", "hotmail.com", "outlook.com", "icloud.com", "gmx.de", "proton.me")

# (title, department), grouped by seniority; the generator weights the groups.
TITLES_BY_LEVEL: dict[str, tuple[tuple[str, str], ...]] = {
    "c_level": (("CEO", "executive"), ("CFO", "finance"), ("CTO", "engineering"), ("COO", "operations"),
                ("Chief Revenue Officer", "sales"), ("Chief Customer Officer", "support")),
    "vp": (("VP Engineering", "engineering"), ("VP Sales", "sales"), ("VP Operations", "operations"),
           ("Head of Customer Success", "support"), ("VP Marketing", "marketing"), ("VP Finance", "finance")),
    "director": (("Director of IT", "engineering"), ("Director, Revenue Operations", "sales"),
                 ("Marketing Director", "marketing"), ("Director of Procurement", "finance"),
                 ("Director of Product", "product")),
    "manager": (("IT Manager", "engineering"), ("Sales Operations Manager", "sales"), ("Product Manager", "product"),
                ("Support Team Lead", "support"), ("Office Manager", "operations"), ("HR Manager", "hr")),
    "individual": (("Software Engineer", "engineering"), ("Data Analyst", "operations"),
                   ("Account Executive", "sales"), ("Marketing Specialist", "marketing"),
                   ("Accountant", "finance"), ("Support Specialist", "support"), ("Administrator", "operations")),
}
LEVEL_WEIGHTS = (("c_level", 0.08), ("vp", 0.12), ("director", 0.18), ("manager", 0.27), ("individual", 0.35))
EXECUTIVE_LEVELS = frozenset({"c_level", "vp"})
OWNER_TITLES = ("Account Executive", "Customer Success Manager", "Senior Account Manager", "Renewals Manager")

EXPANSION_TOPICS = ("Customer Success Platform", "Revenue Intelligence", "Data Integration", "Workflow Automation")
RISK_TOPICS = ("CRM Migration", "Competitor Alternatives")
OTHER_TOPICS = ("Cloud Security", "Remote Work", "Sales Enablement")

EMAIL_SUBJECTS = (
    "Quarterly business review", "Re: renewal timeline", "Onboarding follow-up", "Question about SSO setup",
    "Invoice query", "Feature request: bulk export", "Re: Re: integration issue", "Roadmap preview",
    "Training session next week", "Usage report for last month",
)
CALL_SUBJECTS = ("Check-in call", "Escalation call", "Renewal discussion", "Technical deep dive", "Intro call")
MEETING_SUBJECTS = ("QBR", "Executive sponsor meeting", "Onsite workshop", "Success plan review", "Kickoff")
NOTE_SUBJECTS = ("Account notes", "Risk notes", "Champion update", "Expansion idea", "Call summary")
TICKET_SUBJECTS = (
    "Cannot log in", "Sync job failing", "Report shows wrong totals", "API rate limit errors",
    "Export times out", "Permission error for new users", "Data missing after import", "Slow dashboard",
)
NPS_COMMENTS_LOW = ("Too many bugs lately.", "Support takes days to answer.", "We are evaluating alternatives.", "")
NPS_COMMENTS_MID = ("It does the job.", "OK but pricey.", "", "Would like better reporting.")
NPS_COMMENTS_HIGH = ("Love it, the team uses it daily!", "Great support.", "", "Indispensable for us.")

LOREM = (
    "the customer asked about the roadmap and the integration with their data warehouse; we agreed next steps "
    "with their operations lead and will follow up with usage numbers, a training plan and the renewal quote. "
)


def weighted_level(rng: random.Random) -> str:
    """A seniority level drawn with ``LEVEL_WEIGHTS``."""
    roll = rng.random()
    for level, weight in LEVEL_WEIGHTS:
        roll -= weight
        if roll < 0:
            return level
    return LEVEL_WEIGHTS[-1][0]


def ascii_slug(text: str) -> str:
    """Lower-case ASCII letters and digits of ``text`` (accents dropped); empty for non-Latin scripts."""
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return "".join(ch for ch in folded.lower() if ch.isalnum())


def long_text(rng: random.Random, min_chars: int = 10_000, max_chars: int = 40_000) -> str:
    """A very long free text (a pasted email thread or meeting transcript), ``min_chars``..``max_chars`` long."""
    length = rng.randint(min_chars, max_chars)
    return (LOREM * (length // len(LOREM) + 1))[:length]
