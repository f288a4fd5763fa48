"""Procedural instruction-following task for the embedded default policy.

Pure Python on purpose: the web server and the simulated-annotator client
import this module, and neither should pay for importing torch.

Five task families (animals, hobbies, food, cities, colors), each with 30
subjects, one or two hand-written facts per subject and small shared phrase
pools for the rest. A response is assembled from an opener, a body and a
closer, and nine qualities are drawn independently (about 50% each by default):

    on_topic       the body talks about the prompt's subject, not another one
    helpful        the body gives facts instead of an evasion
    polite         a friendly opener/closer instead of nothing or a brusque one
    complete       the text ends properly instead of stopping mid-sentence
    concise        no padding sentence ("Let me think about this.")
    no_repetition  no sentence said twice
    specific       the body states the subject's own fact ("cannot fly but swims
                   very fast"), not only phrases it shares with other subjects
    correct        every fact is true of the subject, instead of one shared
                   attribute taken from another subject ("lives in hot, dry deserts")
    structured     the body is a numbered list instead of prose

The last three describe facts and their layout, so they apply to helpful
bodies only: an evasion's labels leave them out (ANSWER_QUALITIES). An
off-topic body is specific and correct or not about the subject it talks
about, which keeps those two independent of on_topic.

The balanced mixture is the point: a policy trained on it samples every
combination, so there is something for preference learning and PPO to shift,
and a preference for better answers (specific, correct, concise) can be met
by better answers, not only by evasions.

`features()` judges ANY text with simple string rules (it does not need the
generation labels), so it works on model samples too; `PREFERENCES` turns
it into scripted annotators, one per quality and an overall mix.
"""

from __future__ import annotations

import functools
import random
import re
from dataclasses import dataclass, field

# ---------------------------------------------------------------------------
# Subject tables. Each subject has one or two facts of its own; the other
# columns are keys into small shared phrase pools (still true of the
# subject). A policy trained for a few CPU minutes learns a few hundred
# distinct phrases well, not a thousand, and half-learned phrases are what
# make samples unreadable. No subject's text names another subject (a test
# checks this), otherwise "off-topic" would be ambiguous for the judge.

HABITATS = {
    "savanna": "the grasslands of Africa",
    "forest": "forests and woodlands",
    "jungle": "tropical rainforests",
    "ocean": "the open ocean",
    "ice": "cold and icy coasts",
    "desert": "hot, dry deserts",
    "river": "rivers and lakes",
    "garden": "gardens and parks",
    "farm": "farms and open fields",
    "bush": "the bush of Australia",
    "mountain": "mountains and cliffs",
}
DIETS = {
    "meat": "meat",
    "fish": "fish",
    "leaves": "grass and leaves",
    "insects": "insects and worms",
    "fruit": "fruit and seeds",
    "nuts": "nuts and seeds",
    "prey": "small animals",
    "nectar": "nectar from flowers",
    "anything": "almost anything it can find",
}
ANIMALS = {  # name: (trait, habitat, diet, fact)
    "lion": ("powerful", "savanna", "meat", "lives in a family group called a pride"),
    "elephant": ("gentle", "savanna", "leaves", "uses its long trunk to drink and to say hello"),
    "penguin": ("playful", "ice", "fish", "cannot fly but swims very fast"),
    "dolphin": ("clever", "ocean", "fish", "talks to its friends with clicks and whistles"),
    "owl": ("quiet", "forest", "prey", "can turn its head almost all the way around"),
    "fox": ("clever", "forest", "prey", "uses its bushy tail to keep warm"),
    "kangaroo": ("strong", "bush", "leaves", "carries its baby in a pouch"),
    "giraffe": ("tall", "savanna", "leaves", "has a very long neck for reaching high branches"),
    "zebra": ("social", "savanna", "leaves", "has stripes that are unique to each animal"),
    "panda": ("peaceful", "forest", "leaves", "spends most of the day eating bamboo"),
    "koala": ("sleepy", "bush", "leaves", "sleeps up to twenty hours a day"),
    "wolf": ("loyal", "forest", "meat", "hunts and travels with its pack"),
    "eagle": ("sharp-eyed", "mountain", "prey", "can spot its food from far away"),
    "turtle": ("patient", "river", "leaves", "carries a hard shell that protects it"),
    "rabbit": ("quick", "farm", "leaves", "can hop very fast to escape danger"),
    "squirrel": ("busy", "garden", "nuts", "hides nuts to eat during the winter"),
    "octopus": ("smart", "ocean", "prey", "has eight arms and can change its skin pattern"),
    "shark": ("fearsome", "ocean", "fish", "has several rows of sharp teeth"),
    "whale": ("huge", "ocean", "fish", "sings long songs that travel through the water"),
    "bee": ("hardworking", "garden", "nectar", "helps flowers grow by carrying pollen"),
    "frog": ("jumpy", "river", "insects", "starts life as a tadpole in the water"),
    "horse": ("strong", "farm", "leaves", "can sleep while standing up"),
    "camel": ("tough", "desert", "leaves", "can go many days without drinking water"),
    "parrot": ("colorful", "jungle", "fruit", "can learn to copy human words"),
    "otter": ("playful", "river", "fish", "holds hands with a friend while it sleeps"),
    "beaver": ("busy", "river", "leaves", "builds dams out of sticks and mud"),
    "deer": ("graceful", "forest", "leaves", "grows new antlers every year"),
    "gorilla": ("gentle", "jungle", "fruit", "lives in a family group led by a strong adult"),
    "cheetah": ("fast", "savanna", "meat", "is the fastest runner on land"),
    "tiger": ("powerful", "forest", "meat", "is the largest wild cat in the world"),
}

HOBBY_TIPS = (  # general advice, drawn freshly for each response
    "practice a little every day",
    "be patient with yourself at the start",
    "find a friend to learn with",
    "join a local class or club",
    "watch how experienced people do it",
    "set a small goal for each week",
    "take short breaks so you stay fresh",
    "keep notes on your progress",
)
HOBBY_GEAR = {
    "sport": "some comfortable gear and a safe place to practice",
    "outdoor": "sturdy shoes and a small backpack",
    "art": "a few basic supplies and a quiet corner",
    "music": "a little time each day and some songs you love",
    "mind": "a quiet spot and a bit of patience",
    "craft": "a few simple tools and some materials",
    "kitchen": "a mixing bowl, a whisk and an oven",
}
HOBBIES = {  # name: (specific tip, what you need)
    "gardening": ("start with easy plants such as herbs or beans", "outdoor"),
    "running": ("begin with short, slow runs and build up week by week", "sport"),
    "painting": ("let each layer dry before you add the next one", "art"),
    "chess": ("learn a few simple openings and why they work", "mind"),
    "photography": ("pay attention to the light before you take a picture", "art"),
    "guitar": ("practice a few simple chords until they feel easy", "music"),
    "piano": ("practice scales for a few minutes every day", "music"),
    "knitting": ("start with a simple scarf using thick yarn", "craft"),
    "hiking": ("bring more water than you think you need", "outdoor"),
    "swimming": ("focus on slow, steady breathing", "sport"),
    "yoga": ("move slowly and never force a stretch", "sport"),
    "baking": ("measure your ingredients carefully", "kitchen"),
    "cycling": ("check your tire pressure before every ride", "sport"),
    "reading": ("keep a book with you for spare moments", "mind"),
    "writing": ("read your work out loud to find awkward sentences", "art"),
    "drawing": ("sketch simple shapes before you add details", "art"),
    "fishing": ("be patient and stay quiet near the water", "outdoor"),
    "camping": ("practice setting up your tent at home first", "outdoor"),
    "dancing": ("learn the basic steps slowly before adding style", "sport"),
    "singing": ("warm up your voice before you sing", "music"),
    "pottery": ("keep your hands wet while the clay spins", "craft"),
    "birdwatching": ("go out early in the morning when birds are active", "outdoor"),
    "meditation": ("gently bring your attention back to your breath", "mind"),
    "skiing": ("keep your weight forward over your skis", "sport"),
    "surfing": ("watch the waves for a while before you paddle out", "sport"),
    "climbing": ("trust your legs more than your arms", "sport"),
    "sewing": ("practice straight lines on scrap fabric", "craft"),
    "astronomy": ("let your eyes adjust to the dark for twenty minutes", "mind"),
    "journaling": ("write at the same time every day", "mind"),
    "tennis": ("keep your eyes on the ball", "sport"),
}

FOOD_KINDS = {
    "warm": "a warm and filling dish",
    "quick": "a quick and easy meal",
    "sweet": "a sweet treat",
    "fresh": "a fresh and light dish",
    "breakfast": "a popular breakfast",
    "snack": "a tasty snack",
    "comfort": "a classic comfort food",
    "spicy": "a spicy and flavorful dish",
}
COOK_TIPS = (  # general advice, drawn freshly for each response
    "taste it as you go",
    "use fresh ingredients",
    "take your time with it",
    "season it well with salt",
    "serve it right away while it is fresh",
    "cook it on medium heat",
    "make a little extra for tomorrow",
    "follow a simple recipe the first time",
)
FOODS = {  # name: (kind, ingredients)
    "pasta": ("quick", "noodles, garlic, tomatoes and cheese"),
    "pizza": ("comfort", "dough, tomato sauce and cheese"),
    "soup": ("warm", "vegetables, broth and a few herbs"),
    "curry": ("spicy", "onions, spices and vegetables or meat"),
    "salad": ("fresh", "lettuce, cucumber, tomatoes and a simple dressing"),
    "pancakes": ("breakfast", "flour, milk, eggs and a little butter"),
    "sushi": ("fresh", "seasoned rice, seaweed and fresh fish"),
    "tacos": ("quick", "tortillas, beans or meat, and salsa"),
    "omelette": ("breakfast", "eggs, butter and any fillings you like"),
    "risotto": ("warm", "short-grain rice, broth and cheese"),
    "chili": ("spicy", "beans, tomatoes, onions and chili powder"),
    "lasagna": ("comfort", "flat noodles, tomato sauce and cheese"),
    "stir fry": ("quick", "vegetables, soy sauce, garlic and ginger"),
    "dumplings": ("comfort", "flour, water and a filling of meat or vegetables"),
    "burrito": ("quick", "tortillas, rice, beans and cheese"),
    "ramen": ("warm", "wheat noodles, broth and a soft-boiled egg"),
    "muffins": ("sweet", "flour, sugar, eggs and berries"),
    "oatmeal": ("breakfast", "oats, milk and a little honey"),
    "hummus": ("snack", "chickpeas, tahini, lemon juice and garlic"),
    "paella": ("warm", "rice, saffron, vegetables and seafood"),
    "falafel": ("snack", "chickpeas, herbs, onion and spices"),
    "smoothie": ("breakfast", "fruit, yogurt and a splash of juice"),
    "stew": ("warm", "meat, potatoes, carrots and broth"),
    "guacamole": ("snack", "avocados, lime juice, onion and salt"),
    "waffles": ("breakfast", "flour, milk, eggs and butter"),
    "fried rice": ("quick", "cold cooked rice, eggs, peas and soy sauce"),
    "spring rolls": ("snack", "rice paper, vegetables and a dipping sauce"),
    "apple pie": ("sweet", "apples, sugar, cinnamon and pastry"),
    "cheesecake": ("sweet", "cream cheese, sugar, eggs and a biscuit base"),
    "sandwich": ("quick", "bread, cheese, lettuce and a spread"),
}
PLURAL_FOODS = {"pancakes", "tacos", "dumplings", "muffins", "waffles", "spring rolls"}

CITY_DRAWS = {
    "food": "its food and busy markets",
    "museums": "its museums and long history",
    "beaches": "its beaches and sunshine",
    "parks": "its parks and gardens",
    "music": "its music and nightlife",
    "old": "its old streets and bridges",
    "skyline": "its modern skyline",
    "people": "its friendly people",
}
CITIES = {  # name: (country, landmark, what draws visitors)
    "Paris": ("France", "the Eiffel Tower", "museums"),
    "Tokyo": ("Japan", "the busy Shibuya crossing", "skyline"),
    "London": ("England", "Big Ben and the Tower Bridge", "museums"),
    "Rome": ("Italy", "the ancient Colosseum", "old"),
    "Cairo": ("Egypt", "the pyramids of Giza nearby", "food"),
    "Sydney": ("Australia", "its famous Opera House", "beaches"),
    "New York": ("the United States", "the Statue of Liberty", "skyline"),
    "Istanbul": ("Turkey", "the Hagia Sophia", "food"),
    "Moscow": ("Russia", "the Kremlin", "museums"),
    "Berlin": ("Germany", "the Brandenburg Gate", "music"),
    "Madrid": ("Spain", "the Prado Museum", "people"),
    "Beijing": ("China", "the Forbidden City", "museums"),
    "Mumbai": ("India", "the Gateway of India", "food"),
    "Rio de Janeiro": ("Brazil", "the statue of Christ the Redeemer", "beaches"),
    "Toronto": ("Canada", "the CN Tower", "skyline"),
    "Amsterdam": ("the Netherlands", "its old canals", "old"),
    "Venice": ("Italy", "the Grand Canal", "old"),
    "Athens": ("Greece", "the Acropolis", "museums"),
    "Prague": ("the Czech Republic", "the Charles Bridge", "old"),
    "Vienna": ("Austria", "the Schonbrunn Palace", "music"),
    "Bangkok": ("Thailand", "its grand temples", "food"),
    "Seoul": ("South Korea", "the Gyeongbokgung Palace", "skyline"),
    "Mexico City": ("Mexico", "the ancient ruins of Teotihuacan nearby", "food"),
    "Dublin": ("Ireland", "Trinity College", "people"),
    "Lisbon": ("Portugal", "the Belem Tower", "old"),
    "Singapore": ("Southeast Asia", "its gardens by the bay", "food"),
    "Kyoto": ("Japan", "thousands of old temples", "parks"),
    "Barcelona": ("Spain", "the Sagrada Familia", "beaches"),
    "Edinburgh": ("Scotland", "a castle on a hill", "old"),
    "Chicago": ("the United States", "its tall skyline by Lake Michigan", "music"),
}

COLOR_MOODS = {
    "energy": "energy and excitement",
    "calm": "calm and peace",
    "joy": "happiness and warmth",
    "nature": "nature and growth",
    "royal": "royalty and mystery",
    "elegance": "elegance and style",
    "comfort": "comfort and stability",
    "fresh": "freshness and youth",
}
COLOR_USES = (  # drawn freshly for each response
    "clothes",
    "bedroom walls",
    "flags",
    "company logos",
    "party decorations",
    "sports uniforms",
    "cars",
    "greeting cards",
)
COLORS = {  # name: (things of that color, what people link it with)
    "red": ("ripe strawberries and fire trucks", "energy"),
    "blue": ("a clear sky and the deep sea", "calm"),
    "green": ("fresh grass and summer leaves", "nature"),
    "yellow": ("sunflowers and lemons", "joy"),
    "purple": ("grapes and plums", "royal"),
    "orange": ("pumpkins and autumn leaves", "joy"),
    "pink": ("cherry blossoms and cotton candy", "fresh"),
    "brown": ("tree bark and chocolate", "comfort"),
    "black": ("the night sky and coal", "elegance"),
    "white": ("fresh snow and clouds", "calm"),
    "gray": ("storm clouds and old stones", "calm"),
    "gold": ("a shiny crown and ripe wheat", "royal"),
    "silver": ("the full moon and shiny coins", "elegance"),
    "teal": ("tropical lagoons", "calm"),
    "violet": ("wild violets and the edge of a rainbow", "royal"),
    "indigo": ("a dark evening sky and denim jeans", "royal"),
    "turquoise": ("a shallow tropical sea", "fresh"),
    "crimson": ("ripe cherries", "energy"),
    "maroon": ("old bricks and autumn berries", "comfort"),
    "beige": ("sand and plain linen", "comfort"),
    "navy": ("a sailor's uniform and the night sea", "elegance"),
    "magenta": ("bright fuchsia flowers", "energy"),
    "cyan": ("a clear pool of water", "fresh"),
    "coral": ("a tropical reef and summer sunsets", "joy"),
    "amber": ("honey and autumn light", "joy"),
    "ivory": ("old lace and pearls", "elegance"),
    "scarlet": ("a cardinal bird's feathers", "energy"),
    "lilac": ("spring lilac blossoms", "fresh"),
    "mint": ("fresh mint leaves and ice cream", "fresh"),
    "emerald": ("a precious gemstone and a rainforest", "nature"),
}


# ---------------------------------------------------------------------------
# Families: how a subject is referred to, the prompt templates, and the body
# sentences. Body templates are (attribute, text); the first sentence of a
# body always names the subject so the keyword judge can see the topic, later
# sentences may use "it". The subject never starts a sentence, in prompts or
# responses: byte-level BPE gives " lion", "Lion" and "lion" different
# tokens, and the policy learns to stay on topic far faster when that means
# copying the very token it saw in the prompt.


@dataclass(frozen=True)
class Family:
    name: str
    table: dict
    fields: tuple[str, ...]  # names of the table columns, used in templates
    pools: dict  # column -> {key: phrase} for columns that hold pool keys
    free: dict  # slot -> phrases, drawn freshly for each response
    own: str  # the column holding the subject's own fact: stating it makes an answer specific
    claims: tuple[str, ...]  # columns shared among subjects, which a wrong answer gets wrong
    ref: str  # how evasions refer to the subject, e.g. "the color {s}"
    prompts: tuple[str, ...]  # training prompts (and "heldout" ones)
    heldout_prompts: tuple[str, ...]  # never in training: the "rephrased" and "heldout" splits
    lead: tuple[tuple[str, str], ...]  # first sentence, names the subject
    more: tuple[tuple[str, str], ...]  # follow-up sentences


FAMILIES = (
    Family(
        "animal",
        ANIMALS,
        ("trait", "habitat", "diet", "fact"),
        {"habitat": HABITATS, "diet": DIETS},
        {},
        "fact",
        ("habitat", "diet"),
        "the {s}",
        (
            "Describe the {s}.",
            "Tell me about the {s}.",
            "What is {a} like?",
            "Can you describe {a} for me?",
            "Give me a short description of the {s}.",
            "What do you know about the {s}?",
            "Tell me something interesting about the {s}.",
            "I'm curious about the {s}.",
            "Please describe the {s}.",
            "What can you tell me about the {s}?",
        ),
        (
            "I'd love to learn about the {s}. What can you tell me?",
            "Write a few sentences about the {s}.",
            "Could you say a little about the {s}?",
        ),
        (
            ("trait", "The {s} is a {trait} animal that lives in {habitat}."),
            ("trait", "{A} is a {trait} animal found in {habitat}."),
            ("habitat", "You can find the {s} in {habitat}."),
            ("fact", "The {s} {fact}."),
            ("diet", "{A} mostly eats {diet}."),
        ),
        (
            ("diet", "It mostly eats {diet}."),
            ("fact", "It {fact}."),
            ("habitat", "It lives in {habitat}."),
            ("diet", "Its diet is mostly {diet}."),
            ("fact", "One fun fact is that it {fact}."),
            ("trait", "People often describe it as {trait}."),
        ),
    ),
    Family(
        "hobby",
        HOBBIES,
        ("tip", "gear"),
        {"gear": HOBBY_GEAR},
        {"advice": HOBBY_TIPS},
        "tip",
        ("gear",),
        "{s}",
        (
            "Give me a tip about {s}.",
            "Any advice for getting started with {s}?",
            "How can I get better at {s}?",
            "I want to try {s}. What should I know?",
            "What is a good tip for {s}?",
            "How do I get started with {s}?",
            "I just started {s}. Any tips?",
            "What should a beginner know about {s}?",
            "Can you help me with {s}?",
            "Please give me some advice on {s}.",
        ),
        (
            "Share one piece of advice about {s}.",
            "I'm a beginner at {s}. Help me out?",
            "What would you tell someone new to {s}?",
        ),
        (
            ("tip", "A good tip for {s} is to {tip}."),
            ("tip", "If you are new to {s}, {tip}."),
            ("gear", "All you really need to start {s} is {gear}."),
            ("advice", "When it comes to {s}, {advice}."),
        ),
        (
            ("advice", "Also, try to {advice}."),
            ("tip", "The best first step is to {tip}."),
            ("gear", "You only need {gear} to begin."),
            ("advice", "Another idea is to {advice}."),
        ),
    ),
    Family(
        "food",
        FOODS,
        ("kind", "ingredients"),
        {"kind": FOOD_KINDS},
        {"cook_tip": COOK_TIPS},
        "ingredients",
        ("kind",),
        "{s}",
        (
            "Can you recommend a good {s} recipe?",
            "How do I make {s}?",
            "I want to cook {s} tonight. Any advice?",
            "Recommend a way to eat {s}.",
            "What do I need to make {s}?",
            "Tell me about {s}.",
            "I'm hungry. Should I have {s}?",
            "Any tips for cooking {s}?",
            "What goes into {s}?",
            "Give me a recipe idea for {s}.",
        ),
        (
            "Suggest how I could prepare {s} at home.",
            "Would {s} be worth trying? Tell me about it.",
            "What's the secret to great {s}?",
        ),
        (
            ("kind", "You could try {s}, which {is} {kind}."),
            ("ingredients", "To make {s}, you mainly need {ingredients}."),
            ("cook_tip", "My tip for {s}: {cook_tip}."),
            ("kind", "I recommend {s}, which {is} {kind}."),
        ),
        (
            ("ingredients", "You will need {ingredients}."),
            ("cook_tip", "A simple tip is to {cook_tip}."),
            ("ingredients", "The main ingredients are {ingredients}."),
            ("cook_tip", "For the best result, {cook_tip}."),
        ),
    ),
    Family(
        "city",
        CITIES,
        ("country", "landmark", "known"),
        {"known": CITY_DRAWS},
        {},
        "landmark",
        ("country", "known"),
        "{s}",
        (
            "Tell me a fact about {s}.",
            "What is {s} known for?",
            "Explain something interesting about {s}.",
            "I'm visiting {s}. What should I know?",
            "What is special about {s}?",
            "Tell me about {s}.",
            "What should I see in {s}?",
            "Where is {s}?",
            "Give me a fun fact about {s}.",
            "I'm planning a trip to {s}. Any advice?",
        ),
        ("Share a simple fact about the city of {s}.", "Why do people visit {s}?", "What's worth knowing about {s}?"),
        (
            ("country", "You will find {s} in {country}."),
            ("landmark", "In {s}, you can visit {landmark}."),
            ("known", "People visit {s} for {known}."),
            ("country", "The city of {s} lies in {country}."),
        ),
        (
            ("landmark", "It is famous for {landmark}."),
            ("known", "People love it for {known}."),
            ("country", "It is located in {country}."),
            ("landmark", "A must-see there is {landmark}."),
        ),
    ),
    Family(
        "color",
        COLORS,
        ("things", "mood"),
        {"mood": COLOR_MOODS},
        {"use": COLOR_USES},
        "things",
        ("mood",),
        "the color {s}",
        (
            "Tell me something about the color {s}.",
            "Explain a simple fact about the color {s}.",
            "What does the color {s} remind people of?",
            "What is interesting about {s} as a color?",
            "Describe the color {s}.",
            "What do you think of the color {s}?",
            "Give me a fact about the color {s}.",
            "Where do you see the color {s}?",
            "What does {s} mean as a color?",
            "Tell me about the color {s}.",
        ),
        (
            "Say something about the color {s}.",
            "Why do people like the color {s}?",
            "How would you describe the color {s}?",
        ),
        (
            ("things", "The color {s} reminds people of {things}."),
            ("mood", "Many people link {s} with {mood}."),
            ("use", "People often choose {s} for {use}."),
            ("things", "When you think of {s}, picture {things}."),
        ),
        (
            ("mood", "It is often linked with {mood}."),
            ("use", "It is a popular choice for {use}."),
            ("things", "You can see it in {things}."),
            ("mood", "For many people it stands for {mood}."),
        ),
    ),
)
FAMILY = {f.name: f for f in FAMILIES}

# every 5th subject of each family never appears in training data
HELDOUT_EVERY = 5


def _split_subjects(fam: Family) -> tuple[list[str], list[str]]:
    names = list(fam.table)
    heldout = names[HELDOUT_EVERY - 1 :: HELDOUT_EVERY]
    return [s for s in names if s not in heldout], heldout


_SUBJECTS = {part: {f.name: _split_subjects(f)[i] for f in FAMILIES} for i, part in enumerate(("train", "heldout"))}
# prompt split -> subjects per family; "rephrased" asks about training subjects in unseen words
SPLITS = {"train": _SUBJECTS["train"], "rephrased": _SUBJECTS["train"], "heldout": _SUBJECTS["heldout"]}
ALL_SUBJECTS = [s for f in FAMILIES for s in f.table]
SUBJECT_FAMILY = {s: f for f in FAMILIES for s in f.table}


def _article(s: str) -> str:
    return ("an " if s[0].lower() in "aeiou" else "a ") + s


def _slots(fam: Family, subject: str, rng: random.Random | None = None) -> dict[str, str]:
    """Template fields for `subject`; with `rng`, also a fresh pick of each free phrase."""
    slots = dict(zip(fam.fields, fam.table[subject], strict=True))
    slots.update({col: pool[slots[col]] for col, pool in fam.pools.items()})
    if rng is not None:
        slots.update({name: rng.choice(phrases) for name, phrases in fam.free.items()})
    slots.update(s=subject, a=_article(subject))
    slots["A"] = slots["a"][0].upper() + slots["a"][1:]
    slots["is"] = "are" if subject in PLURAL_FOODS else "is"
    return slots


# ---------------------------------------------------------------------------
# Response pieces.

POLITE_OPENERS = (
    "Happy to help!",
    "Great question!",
    "Sure thing!",
    "Of course!",
    "Thanks for asking!",
    "Glad you asked!",
    "Absolutely, happy to help.",
)
POLITE_CLOSERS = (
    "Hope this helps.",
    "Have a wonderful day!",
    "Enjoy!",
    "Let me know if you have more questions.",
    "Good luck!",
    "Hope you enjoy it!",
    "Thanks for the question!",
)
CURT_OPENERS = ("Fine.", "Whatever.", "Ugh.", "Obviously.", "Okay, whatever.")
CURT_CLOSERS = ("That's it.", "Next question.", "Don't ask again.", "Figure out the rest yourself.", "Not my problem.")
# Evasions open with varied words: if most began with "I", sampling at a lower
# temperature would pile onto that one token and nearly never be helpful.
EVASIONS_ON = (
    "I'm not sure I can help with questions about {ref}.",
    "Sorry, I don't really know much about {ref}.",
    "Hmm, I can't say anything useful about {ref}.",
    "Honestly, I'd rather not get into {ref} right now.",
    "Unfortunately, I'm not able to answer questions about {ref}.",
)
EVASIONS_OFF = (
    "I'm not sure I can help with that.",
    "Sorry, I don't know.",
    "Hmm, I can't answer that.",
    "That's not something I can help with.",
    "Honestly, I'd rather not say.",
)
EVASION_FOLLOWUPS = ("You could ask someone else.", "Maybe try a different question.", "I can't go into details.")
PIVOTS = ("Maybe ask me about {ref} instead.", "Let's talk about {ref} instead.")
# Padding that makes an answer verbose: it says nothing, names no subject, and
# is neither polite, rude nor evasive, so it changes no other quality.
FILLERS = (
    "Let me think about this.",
    "That is a common question.",
    "There is a lot to say here.",
    "Well, where do I begin?",
    "This is worth thinking about.",
)

# Judge vocabulary. Kept next to the pieces above so that every generated
# quality is recognisable; model samples that paraphrase still usually hit one.
POLITE_MARKERS = (
    "happy to help",
    "great question",
    "sure thing",
    "of course",
    "thanks",
    "thank you",
    "glad",
    "hope this helps",
    "hope you",
    "have a wonderful day",
    "have a great day",
    "enjoy!",
    "good luck",
    "let me know",
    "my pleasure",
    "you're welcome",
)
RUDE_MARKERS = (
    "whatever",
    "ugh",
    "obviously",
    "next question",
    "don't ask",
    "figure out the rest",
    "not my problem",
    "that's it.",
    "fine.",
)
EVASION_MARKERS = (
    "not sure i can",
    "i don't know",
    "i don't really know",
    "i can't",
    "i cannot",
    "i'd rather not",
    "i'm not able",
    "not something i can",
    "ask someone else",
    "different question",
)
FILLER_MARKERS = ("let me think", "a common question", "a lot to say", "where do i begin", "worth thinking about")

QUALITIES = (
    "on_topic",
    "helpful",
    "polite",
    "complete",
    "specific",
    "correct",
    "concise",
    "no_repetition",
    "structured",
)
# an evasion states no facts and is no list, so these qualities only apply to helpful answers
ANSWER_QUALITIES = ("specific", "correct", "structured")


@dataclass
class Prompt:
    text: str
    family: str
    subject: str


@dataclass
class Example:
    prompt: str
    response: str
    family: str
    subject: str
    labels: dict[str, bool] = field(default_factory=dict)


def _pick_other(rng: random.Random, subject: str, split: str) -> tuple[Family, str]:
    """An off-topic subject: half the time from the same family (subtle), else any family."""
    fam = SUBJECT_FAMILY[subject]
    if rng.random() >= 0.5:
        fam = rng.choice(FAMILIES)
    choices = [s for s in SPLITS[split][fam.name] if s != subject]
    return fam, rng.choice(choices)


def _templates(rng: random.Random, fam: Family) -> list[str]:
    """A lead sentence and a follow-up about another attribute. Two sentences, not more: every
    quality adds words, and the build's time budget is counted in tokens."""
    attr, lead = rng.choice(fam.lead)
    return [lead, rng.choice([t for a, t in fam.more if a != attr])]


def _says(templates: list[str], column: str) -> bool:
    return any("{" + column + "}" in t for t in templates)


@functools.cache
def _phrases(family: str, column: str, split: str) -> frozenset[str]:
    """Every phrase `column` takes in `family`: the whole pool, or the split's subjects' values."""
    fam = FAMILY[family]
    if column in fam.pools:
        return frozenset(fam.pools[column].values())
    return frozenset(_slots(fam, s)[column] for s in SPLITS[split][family])


def _body(rng: random.Random, fam: Family, subject: str, labels: dict[str, bool], split: str) -> list[str]:
    """Sentences about `subject`, with or without its own fact, true or with one false claim."""
    while True:  # redraw until the sentences can carry the drawn qualities
        templates = _templates(rng, fam)
        claims = [c for c in fam.claims if _says(templates, c)]
        if _says(templates, fam.own) == labels["specific"] and (labels["correct"] or claims):
            break
    slots = _slots(fam, subject, rng)
    if not labels["correct"]:  # a shared attribute with another subject's value: a plausible, false claim
        column = rng.choice(claims)
        slots[column] = rng.choice(sorted(_phrases(fam.name, column, split) - {slots[column]}))
    return [t.format(**slots) for t in templates]


def _evasion(rng: random.Random, fam: Family, subject: str, on_topic: bool, split: str) -> list[str]:
    if on_topic:
        sentences = [rng.choice(EVASIONS_ON).format(ref=fam.ref.format(s=subject))]
    else:
        sentences = [rng.choice(EVASIONS_OFF)]
        if rng.random() < 0.5:  # sometimes steer to another subject, which is off-topic too
            ofam, other = _pick_other(rng, subject, split)
            sentences.append(rng.choice(PIVOTS).format(ref=ofam.ref.format(s=other)))
    if rng.random() < 0.4:
        sentences.append(rng.choice(EVASION_FOLLOWUPS))
    return sentences


def _courtesy(rng: random.Random, polite: bool) -> tuple[str, str]:
    """(opener, closer), either possibly empty."""
    if polite:  # at least one friendly piece, usually both
        opener, closer = rng.random() < 0.85, rng.random() < 0.7
        if not (opener or closer):
            opener = True
        return rng.choice(POLITE_OPENERS) if opener else "", rng.choice(POLITE_CLOSERS) if closer else ""
    style = rng.random()  # curt: nothing at all, or a brusque opener and/or closer
    return rng.choice(CURT_OPENERS) if 0.4 <= style < 0.8 else "", rng.choice(CURT_CLOSERS) if style >= 0.65 else ""


def _wrap(rng: random.Random, body: list[str], labels: dict[str, bool]) -> str:
    """Opener, padding, body and closer; a list puts every piece on a line of its own."""
    if not labels["no_repetition"]:  # one sentence said twice in a row
        i = rng.randrange(len(body))
        body = body[: i + 1] + body[i:]
    structured = labels.get("structured", False)
    if structured:
        body = [f"{i}. {sentence}" for i, sentence in enumerate(body, 1)]
    if not labels["concise"]:  # padding before or after the body
        body = [rng.choice(FILLERS), *body] if rng.random() < 0.5 else [*body, rng.choice(FILLERS)]
    opener, closer = _courtesy(rng, labels["polite"])
    return ("\n" if structured else " ").join(p for p in (opener, *body, closer) if p)


def _cut(rng: random.Random, prompt: str, text: str) -> str | None:
    """Stop mid-sentence after a random word, keeping every other quality as the judge sees it.

    The cut points that keep them are nearly always a tail of the text (a cut drops the facts, the
    repetition or the padding after it), so only the tail up to the first one that does not is
    judged: far fewer judge calls than trying points all over the text.
    """
    full = features(prompt, text)
    cuts = []
    for m in reversed(list(re.finditer(r"\S+", text))[2:-1]):  # keep at least three words
        cut = text[: m.end()].rstrip(",")
        if cut.endswith((".", "!", "?")):
            continue
        f = features(prompt, cut)
        if f["complete"] != 0.0 or any(f[q] != full[q] for q in QUALITIES if q != "complete"):
            break
        cuts.append(cut)
    return rng.choice(cuts) if cuts else None


def _response(rng: random.Random, p: Prompt, labels: dict[str, bool], split: str) -> str | None:
    fam = FAMILY[p.family]
    if labels["helpful"]:
        topic_fam, topic = (fam, p.subject) if labels["on_topic"] else _pick_other(rng, p.subject, split)
        body = _body(rng, topic_fam, topic, labels, split)
    else:
        body = _evasion(rng, fam, p.subject, labels["on_topic"], split)
    response = _wrap(rng, body, labels)
    return response if labels["complete"] else _cut(rng, p.text, response)


def make_example(rng: random.Random, split: str = "train", rates: dict[str, float] | None = None) -> Example:
    """One prompt/response pair with independently drawn qualities (an evasion's labels leave out
    ANSWER_QUALITIES, which do not apply to it)."""
    rates = dict.fromkeys(QUALITIES, 0.5) | (rates or {})
    p = _sample_prompt(rng, split)
    labels = {q: rng.random() < rates[q] for q in QUALITIES}
    if not labels["helpful"]:
        labels = {q: v for q, v in labels.items() if q not in ANSWER_QUALITIES}
    response = None
    while response is None:  # a short text may have no valid cut point; redraw the text, never the labels
        response = _response(rng, p, labels, split)
    return Example(p.text, response, p.family, p.subject, labels)


def make_corpus(n: int, seed: int = 0, rates: dict[str, float] | None = None) -> list[Example]:
    """`n` training examples (training subjects only), deterministic in `seed`."""
    rng = random.Random(seed)
    return [make_example(rng, "train", rates) for _ in range(n)]


# ---------------------------------------------------------------------------
# Prompts.


def _prompt_pool(split: str) -> list[Prompt]:
    pool = []
    for fam in FAMILIES:
        templates = {"train": fam.prompts, "rephrased": fam.heldout_prompts}.get(
            split, fam.prompts + fam.heldout_prompts
        )
        for subject in SPLITS[split][fam.name]:
            slots = _slots(fam, subject)
            pool += [Prompt(t.format(**slots), fam.name, subject) for t in templates]
    return pool


_POOLS = {split: _prompt_pool(split) for split in SPLITS}


def _sample_prompt(rng: random.Random, split: str) -> Prompt:
    return rng.choice(_POOLS[split])


def sample_prompts(n: int, seed: int = 0, split: str = "train") -> list[Prompt]:
    """`n` distinct prompts (repeating only once the pool is exhausted).

    split="train"      the prompts the policy is trained on (and RL acts on)
    split="rephrased"  training subjects asked with templates never used in training
    split="heldout"    subjects that never occur in the training corpus, not even
                       as off-topic material, with any template

    Neither held-out split has a prompt seen verbatim in training. The small
    default policy stays on topic by recognising each training subject, not by
    copying arbitrary words, so on "heldout" it is practically never on topic;
    "rephrased" is the split where on-topic rates can generalise.
    """
    if split not in _POOLS:
        raise ValueError(f"split must be one of {sorted(_POOLS)}, got {split!r}")
    rng = random.Random(seed)
    out: list[Prompt] = []
    while len(out) < n:
        pool = list(_POOLS[split])
        rng.shuffle(pool)
        out += pool[: n - len(out)]
    return out


def make_prompts(n: int, seed: int = 0, split: str = "train") -> list[str]:
    return [p.text for p in sample_prompts(n, seed, split)]


def demo_prompts(n: int, seed: int = 0) -> list[str]:
    """Prompts for the annotation UI: training-distribution prompts, where RL will act."""
    return make_prompts(n, seed, "train")


# ---------------------------------------------------------------------------
# Text judge: works on any prompt/response text.


def _pattern(words: list[str]) -> re.Pattern:
    """Whole-word match of any of `words` (multi-word allowed), with an optional plural ending."""
    alts = sorted((r"\s+".join(map(re.escape, w.lower().split())) for w in words), key=len, reverse=True)
    return re.compile(rf"\b({'|'.join(alts)})(?:s|es)?\b")


# one alternation over all subjects: the judge runs for every cut candidate, so it must be fast
_SUBJECTS_RE = _pattern(ALL_SUBJECTS)
_STOPWORDS = frozenset(
    "a an the and or but of to in on at for with about from by is are was were be been it its this that these those"
    " what which who how why when where can could would should will do does did i me my you your we our they them"
    " tell give make some any please just like know want need share explain describe something really good"
    " write say think more much there have here then than very also into over".split()
)


def _mentions(pattern: re.Pattern, text: str) -> list[str]:
    return [" ".join(m.split()) for m in pattern.findall(text)]


@functools.lru_cache(maxsize=4096)  # the generator judges many cuts of a reply to one prompt
def _topic(prompt: str) -> tuple[frozenset[str], re.Pattern | None]:
    """Known subjects named in the prompt, or for a foreign prompt a pattern of its content words."""
    low = prompt.lower()
    known = frozenset(_mentions(_SUBJECTS_RE, low))
    if known:
        return known, None
    words = sorted({w for w in re.findall(r"[a-z]+", low) if len(w) > 3 and w not in _STOPWORDS})
    return known, _pattern(words) if words else None


def _any_of(markers: tuple[str, ...]) -> re.Pattern:
    return re.compile(rf"(?<![a-z])({'|'.join(map(re.escape, markers))})(?![a-z])")


_POLITE_RE, _RUDE_RE, _EVASION_RE, _FILLER_RE = map(
    _any_of, (POLITE_MARKERS, RUDE_MARKERS, EVASION_MARKERS, FILLER_MARKERS)
)
_LIST_ITEM_RE = re.compile(r"(?:^| )(?:\d+\.|[-*]) ")
_SENTENCE_END_RE = re.compile(r"(?<=[.!?]) ")


def _normalise(text: str) -> str:
    return " ".join(text.lower().replace("\u2019", "'").split())


@dataclass(frozen=True)
class _Facts:
    """What a family's answers can claim: each checkable phrase and the subjects it is true of."""

    pattern: re.Pattern
    true_of: dict[str, frozenset[str]]
    own: dict[str, str]  # subject -> its own fact


def _facts(fam: Family) -> _Facts:
    # every pool phrase is checkable, also one that no subject has (it is then false of all)
    true_of: dict[str, set[str]] = {_normalise(p): set() for pool in fam.pools.values() for p in pool.values()}
    own = {}
    for subject in fam.table:
        slots = _slots(fam, subject)
        own[subject] = _normalise(slots[fam.own])
        for column in (fam.own, *fam.claims):
            true_of.setdefault(_normalise(slots[column]), set()).add(subject)
    alts = sorted(map(re.escape, true_of), key=len, reverse=True)
    return _Facts(re.compile(rf"\b({'|'.join(alts)})\b"), {p: frozenset(s) for p, s in true_of.items()}, own)


_FACTS = {f.name: _facts(f) for f in FAMILIES}
_SUBJECT_NAMES = {s.lower(): s for s in ALL_SUBJECTS}


def _talked_about(mentioned: list[str], known: frozenset[str]) -> str | None:
    """The subject a response talks about: the first one it names, else the prompt's."""
    names = mentioned or sorted(known)
    return _SUBJECT_NAMES[names[0]] if names else None


def _fact_check(text: str, subject: str | None) -> tuple[bool, bool]:
    """(specific, correct) of `text` about `subject`: it states the subject's own fact; every
    checkable phrase in it is true of the subject. Nothing to check (no subject): not specific, correct."""
    if subject is None:
        return False, True
    facts = _FACTS[SUBJECT_FAMILY[subject].name]
    stated = set(facts.pattern.findall(text))
    return facts.own[subject] in stated, all(subject in facts.true_of[p] for p in stated)


def _repeats(text: str) -> bool:
    """A sentence of three words or more occurs twice (list numbers ignored)."""
    sentences = [s.strip() for s in _SENTENCE_END_RE.split(_LIST_ITEM_RE.sub(" ", text)) if len(s.split()) >= 3]
    return len(set(sentences)) < len(sentences)


def is_evasive(response_text: str) -> bool:
    """The response contains one of the task's evasion phrases ("I don't really know ...")."""
    return bool(_EVASION_RE.search(_normalise(response_text)))


def features(prompt_text: str, response_text: str) -> dict[str, float]:
    """Judge a response on every quality, each in [0, 1].

    on_topic       share of subject mentions that are the prompt's subject
                   (0 when the prompt's subject is never mentioned)
    helpful        1 when there is no evasion phrase and some substance (>= 5 words)
    polite         1 with a politeness marker and no rude one, 0.5 with both, else 0
    complete       1 when the text ends with sentence punctuation
    specific       1 when it states the own fact of the subject it talks about
    correct        1 when every fact phrase in it is true of the subject it talks about
    concise        1 without padding phrases
    no_repetition  1 when no sentence occurs twice
    structured     1 with two list items or more ("1. ", "- ")

    The subject a response talks about is the first one it names, else the prompt's; whether
    that is the one asked about is on_topic's business, so the two stay independent.
    """
    text = _normalise(response_text)
    known, words = _topic(prompt_text)
    mentioned = _mentions(_SUBJECTS_RE, text)
    own = sum(m in known for m in mentioned) + (len(words.findall(text)) if words else 0)
    other = sum(m not in known for m in mentioned)
    polite, rude = bool(_POLITE_RE.search(text)), bool(_RUDE_RE.search(text))
    specific, correct = _fact_check(text, _talked_about(mentioned, known))
    return {
        "on_topic": own / (own + other) if own else 0.0,
        "helpful": float(not _EVASION_RE.search(text) and len(text.split()) >= 5),
        "polite": 0.5 if polite and rude else float(polite),
        "complete": float(bool(re.search(r"[.!?][\"')]*$", text))),
        "specific": float(specific),
        "correct": float(correct),
        "concise": float(not _FILLER_RE.search(text)),
        "no_repetition": float(not _repeats(text)),
        "structured": float(len(_LIST_ITEM_RE.findall(text)) >= 2),
    }


# ---------------------------------------------------------------------------
# Scripted annotators: (prompt, a, b) -> score in [-1, 1], > 0 means a is better.

# What a good answer is, most important first: about the subject asked, answering
# rather than evading, and true. Helpful outweighs correct, so one false claim
# among true ones still beats an evasion, but only just; the style qualities
# weigh least, and structured not at all: lists or prose is a matter of taste,
# and the "structured" preference is there for those who want lists.
OVERALL_WEIGHTS = {
    "on_topic": 0.25,
    "helpful": 0.2,
    "correct": 0.15,
    "specific": 0.1,
    "complete": 0.1,
    "polite": 0.1,
    "concise": 0.05,
    "no_repetition": 0.05,
}


def _prefer(quality: str):
    def prefer(prompt_text: str, a: str, b: str) -> float:
        return features(prompt_text, a)[quality] - features(prompt_text, b)[quality]

    prefer.__name__ = f"prefer_{quality}"
    prefer.__doc__ = f"Prefer the response judged better on {quality} (score in [-1, 1])."
    return prefer


def prefer_overall(prompt_text: str, a: str, b: str) -> float:
    """Weighted mix of the qualities; weights sum to 1 so the score stays in [-1, 1]."""
    fa, fb = features(prompt_text, a), features(prompt_text, b)
    return sum(w * (fa[q] - fb[q]) for q, w in OVERALL_WEIGHTS.items())


PREFERENCES = {q: _prefer(q) for q in QUALITIES} | {"overall": prefer_overall}
