"""Text for the salmonn-mini training data: sentences to speak, spoken queries, questions, captions, stories.

Everything here is plain Python (no numpy) and deterministic. The banks are fixed: they do not
depend on the data seed, so the sentence split is the same for every seed.

* :func:`sentence_bank` - sentences for speech (voice-assistant commands, questions, statements,
  numbers), each assigned to ``train`` / ``valid`` / ``test`` by a hash of its text
  (:func:`split_of`), so the splits never share a sentence.
* :func:`query_bank` - spoken questions with one deterministic short answer (arithmetic, days,
  months, colours, opposites, counting facts, comparisons, letters, number order). The split is
  by the *problem* (``key``), so a held-out problem is never seen in training under any wording.
* QA question paraphrases, caption phrases per sound class, and :func:`story` - long,
  audio-grounded answers for activation tuning.

All spoken text is written out in words (no digits), so the transcript is exactly what the
synthesiser says and what the model must write.
"""

from __future__ import annotations

import hashlib
import itertools
import random
import string
from dataclasses import dataclass
from functools import lru_cache

SPLITS = ("train", "valid", "test")

# --------------------------------------------------------------------------- numbers


_ONES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
         "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen",
         "nineteen"]
_TENS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
_ORDINALS = ["zeroth", "first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth",
             "ninth", "tenth", "eleventh", "twelfth"]


def number_words(n: int) -> str:
    """English words for 0 <= n < 10000 ("three hundred and twelve" style, no hyphens)."""
    if not 0 <= n < 10000:
        raise ValueError(f"number_words supports 0..9999, got {n}")
    if n < 20:
        return _ONES[n]
    if n < 100:
        tens, ones = divmod(n, 10)
        return _TENS[tens] + ("" if ones == 0 else " " + _ONES[ones])
    if n < 1000:
        hundreds, rest = divmod(n, 100)
        return _ONES[hundreds] + " hundred" + ("" if rest == 0 else " and " + number_words(rest))
    thousands, rest = divmod(n, 1000)
    if rest == 0:
        return _ONES[thousands] + " thousand"
    return _ONES[thousands] + " thousand" + (" and " if rest < 100 else " ") + number_words(rest)


def count_adverb(n: int) -> str:
    """"once", "twice", "three times", ..."""
    return {1: "once", 2: "twice"}.get(n, f"{number_words(n)} times")


def capitalize(text: str) -> str:
    """Upper-case the first character only."""
    return text[:1].upper() + text[1:]


def answer_of(words: str) -> str:
    """A short answer sentence: ``"seven"`` -> ``"Seven."``."""
    return capitalize(words.strip()) + "."


# --------------------------------------------------------------------------- splits


def stable_hash(text: str) -> int:
    """A process-independent hash (Python's ``hash`` is salted per process)."""
    return int(hashlib.sha1(text.encode("utf-8")).hexdigest()[:12], 16)


def split_of(key: str) -> str:
    """The split of a sentence or problem key: 80 % train, 5 % valid, 15 % test."""
    bucket = stable_hash(key) % 100
    if bucket < 15:
        return "test"
    if bucket < 20:
        return "valid"
    return "train"


# --------------------------------------------------------------------------- vocabulary

V = {
    "onoff": ["on", "off"],
    "room": ["kitchen", "living room", "bedroom", "bathroom", "hallway", "garage", "office",
             "dining room", "basement", "guest room"],
    "device": ["lights", "lamp", "fan", "heater", "television", "radio", "air conditioner",
               "coffee machine", "speaker", "printer"],
    "name": ["Anna", "Peter", "Maria", "David", "Sarah", "James", "Emma", "Lucas", "Olivia",
             "Daniel", "Sophie", "Michael", "Grace", "Thomas", "Laura", "Robert", "Nina", "Oscar",
             "Julia", "Henry"],
    "city": ["London", "Paris", "Berlin", "Tokyo", "Madrid", "Chicago", "Boston", "Sydney",
             "Toronto", "Dublin", "Rome", "Oslo", "Denver", "Seattle", "Vienna", "Lisbon"],
    "when": ["today", "tomorrow", "tonight", "this evening", "this weekend", "next week",
             "on Monday", "on Friday", "in the morning", "after lunch"],
    "when_past": ["this morning", "yesterday", "last night", "an hour ago", "on Sunday"],
    "genre": ["jazz", "rock", "classical", "pop", "country", "blues", "reggae", "folk", "piano",
              "relaxing"],
    "minutes": [number_words(n) for n in (2, 3, 5, 7, 8, 10, 12, 15, 20, 25, 30, 40, 45, 50, 90)],
    "clock": ["six o'clock", "seven thirty", "half past eight", "a quarter to nine", "noon",
              "ten fifteen", "five forty five", "eleven o'clock", "midnight", "four twenty"],
    "item": ["milk", "eggs", "bread", "butter", "apples", "bananas", "coffee", "rice", "cheese",
             "tomatoes", "onions", "pasta", "orange juice", "chicken", "yogurt", "carrots"],
    "task": ["call the dentist", "water the plants", "take out the trash", "buy a birthday card",
             "pick up the kids", "pay the electricity bill", "feed the cat", "book a table",
             "charge my phone", "send the report", "walk the dog", "return the library books"],
    "place": ["train station", "airport", "nearest pharmacy", "city center", "library",
              "post office", "supermarket", "hospital", "museum", "beach", "park", "bakery"],
    "object": ["keys", "glasses", "wallet", "phone", "umbrella", "jacket", "headphones",
               "notebook", "charger", "backpack"],
    "thing": ["bicycle", "umbrella", "hat", "scarf", "kettle", "lamp", "backpack", "teapot",
              "blanket", "clock"],
    "animal": ["cat", "dog", "horse", "rabbit", "bird", "fox", "cow", "duck", "owl", "mouse",
               "goat", "turtle"],
    "colour": ["red", "blue", "green", "yellow", "black", "white", "brown", "purple", "orange",
               "grey"],
    "furniture": ["table", "bed", "sofa", "chair", "desk", "bench", "old tree", "window"],
    "relative": ["sister", "brother", "mother", "father", "aunt", "uncle", "cousin",
                 "grandmother", "grandfather", "best friend"],
    "day": ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"],
    "month": ["January", "February", "March", "April", "May", "June", "July", "August",
              "September", "October", "November", "December"],
    "updown": ["up", "down"],
    "temp": [number_words(n) for n in range(16, 27)],
    "percent": [number_words(n) for n in (10, 20, 25, 30, 40, 50, 60, 70, 75, 80)],
    "door": ["front", "back", "garage", "side", "kitchen"],
    "cover": ["curtains", "blinds", "windows", "shutters"],
    "weather": ["sunny", "cold", "windy", "rainy", "foggy", "warm", "cloudy", "snowy"],
    "drink": ["tea", "coffee", "water", "hot chocolate", "orange juice", "green tea"],
    "daytime": ["morning", "afternoon", "evening"],
    "terrain": ["field", "road", "garden", "river bank", "parking lot", "meadow"],
    "season": ["summer", "winter", "spring", "autumn"],
    "vehicle": ["bus", "train", "tram", "ferry"],
    "food": ["pizza", "soup", "pancakes", "a salad", "noodles", "curry", "fish and chips",
             "sandwiches"],
}

COMMAND_TEMPLATES = [
    "Turn {onoff} the {room} {device}.",
    "Please turn {onoff} the {device} in the {room}.",
    "Set a timer for {minutes} minutes.",
    "Set an alarm for {clock} {when}.",
    "Play some {genre} music in the {room}.",
    "Call {name} {when}.",
    "Send a message to {name} saying I will be home {when}.",
    "Remind me to {task} {when}.",
    "Add {item} to my shopping list.",
    "Add {item} and {item2} to the shopping list.",
    "Turn the volume {updown} in the {room}.",
    "Set the {room} temperature to {temp} degrees.",
    "Give me directions to the {place}.",
    "Navigate to the {place} and avoid the highway.",
    "Lock the {door} door.",
    "Dim the {room} lights to {percent} percent.",
    "Open the {cover} in the {room}.",
    "Close the {cover} in the {room} {when}.",
    "Read my messages from {name}.",
    "Schedule a meeting with {name} on {day} at {clock}.",
    "Show me photos of {animal}s from last {season}.",
    "Order {food} for dinner {when}.",
    "Start the {device} in the {room} at {clock}.",
    "Text {name} that the {vehicle} is late.",
]

QUESTION_TEMPLATES = [
    "What is the weather like in {city} {when}?",
    "Will it rain in {city} {when}?",
    "What time is it in {city} right now?",
    "How long does it take to get to the {place}?",
    "When does the {place} open on {day}?",
    "Where did I leave my {object}?",
    "Do I have any meetings on {day}?",
    "Is the {device} in the {room} still on?",
    "Did {name} call me {when_past}?",
    "What is on my calendar for {day}?",
    "How warm will it be in {city} on {day}?",
    "Which {vehicle} goes to the {place}?",
    "Can you tell me a story about a {colour} {animal}?",
    "Do we still have {item} in the fridge?",
    "Who sent me a message {when_past}?",
    "Is the {place} open {when}?",
    "How much does a {colour} {thing} cost?",
    "When is {name}'s birthday party in {month}?",
]

STATEMENT_TEMPLATES = [
    "The {colour} {animal} is sleeping under the {furniture}.",
    "My {relative} is coming to visit {when}.",
    "{name} bought a {colour} {thing} at the market.",
    "The meeting with {name} was moved to {day}.",
    "We are going to {city} in {month}.",
    "I left my {object} in the {room}.",
    "The {place} is closed on {day}s.",
    "{name} and {name2} are cooking {food} in the {room}.",
    "The {animal} ran across the {terrain} very quickly.",
    "It was {weather} in {city} all day {when_past}.",
    "I usually drink {drink} in the {daytime}.",
    "The {room} window has been broken since {month}.",
    "My {relative} lost a {colour} {thing} on the {vehicle}.",
    "{name} found an old {thing} in the {room}.",
    "The {vehicle} to {city} was full of tourists {when_past}.",
    "Every {season} we take the {vehicle} to {city}.",
]

HANDWRITTEN = [
    "The quick brown fox jumps over the lazy dog.",
    "A gentle breeze moved the leaves of the old oak tree.",
    "She sells fresh bread at the corner shop every morning.",
    "The children laughed as the kite climbed higher and higher.",
    "Please speak slowly so that everyone can understand you.",
    "The library will be quiet during the examination week.",
    "Thank you very much for your help with the garden.",
    "The soup tastes better with a little salt and pepper.",
    "Our neighbours painted their fence a bright shade of blue.",
    "Turn left at the bakery and walk straight for two blocks.",
    "The concert starts at eight, so we should leave early.",
    "A small boat drifted slowly across the calm lake.",
    "He forgot his umbrella and got soaked on the way home.",
    "The museum has a new exhibition about ancient ships.",
    "Could you pass me the salt, please?",
    "I think the printer has run out of paper again.",
    "The cat watched the birds from the kitchen window.",
    "We planted tomatoes and beans along the garden wall.",
    "The bridge was closed because of the heavy storm.",
    "My grandmother tells wonderful stories about her childhood.",
    "The train was delayed by almost half an hour.",
    "Remember to lock the door when you leave the house.",
    "The mountain path is steep but the view is worth it.",
    "They opened a small cafe near the harbour last spring.",
    "Good morning, how did you sleep last night?",
    "The teacher wrote the answer on the board.",
    "An orange moon rose slowly above the quiet town.",
    "The baby fell asleep in the back of the car.",
    "Fresh snow covered the fields and the rooftops.",
    "He plays the violin in the city orchestra.",
    "Let us meet in front of the cinema at seven.",
    "The coffee machine in the office is broken again.",
    "Hello, is anybody there?",
    "I would like a cup of tea with milk, please.",
    "The river flows past the old mill and into the sea.",
    "Our flight was cancelled, so we stayed another night.",
    "Nobody knew where the strange noise was coming from.",
    "The dog waited patiently by the front door.",
    "She finished the puzzle in less than an hour.",
    "Put the green box on the top shelf, please.",
    "What a beautiful day for a walk in the park.",
    "Wind and rain battered the coast all night long.",
    "The shop on the corner sells newspapers and sweets.",
    "We need more chairs for the guests in the garden.",
    "The clock on the tower stopped at midnight.",
    "I can hear the birds singing outside my window.",
    "The lights went out during the thunderstorm.",
    "Please check the oven before you go to bed.",
    "My brother is learning to play the guitar.",
    "The farmer counted his sheep before sunset.",
    "A loud siren echoed through the empty streets.",
    "Someone is knocking at the back door.",
    "The doctor said I should drink more water.",
    "The pizza will be ready in twenty minutes.",
    "It is too cold to go swimming today.",
    "Can you help me carry these boxes upstairs?",
    "The old piano in the hall is out of tune.",
    "We watched the sunset from the top of the hill.",
    "The bus stop is just around the corner.",
    "Yesterday I found a coin under the sofa.",
]

_LETTERS = "ABCDEFGHJKLMNPRSTUVWXYZ"


def _number_sentences(rng: random.Random) -> list[str]:
    """Sentences about numbers (phone numbers, codes, prices, times, years), all in words."""
    digits = lambda k: " ".join(_ONES[rng.randrange(10)] for _ in range(k))  # noqa: E731
    out: list[str] = []
    for _ in range(150):
        out.append(f"My phone number is {digits(3)}, {digits(4)}.")
        out.append(f"The door code is {digits(4)}.")
        out.append(f"The total comes to {number_words(rng.randrange(2, 100))} dollars and "
                   f"{number_words(rng.randrange(1, 100))} cents.")
        out.append(f"Flight {number_words(rng.randrange(100, 1000))} leaves from gate "
                   f"{rng.choice(_LETTERS)} {number_words(rng.randrange(1, 40))}.")
        out.append(f"Room {number_words(rng.randrange(100, 700))} is on the "
                   f"{_ORDINALS[rng.randrange(1, 13)]} floor.")
        out.append(f"There are {number_words(rng.randrange(2, 60))} "
                   f"{rng.choice(['apples', 'books', 'chairs', 'letters', 'cups', 'cars', 'birds'])} "
                   f"in the {rng.choice(['box', 'room', 'garden', 'basket', 'yard', 'picture'])}.")
        out.append(f"The {rng.choice(V['vehicle'])} leaves at {rng.choice(V['clock'])} from platform "
                   f"{number_words(rng.randrange(1, 13))}.")
        out.append(f"Please transfer {number_words(rng.randrange(2, 10))} hundred dollars to "
                   f"{rng.choice(V['name'])}.")
        out.append(f"The final score was {number_words(rng.randrange(0, 8))} to "
                   f"{number_words(rng.randrange(0, 8))}.")
        year = rng.randrange(1950, 2030)
        year_words = (number_words(year // 100) + " " + number_words(year % 100)) if year < 2000 \
            else number_words(year)
        out.append(f"{rng.choice(V['name'])} was born in {year_words}.")
    return out


def _expand(template: str, cap: int) -> list[str]:
    """All fillings of a template's slots (``{item2}`` draws from ``item`` too), capped by hash order."""
    slots = [f for _, f, _, _ in string.Formatter().parse(template) if f]
    pools = [V[s.rstrip("2")] for s in slots]
    out = []
    for combo in itertools.product(*pools):
        fill = dict(zip(slots, combo))
        if any(s.endswith("2") and fill[s] == fill[s[:-1]] for s in slots if s[:-1] in fill):
            continue
        out.append(capitalize(template.format(**fill)))
    if len(out) > cap:
        out = sorted(out, key=stable_hash)[:cap]
    return out


@dataclass(frozen=True)
class Sentence:
    """A sentence to speak: its text, category and split."""

    text: str
    category: str  # command | question | statement | number
    split: str

    @property
    def is_question(self) -> bool:
        return self.text.rstrip().endswith("?")


@lru_cache(maxsize=1)
def sentence_bank() -> dict[str, list[Sentence]]:
    """All speech sentences by split (fixed: independent of the data seed), sorted by text."""
    groups = {
        "command": [s for t in COMMAND_TEMPLATES for s in _expand(t, 260)],
        "question": [s for t in QUESTION_TEMPLATES for s in _expand(t, 260)],
        "statement": [s for t in STATEMENT_TEMPLATES for s in _expand(t, 260)] + HANDWRITTEN,
        "number": _number_sentences(random.Random(20240611)),
    }
    seen: set[str] = set()
    by_split: dict[str, list[Sentence]] = {s: [] for s in SPLITS}
    for category, texts in groups.items():
        for text in texts:
            if text in seen:
                continue
            seen.add(text)
            split = split_of(text)
            by_split[split].append(Sentence(text, category, split))
    for items in by_split.values():
        items.sort(key=lambda s: s.text)
    return by_split


def sentence_categories() -> tuple[str, ...]:
    return ("command", "question", "statement", "number")


# --------------------------------------------------------------------------- spoken queries


@dataclass(frozen=True)
class Query:
    """A spoken question with one deterministic short answer."""

    question: str
    answer: str  # the target text, e.g. "Seven."
    label: str  # the normalised answer for scoring, e.g. "seven"
    kind: str
    key: str  # the problem; the split is decided by it
    split: str


_DAYS = V["day"]
_MONTHS = V["month"]
_COLOUR_FACTS = {
    "the sky on a clear day": "blue", "grass": "green", "snow": "white", "a banana": "yellow",
    "a ripe tomato": "red", "coal": "black", "a lemon": "yellow", "milk": "white",
    "a strawberry": "red", "chocolate": "brown", "a carrot": "orange", "a frog": "green",
    "a polar bear": "white", "a crow": "black", "an orange": "orange", "a cucumber": "green",
}
_MIXES = {("blue", "yellow"): "green", ("red", "yellow"): "orange", ("red", "blue"): "purple",
          ("red", "white"): "pink", ("black", "white"): "grey"}
_OPPOSITES = [("hot", "cold"), ("big", "small"), ("up", "down"), ("day", "night"), ("fast", "slow"),
              ("happy", "sad"), ("open", "closed"), ("left", "right"), ("light", "dark"),
              ("wet", "dry"), ("early", "late"), ("loud", "quiet"), ("empty", "full"),
              ("hard", "soft"), ("high", "low"), ("in", "out"), ("yes", "no"), ("black", "white"),
              ("win", "lose"), ("first", "last"), ("thick", "thin"), ("rich", "poor"),
              ("push", "pull"), ("above", "below")]
_COUNT_FACTS = {
    "How many days are in a week?": 7, "How many months are in a year?": 12,
    "How many hours are in a day?": 24, "How many minutes are in an hour?": 60,
    "How many seconds are in a minute?": 60, "How many legs does a dog have?": 4,
    "How many legs does a spider have?": 8, "How many wheels does a bicycle have?": 2,
    "How many sides does a triangle have?": 3, "How many sides does a square have?": 4,
    "How many sides does a hexagon have?": 6, "How many legs does a bird have?": 2,
    "How many wheels does a car have?": 4, "How many days are in a year?": 365,
    "How many letters are in the word cat?": 3, "How many fingers are on one hand?": 5,
    "How many eggs are in a dozen?": 12, "How many weeks are in a year?": 52,
}
_ARITH_WORDINGS = {
    "plus": ["What is {a} plus {b}?", "How much is {a} plus {b}?", "What do you get if you add {a} and {b}?"],
    "minus": ["What is {a} minus {b}?", "How much is {a} minus {b}?", "What is {b} taken away from {a}?"],
    "times": ["What is {a} times {b}?", "How much is {a} times {b}?", "What is {a} multiplied by {b}?"],
}


def _queries_raw() -> list[tuple[str, str, str, str]]:
    """(question, answer words, kind, problem key) for every query."""
    out: list[tuple[str, str, str, str]] = []
    for a in range(0, 13):
        for b in range(0, 13):
            A, B = number_words(a), number_words(b)
            for wording in _ARITH_WORDINGS["plus"]:
                out.append((wording.format(a=A, b=B), number_words(a + b), "arithmetic", f"add:{a}:{b}"))
            if a >= b:
                for wording in _ARITH_WORDINGS["minus"]:
                    out.append((wording.format(a=A, b=B), number_words(a - b), "arithmetic", f"sub:{a}:{b}"))
            if a <= 10 and b <= 10:
                for wording in _ARITH_WORDINGS["times"]:
                    out.append((wording.format(a=A, b=B), number_words(a * b), "arithmetic", f"mul:{a}:{b}"))
    for i, day in enumerate(_DAYS):
        nxt, prv = _DAYS[(i + 1) % 7], _DAYS[i - 1]
        out += [(f"What day comes after {day}?", nxt, "days", f"dayafter:{day}"),
                (f"Which day is after {day}?", nxt, "days", f"dayafter:{day}"),
                (f"What day comes before {day}?", prv, "days", f"daybefore:{day}"),
                (f"If today is {day}, what day is tomorrow?", nxt, "days", f"dayafter:{day}"),
                (f"If today is {day}, what day was yesterday?", prv, "days", f"daybefore:{day}")]
    for i, month in enumerate(_MONTHS):
        nxt, prv = _MONTHS[(i + 1) % 12], _MONTHS[i - 1]
        out += [(f"What month comes after {month}?", nxt, "months", f"monthafter:{month}"),
                (f"Which month follows {month}?", nxt, "months", f"monthafter:{month}"),
                (f"What month comes before {month}?", prv, "months", f"monthbefore:{month}")]
    for thing, colour in _COLOUR_FACTS.items():
        out += [(f"What colour is {thing}?", colour, "colours", f"colour:{thing}"),
                (f"What is the colour of {thing}?", colour, "colours", f"colour:{thing}")]
    for (c1, c2), mix in _MIXES.items():
        out += [(f"What colour do you get when you mix {c1} and {c2}?", mix, "colours", f"mix:{c1}:{c2}"),
                (f"What colour do you get when you mix {c2} and {c1}?", mix, "colours", f"mix:{c1}:{c2}")]
    for w1, w2 in _OPPOSITES:
        for x, y in ((w1, w2), (w2, w1)):
            out += [(f"What is the opposite of {x}?", y, "opposites", f"opp:{x}"),
                    (f"What is the opposite of the word {x}?", y, "opposites", f"opp:{x}")]
    for question, n in _COUNT_FACTS.items():
        out.append((question, number_words(n), "facts", f"fact:{question}"))
    for a in range(0, 21):
        for b in range(0, 21):
            if a == b or abs(a - b) > 9:
                continue
            A, B = number_words(a), number_words(b)
            out += [(f"Which is bigger, {A} or {B}?", number_words(max(a, b)), "compare", f"big:{a}:{b}"),
                    (f"Which number is smaller, {A} or {B}?", number_words(min(a, b)), "compare", f"small:{a}:{b}")]
    for n in range(0, 100):
        out += [(f"What number comes after {number_words(n)}?", number_words(n + 1), "counting", f"next:{n}")]
        if n > 0:
            out += [(f"What number comes before {number_words(n)}?", number_words(n - 1), "counting", f"prev:{n}")]
    for i, letter in enumerate("ABCDEFGHIJKLMNOPQRSTUVWXY"):
        nxt = chr(ord(letter) + 1)
        out += [(f"What letter comes after {letter}?", nxt, "letters", f"letter:{letter}")]
    for n in range(0, 21):
        word = number_words(n)
        out += [(f"Is {word} an even number?", "yes" if n % 2 == 0 else "no", "parity", f"even:{n}"),
                (f"Is {word} an odd number?", "yes" if n % 2 else "no", "parity", f"odd:{n}")]
    return out


@lru_cache(maxsize=1)
def query_bank() -> dict[str, list[Query]]:
    """Spoken queries by split; the split follows the problem key, not the wording."""
    by_split: dict[str, list[Query]] = {s: [] for s in SPLITS}
    seen: set[str] = set()
    for question, words, kind, key in _queries_raw():
        if question in seen:
            continue
        seen.add(question)
        split = split_of(key)
        by_split[split].append(Query(question, answer_of(words), words.lower(), kind, key, split))
    for items in by_split.values():
        items.sort(key=lambda q: q.question)
    return by_split


# --------------------------------------------------------------------------- QA questions

PRESENCE_QUESTIONS = [
    "Is someone speaking in this audio?",
    "Is there any speech in the recording?",
    "Can you hear a person talking?",
    "Does this audio contain a human voice?",
    "Is anyone talking in this clip?",
    "Does someone say something in this recording?",
]
SOUND_QUESTIONS = [
    "What sound is this?",
    "What sound event can you hear?",
    "Which sound is in this recording?",
    "What is making this sound?",
    "Identify the sound in this audio.",
    "What do you hear in this clip?",
]
BACKGROUND_QUESTIONS = [
    "What is the background sound?",
    "What sound can you hear behind the voice?",
    "Besides the speech, what else can you hear?",
    "What noise is in the background?",
    "What is the sound behind the speaker?",
]
GENDER_QUESTIONS = [  # (question, answer for male, answer for female)
    ("Is the speaker male or female?", "Male.", "Female."),
    ("Is this a man or a woman speaking?", "A man.", "A woman."),
    ("What is the gender of the speaker?", "Male.", "Female."),
    ("Is the voice male or female?", "Male.", "Female."),
    ("Who is speaking, a man or a woman?", "A man.", "A woman."),
]
SILENCE_SOUND_ANSWER = "Nothing, the recording is silent."
YESNO_SOUND_QUESTIONS = ["Can you hear {noun} in this audio?", "Is there {noun} in this recording?"]

# --------------------------------------------------------------------------- sound-class text

# For each class (names match devkit.sounds.SOUND_CLASSES): the QA answer, a noun
# phrase, the "in the background" clauses and the count noun for count questions.
SOUND_TEXT: dict[str, dict] = {
    "alarm": {"answer": "An alarm beeping.", "noun": "an alarm", "label_words": ["alarm", "beep"],
              "background": ["while an alarm beeps in the background", "as an alarm keeps beeping"],
              "scene": "an alarm beeping",
              "count_q": ["How many beeps can you hear?", "How many times does the alarm beep?"]},
    "siren": {"answer": "A siren.", "noun": "a siren", "label_words": ["siren"],
              "background": ["while a siren wails in the background", "as a siren sounds nearby"],
              "scene": "a siren wailing"},
    "knocking": {"answer": "Knocking on a door.", "noun": "knocking", "label_words": ["knock"],
                 "background": ["while someone knocks on a door", "as knocking is heard in the background"],
                 "scene": "someone knocking on a door",
                 "count_q": ["How many knocks can you hear?", "How many times does someone knock?"]},
    "ticking": {"answer": "A clock ticking.", "noun": "a clock ticking", "label_words": ["tick", "clock"],
                "background": ["while a clock ticks in the background", "over the steady ticking of a clock"],
                "scene": "a clock ticking"},
    "rain": {"answer": "Rain.", "noun": "rain", "label_words": ["rain"],
             "background": ["while rain falls in the background", "over the sound of rain"],
             "scene": "rain falling"},
    "dog_bark": {"answer": "A dog barking.", "noun": "a dog barking", "label_words": ["dog", "bark"],
                 "background": ["while a dog barks in the background", "as a dog barks nearby"],
                 "scene": "a dog barking",
                 "count_q": ["How many times does the dog bark?", "How many barks can you hear?"]},
    "doorbell": {"answer": "A doorbell.", "noun": "a doorbell", "label_words": ["doorbell", "bell", "chime"],
                 "background": ["while a doorbell rings in the background", "as the doorbell chimes"],
                 "scene": "a doorbell ringing", "count_q": ["How many times does the doorbell ring?"]},
    "music": {"answer": "Music.", "noun": "music", "label_words": ["music"],
              "background": ["while music plays in the background", "over soft background music"],
              "scene": "music playing"},
    "birdsong": {"answer": "Birds singing.", "noun": "birds singing", "label_words": ["bird"],
                 "background": ["while birds sing in the background", "as birds chirp nearby"],
                 "scene": "birds singing"},
    "engine": {"answer": "An engine running.", "noun": "an engine running", "label_words": ["engine"],
               "background": ["while an engine runs in the background", "over the hum of an engine"],
               "scene": "an engine running"},
}

INSTRUMENT_NAMES = {"piano": "a piano", "organ": "an organ", "guitar": "a plucked guitar",
                    "synth": "a synthesizer", "flute": "a flute", "marimba": "a marimba"}


def sound_caption(cls: str, meta: dict, rng: random.Random) -> str:
    """A one-sentence caption of a sound-only clip, grounded in its synthesis parameters."""
    variant = meta.get("variant", "")
    count = meta.get("count")
    if cls == "alarm":
        pitch = "high" if meta["freq"] > 1800 else "mid"
        opts = [f"An alarm beeps {count_adverb(count)}.",
                f"A {pitch}-pitched electronic alarm beeps {count_adverb(count)}.",
                f"{capitalize(number_words(count))} short alarm beeps sound."] if count else ["An alarm beeps repeatedly."]
    elif cls == "siren":
        style = {"wail": "slowly rising and falling", "yelp": "rapidly warbling", "hilo": "two-tone",
                 "whoop": "whooping"}.get(variant, "wailing")
        opts = [f"A {style} siren sounds.", f"An emergency siren wails with a {style} tone.", "A siren wails."]
    elif cls == "knocking":
        door = "heavy" if variant == "heavy" else "wooden"
        opts = [f"Someone knocks on a door {count_adverb(count)}.",
                f"There is a knock at the door, {count_adverb(count)}.",
                f"{capitalize(number_words(count))} knocks are heard on a {door} door."] if count else ["Someone knocks."]
    elif cls == "ticking":
        pace = "fast" if meta.get("rate", 1.0) > 2.5 else "steady"
        opts = [f"A clock ticks at a {pace} pace.", f"The {pace} ticking of a clock.", "A clock ticks."]
        if variant == "metronome":
            opts.append("A metronome clicks steadily.")
    elif cls == "rain":
        heavy = meta.get("intensity", 0.5) > 0.6
        opts = [f"{'Heavy' if heavy else 'Light'} rain falls.", f"Rain {'pours down' if heavy else 'patters softly'}.",
                f"The sound of {'heavy' if heavy else 'gentle'} rainfall."]
    elif cls == "dog_bark":
        size = {"small": "small", "big": "large"}.get(variant, "")
        dog = f"A {size} dog" if size else "A dog"
        opts = [f"{dog} barks {count_adverb(count)}.", f"{dog} barks {count_adverb(count)} in a row."] if count \
            else [f"{dog} barks."]
    elif cls == "doorbell":
        opts = [f"A doorbell chimes {count_adverb(count)}.", f"The doorbell rings {count_adverb(count)}.",
                f"Someone rings a doorbell {count_adverb(count)}."] if count else ["A doorbell chimes."]
    elif cls == "music":
        inst = INSTRUMENT_NAMES.get(variant, "an instrument")
        tempo = meta.get("tempo_word", "moderate")
        mood = "cheerful" if meta.get("mode") == "major" else "melancholic"
        opts = [f"{capitalize(inst)} plays a {tempo}, {mood} melody with chords.",
                f"A {tempo} {mood} tune played on {inst}.",
                f"Music: {inst} plays a melody in a {meta.get('mode', 'major')} key at a {tempo} tempo."]
    elif cls == "birdsong":
        n = meta.get("birds", 1)
        opts = ["A bird chirps." if n == 1 else "Several birds chirp.",
                "Birdsong: " + ("a single bird sings." if n == 1 else f"{number_words(n)} birds sing together."),
                "Birds are singing outdoors." if n > 1 else "A bird is singing outdoors."]
        if variant == "trill":
            opts.append("A bird sings a fast trill.")
    elif cls == "engine":
        opts = {"idle": ["An engine idles.", "A car engine idles steadily."],
                "rev": ["An engine revs up and slows down again.", "A car engine revs."],
                "truck": ["A heavy truck engine rumbles.", "A large diesel engine rumbles at low speed."],
                "motorbike": ["A motorbike engine buzzes.", "A small engine buzzes loudly."],
                }.get(variant, ["An engine runs."])
    else:
        raise ValueError(f"unknown sound class {cls!r}")
    return rng.choice(opts)


SILENCE_CAPTIONS = {
    "digital": ["Silence.", "Complete silence.", "There is no sound at all."],
    "hiss": ["Near silence, with only a faint hiss.", "Silence with a faint electronic hiss."],
    "room": ["Near silence, with a faint low room hum.", "A quiet room with a faint hum and no other sound."],
}


def speech_caption(gender: str, sentence: str, speed: str, rng: random.Random, bg_class: str | None = None) -> str:
    """Caption of a speech clip: who speaks, what is said, and (optionally) the background."""
    who = rng.choice(["A man", "A male voice"] if gender == "male" else ["A woman", "A female voice"])
    verb = "asks" if sentence.rstrip().endswith("?") else "says"
    manner = {"slow": " slowly", "fast": rng.choice([" quickly", " rapidly"])}.get(speed, "")
    quote = sentence.strip()
    if bg_class is None:
        return rng.choice([f"{who} {verb}{manner}: \"{quote}\"", f"{who} {verb}{manner}, \"{quote}\""])
    clause = rng.choice(SOUND_TEXT[bg_class]["background"])
    if rng.random() < 0.5:
        return f"{who} {verb}{manner}: \"{quote}\" {clause}."
    return f"Over the sound of {SOUND_TEXT[bg_class]['noun']}, {who.lower()} {verb}{manner}: \"{quote}\""


# --------------------------------------------------------------------------- stories

_SETTINGS = {
    "alarm": ["in a small flat where an alarm would not stop beeping", "early in the morning, when the alarm went off"],
    "siren": ["on a busy city street as a siren wailed past",
              "on a night when sirens echoed between the tall buildings"],
    "knocking": ["in an old house where someone kept knocking at the door",
                 "on a quiet afternoon interrupted by a knock at the door"],
    "ticking": ["in a silent room where only a clock was ticking",
                "in a waiting room with a loud ticking clock on the wall"],
    "rain": ["on a grey evening while rain drummed on the windows", "in a cottage where the rain never seemed to stop"],
    "dog_bark": ["in a garden where a dog was barking at the gate",
                 "in a quiet village where a dog barked at every stranger"],
    "doorbell": ["in a cosy house just as the doorbell chimed",
                 "on a Sunday morning when the doorbell rang unexpectedly"],
    "music": ["in a warm living room filled with music", "at a small party where a melody played in the corner"],
    "birdsong": ["in a sunny park full of singing birds", "on a spring morning while birds sang in the trees"],
    "engine": ["beside a car whose engine was humming", "at a petrol station where an engine kept running"],
    None: ["in a very quiet room", "on a calm evening at home"],
}
_OPENINGS = ["It all happened", "This story takes place", "Our tale begins", "Everything started", "It happened"]
_REFLECTIONS = [
    "Sounds have a way of staying with people long after the moment has passed, and this one was no different.",
    "Looking back, it is strange how much a single sound can change the mood of an ordinary day.",
    "Some days are remembered for big events; this one was remembered for what could be heard.",
    "It was the kind of moment that seems unimportant while it happens and unforgettable afterwards.",
]
_MIDDLES = [
    "{Who} had been waiting for this moment all day, and the words came out clearly: \"{quote}\"",
    "Taking a deep breath, {who} finally spoke up and said: \"{quote}\"",
    "Without looking up, {who} said in a {tone} voice: \"{quote}\"",
    "Then {who} leaned towards the little speaker on the shelf and said: \"{quote}\"",
]
_AFTER = [
    "For a moment nobody answered, and {bgline}.",
    "The room went still, and {bgline}.",
    "Everyone smiled, even though {bgline}.",
    "It sounded ordinary, but {bgline}, as if the whole house was listening.",
]
_ENDINGS = [
    "In the end it turned out to be a good day, and {pron} laughed about it for weeks.",
    "Later that night, {pron} wrote the whole thing down so {pron2} would never forget it.",
    "Years later, whenever {pron} heard that sound again, {pron} remembered those exact words.",
    "And that is how a small, everyday moment became a story worth telling.",
    "Nothing dramatic happened after that, yet it was the start of something new.",
]
_SOUND_ONLY = [
    "There were no voices at all, only {scene}. Anyone listening would have described it simply: {detail} "
    "A person passing by stopped to listen, wondering where the sound came from.",
    "Nobody said a word. The only thing anyone could hear was {scene}; in plain words, {detail} "
    "It went on and on, filling the empty space.",
]


def story(rng: random.Random, *, bg_class: str | None, gender: str | None, sentence: str | None,
          sound_detail: str = "") -> str:
    """A long (roughly 90-160 words), varied story grounded in the clip: its speaker, words and sounds."""
    setting = rng.choice(_SETTINGS[bg_class])
    parts = [f"{rng.choice(_OPENINGS)} {setting}."]
    if sentence is not None and gender is not None:
        people = (["a tired young man", "an old man with a deep voice", "a man in a grey coat"] if gender == "male"
                  else ["a young woman", "an elderly lady", "a woman in a red scarf"])
        who = rng.choice(people)
        pron, pron2 = ("he", "he") if gender == "male" else ("she", "she")
        tone = rng.choice(["calm", "steady", "hurried", "cheerful", "serious"])
        parts.append(rng.choice(_MIDDLES).format(Who=capitalize(who), who=who, quote=sentence.strip(), tone=tone))
        bgline = ("the only other sound was " + SOUND_TEXT[bg_class]["scene"]) if bg_class else "the silence felt heavy"
        parts.append(rng.choice(_AFTER).format(bgline=bgline))
        verb = "asked a question" if sentence.rstrip().endswith("?") else "gave an instruction"
        parts.append(f"It was not the first time {pron} {verb} like that, but this time it mattered. "
                     f"The words hung in the air while {pron} waited to see what would happen next.")
        parts.append(rng.choice(_REFLECTIONS))
        parts.append(rng.choice(_ENDINGS).format(pron=pron, pron2=pron2))
    else:
        scene = SOUND_TEXT[bg_class]["scene"] if bg_class else "silence"
        detail = "it was impossible to ignore."
        if sound_detail:
            detail = (sound_detail[:1].lower() + sound_detail[1:]).rstrip(".") + "."
        parts.append(rng.choice(_SOUND_ONLY).format(scene=scene, detail=detail))
        parts.append("A child at the window pressed her nose to the glass and tried to imagine the whole scene: "
                     "who was there, why it was happening, and what would come next.")
        parts.append(rng.choice(_REFLECTIONS))
        parts.append(rng.choice(_ENDINGS).format(pron="she", pron2="she"))
    return " ".join(parts)


# --------------------------------------------------------------------------- instruction prompts

_W = "<Speech><SpeechHere></Speech>"
# task -> instruction templates (the official prompts JSON); the first one of each task is the
# official wording, used for deterministic evaluation.
PROMPTS: dict[str, list[str]] = {
    "asr": [
        f"{_W} Recognize the speech and give me the transcription.",
        f"{_W} Transcribe the speech in this audio.",
        f"{_W} Please write down exactly what is said.",
        f"{_W} What does the speaker say? Give me the exact words.",
        f"{_W} Listen to the audio and transcribe the spoken words.",
        f"{_W} Can you recognize the speech and write it down?",
    ],
    "audiocaption": [
        f"{_W} Please describe the audio.",
        f"{_W} Describe what you hear in one sentence.",
        f"{_W} Please write down what you hear in the audio.",
        f"{_W} Write a short caption for this audio clip.",
        f"{_W} What is happening in this recording?",
        f"{_W} Can you briefly describe this audio?",
    ],
    "QA": [
        f"{_W} {{}}",
        f"{_W} Listen to the audio and answer the question. {{}}",
        f"{_W} Answer the question about the audio briefly. {{}}",
        f"{_W} Question: {{}} Answer based on what you hear.",
    ],
    "speech_query": [
        f"{_W} Please answer the question in the audio.",
        f"{_W} Listen to the spoken question and answer it.",
        f"{_W} Answer the question you hear, briefly.",
        f"{_W} Someone asks a question in this audio. What is the answer?",
        f"{_W} Respond to the spoken question.",
    ],
    "audio_story_telling": [
        f"{_W} Based on the audio, write a story in detail. Your story should be highly related to the audio.",
        f"{_W} Use your imagination to write a detailed story about what you hear.",
        f"{_W} Write a long story inspired by this audio.",
        f"{_W} Listen to the audio and tell a detailed story about it.",
    ],
}
