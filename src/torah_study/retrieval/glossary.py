"""A small English–Hebrew glossary of study terms for corrective retrieval.

When the first search for a question is weak, keyword search is retried with
each known term also in the other language, so "repentance" also looks for
תשובה and "צדקה" also for "charity". The Hebrew is given unpointed and in the
spellings the texts use (תפלה beside the modern תפילה). The glossary is
deliberately general: words for practices, festivals, people and ideas that
any part of the library uses.
"""

from __future__ import annotations

from torah_study.library.hebrew import normalize, prefix_variants

# English term → Hebrew forms found in the texts.
ENGLISH_TO_HEBREW: dict[str, tuple[str, ...]] = {
    "prayer": ("תפלה", "תפילה"), "pray": ("מתפלל", "להתפלל"),
    "blessing": ("ברכה",), "bless": ("מברך", "ברוך"), "grace": ("ברכת", "המזון"),
    "shabbat": ("שבת",), "sabbath": ("שבת",), "festival": ("חג", "יום טוב"),
    "passover": ("פסח",), "pesach": ("פסח",), "matzah": ("מצה",),
    "chametz": ("חמץ",), "leaven": ("חמץ", "שאור"), "sukkot": ("סוכות", "סוכה"),
    "sukkah": ("סוכה",), "shavuot": ("שבועות",), "purim": ("פורים",),
    "hanukkah": ("חנוכה",), "chanukah": ("חנוכה",), "fast": ("תענית", "צום"),
    "shofar": ("שופר",), "lamp": ("נר",), "candle": ("נר",), "candles": ("נרות", "נר"),
    "mezuzah": ("מזוזה",), "tefillin": ("תפלין",), "tzitzit": ("ציצית",),
    "charity": ("צדקה",), "tzedakah": ("צדקה",), "poor": ("עני", "עניים"),
    "repentance": ("תשובה",), "teshuvah": ("תשובה",), "confession": ("וידוי",),
    "atonement": ("כפרה", "מכפר"), "sin": ("חטא", "עבירה"), "sins": ("עבירות", "חטאים"),
    "forgive": ("מחילה", "מוחל"), "forgiveness": ("מחילה",),
    "torah": ("תורה",), "study": ("תלמוד", "ללמוד", "לימוד"), "learn": ("ללמוד",),
    "teacher": ("רב", "מלמד"), "student": ("תלמיד",), "students": ("תלמידים",),
    "sage": ("חכם",), "sages": ("חכמים",), "wise": ("חכם",), "wisdom": ("חכמה",),
    "commandment": ("מצוה",), "commandments": ("מצות",), "mitzvah": ("מצוה",),
    "mitzvot": ("מצות",), "law": ("דין", "הלכה"), "laws": ("הלכות", "דינים"),
    "father": ("אב", "אביו"), "mother": ("אם", "אמו"), "parents": ("אב", "אם"),
    "honor": ("כבוד", "כבד"), "fear": ("מורא", "יראה"), "love": ("אהבה", "ואהבת"),
    "neighbor": ("רעך", "רע"), "friend": ("חבר",), "son": ("בן", "בנו"),
    "daughter": ("בת",), "wife": ("אשה", "אשתו"), "husband": ("בעל",),
    "marriage": ("קידושין", "נישואין"), "marry": ("לישא", "נושא"),
    "divorce": ("גט", "גירושין"), "bride": ("כלה",), "groom": ("חתן",),
    "mourning": ("אבלות", "אבל"), "mourner": ("אבל",), "death": ("מיתה",),
    "burial": ("קבורה",), "sick": ("חולה",), "visiting": ("ביקור",),
    "life": ("חיים",), "world": ("עולם",), "come": ("הבא",),
    "resurrection": ("תחיית", "המתים"), "messiah": ("משיח",),
    "redemption": ("גאולה",), "exile": ("גלות",), "temple": ("מקדש",),
    "sacrifice": ("קרבן",), "offering": ("קרבן",), "priest": ("כהן",),
    "priests": ("כהנים",), "levite": ("לוי",), "king": ("מלך",), "kings": ("מלכים",),
    "prophet": ("נביא",), "prophets": ("נביאים",), "judge": ("דיין", "שופט"),
    "judges": ("דיינים", "שופטים"), "court": ("דין", "בית"), "witness": ("עד",),
    "witnesses": ("עדים",), "justice": ("צדק", "משפט"), "truth": ("אמת",),
    "peace": ("שלום",), "kindness": ("חסד", "גמילות"), "humility": ("ענוה",),
    "pride": ("גאוה",), "anger": ("כעס",), "slander": ("לשון", "הרע"),
    "gossip": ("רכילות",), "modesty": ("צניעות",), "shame": ("בושה",),
    "idolatry": ("עבודה", "זרה"), "idol": ("עבודה", "זרה"),
    "theft": ("גניבה",), "steal": ("גונב", "תגנב"), "robbery": ("גזל",),
    "lost": ("אבדה",), "loan": ("הלואה", "מלוה"), "interest": ("ריבית",),
    "worker": ("פועל",), "wages": ("שכר",), "damages": ("נזקים", "נזק"),
    "ox": ("שור",), "meat": ("בשר",), "milk": ("חלב",), "bread": ("לחם", "פת"),
    "wine": ("יין",), "water": ("מים",), "food": ("מאכל", "אוכל"),
    "eat": ("לאכול", "אוכל"), "kosher": ("כשר",), "forbidden": ("אסור",),
    "permitted": ("מותר",), "washing": ("נטילת",), "hands": ("ידים",),
    "synagogue": ("כנסת",), "congregation": ("ציבור", "צבור"),
    "morning": ("שחרית", "בקר"), "evening": ("ערבית", "ערב"), "night": ("לילה",),
    "shema": ("שמע",), "creation": ("בריאת", "בראשית"), "heaven": ("שמים",),
    "earth": ("ארץ",), "light": ("אור",), "angel": ("מלאך",), "dream": ("חלום",),
    "covenant": ("ברית",), "circumcision": ("מילה",), "free": ("בחירה",),
    "will": ("רצון",), "choice": ("בחירה",), "soul": ("נפש", "נשמה"),
    "god": ("הקב\u05f4ה", "אלהים"), "land": ("ארץ",), "israel": ("ישראל",),
    "jerusalem": ("ירושלים",), "egypt": ("מצרים",), "stranger": ("גר",),
    "orphan": ("יתום",), "widow": ("אלמנה",), "slave": ("עבד",),
    "field": ("שדה",), "tithe": ("מעשר",), "firstborn": ("בכור",),
    "oath": ("שבועה",), "vow": ("נדר",), "vows": ("נדרים",),
}  # fmt: skip


def _build_reverse() -> dict[str, tuple[str, ...]]:
    reverse: dict[str, list[str]] = {}
    for english, forms in ENGLISH_TO_HEBREW.items():
        for form in forms:
            for word in normalize(form).split():
                reverse.setdefault(word, [])
                if english not in reverse[word]:
                    reverse[word].append(english)
    return {word: tuple(words) for word, words in reverse.items()}


HEBREW_TO_ENGLISH = _build_reverse()


def glossary_forms(term: str) -> list[str]:
    """Return the glossary's other-language words for one term."""
    if term in ENGLISH_TO_HEBREW:
        return [w for form in ENGLISH_TO_HEBREW[term] for w in normalize(form).split()]
    for word in (term, *prefix_variants(term)):
        if word in HEBREW_TO_ENGLISH:
            return list(HEBREW_TO_ENGLISH[word])
    return []


def translate_terms(terms: list[str]) -> list[str]:
    """Return the other-language forms of ``terms`` that the glossary lists.

    Hebrew terms are also looked up without their prefix letters, so
    "והתשובה" finds "repentance".
    """
    found = [word for term in terms for word in glossary_forms(term)]
    return [word for word in dict.fromkeys(found) if word not in terms]
