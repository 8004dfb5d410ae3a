"""Varied natural wordings of spoken voice-assistant requests (salmonn-mini training data).

The request bank in :mod:`devkit.assistant_bank` words every action with a handful of fixed
templates ("Set a {label} timer for {d}.", "Take a note: {x}.", ...), and a model trained on it
learns the templates rather than the language. This module generates the same actions
(``set_timer``, ``add_note``, ``list_timers``, ``read_notes``) and plain conversational turns
that must not trigger any action (``chat``) in many other wordings: casual, polite, terse,
indirect, with fillers, with the duration or label first or last, as questions or imperatives.

The frames and contents here were written independently of the evaluation requests and repeat
none of the assistant bank's templates. Everything here is training data only.

All spoken text is written out in words (numbers via :func:`devkit.text_bank.number_words`), so
the sentence is exactly what a synthesiser says; a note's ``text`` is the lowercased content as
spoken inside the sentence, so it can be scored by word error rate.
"""

from __future__ import annotations

import random
import re
from typing import Callable

from devkit.assistant_bank import Request, spoken_timer_args
from devkit.text_bank import number_words

KIND_WEIGHTS = {"set_timer": 0.34, "add_note": 0.30, "list_timers": 0.10, "read_notes": 0.10, "chat": 0.16}

# --------------------------------------------------------------------------- timers

TIMER_LABELS = [
    "pasta", "rice", "eggs", "cake", "bread", "cookies", "pizza", "tea", "coffee", "soup", "roast",
    "potatoes", "chicken", "brownies", "muffins", "steak", "noodles", "oatmeal", "popcorn", "lasagna",
    "pie", "vegetables", "dough", "stew", "fish", "curry", "pancakes", "garlic bread", "fries",
    "laundry", "washing", "dryer", "dishes", "ironing", "dog walk", "watering", "hair dye",
    "face mask", "bath", "workout", "run", "plank", "push ups", "stretching", "yoga", "warm up",
    "intervals", "cool down", "homework", "reading", "study session", "revision", "essay",
    "piano practice", "meditation", "nap", "break", "medicine", "eye drops", "inhaler", "pills",
    "parking", "parking meter", "phone call", "meeting", "interview", "video call", "bus", "train",
    "school run", "pickup", "bedtime", "screen time", "lunch break", "sauna", "game",
]

TIMER_FRAMES_NO_LABEL = [
    "Count down {d}.",
    "Could you count down {d} for me?",
    "I need a timer for {d}.",
    "Give me a {a} timer.",
    "Set a {a} timer, please.",
    "Start a {a} countdown.",
    "Time {d} for me, please.",
    "Tell me when {d} is up.",
    "Let me know once {d} is up.",
    "Ping me in {d}.",
    "Buzz me in {d}, would you?",
    "Alert me in {d}.",
    "Set me a timer for {d}, would you?",
    "Could you start the clock for {d}?",
    "Put a timer on for {d}.",
    "I'd like a timer for {d}, please.",
    "Can you time {d}?",
    "Start counting down from {d}.",
    "Would you mind setting a timer for {d}?",
    "Go ahead and set a timer for {d}.",
    "Set the timer to {d}.",
    "{d} on the timer, please.",
    "{d} on the clock, starting now.",
    "In {d}, give me a shout.",
    "Can I get a {a} timer?",
    "Timer, {d}.",
    "I need {d} on a timer.",
    "Run a timer for {d}.",
    "Just set a quick timer for {d}.",
    "Countdown for {d}, please.",
    "Make a timer for {d}.",
    "Let's do a {a} timer.",
    "Could you please put on a {a} timer?",
    "Let me know in {d}.",
    "Start the timer, {d}.",
    "{a} timer, go.",
]

TIMER_FRAMES_LABEL = [
    "Set a timer for the {l}, {d}.",
    "{l} timer, {d}.",
    "Time the {l} for {d}.",
    "The {l} {needs} {d}, can you time it?",
    "Start a {a} timer for the {l}.",
    "Could you time my {l}? {d}.",
    "Count down {d} for the {l}.",
    "Start a timer for {d} and call it {l}.",
    "Set a timer called {l} for {d}.",
    "I need a {l} timer for {d}.",
    "Give me {d} for the {l}.",
    "Let me know in {d} so I can check the {l}.",
    "Can you set a {a} {l} timer?",
    "{d} for the {l}, please.",
    "Put {d} on the clock for the {l}.",
    "Give me a shout in {d} for the {l}.",
    "New timer, {d}, label it {l}.",
    "Could you start a {l} timer? {d}, please.",
    "Timer for the {l}: {d}.",
    "For the {l}, set {d}.",
    "{a} timer for my {l}.",
    "My {l} {needs} {d}. Set a timer, please.",
    "Please time my {l}, {d}.",
    "Start {d} for the {l}, would you?",
    "Countdown for the {l}, {d}.",
    "Set up a timer named {l} for {d}.",
    "Would you time {d} for the {l}?",
    "I've got {d} left on the {l}, can you track it?",
]

# --------------------------------------------------------------------------- notes

NOTE_ACTIONS = [
    "call Sam about the weekend", "pick up the dry cleaning", "email the landlord about the heating",
    "renew my passport", "book the car in for a service", "send Grandma a thank you card",
    "take the bins out on Thursday", "cancel the gym membership", "ring the vet about the cat",
    "pick up the kids at four", "order more printer ink", "fill up the car with petrol",
    "back up the laptop", "change the bed sheets", "defrost the freezer",
    "get a birthday present for Tom", "text Priya about dinner", "reply to the school about the trip",
    "sort out the recycling", "feed the cat next door on Sunday", "check the smoke alarm batteries",
    "wash the dog", "post the parcel to Anna", "return the jacket to the shop",
    "mow the lawn on Saturday", "put the chicken in the fridge", "take my vitamins every morning",
    "print the boarding passes", "charge the camera battery", "bring a dish to the potluck",
    "look up flights to Lisbon", "ask Ben about the ladder", "call the insurance company",
    "make a doctor appointment for next week", "water the herbs on the balcony",
    "clean out the gutters", "buy a gift for the office party", "pay the parking fine",
    "top up the bus card", "renew the library books", "finish the report by Friday",
    "tidy the spare room before the guests arrive", "schedule a call with the accountant",
    "send the invoice to the client", "pick up the prescription from the pharmacy",
    "get the bike tyres pumped up", "bake a cake for the school fair", "move the car before nine",
    "update the address on my bank account", "buy stamps at the post office",
    "call Dad on his birthday", "wish Lucy good luck for her exam",
    "practise the speech for the wedding", "clear out the fridge", "take the old sofa to the tip",
    "order a new phone charger", "hang the pictures in the hallway",
    "take the car for its inspection", "ask the neighbours to collect the post",
    "send flowers to Aunt Rose", "check in for the flight tomorrow", "buy a card for Mum",
    "get the suit dry cleaned", "look into a new phone plan", "write back to Maria",
    "fix the squeaky door hinge", "replace the hallway light bulb",
    "sign the permission slip for school", "bring the umbrella back to Jess",
    "set up the new printer", "drop off the donations at the charity shop",
    "make soup for the week", "book a vet appointment for the dog",
    "call the council about the broken streetlight", "clean the oven before Sunday",
    "start packing for the holiday", "check the tyre pressure",
    "confirm the booking for Saturday night", "get the kids new school shoes",
    "thank Omar for the lift", "pay Chris back for the concert tickets",
    "ask the landlord about the damp patch", "call the garage about the brakes",
    "invite the Parkers over for dinner", "sharpen the kitchen knives",
]

NOTE_FACTS = [
    "the spare key is under the blue flower pot", "the car is parked on level three",
    "the boiler needs servicing", "the dentist appointment is on Tuesday at ten",
    "the wifi router is in the hall cupboard", "the passport is in the top drawer",
    "the meeting moved to half past two", "the plumber is coming on Wednesday morning",
    "the parcel should arrive on Friday", "the school play is next Thursday evening",
    "Mia is allergic to peanuts", "the recycling goes out every other Monday",
    "the tent is in the loft", "the warranty for the fridge runs out in March",
    "the hairdresser is booked for Saturday at eleven", "the lawn mower needs new blades",
    "the kitchen tap is dripping again", "the book club meets on the first Tuesday of the month",
    "the camera charger is in the blue bag", "the bike lock is in the shed",
    "the dog had his worming tablet today", "the bathroom needs a new tile",
    "the quote for the roof was too high", "Jamie takes his tea without sugar",
    "the spare batteries are in the kitchen drawer", "the wedding is on the twelfth of June",
    "the car insurance renews in April", "the smoke alarm in the hall keeps beeping",
    "the left back tyre is a bit flat", "the train leaves at quarter past eight",
    "the bin collection moved to Friday", "the cat needs her booster in May",
    "the Christmas lights are in the garage", "the heating comes on at six",
    "the good pizza place is on Mill Road", "the blue paint was called ocean mist",
    "the shed door does not lock properly", "the printer is out of black ink",
    "Leo starts nursery in September", "the concert tickets are in my email",
    "the freezer is full of bread", "the gardener comes every second Thursday",
    "Grandpa likes the crossword from the Sunday paper", "parents evening is on the fourth",
    "my reading glasses are in the car", "the new neighbours are called Ana and Luis",
    "the picnic blanket is in the boot", "the garden hose has a leak",
    "the washing machine makes a noise on the spin cycle", "the library books are due back on Monday",
    "the fuse box is behind the coat rack", "the holiday starts on the twentieth",
    "the smoke alarm battery was changed today", "the builder said he can start in two weeks",
    "the piano lesson moved to Wednesday", "the back gate needs a new latch",
]

NOTE_IDEAS = [
    "a herb garden by the back door", "a surprise party for Dad", "a weekend trip to the coast",
    "a reading corner in the spare room", "a podcast about local history",
    "a bird feeder for the garden", "a family quiz night", "painting the fence dark green",
    "a photo book of the holiday", "learning to play the ukulele", "a vegetable patch by the shed",
    "a bake sale for the school roof", "a picnic by the lake next month",
    "a board game evening with the neighbours",
]

NOTE_ITEMS = [
    "oat milk", "dishwasher tablets", "a birthday card for Dad", "bin bags", "paper towels",
    "toothpaste", "frozen peas", "a bag of potatoes", "sunscreen", "light bulbs", "dog food",
    "cat litter", "orange juice", "washing up liquid", "kitchen roll", "bananas",
    "a loaf of sourdough", "cereal", "shampoo", "plasters", "tea bags", "olive oil", "fresh basil",
    "a tin of tomatoes", "greek yogurt", "butter", "lemons", "spinach", "peanut butter", "tissues",
    "baking powder", "a new sponge", "coffee filters", "a pack of pens", "wrapping paper",
    "a bottle of wine for Saturday", "sparkling water", "porridge oats", "garlic", "chicken thighs",
    "laundry detergent", "fabric softener", "ice cream", "avocados", "birthday candles",
]

NOTE_CONTENTS = {"action": NOTE_ACTIONS, "fact": NOTE_FACTS, "idea": NOTE_IDEAS, "item": NOTE_ITEMS}
_ANY = ("action", "fact", "idea", "item")

# (frame, note text written from the content ``{x}``, content kinds the frame fits)
NOTE_FRAMES: list[tuple[str, str, tuple[str, ...]]] = [
    ("Remind me to {x}.", "{x}", ("action",)),
    ("Don't let me forget to {x}.", "{x}", ("action",)),
    ("Jot down that I need to {x}.", "{x}", ("action",)),
    ("Can you write down that I have to {x}?", "{x}", ("action",)),
    ("I have to {x}, can you make a note of that?", "{x}", ("action",)),
    ("Could you add a note to {x}?", "{x}", ("action",)),
    ("Add to my notes that I should {x}.", "{x}", ("action",)),
    ("I must remember to {x}. Write that down, please.", "{x}", ("action",)),
    ("Please remind me that I need to {x}.", "{x}", ("action",)),
    ("Can you remember for me that I need to {x}?", "{x}", ("action",)),
    ("Oh, before I forget, I need to {x}. Note that down.", "{x}", ("action",)),
    ("Stick a note in there to {x}.", "{x}", ("action",)),
    ("Put {x} on my to do list.", "{x}", ("action",)),
    ("I should {x}. Can you note that?", "{x}", ("action",)),
    ("Don't forget, I've got to {x}.", "{x}", ("action",)),
    ("Add a reminder to {x}.", "{x}", ("action",)),
    ("Make sure I remember to {x}.", "{x}", ("action",)),
    ("Could you remind me to {x} later?", "{x}", ("action",)),
    ("On my to do list, {x}.", "{x}", ("action",)),
    ("Write down {x}, please.", "{x}", ("action", "item")),
    ("Note to self: {x}.", "{x}", _ANY),
    ("Make a note, {x}.", "{x}", _ANY),
    ("Write this down: {x}.", "{x}", _ANY),
    ("Save a note: {x}.", "{x}", _ANY),
    ("New note: {x}.", "{x}", _ANY),
    ("Memo to self: {x}.", "{x}", _ANY),
    ("Create a note that says {x}.", "{x}", _ANY),
    ("Jot this down for me: {x}.", "{x}", _ANY),
    ("Take this down: {x}.", "{x}", _ANY),
    ("Add a note saying {x}.", "{x}", _ANY),
    ("Quick note: {x}.", "{x}", _ANY),
    ("Save this in my notes: {x}.", "{x}", _ANY),
    ("Let's make a note: {x}.", "{x}", _ANY),
    ("Jot down that {x}.", "{x}", ("fact",)),
    ("Make a note that {x}.", "{x}", ("fact",)),
    ("Write down that {x}.", "{x}", ("fact",)),
    ("Can you remember that {x}?", "{x}", ("fact",)),
    ("Just so I don't forget, {x}. Write that down.", "{x}", ("fact",)),
    ("Please note that {x}.", "{x}", ("fact",)),
    ("For the record, {x}. Save that as a note.", "{x}", ("fact",)),
    ("Could you write down that {x}?", "{x}", ("fact",)),
    ("I want to remember that {x}, so make a note.", "{x}", ("fact",)),
    ("Remember for me that {x}.", "{x}", ("fact",)),
    ("Put it in my notes that {x}.", "{x}", ("fact",)),
    ("Keep a note that {x}.", "{x}", ("fact",)),
    ("Note down that {x}.", "{x}", ("fact",)),
    ("I have an idea, write it down: {x}.", "{x}", ("idea",)),
    ("Idea for later: {x}.", "{x}", ("idea",)),
    ("Save this idea: {x}.", "{x}", ("idea",)),
    ("Jot down an idea: {x}.", "{x}", ("idea",)),
    ("Make a note of this idea: {x}.", "{x}", ("idea",)),
    ("Put {x} on the shopping list.", "{x}", ("item",)),
    ("Add {x} to my shopping list.", "{x}", ("item",)),
    ("We need {x}, write it down.", "{x}", ("item",)),
    ("Note that we need {x}.", "{x}", ("item",)),
    ("Jot down {x} for the shopping.", "{x}", ("item",)),
    ("Remind me to pick up {x}.", "pick up {x}", ("item",)),
    ("Shopping list: {x}.", "{x}", ("item",)),
    ("Can you add {x} to the list?", "{x}", ("item",)),
    ("I need to buy {x}, make a note.", "buy {x}", ("item",)),
    ("Don't let me forget to get {x}.", "get {x}", ("item",)),
    ("We're running low on {x}. Add it to the list.", "{x}", ("item",)),
    ("Next time I'm at the shops, I need {x}. Note that.", "{x}", ("item",)),
    ("Write down that I need {x}.", "{x}", ("item",)),
]

# --------------------------------------------------------------------------- listing and reading

LIST_TIMER_FRAMES = [
    "How much time is left?",
    "How long is left on the timer?",
    "What's running right now?",
    "Any timers going?",
    "How are my timers doing?",
    "Check my timers, please.",
    "Is there a timer on?",
    "What timers have I got?",
    "How long until the timer goes off?",
    "When does my timer go off?",
    "Give me a timer update.",
    "What's left on the clock?",
    "Tell me about my timers.",
    "Are there any timers set?",
    "How many timers do I have going?",
    "Can you check on my timers?",
    "Read out my timers.",
    "What's the status of my timers?",
    "Do I have anything counting down?",
    "How much longer on the timer?",
    "Where are we on the timer?",
    "Is my timer still running?",
    "What timers did I set?",
    "Which timers are still going?",
    "Any countdowns running?",
    "Tell me how long is left on my timers.",
    "What have I got on the clock?",
    "Could you list the active timers?",
    "How long is left on the {l}?",
    "How much longer for the {l}?",
    "Is the {l} timer still going?",
    "How's the {l} timer doing?",
]

READ_NOTE_FRAMES = [
    "Go over what I wrote.",
    "What notes do I have?",
    "Read back my notes.",
    "What's on my list?",
    "Can I hear my notes?",
    "Tell me what I noted down.",
    "What did I ask you to remember?",
    "Read out my notes, please.",
    "Let's hear the notes.",
    "What have I jotted down?",
    "Have I saved any notes?",
    "Do I have any notes?",
    "Remind me what I wrote down.",
    "What's on my to do list?",
    "Read me the shopping list.",
    "Play back my notes.",
    "What was that thing I told you to note?",
    "Could you go through my notes?",
    "Read everything I've saved.",
    "What's in the notes so far?",
    "Let me hear what I wrote down.",
    "Any notes for me?",
    "Run through my notes, please.",
    "What did I tell you to write down?",
    "Give me a recap of my notes.",
    "Check my notes for me.",
    "What notes have I got?",
    "Open my notes and read them.",
    "Read me the last note.",
    "Tell me my notes.",
    "What's written in my notes?",
]

# --------------------------------------------------------------------------- chat

CHAT: list[tuple[str, str]] = [
    ("Hi there, assistant.", "Hello! What can I do for you?"),
    ("Good morning to you.", "Good morning! How can I help?"),
    ("Hey, how are you?", "I'm doing well, thanks for asking."),
    ("Hello, is anyone there?", "Yes, I'm here. What do you need?"),
    ("Good evening, how's it going?", "Good evening! All good here."),
    ("How's your day going?", "Pretty good, thanks. How about yours?"),
    ("Thank you so much.", "You're very welcome."),
    ("Thanks, that's great.", "Glad I could help."),
    ("Perfect, thanks a lot.", "Any time."),
    ("Great, thank you.", "You're welcome."),
    ("Cheers, that helps.", "Happy to help."),
    ("Thanks for your help today.", "It was my pleasure."),
    ("I'm so tired today.", "Sorry to hear that, I hope you get some rest."),
    ("I had a long day at work.", "That sounds tiring, take it easy tonight."),
    ("I just got back from a run.", "Nice work, well done."),
    ("I love cooking on weekends.", "That sounds lovely."),
    ("This song is really good.", "Glad you're enjoying it."),
    ("The weather is awful today.", "Sorry it's so grim out there."),
    ("It's such a nice day outside.", "Lovely, I hope you get to enjoy it."),
    ("Goodnight, see you tomorrow.", "Goodnight, sleep well."),
    ("Bye for now.", "Bye, talk soon."),
    ("See you later, assistant.", "See you later."),
    ("I'm off to bed.", "Sleep well."),
    ("Never mind, it's fine.", "Okay, no problem."),
    ("Forget it, I'm good.", "Alright, no worries."),
    ("That's all for now.", "Alright, let me know if you need anything."),
    ("Nothing, sorry, my mistake.", "No problem at all."),
    ("Oops, wrong button.", "No worries."),
    ("Can you hear me okay?", "Yes, I can hear you."),
    ("Are you still there?", "Yes, I'm still here."),
    ("Are you listening to me?", "Yes, I'm listening."),
    ("I'm bored out of my mind.", "Maybe a short walk would help."),
    ("Wish me luck today.", "Good luck, you've got this."),
    ("It's my birthday today.", "Happy birthday!"),
    ("I'm heading out now.", "Have a good time."),
    ("I'm home, finally.", "Welcome back."),
    ("I got the job!", "Congratulations, that's wonderful news!"),
    ("Sorry, I was talking to someone else.", "No problem."),
    ("You're really helpful.", "Thank you, happy to help."),
    ("That was quick, nice one.", "Glad to hear it."),
    ("Good job, well done.", "Thanks!"),
    ("Hmm, let me think.", "Take your time."),
    ("Hold on a second.", "Sure, I'll wait."),
    ("Just a moment, please.", "Of course, take your time."),
    ("I don't need a timer right now.", "Okay, just ask when you do."),
    ("No need to write anything down.", "Alright, I won't."),
    ("I'll write it down myself.", "Sounds good."),
    ("I'm feeling a bit stressed.", "Sorry to hear that. Try to take a breather."),
    ("I'm in a great mood today.", "That's great to hear!"),
    ("The kids are finally asleep.", "Enjoy the peace and quiet."),
    ("I finished my exams today.", "Congratulations, well done!"),
    ("I think I'm getting a cold.", "Sorry to hear that, look after yourself."),
    ("Dinner was delicious tonight.", "Glad you enjoyed it."),
    ("I'm just testing you.", "Alright, I'm here and working."),
    ("You're funny, you know that?", "Thanks, I try."),
    ("I love you, assistant.", "That's very kind of you."),
    ("I'm so hungry right now.", "Sounds like it's time for a snack."),
    ("Ugh, Mondays are the worst.", "Hang in there."),
    ("Finally, it's the weekend.", "Enjoy your weekend!"),
    ("I'm having a lazy day.", "Sounds well deserved."),
    ("It's been a crazy week.", "Sounds like you could use a rest."),
    ("I'm going for a walk.", "Enjoy your walk."),
    ("Okay, got it, thanks.", "Great."),
    ("Sounds good to me.", "Great."),
    ("No, that's everything, thanks.", "Alright, have a good one."),
    ("Sorry, I didn't mean to wake you.", "No problem, I'm here if you need me."),
    ("Let's talk later.", "Sure, talk later."),
    ("I'm just saying hello.", "Hello to you too!"),
    ("You did a great job earlier.", "Thanks, glad it worked out."),
    ("My team won last night.", "Nice, congratulations!"),
    ("I can't sleep tonight.", "Sorry to hear that, I hope you can rest soon."),
    ("Well, that didn't go to plan.", "Sorry about that, there's always next time."),
    ("I'm really nervous about tomorrow.", "You'll do great."),
    ("Thanks anyway, never mind.", "No problem."),
    ("Good afternoon, assistant.", "Good afternoon! How can I help?"),
    ("Have a nice evening.", "You too!"),
    ("What a day it's been.", "Sounds like a lot. Time to relax."),
    ("I'm back from my holiday.", "Welcome back, I hope it was lovely."),
]

# --------------------------------------------------------------------------- generation

_FILLERS = ["Hey, ", "Um, ", "Okay, ", "Oh, ", "So, ", "Alright, ", "Right, ", "Uh, ", "Hey there, ",
            "Quick one, "]
_CHAT_FILLERS = ["Oh, ", "Well, ", "Okay, ", "Hey, ", "Um, ", "Alright, ", "Ah, "]
_LIST_FILLERS = _FILLERS + ["Sorry, ", "Quick question, "]

FRAMES_COUNT: dict[str, int] = {
    "set_timer": len(TIMER_FRAMES_NO_LABEL) + len(TIMER_FRAMES_LABEL),
    "add_note": len(NOTE_FRAMES),
    "list_timers": len(LIST_TIMER_FRAMES),
    "read_notes": len(READ_NOTE_FRAMES),
    "chat": len(CHAT),
}


def _duration(rng: random.Random) -> tuple[int, str, str | None]:
    """(seconds, spoken duration, adjective form such as "ten minute" or None)."""
    band = rng.choices(["sec", "short", "mid", "compound", "hour"], [0.18, 0.28, 0.30, 0.12, 0.12])[0]
    if band == "sec":
        s = rng.choice([5, 10, 15, 20, 25, 30, 35, 40, 45, 50, 55])
        spoken = [f"{number_words(s)} seconds"] + (["half a minute"] if s == 30 else [])
        return s, rng.choice(spoken), f"{number_words(s)} second"
    if band == "short":
        m = rng.randint(1, 10)
        if m == 1:
            return 60, rng.choice(["a minute", "one minute", "sixty seconds"]), rng.choice(["one minute", "sixty second"])
        spoken = [f"{number_words(m)} minutes"] + (["a couple of minutes"] if m == 2 else [])
        return m * 60, rng.choice(spoken), f"{number_words(m)} minute"
    if band == "mid":
        m = rng.choice([12, 15, 15, 20, 20, 25, 30, 30, 35, 40, 45, 45, 50] + list(range(11, 60)))
        spoken = [f"{number_words(m)} minutes"]
        adjective = [f"{number_words(m)} minute"]
        if m == 15:
            spoken += ["a quarter of an hour", "a quarter hour"]
        elif m == 30:
            spoken += ["half an hour", "a half hour"]
            adjective += ["half hour"]
        elif m == 45:
            spoken += ["three quarters of an hour"]
        return m * 60, rng.choice(spoken), rng.choice(adjective)
    if band == "compound":
        choice = rng.randrange(3)
        if choice == 0:
            return 90, rng.choice(["ninety seconds", "a minute and a half", "one and a half minutes"]), "ninety second"
        if choice == 1:
            m = rng.randint(2, 9)
            return m * 60 + 30, rng.choice([f"{number_words(m)} and a half minutes",
                                             f"{number_words(m)} minutes and thirty seconds"]), None
        m, s = rng.randint(1, 5), rng.choice([10, 15, 20, 40, 45])
        minutes = rng.choice(["a minute", "one minute"]) if m == 1 else f"{number_words(m)} minutes"
        return m * 60 + s, f"{minutes} and {number_words(s)} seconds", None
    minutes, spoken, adjective = rng.choice([
        (60, ["an hour", "one hour", "sixty minutes"], ["one hour", "sixty minute"]),
        (90, ["an hour and a half", "ninety minutes", "one and a half hours"], ["ninety minute"]),
        (120, ["two hours"], ["two hour"]),
        (75, ["an hour and fifteen minutes", "an hour and a quarter"], []),
        (70, ["an hour and ten minutes"], []),
        (80, ["an hour and twenty minutes"], []),
        (100, ["an hour and forty minutes"], []),
        (105, ["an hour and forty five minutes", "an hour and three quarters"], []),
        (110, ["an hour and fifty minutes"], []),
    ])
    return minutes * 60, rng.choice(spoken), rng.choice(adjective) if adjective else None


def _fix_articles(text: str) -> str:
    def repl(match: re.Match) -> str:
        word = match.group(2).lower()
        vowel = (word[0] in "aeio" and not word.startswith("one")) or word.startswith(("eight", "eleven"))
        return f"{match.group(1)}{'n' if vowel else ''} {match.group(2)}"

    return re.sub(r"\b([Aa]) (\w+)", repl, text)


def _finish(text: str) -> str:
    text = text[:1].upper() + text[1:]
    return re.sub(r"([.?!] )(\w)", lambda m: m.group(1) + m.group(2).upper(), text)


def _with_filler(rng: random.Random, frame: str, fillers: list[str], p: float) -> str:
    if rng.random() >= p or frame.split(",")[0] in {"Oh", "Hey", "Um", "Okay", "Uh", "Alright", "Right", "Ugh", "Hmm", "Well", "Ah", "Oops"}:
        return frame
    first = frame.split(" ", 1)[0]
    if not (first == "I" or first.startswith("I'")):
        frame = frame[:1].lower() + frame[1:]
    return rng.choice(fillers) + frame


def _timer(rng: random.Random) -> Request:
    seconds, spoken, adjective = _duration(rng)
    labelled = rng.random() < 0.55
    frames = TIMER_FRAMES_LABEL if labelled else TIMER_FRAMES_NO_LABEL
    usable = [i for i, f in enumerate(frames) if adjective is not None or "{a}" not in f]
    index = rng.choice(usable)
    label = rng.choice(TIMER_LABELS) if labelled else None
    frame = _with_filler(rng, frames[index], _FILLERS, 0.25)
    plural = label is not None and label.endswith("s") and label != "bus"
    text = _finish(_fix_articles(frame.format(d=spoken, a=adjective, l=label, needs="need" if plural else "needs")))
    args = spoken_timer_args(seconds, text, label)
    frame_id = f"{'l' if labelled else 'n'}{index}"
    return Request(text, "set_timer", args, key=f"wording|timer|{seconds}|{label or '-'}|{frame_id}")


def _note(rng: random.Random) -> Request:
    index = rng.randrange(len(NOTE_FRAMES))
    frame, note, kinds = NOTE_FRAMES[index]
    content = rng.choice(NOTE_CONTENTS[rng.choice(kinds)])
    text = _finish(_with_filler(rng, frame, _FILLERS, 0.25).format(x=content))
    if len(text.split()) > 20:
        text = _finish(frame.format(x=content))
    note_text = note.format(x=content).lower()
    return Request(text, "add_note", {"text": note_text}, key=f"wording|note|{note_text}|{index}")


def _fixed(frames: list[str], tool: str) -> Callable[[random.Random], Request]:
    def make(rng: random.Random) -> Request:
        index = rng.randrange(len(frames))
        frame = _with_filler(rng, frames[index], _LIST_FILLERS, 0.35)
        text = _finish(frame.format(l=rng.choice(TIMER_LABELS)))
        return Request(text, tool, {}, key=f"wording|{tool}|{index}")

    return make


def _chat(rng: random.Random) -> Request:
    index = rng.randrange(len(CHAT))
    utterance, answer = CHAT[index]
    text = _finish(_with_filler(rng, utterance, _CHAT_FILLERS, 0.3))
    return Request(text, None, {}, answer=answer, key=f"wording|chat|{index}")


_MAKERS: dict[str, Callable[[random.Random], Request]] = {
    "set_timer": _timer,
    "add_note": _note,
    "list_timers": _fixed(LIST_TIMER_FRAMES, "list_timers"),
    "read_notes": _fixed(READ_NOTE_FRAMES, "read_notes"),
    "chat": _chat,
}


def wording_requests(n: int, seed: int) -> list[Request]:
    """``n`` requests, deterministic in ``seed``, distinct texts, kinds drawn by :data:`KIND_WEIGHTS`.

    A kind whose wordings run out (no new text in many tries) stops being drawn; a ``ValueError``
    is raised if every kind runs out before ``n`` requests.
    """
    rng = random.Random(f"{seed}|wording")
    active = list(KIND_WEIGHTS)
    seen: set[str] = set()
    out: list[Request] = []
    while len(out) < n:
        if not active:
            raise ValueError(f"only {len(out)} distinct wordings available, asked for {n}")
        kind = rng.choices(active, [KIND_WEIGHTS[k] for k in active])[0]
        for _ in range(200):
            request = _MAKERS[kind](rng)
            if request.text not in seen:
                seen.add(request.text)
                out.append(request)
                break
        else:
            active.remove(kind)
    return out
