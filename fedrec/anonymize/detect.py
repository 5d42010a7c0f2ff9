"""Personal data in columns nobody declared, and in free text kept on request.

Columns are classified on a sample (``SAMPLE_SIZE`` distinct non-empty values) by
presidio-analyzer's pattern recognizers: e-mail, phone, credit card, IBAN and IP address, and
columns published as they are also by content (fedrec.anonymize.content: person names, birth
dates, postcodes, street addresses). No spaCy model is loaded (``NoOpNlpEngine``), and not every predefined recognizer:
the others mistake URLs and product codes for identifiers. Rows are then handled
vectorised, never one presidio call per row.

Free text, when scrubbed rather than dropped, goes through regular expressions in Arrow
(replace every match, row by row in C++); a sample of the result is analysed again and the
run refused if anything is still found. Patterns find patterns, not names: a note saying
"for Jane Doe" keeps the name, which is why free text is dropped unless asked.
"""

from __future__ import annotations

from typing import Collection, Mapping, Sequence

import pyarrow as pa
import pyarrow.compute as pc

from fedrec.anonymize.content import content_hits
from fedrec.errors import ConfigError

SAMPLE_SIZE = 200
MIN_SCORE = 0.4  # presidio's phone recognizer scores a bare number 0.4, its weakest real hit
MIN_PHONE_DIGITS = 7  # presidio (phonenumbers) also takes short numbers, such as the price 16.99, for phones
ENTITIES = ("EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "IBAN_CODE", "IP_ADDRESS")

# RE2 syntax (Arrow). Order matters: e-mails and IBANs before the digit runs inside them.
SCRUB_PATTERNS = (
    ("[email]", r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)+"),
    ("[iban]", r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b"),
    ("[ip]", r"\b(?:\d{1,3}\.){3}\d{1,3}\b"),
    ("[ip]", r"\b(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}\b"),
    ("[number]", r"\+?\(?\d(?:[\d \-().]*\d){6,}"),  # phones and card numbers: 7+ digits, any separators
)


def analyze_samples(samples: Mapping[str, Sequence[str]], *, by_content: Collection[str] = ()) -> dict[str, dict[str, int]]:
    """Column -> entity -> how many sampled values hold one (only columns with hits); the
    columns in ``by_content`` are also checked for names, birth dates, postcodes and street
    addresses (fedrec.anonymize.content)."""
    engine = _analyzer()
    found: dict[str, dict[str, int]] = {}
    for column, values in samples.items():
        counts: dict[str, int] = dict(content_hits(values)) if column in by_content else {}
        for value in values:
            hits = engine.analyze(value, language="en", entities=list(ENTITIES), score_threshold=MIN_SCORE)
            for entity in {r.entity_type for r in hits if _plausible(r, value)}:
                counts[entity] = counts.get(entity, 0) + 1
        if counts:
            found[column] = dict(sorted(counts.items()))
    return found


def _plausible(hit, value: str) -> bool:
    if hit.entity_type != "PHONE_NUMBER":
        return True
    return sum(ch.isdigit() for ch in value[hit.start: hit.end]) >= MIN_PHONE_DIGITS


def scrub(values: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """Every match of ``SCRUB_PATTERNS`` replaced by its placeholder."""
    text = pc.cast(values, pa.string())
    for placeholder, pattern in SCRUB_PATTERNS:
        text = pc.replace_substring_regex(text, pattern, placeholder)
    return text


def _analyzer():
    """Presidio with the five pattern recognizers. Imported here, not at the top: presidio
    (and spaCy under it) takes seconds to import, and ``fedrec keys`` never needs it."""
    try:
        import tldextract
        from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
        from presidio_analyzer.nlp_engine import NoOpNlpEngine
        from presidio_analyzer.predefined_recognizers import (CreditCardRecognizer, EmailRecognizer, IbanRecognizer,
                                                              IpRecognizer, PhoneRecognizer)
    except ImportError as err:
        raise ConfigError(f"anonymization needs presidio-analyzer ({err}); run `pip install presidio-analyzer`.") from None

    class OfflineEmailRecognizer(EmailRecognizer):
        """Presidio's e-mail recognizer checks the domain with tldextract, which downloads
        the public suffix list on first use; this one reads the list bundled with it."""

        _extract = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)

        def validate_result(self, pattern_text: str) -> bool:
            return self._extract(pattern_text).fqdn != ""

    registry = RecognizerRegistry(supported_languages=["en"])
    for recognizer in (OfflineEmailRecognizer(), PhoneRecognizer(), CreditCardRecognizer(), IbanRecognizer(),
                       IpRecognizer()):
        registry.add_recognizer(recognizer)
    nlp = NoOpNlpEngine(models=[{"lang_code": "en", "model_name": "none"}])
    return AnalyzerEngine(registry=registry, nlp_engine=nlp, supported_languages=["en"])
