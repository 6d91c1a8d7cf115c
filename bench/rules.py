"""Rules engine throughput: the compiled engine against a naive loop of `re` searches.

    python bench/rules.py [--rules 1000] [--messages 10000] [--seed 1]
                          [--naive-messages N] [--scaling | --no-scaling] [--scaling-messages 2000]
                          [--scaling-sizes 10,100,1000,10000]

Generates, with a fixed seed, N rules as a rules file (about 60% keyword sets, 25% regexes, 15%
header, channel, language and sender-domain conditions; about 20% of them nested in
all/any/not with a second condition) over a synthetic multilingual vocabulary (Finnish,
Estonian, Swedish, German, Russian, Greek, English: real stems, inflection-like endings and
numbered variants, so that 10,000 rules can have distinct keywords), and 10,000 messages of 1-4
KB written from the same vocabulary plus filler words, so that a few rules match each message.
The file is loaded with `rules.loader.load_rules` and compiled with `rules.engine.CompiledRules`.

In one run it prints messages/s of:

- the compiled engine, `CompiledRules.evaluate` over every message: warm (best of two passes
  after a first one, which is printed too: RE2 builds its DFA states as new text needs them),
  with where the time goes (the index passes over the text, the native word scans among them,
  and the rule checks after them);
- a naive loop that tries every rule's conditions one by one with Python's `re` (a keyword set
  is one `\\b(?:kw1|kw2)\\b` search with re.IGNORECASE, a regex one `re` search, headers,
  channel, language and domain plain comparisons), on the first messages only when there are
  many rules (it says how many),

the speed-up, and whether both found the same rules for the messages the naive loop saw. A
disagreement is put down to accent and case folding (the engine's keywords ignore accents, `re`
does not) or to RE2's `\\b` (ASCII-only word boundary) when a naive loop that does the same
agrees with the engine; any other is printed in full. Then, unless --no-scaling (or only that,
with --scaling), a table of load and compile time and of messages/s and microseconds per
message for 10, 100, 1,000 and 10,000 rules (--scaling-sizes) over the same messages, each
size checked against a naive loop with the engine's semantics on its first messages.

If `CompiledRules` fails (RE2 refuses to compile a regex set larger than its memory budget),
the error is printed and the size is measured again with the budget of the engine's RE2 sets
raised in this process only, marked with `*`: the rules files are not changed.

It starts with the speed of a plain Python loop on this machine: the machines these figures
are taken on differ by a factor of three, and most of the engine's cost is Python's.

The aim (from the issue): at least 20,000 messages/s for 1,000 rules on one core, and at least
10 times the naive loop. A benchmark, not a test: it prints figures and asserts nothing.
"""

from __future__ import annotations

import argparse
import functools
import random
import re
import statistics
import tempfile
import time
import unicodedata
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import _checkout  # noqa: F401  (first: `rules` must be the package, not this file)
import yaml

import rules.engine
from rules.engine import CompiledRules
from rules.errors import RulesInvalid
from rules.facts import Facts
from rules.loader import load_rules
from rules.text import fold
from rules.wordscan import NATIVE

# -- the vocabulary ----------------------------------------------------------------------------


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


#: Message languages and how often they occur (rules' keyword sets follow the same mix).
LANGUAGES: dict[str, float] = {
    "en": 0.25,
    "fi": 0.18,
    "sv": 0.12,
    "de": 0.12,
    "et": 0.10,
    "ru": 0.13,
    "el": 0.10,
}

#: Support words of each language, and endings that make inflection-like forms of them.
STEMS: dict[str, tuple[str, ...]] = {
    "fi": _words(
        "lasku tilaus toimitus palautus hyvitys maksu salasana tili kirjautuminen virhe vika "
        "sopimus asiakas tuote paketti varaus peruutus takuu korjaus huolto vaihto alennus "
        "kuitti hinta osoite puhelin viesti ongelma kiire päivitys sovellus laite yhteys "
        "verkko kortti pankki tarjous lähetys kuljetus käyttäjä näyttö"
    ),
    "et": _words(
        "arve tellimus tarne tagastus makse parool konto viga leping klient toode pakk "
        "broneering tühistamine garantii remont hooldus vahetus allahindlus kviitung hind "
        "aadress telefon kiri probleem kiirus uuendus rakendus seade ühendus võrk kaart pank "
        "pakkumine saadetis kasutaja ekraan tõrge päring töö"
    ),
    "sv": _words(
        "faktura beställning leverans retur återbetalning betalning lösenord konto inloggning "
        "fel avtal kund produkt paket bokning avbokning garanti reparation service byte "
        "rabatt kvitto pris adress telefon meddelande problem brådska uppdatering app enhet "
        "anslutning nätverk kort bank erbjudande försändelse frakt användare skärm"
    ),
    "de": _words(
        "Rechnung Bestellung Lieferung Rücksendung Erstattung Zahlung Passwort Konto Anmeldung "
        "Fehler Vertrag Kunde Produkt Paket Buchung Stornierung Garantie Reparatur Wartung "
        "Umtausch Rabatt Quittung Preis Adresse Telefon Nachricht Störung Dringlichkeit "
        "Aktualisierung Gerät Verbindung Netzwerk Karte Angebot Sendung Versand Mahnung "
        "Kündigung Benutzer Bildschirm"
    ),
    "ru": _words(
        "счёт заказ доставка возврат оплата пароль аккаунт вход ошибка договор клиент товар "
        "посылка бронирование отмена гарантия ремонт обслуживание обмен скидка чек цена адрес "
        "телефон сообщение проблема срочность обновление приложение устройство подключение "
        "сеть карта банк предложение отправка перевод пользователь экран жалоба"
    ),
    "el": _words(
        "τιμολόγιο παραγγελία παράδοση επιστροφή πληρωμή κωδικός λογαριασμός σύνδεση σφάλμα "
        "συμβόλαιο πελάτης προϊόν δέμα κράτηση ακύρωση εγγύηση επισκευή συντήρηση ανταλλαγή "
        "έκπτωση απόδειξη τιμή διεύθυνση τηλέφωνο μήνυμα πρόβλημα επείγον ενημέρωση εφαρμογή "
        "συσκευή δίκτυο κάρτα τράπεζα προσφορά αποστολή χρήστης οθόνη καταγγελία βλάβη "
        "αίτημα"
    ),
    "en": _words(
        "invoice order delivery refund payment password account login error contract customer "
        "product parcel booking cancellation warranty repair service exchange discount receipt "
        "price address phone message problem urgent update app device connection network card "
        "bank offer shipment shipping subscription screen complaint"
    ),
}
ENDINGS: dict[str, tuple[str, ...]] = {
    "fi": ("", "n", "a", "ssa", "sta", "lle", "lla", "ni", "si", "mme", "t", "ja", "ksi", "kin"),
    "et": ("", "d", "s", "st", "le", "ga", "ks", "ni", "ta", "l", "lt", "sse", "te", "de"),
    "sv": ("", "en", "et", "er", "ar", "erna", "arna", "s", "ens", "ets", "na", "or", "ornas"),
    "de": ("", "en", "s", "nummer", "status", "datum", "adresse", "frage", "kosten", "daten"),
    "ru": ("", "а", "у", "ом", "е", "ы", "ов", "ами", "ах", "ой", "ам", "и"),
    "el": ("", "ου", "ων", "ες", "α", "η", "ους", "ας", "ής", "ού"),
    "en": ("", "s", "ed", "ing", "er", "ers", "less", "ful", "able", "ment", "ly", "ish"),
}
#: Two-word phrases (keywords too): the engine must find them across a line break.
PHRASES: dict[str, tuple[str, ...]] = {
    "fi": ("ei toimi", "ei tule", "ei onnistu"),
    "et": ("ei tööta", "ei saabunud"),
    "sv": ("fungerar inte", "kommer inte"),
    "de": ("funktioniert nicht", "geht nicht"),
    "ru": ("не работает", "не пришёл"),
    "el": ("δεν λειτουργεί", "δεν ήρθε"),
    "en": ("data breach", "not working", "does not work"),
}
#: Numbered variants per word (`lasku2` .. `lasku11`): product-code-like keywords.
NUMBERED = range(2, 12)

#: Everyday words the messages are mostly made of; no rule uses them.
FILLER: dict[str, tuple[str, ...]] = {
    "fi": _words(
        "ja on että ei se mutta kun niin olen olemme teidän meidän minun tämä siitä tänään "
        "eilen huomenna vielä jo nyt koska jos sitten myös aina joskus hyvin paljon vähän "
        "kaikki joku mitään pitäisi voisitteko kiitos asia aamulla illalla viikolla tarvitsen "
        "haluaisin kysyä tietää vastaus nopeasti ystävällisesti"
    ),
    "et": _words(
        "ja on et ei see aga kui nii olen oleme teie meie minu sellest täna eile homme veel "
        "juba nüüd sest siis ka alati mõnikord hästi palju vähe kõik keegi midagi peaks kas "
        "aitäh asi hommikul õhtul nädalal vajan sooviksin küsida teada vastus palun"
    ),
    "sv": _words(
        "och är att inte det men när så jag vi ni er vår min detta om idag igår imorgon "
        "fortfarande redan nu eftersom sedan också alltid ibland bra mycket lite alla någon "
        "något borde kunde tack ärende morse kväll veckan behöver skulle vilja fråga veta svar "
        "snabbt vänligen"
    ),
    "de": _words(
        "und ist dass nicht das aber wenn so ich wir Sie Ihr unser mein dieses über heute "
        "gestern morgen noch schon jetzt weil dann auch immer manchmal gut viel wenig alle "
        "jemand etwas sollte könnten danke Anliegen früh Abend Woche brauche möchte fragen "
        "wissen Antwort schnell bitte"
    ),
    "ru": _words(
        "и это что но когда так я мы вы ваш наш мой этот о сегодня вчера завтра ещё уже "
        "сейчас потому если потом также всегда иногда хорошо много мало все должен могли "
        "спасибо вопрос утром вечером неделе нужно хотел бы спросить знать ответ быстро "
        "пожалуйста"
    ),
    "el": _words(
        "και είναι ότι αυτό αλλά όταν έτσι εγώ εμείς εσείς σας μας μου αυτή για σήμερα χθες "
        "αύριο ακόμα ήδη τώρα επειδή αν μετά επίσης πάντα μερικές φορές καλά πολύ λίγο όλα "
        "κάποιος κάτι πρέπει μπορείτε ευχαριστώ θέμα πρωί βράδυ εβδομάδα χρειάζομαι θα ήθελα "
        "ρωτήσω ξέρω απάντηση γρήγορα παρακαλώ"
    ),
    "en": _words(
        "and is that the but when so I we you your our my this about today yesterday tomorrow "
        "still already now because if then also always sometimes well much little all someone "
        "something should could thanks matter morning evening week need would like ask know "
        "answer quickly please a to of in it with for on have was"
    ),
}
GREETINGS = {
    "fi": ("Hei,", "Terveisin"),
    "et": ("Tere,", "Lugupidamisega"),
    "sv": ("Hej,", "Med vänliga hälsningar"),
    "de": ("Hallo,", "Mit freundlichen Grüßen"),
    "ru": ("Здравствуйте,", "С уважением"),
    "el": ("Γεια σας,", "Με εκτίμηση"),
    "en": ("Hello,", "Best regards"),
}
NAMES = (
    "Aino Virtanen",
    "Mart Tamm",
    "Karin Lindqvist",
    "Jonas Becker",
    "Ольга Смирнова",
    "Νίκος Παπαδόπουλος",
    "Sarah Miller",
)
DOMAIN_STEMS = ("pohjola", "baltic", "nordic", "alpen", "volga", "aegean", "harbor", "saimaa")
WEBMAIL = ("gmail.example", "outlook.example", "mail.example", "yandex.example")
TAGS = tuple(f"t{number}" for number in range(20))


def inflect(language: str, stem: str, ending: str) -> str:
    if language == "el" and ending and stem.endswith("ς"):
        stem = stem[:-1]
    return stem + ending


@dataclass
class Vocabulary:
    """Per language: the base words (inflected stems and phrases) and the numbered variants."""

    base: dict[str, list[str]] = field(default_factory=dict)
    numbered: dict[str, list[str]] = field(default_factory=dict)
    filler: dict[str, list[str]] = field(default_factory=dict)

    def size(self) -> tuple[int, int]:
        return sum(map(len, self.base.values())), sum(map(len, self.numbered.values()))


def build_vocabulary() -> Vocabulary:
    vocabulary = Vocabulary()
    everything: set[str] = set()
    for language in LANGUAGES:
        words = {
            inflect(language, stem, ending)
            for stem in STEMS[language]
            for ending in ENDINGS[language]
        }
        base = sorted(words) + list(PHRASES[language])
        vocabulary.base[language] = base
        vocabulary.numbered[language] = [f"{word}{n}" for word in sorted(words) for n in NUMBERED]
        everything.update(fold(word) for word in base)
    for language in LANGUAGES:
        vocabulary.filler[language] = [
            word for word in FILLER[language] if fold(word) not in everything
        ]
    return vocabulary


def strip_accents(word: str) -> str:
    """How customers type without accents: ä -> a, ό -> ο, ё -> е (Cyrillic й stays)."""
    out = []
    for char in word:
        if char in "ёЁ":
            out.append("е" if char == "ё" else "Е")
        elif "CYRILLIC" in unicodedata.name(char, ""):
            out.append(char)
        else:
            decomposed = unicodedata.normalize("NFD", char)
            out.append("".join(c for c in decomposed if not unicodedata.combining(c)))
    return "".join(out)


T = TypeVar("T")


# -- the regexes -------------------------------------------------------------------------------


@dataclass(frozen=True)
class RegexTemplate:
    #: `{p}`: the number the matched reference starts with; `{k}`: the digits after it.
    pattern: str
    #: A reference in a message, from its prefix and the digits after it.
    token: Callable[[random.Random, str, str], str]
    in_subject: bool = False


def _pick(rng: random.Random, options: Sequence[T]) -> T:
    return options[rng.randrange(len(options))]


def domain_name(rng: random.Random) -> str:
    """A customer's domain: 1,000 of them, a rule names one to three."""
    return f"{_pick(rng, DOMAIN_STEMS)}{rng.randrange(125)}.example"


REGEXES: tuple[RegexTemplate, ...] = (
    RegexTemplate(
        r"(?i)order\s*#?\s*{p}\d{{{k},}}",
        lambda rng, p, d: f"{_pick(rng, ('order #', 'Order #', 'ORDER ', 'order#'))}{p}{d}",
        in_subject=True,
    ),
    RegexTemplate(
        r"(?i)\btilaus(?:numero)?\s*:?\s*{p}\d{{{k},}}",
        lambda rng, p, d: f"{_pick(rng, ('tilausnumero: ', 'Tilaus ', 'TILAUS '))}{p}{d}",
    ),
    RegexTemplate(
        r"(?i)ticket[-\s]?{p}\d{{{k},}}\b",
        lambda rng, p, d: f"{_pick(rng, ('ticket-', 'Ticket ', 'TICKET'))}{p}{d}",
        in_subject=True,
    ),
    RegexTemplate(
        r"INV-20[0-9]{{2}}-{p}\d{{{k},}}",
        lambda rng, p, d: f"INV-20{rng.randint(20, 29)}-{p}{d}",
        in_subject=True,
    ),
    # A word's edge before a Cyrillic word: RE2's \b is ASCII-only (the loader refuses it
    # there), so the start of the text or a non-word character, as `rules check` suggests.
    RegexTemplate(
        r"(?i)(?:^|\W)(?:счёт|счет)\s*№?\s*{p}\d{{{k},}}",
        lambda rng, p, d: f"{_pick(rng, ('счёт № ', 'Счет ', 'СЧЁТ №'))}{p}{d}",
    ),
    RegexTemplate(
        r"(?i)заказ\s*№\s*{p}\d{{{k},}}",
        lambda rng, p, d: f"{_pick(rng, ('заказ № ', 'Заказ №'))}{p}{d}",
    ),
    RegexTemplate(
        r"(?i)(?:tracking|seuranta|sendungsnummer)\s*(?:no|nr|number|numero)?\.?\s*:?\s*"
        r"JJ{p}\d{{{k},}}",
        lambda rng, p, d: (
            f"{_pick(rng, ('tracking number: ', 'Seuranta nro: ', 'Sendungsnummer '))}JJ{p}{d}"
        ),
    ),
    RegexTemplate(
        r"\+358\s?{p}\s?\d{{{k},}}",
        lambda rng, p, d: f"+358 {p} {d}",
    ),
    RegexTemplate(
        r"(?i)\bcase\s*id\s*:?\s*{p}[0-9a-f]{{{k},}}\b",
        lambda rng, p, d: f"{_pick(rng, ('Case ID: ', 'case id ', 'CASE ID:'))}{p}{d}",
        in_subject=True,
    ),
    RegexTemplate(
        r"(?i)(?:arve|faktura|rechnung)(?:nr|nummer|number)?\.?\s*:?\s*{p}\d{{{k},}}",
        lambda rng, p, d: f"{_pick(rng, ('Arve nr. ', 'Faktura ', 'Rechnungnummer: '))}{p}{d}",
    ),
    RegexTemplate(
        r"(?i)παραγγελία\s*(?:αρ\.?)?\s*:?\s*{p}\d{{{k},}}",
        lambda rng, p, d: f"{_pick(rng, ('Παραγγελία αρ. ', 'ΠΑΡΑΓΓΕΛΊΑ '))}{p}{d}",
    ),
)


# -- the rules ---------------------------------------------------------------------------------

Spec = dict[str, Any]


@dataclass
class GeneratedRules:
    specs: list[tuple[str, Spec]]
    text: str
    kinds: Counter[str]
    nested: int
    keywords: int
    distinct_keywords: int


class RuleMaker:
    """Rules one after another from one seed: the first 100 of 1,000 rules are the 100 rules."""

    def __init__(self, vocabulary: Vocabulary, seed: int) -> None:
        self.vocabulary = vocabulary
        self.rng = random.Random(seed)
        order = random.Random(seed + 1)
        self.keyword_queue: dict[str, list[str]] = {}
        for language in LANGUAGES:
            base = list(vocabulary.base[language])
            numbered = list(vocabulary.numbered[language])
            order.shuffle(base)
            order.shuffle(numbered)
            self.keyword_queue[language] = base + numbered
        self.keyword_next = Counter[str]()
        self.regex_count = Counter[int]()
        self.languages = list(LANGUAGES)
        self.weights = list(LANGUAGES.values())

    def keywords(self) -> list[str]:
        language = self.rng.choices(self.languages, self.weights)[0]
        queue = self.keyword_queue[language]
        count = self.rng.randint(3, 8)
        start = self.keyword_next[language]
        self.keyword_next[language] += count
        words = [queue[(start + i) % len(queue)] for i in range(count)]
        return [word.lower() if self.rng.random() < 0.5 else word for word in words]

    def keyword_condition(self) -> Spec:
        where = "subject" if self.rng.random() < 0.3 else "body"
        return {where: {"any_keyword": self.keywords()}}

    def regex_condition(self) -> Spec:
        number = self.rng.randrange(len(REGEXES))
        template = REGEXES[number]
        nth = self.regex_count[number]
        self.regex_count[number] += 1
        prefix = str(10 + (nth * 37) % 90)
        digits = 2 + (nth // 90) % 3
        pattern = template.pattern.format(p=prefix, k=digits)
        where = "subject" if template.in_subject and self.rng.random() < 0.4 else "body"
        return {where: {"regex": pattern}}

    def other_condition(self) -> Spec:
        rng = self.rng
        roll = rng.random()
        if roll < 0.30:
            domains = [domain_name(rng) for _ in range(3)]
            return {"from_domain": domains[: rng.randint(1, 3)]}
        if roll < 0.50:
            ids = [f"C{rng.randrange(2000):05d}" for _ in range(rng.randint(1, 3))]
            return {"headers": {"x-customer-id": ids if len(ids) > 1 else ids[0]}}
        if roll < 0.65:
            return {
                "headers": {"x-priority": "1"},
                "language": rng.sample(self.languages, rng.randint(1, 2)),
            }
        if roll < 0.80:
            return {
                "channel": _pick(rng, ("sms", "chat")),
                "language": rng.sample(self.languages, rng.randint(1, 3)),
            }
        if roll < 0.90:
            return {"headers": {"x-mailer": {"contains": f"outlook 16.0.{rng.randint(100, 999)}"}}}
        minor = rng.randint(10, 99)
        return {"headers": {"x-mailer": {"regex": rf"^Mozilla Thunderbird 1[0-9]{{2}}\.{minor}\b"}}}

    def broad_condition(self) -> Spec:
        rng = self.rng
        roll = rng.random()
        if roll < 0.5:
            return {"language": rng.sample(self.languages, rng.randint(2, 4))}
        if roll < 0.8:
            return {"channel": "email"}
        return {"headers": {"x-priority": "3"}}

    def specific_condition(self) -> Spec:
        roll = self.rng.random()
        if roll < 0.6:
            return self.keyword_condition()
        if roll < 0.85:
            return self.regex_condition()
        return {"from_domain": [domain_name(self.rng)]}

    def rule(self, index: int) -> tuple[str, Spec, str, bool]:
        rng = self.rng
        roll = rng.random()
        if roll < 0.60:
            kind, when = "keywords", self.keyword_condition()
        elif roll < 0.85:
            kind, when = "regex", self.regex_condition()
        else:
            kind, when = "other", self.other_condition()
        nested = rng.random() < 0.20
        if nested:
            shape = rng.random()
            if shape < 0.4:
                when = {"all": [when, self.broad_condition()]}
            elif shape < 0.7:
                when = {"all": [when, {"not": self.broad_condition()}]}
            elif shape < 0.9:
                when = {"any": [when, self.specific_condition()]}
            else:
                inner = {"all": [self.specific_condition(), {"not": self.broad_condition()}]}
                when = {"any": [when, inner]}
        return f"r{index:05d}", when, kind, nested


def generate_rules(vocabulary: Vocabulary, count: int, seed: int) -> GeneratedRules:
    maker = RuleMaker(vocabulary, seed)
    specs: list[tuple[str, Spec]] = []
    entries: list[Spec] = []
    kinds: Counter[str] = Counter()
    nested = 0
    for index in range(count):
        name, when, kind, is_nested = maker.rule(index)
        kinds[kind] += 1
        nested += is_nested
        specs.append((name, when))
        entries.append({"name": name, "when": when, "then": {"tag": _pick(maker.rng, TAGS)}})
    keywords = [fold(word) for _, when in specs for word in _keywords_of(when)]
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    text = yaml.dump(
        {"tags": list(TAGS), "rules": entries},
        Dumper=dumper,
        allow_unicode=True,
        sort_keys=False,
        width=1_000_000,
        default_flow_style=None,
    )
    return GeneratedRules(specs, text, kinds, nested, len(keywords), len(set(keywords)))


def _keywords_of(spec: Any) -> list[str]:
    if isinstance(spec, dict):
        found = list(spec.get("any_keyword", ())) if "any_keyword" in spec else []
        for key, value in spec.items():
            if key != "any_keyword":
                found.extend(_keywords_of(value))
        return found
    if isinstance(spec, list):
        return [word for item in spec for word in _keywords_of(item)]
    return []


#: RE2's memory budget for the engine's regex sets when its default is not enough (see below).
RAISED_MAX_MEM = 256 << 20


@dataclass
class Loaded:
    compiled: CompiledRules | None
    load_s: float
    compile_s: float
    #: Why CompiledRules failed, and whether it was built with RE2's max_mem raised.
    error: str = ""
    raised: bool = False


def load_and_compile(text: str, scratch: Path, label: str) -> Loaded:
    """Load and compile a rules file. If compiling fails (RE2 runs out of its memory budget
    for a large regex set), say why and try once more with the budget of the engine's RE2
    sets raised in this process only: the cost of many rules can still be measured."""
    path = scratch / f"rules-{label}.yaml"
    path.write_text(text, encoding="utf-8")
    started = time.perf_counter()
    try:
        ruleset = load_rules(path)
    except RulesInvalid as invalid:
        print(f"the generated rules file {path} does not load: {invalid}")
        print(invalid.report())
        raise SystemExit(1) from None
    loaded = time.perf_counter()
    try:
        compiled = CompiledRules(ruleset)
    except Exception as error:  # the engine's failure is what we report
        failure = f"CompiledRules failed: {type(error).__module__}.{type(error).__name__}: {error}"
    else:
        return Loaded(compiled, loaded - started, time.perf_counter() - loaded)
    options = getattr(rules.engine, "_SET_OPTIONS", None)
    if options is None or not hasattr(options, "max_mem"):
        return Loaded(None, loaded - started, time.perf_counter() - loaded, failure)
    default = options.max_mem
    options.max_mem = RAISED_MAX_MEM
    try:
        again = time.perf_counter()
        compiled = CompiledRules(ruleset)
        return Loaded(compiled, loaded - started, time.perf_counter() - again, failure, True)
    except Exception as error:
        failure += f"; with max_mem {RAISED_MAX_MEM >> 20} MB too: {error}"
        return Loaded(None, loaded - started, time.perf_counter() - loaded, failure)
    finally:
        options.max_mem = default


# -- the messages ------------------------------------------------------------------------------


def sentence(rng: random.Random, words: Sequence[str]) -> list[str]:
    chosen = rng.choices(words, k=rng.randint(6, 14))
    chosen[0] = chosen[0][:1].upper() + chosen[0][1:]
    chosen[-1] += _pick(rng, (".", ".", ".", "?", "!"))
    return chosen


def planted_word(rng: random.Random, vocabulary: Vocabulary, language: str) -> str:
    if rng.random() < 0.2:
        language = "en"
    pool = vocabulary.base if rng.random() < 0.85 else vocabulary.numbered
    word = _pick(rng, pool[language])
    roll = rng.random()
    if roll < 0.10:
        return word[:1].upper() + word[1:]
    if roll < 0.17:
        return word.upper()
    if roll < 0.20:
        return strip_accents(word)
    return word


def regex_token(rng: random.Random) -> str:
    template = _pick(rng, REGEXES)
    prefix = str(rng.randint(10, 99))
    digits = "".join(rng.choices("0123456789", k=rng.randint(3, 6)))
    return template.token(rng, prefix, digits)


def make_message(rng: random.Random, vocabulary: Vocabulary, now: datetime) -> Facts:
    language = rng.choices(list(LANGUAGES), list(LANGUAGES.values()))[0]
    filler = vocabulary.filler[language]
    hello, bye = GREETINGS[language]
    target = rng.randint(1000, 3900)
    sentences: list[list[str]] = []
    size = len(hello) + len(bye) + 40
    while True:
        words = sentence(rng, filler)
        length = len(" ".join(words).encode()) + 1
        if size + length > target and sentences:
            break
        sentences.append(words)
        size += length
    plants = [planted_word(rng, vocabulary, language) for _ in range(int(_pick(rng, "011223345")))]
    if rng.random() < 0.06:
        phrase = _pick(rng, PHRASES[language])
        plants.append(phrase.replace(" ", "\n", 1) if rng.random() < 0.3 else phrase)
    plants += [regex_token(rng) for _ in range(int(_pick(rng, "00112")))]
    for plant in plants:
        words = sentences[rng.randrange(len(sentences))]
        words.insert(rng.randint(1, len(words) - 1), plant)
    paragraphs = []
    for start in range(0, len(sentences), 4):
        paragraphs.append(" ".join(" ".join(words) for words in sentences[start : start + 4]))
    name = _pick(rng, NAMES)
    body = f"{hello}\n\n" + "\n\n".join(paragraphs) + f"\n\n{bye}\n{name}"
    subject_words = sentence(rng, filler)[: rng.randint(3, 7)]
    if rng.random() < 0.5:
        where = rng.randrange(len(subject_words) + 1)
        subject_words.insert(where, planted_word(rng, vocabulary, language))
    if rng.random() < 0.15:
        subject_words.append(regex_token(rng))
    subject = ("Re: " if rng.random() < 0.3 else "") + " ".join(subject_words)
    channel = rng.choices(("email", "sms", "chat"), (0.85, 0.08, 0.07))[0]
    domain = domain_name(rng) if rng.random() < 0.7 else _pick(rng, WEBMAIL)
    headers: dict[str, str] = {}
    if channel == "email":
        mailer = rng.random()
        if mailer < 0.4:
            headers["x-mailer"] = f"Microsoft Outlook 16.0.{rng.randint(10000, 99999)}"
        elif mailer < 0.6:
            version = f"1{rng.randint(10, 28)}.{rng.randint(10, 99)}.1"
            headers["x-mailer"] = f"Mozilla Thunderbird {version}"
        elif mailer < 0.7:
            headers["x-mailer"] = f"Apple Mail (2.{rng.randint(3000, 3800)})"
        headers["x-priority"] = "1" if rng.random() < 0.05 else "3"
        headers["message-id"] = f"<{rng.getrandbits(64):016x}@{domain}>"
    if rng.random() < 0.5:
        headers["x-customer-id"] = f"C{rng.randrange(2000):05d}"
    return Facts(
        now=now - timedelta(minutes=rng.randrange(60 * 24 * 30)),
        channel=channel,
        connector="bench",
        from_address=f"{name.split()[0].lower()}@{domain}",
        from_name=name,
        to=("support@desk.example",),
        subject=subject,
        body=body,
        headers=headers,
        language=language,
    )


def generate_messages(vocabulary: Vocabulary, count: int, seed: int) -> list[Facts]:
    rng = random.Random(seed + 2)
    now = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
    return [make_message(rng, vocabulary, now) for _ in range(count)]


# -- the naive loop ----------------------------------------------------------------------------

Test = Callable[[Facts], bool]

#: RE2's `\b`: a boundary between an ASCII word character and anything else.
_ASCII_BOUNDARY = r"(?:(?<![0-9A-Za-z_])(?=[0-9A-Za-z_])|(?<=[0-9A-Za-z_])(?![0-9A-Za-z_]))"


#: The folded variant folds each message's subject and body once, not once per rule.
_fold_cached = functools.lru_cache(maxsize=64)(fold)


def _reader(name: str) -> Callable[[Facts], str | None]:
    if name == "from_domain":
        return lambda facts: facts.from_domain
    return lambda facts: getattr(facts, name)


def naive_test(spec: Spec, *, folded: bool = False, ascii_b: bool = False) -> Test:
    """A rule's `when` as plain Python and `re`: every condition tried on its own.

    `folded`: fold text, keywords and values as the engine does (casefold, accents off);
    `ascii_b`: `\\b` in regexes as RE2 has it (ASCII only). Both off: the naive loop timed."""
    parts: list[Test] = []
    for key, value in spec.items():
        if key in ("all", "any"):
            children = [naive_test(item, folded=folded, ascii_b=ascii_b) for item in value]
            if key == "all":
                parts.append(lambda facts, c=children: all(test(facts) for test in c))
            else:
                parts.append(lambda facts, c=children: any(test(facts) for test in c))
        elif key == "not":
            child = naive_test(value, folded=folded, ascii_b=ascii_b)
            parts.append(lambda facts, c=child: not c(facts))
        elif key == "headers":
            for header, matcher in value.items():
                read = (lambda h: lambda facts: facts.headers.get(h))(header)
                parts.append(_naive_leaf(read, matcher, folded, ascii_b))
        else:
            parts.append(_naive_leaf(_reader(key), value, folded, ascii_b))
    if len(parts) == 1:
        return parts[0]
    return lambda facts: all(test(facts) for test in parts)


def _naive_leaf(
    read: Callable[[Facts], str | None], matcher: Any, folded: bool, ascii_b: bool
) -> Test:
    norm: Callable[[str], str] = _fold_cached if folded else str.lower
    if not isinstance(matcher, dict):
        wanted = {norm(str(v)) for v in (matcher if isinstance(matcher, list) else [matcher])}

        def equals(facts: Facts) -> bool:
            value = read(facts)
            return value is not None and norm(value) in wanted

        return equals
    ((op, argument),) = matcher.items()
    if op == "contains":
        part = norm(str(argument))

        def contains(facts: Facts) -> bool:
            value = read(facts)
            return value is not None and part in norm(value)

        return contains
    if op == "any_keyword":
        words = [fold(word) if folded else word for word in argument]
        alternatives = "|".join(re.escape(word).replace(r"\ ", r"\s+") for word in words)
        keywords = re.compile(rf"\b(?:{alternatives})\b", re.IGNORECASE)

        def any_keyword(facts: Facts) -> bool:
            value = read(facts)
            if value is None:
                return False
            return keywords.search(_fold_cached(value) if folded else value) is not None

        return any_keyword
    if op == "regex":
        pattern = argument.replace(r"\b", _ASCII_BOUNDARY) if ascii_b else argument
        compiled = re.compile(pattern)

        def regex(facts: Facts) -> bool:
            value = read(facts)
            return value is not None and compiled.search(value) is not None

        return regex
    raise ValueError(f"the naive loop has no matcher '{op}'")


def naive_matches(tests: list[tuple[str, Test]], facts: Facts) -> set[str]:
    return {name for name, test in tests if test(facts)}


# -- measuring ---------------------------------------------------------------------------------


def timed(work: Callable[[], Any]) -> tuple[Any, float]:
    started = time.perf_counter()
    result = work()
    return result, time.perf_counter() - started


def describe_messages(messages: Sequence[Facts]) -> str:
    sizes = [len(f.subject.encode()) + len(f.body.encode()) for f in messages]
    languages = Counter(f.language for f in messages)
    mix = " ".join(f"{lang} {count / len(messages):.0%}" for lang, count in languages.most_common())
    return (
        f"{len(messages):,} messages, {sum(sizes) / 1e6:.1f} MB of subject and body, "
        f"{min(sizes) / 1024:.1f}-{max(sizes) / 1024:.1f} KB (mean "
        f"{statistics.fmean(sizes) / 1024:.1f} KB); {mix}"
    )


def describe_rules(generated: GeneratedRules, count: int) -> str:
    kinds = generated.kinds
    size = len(generated.text.encode())
    return (
        f"{count:,} rules: {kinds['keywords']:,} on keyword sets, {kinds['regex']:,} on regexes, "
        f"{kinds['other']:,} on headers/channel/language/domain ({generated.keywords:,} "
        f"keywords in all, {generated.distinct_keywords:,} distinct); {generated.nested:,} "
        f"nested in all/any/not with a second condition; file {size / 1024:,.0f} KB"
    )


def matched_names(compiled: CompiledRules, facts: Facts) -> tuple[str, ...]:
    """The rules one evaluation matched. Only their names are kept, as the daemon keeps
    nothing of an evaluation once its decisions are written: holding 10,000 evaluations (their
    verdicts, decisions, results) alive made Python's garbage collector walk them again and
    again, and that, not the engine, cost up to a third of the time measured."""
    return tuple(result.rule.name for result in compiled.evaluate(facts).matched)


def measure_engine(compiled: CompiledRules, messages: Sequence[Facts], rules: int) -> float:
    """Messages/s of the engine once warm: the best of two passes over the messages after a
    first one. The first pass is printed too: RE2 builds its DFA states lazily, as new text
    needs them, so a fresh engine is slower until it has seen some mail (a daemon runs for
    weeks). Best of two, because this machine's speed varies by a third from run to run."""
    n = len(messages)
    found, first_s = timed(lambda: [matched_names(compiled, facts) for facts in messages])
    seconds = min(
        timed(lambda: [matched_names(compiled, facts) for facts in messages])[1] for _ in range(2)
    )
    matched = [len(names) for names in found]
    print(
        f"{'compiled engine':<26} {n / seconds:>9,.0f} msg/s   ({seconds:6.2f} s, "
        f"{seconds / n * 1e6:,.1f} µs/message, {n * rules / seconds / 1e6:,.1f} M "
        f"rule-message pairs/s; best of 2 passes after a first)"
    )
    print(
        f"{'':<26} first pass {n / first_s:,.0f} msg/s ({first_s / n * 1e6:,.1f} µs/message), "
        "while RE2 builds its DFA states"
    )
    print(
        f"{'':<26} rules matched per message: mean {statistics.fmean(matched):.2f}, "
        f"median {statistics.median(matched):.0f}, max {max(matched)}; "
        f"{sum(1 for count in matched if count == 0) / n:.0%} of messages match none"
    )
    hits_s = min(timed(lambda: [compiled.hits(facts) for facts in messages])[1] for _ in range(2))
    indexes = getattr(compiled, "_indexes", {})
    scanners = [
        (index.scanner, key)
        for key in ("subject", "body")
        if (index := indexes.get(key)) is not None and index.scanner is not None
    ]
    _, scan_s = timed(
        lambda: [
            scanner.scan(getattr(facts, key)) for facts in messages for scanner, key in scanners
        ]
    )
    print(
        f"{'':<26} where the time goes: index passes (hits) {hits_s / n * 1e6:,.1f} µs/message, "
        f"of which word scans of subject and body {scan_s / n * 1e6:,.1f} "
        f"({'native' if NATIVE else 'Python'}); rule checks and decisions "
        f"{(seconds - hits_s) / n * 1e6:,.1f}"
    )
    return n / seconds


def compare(
    compiled: CompiledRules,
    specs: dict[str, Spec],
    sample: Sequence[Facts],
    naive_found: list[set[str]],
) -> None:
    """Which rules each found; every disagreement put down to a cause when one explains it."""
    causes: Counter[str] = Counter()
    examples: dict[str, str] = {}
    unexplained: list[str] = []
    either = 0
    for number, (facts, naive_set) in enumerate(zip(sample, naive_found, strict=True)):
        engine_set = {result.rule.name for result in compiled.evaluate(facts).matched}
        either += len(engine_set | naive_set)
        for name in sorted(engine_set ^ naive_set):
            by_engine = name in engine_set
            if naive_test(specs[name], folded=True)(facts) == by_engine:
                cause = "accent/case folding"
            elif naive_test(specs[name], folded=True, ascii_b=True)(facts) == by_engine:
                cause = "RE2's ASCII \\b"
            else:
                cause = "unexplained"
            causes[cause] += 1
            shown = yaml.safe_dump(
                specs[name], allow_unicode=True, width=1_000_000, default_flow_style=True
            ).strip()
            who = "the engine only" if by_engine else "re only"
            example = f"message {number}, rule {name} matched by {who}: {shown}"
            examples.setdefault(cause, example)
            if cause == "unexplained":
                unexplained.append(example)
    found = ", ".join(f"{count:,} {cause}" for cause, count in causes.most_common())
    print(
        f"{'agreement':<26} {len(sample):,} messages: {either:,} rule matches found by either, "
        f"{sum(causes.values()):,} disagreements" + (f" ({found})" if found else "")
    )
    for cause, example in examples.items():
        print(f"{'':<26} e.g. {cause}: {example}")
    for example in unexplained[1:10]:
        print(f"{'':<26}      {example}")


def main_run(
    args: argparse.Namespace, vocabulary: Vocabulary, messages: list[Facts], scratch: Path
) -> None:
    generated = generate_rules(vocabulary, args.rules, args.seed)
    print(describe_rules(generated, args.rules))
    loaded = load_and_compile(generated.text, scratch, "main")
    if loaded.error:
        print(loaded.error)
    compiled = loaded.compiled
    if compiled is None:
        return
    if loaded.raised:
        print(
            f"measured below with RE2's max_mem raised to {RAISED_MAX_MEM >> 20} MB in this process"
        )
    always = len(getattr(compiled, "_always", ()))
    print(
        f"loaded in {loaded.load_s:.2f} s, compiled in {loaded.compile_s:.2f} s; "
        f"{compiled.leaf_count:,} conditions, {always} rules with no indexed trigger "
        f"(checked on every message)"
    )
    print()
    engine_rate = measure_engine(compiled, messages, args.rules)

    n = len(messages)
    tests = [(name, naive_test(when)) for name, when in generated.specs]
    naive_n = min(n, args.naive_messages or max(50, 500_000 // max(args.rules, 1)))
    sample = messages[:naive_n]
    naive_found, naive_s = timed(lambda: [naive_matches(tests, facts) for facts in sample])
    naive_rate = naive_n / naive_s
    subset = f"first {naive_n:,} of {n:,} messages" if naive_n < n else f"all {n:,} messages"
    print(
        f"{'naive re loop':<26} {naive_rate:>9,.0f} msg/s   ({naive_s:6.2f} s, "
        f"{naive_s / naive_n * 1e6:,.0f} µs/message; on the {subset})"
    )
    speedup = engine_rate / naive_rate
    print(f"{'speed-up':<26} {speedup:>9,.1f} x")
    print(
        f"{'aim':<26} >= 20,000 msg/s for 1,000 rules: "
        f"{'met' if engine_rate >= 20_000 else 'NOT met'} ({engine_rate:,.0f} at "
        f"{args.rules:,} rules); >= 10 x the naive loop: {'met' if speedup >= 10 else 'NOT met'}"
    )
    compare(compiled, dict(generated.specs), sample, naive_found)


def scaling(
    args: argparse.Namespace, vocabulary: Vocabulary, messages: list[Facts], scratch: Path
) -> None:
    sample = messages[: args.scaling_messages]
    print()
    print(
        f"scaling: the compiled engine over the first {len(sample):,} messages (best of 2 "
        "passes after a first); 'differ': "
        "messages where it and a naive loop with its semantics (folding, RE2's \\b) found "
        "different rules, on the first few"
    )
    print(
        f"{'rules':>7} {'load s':>8} {'compile s':>10} {'msg/s':>9} {'µs/msg':>8} "
        f"{'x 10 rules':>10} {'matched/msg':>12} {'differ':>10}"
    )
    failures: list[str] = []
    first: float | None = None
    for count in args.scaling_sizes:
        generated = generate_rules(vocabulary, count, args.seed)
        loaded = load_and_compile(generated.text, scratch, str(count))
        compiled = loaded.compiled
        mark = " *" if loaded.raised else ""
        if loaded.error:
            failures.append(f"{count:,} rules: {loaded.error}")
        if compiled is None:
            print(f"{count:>7,} {loaded.load_s:>8.2f} {'failed':>10}")
            continue
        found, _ = timed(lambda c=compiled: [matched_names(c, facts) for facts in sample])
        seconds = min(
            timed(lambda c=compiled: [matched_names(c, facts) for facts in sample])[1]
            for _ in range(2)
        )
        per_message = seconds / len(sample) * 1e6
        first = first or per_message
        matched = statistics.fmean(len(names) for names in found)
        checked = sample[: max(20, 100_000 // count)]
        tests = [
            (name, naive_test(when, folded=True, ascii_b=True)) for name, when in generated.specs
        ]
        differ = sum(
            naive_matches(tests, facts) != set(names)
            for facts, names in zip(checked, found, strict=False)
        )
        print(
            f"{count:>7,} {loaded.load_s:>8.2f} {loaded.compile_s:>10.2f}{mark:<2}"
            f"{len(sample) / seconds:>7,.0f} {per_message:>8.1f} {per_message / first:>10.1f} "
            f"{matched:>12.2f} {f'{differ} of {len(checked)}':>10}"
        )
    for failure in failures:
        print(f"* {failure}")
        print(
            f"  (the row is with RE2's max_mem raised to {RAISED_MAX_MEM >> 20} MB for the "
            "engine's regex sets, in this process only)"
        )


def machine_reference() -> float:
    """Iterations/s of a plain Python loop, best of three: the machines these figures are
    taken on differ by a factor of three or more, and the engine's cost is mostly Python's."""
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        total = 0
        for number in range(2_000_000):
            total += number
        best = min(best, time.perf_counter() - started)
    return 2_000_000 / best


def main() -> None:
    parser = argparse.ArgumentParser(description="Rules engine throughput")
    parser.add_argument("--rules", type=int, default=1_000)
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--naive-messages",
        type=int,
        default=0,
        help="messages for the naive loop (default: all, or fewer when there are many rules)",
    )
    parser.add_argument(
        "--scaling-messages", type=int, default=2_000, help="messages for the scaling table"
    )
    parser.add_argument(
        "--scaling-sizes",
        type=lambda text: [int(part.replace("_", "")) for part in text.split(",") if part],
        default=[10, 100, 1_000, 10_000],
        metavar="N,N,...",
        help="rule counts of the scaling table (default 10,100,1000,10000)",
    )
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--scaling", action="store_true", help="only the scaling table")
    which.add_argument("--no-scaling", action="store_true", help="no scaling table")
    args = parser.parse_args()

    print(
        f"this machine: {machine_reference() / 1e6:.1f} M iterations/s of a pure-Python loop "
        "(to compare figures taken on different machines)"
    )
    started = time.perf_counter()
    vocabulary = build_vocabulary()
    base, numbered = vocabulary.size()
    messages = generate_messages(vocabulary, args.messages, args.seed)
    print(
        f"vocabulary: {base:,} words and phrases in {len(LANGUAGES)} languages plus "
        f"{numbered:,} numbered variants"
    )
    print(f"{describe_messages(messages)}; generated in {time.perf_counter() - started:.1f} s")
    with tempfile.TemporaryDirectory() as scratch:
        if not args.scaling:
            main_run(args, vocabulary, messages, Path(scratch))
        if not args.no_scaling:
            scaling(args, vocabulary, messages, Path(scratch))
    print(f"\ntotal {time.perf_counter() - started:.0f} s (one process, one core)")


if __name__ == "__main__":
    main()
