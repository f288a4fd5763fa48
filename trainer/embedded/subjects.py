"""The embedded task's world: five families of subjects (animals, hobbies, food, cities, colors), their
facts, how each family is asked about and answered.

trainer/embedded/task.py writes answers from these tables; trainer/embedded/judge.py checks answers against
them. Pure Python, like both.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

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


def article(s: str) -> str:
    return ("an " if s[0].lower() in "aeiou" else "a ") + s


def template_fields(fam: Family, subject: str, rng: random.Random | None = None) -> dict[str, str]:
    """Template fields for `subject`; with `rng`, also a fresh pick of each free phrase."""
    slots = dict(zip(fam.fields, fam.table[subject], strict=True))
    slots.update({col: pool[slots[col]] for col, pool in fam.pools.items()})
    if rng is not None:
        slots.update({name: rng.choice(phrases) for name, phrases in fam.free.items()})
    slots.update(s=subject, a=article(subject))
    slots["A"] = slots["a"][0].upper() + slots["a"][1:]
    slots["is"] = "are" if subject in PLURAL_FOODS else "is"
    return slots
