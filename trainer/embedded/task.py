"""Procedural instruction-following task for the embedded default policy.

Pure Python on purpose: the web server and the simulated-annotator client
import this module, and neither should pay for importing torch.

Five task families (animals, hobbies, food, cities, colors), each with a table
of subjects and a few hand-written facts per subject. A response is assembled
from an opener, a body and a closer, and four qualities are drawn
independently (about 50% each by default):

    on_topic  the body talks about the prompt's subject, not another one
    helpful   the body gives facts instead of an evasion
    polite    a friendly opener/closer instead of nothing or a brusque one
    complete  the text ends properly instead of stopping mid-sentence

The balanced mixture is the point: a policy trained on it samples all sixteen
combinations, so there is something for preference learning and PPO to shift.

`features()` judges ANY text with simple string rules (it does not need the
generation labels), so it works on model samples too; the `prefer_*`
functions turn it into scripted annotators.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field

# ---------------------------------------------------------------------------
# Subject tables. Facts are written so that no subject's text ever names
# another subject (a test checks this), otherwise "off-topic" would be
# ambiguous for the keyword judge.

ANIMALS = {  # name: (trait, habitat, diet, fact)
    "lion": ("powerful", "the grasslands of Africa", "meat", "lives in a family group called a pride"),
    "elephant": ("gentle", "the forests and savannas of Africa and Asia", "grass, leaves and fruit",
                 "uses its long trunk to drink and to say hello"),
    "penguin": ("playful", "the cold coasts of Antarctica", "fish and krill", "cannot fly but swims very fast"),
    "dolphin": ("clever", "warm oceans around the world", "fish and squid",
                "talks to its friends with clicks and whistles"),
    "owl": ("quiet", "forests and old barns", "mice and insects", "can turn its head almost all the way around"),
    "fox": ("clever", "woods, fields and even towns", "small animals and berries",
            "uses its bushy tail to keep warm"),
    "kangaroo": ("strong", "the dry plains of Australia", "grass and leaves", "carries its baby in a pouch"),
    "giraffe": ("tall", "the open savannas of Africa", "leaves from tall trees",
                "has a neck that can be two meters long"),
    "zebra": ("social", "the grasslands of Africa", "grass", "has a stripe pattern that is unique to each animal"),
    "panda": ("peaceful", "the bamboo forests of China", "bamboo", "spends most of the day eating"),
    "koala": ("sleepy", "the eucalyptus forests of Australia", "eucalyptus leaves",
              "sleeps up to twenty hours a day"),
    "wolf": ("loyal", "forests and mountains", "elk and other animals", "hunts and travels with its pack"),
    "eagle": ("sharp-eyed", "mountains and tall cliffs", "fish and small animals", "can spot prey from far away"),
    "turtle": ("patient", "ponds, rivers and seas", "plants and small animals",
               "carries a hard shell that protects it"),
    "rabbit": ("quick", "meadows and woodlands", "grass and vegetables", "can hop very fast to escape danger"),
    "squirrel": ("busy", "parks and forests", "nuts and seeds", "hides nuts to eat during the winter"),
    "octopus": ("smart", "the ocean floor", "crabs and clams", "has eight arms and can change its skin pattern"),
    "shark": ("fearsome", "oceans all over the world", "fish and other sea animals",
              "has several rows of sharp teeth"),
    "whale": ("huge", "the deep ocean", "tiny krill and fish", "sings long songs that travel through the water"),
    "bee": ("hardworking", "gardens and meadows", "nectar and pollen from flowers",
            "helps flowers grow by carrying pollen"),
    "frog": ("jumpy", "ponds and wet forests", "insects", "starts life as a tadpole in the water"),
    "horse": ("strong", "farms and open fields", "grass and hay", "can sleep while standing up"),
    "camel": ("tough", "hot deserts", "dry plants and grass", "can go many days without drinking water"),
    "parrot": ("colorful", "tropical rainforests", "seeds, nuts and fruit", "can learn to copy human words"),
    "hedgehog": ("shy", "gardens and hedges", "insects and worms", "rolls into a spiky ball when it is scared"),
    "otter": ("playful", "rivers and coasts", "fish and shellfish", "holds hands with a friend while it sleeps"),
    "beaver": ("busy", "rivers and streams", "tree bark and plants", "builds dams out of sticks and mud"),
    "deer": ("graceful", "forests and meadows", "leaves, grass and acorns", "grows new antlers every year"),
    "bat": ("nocturnal", "caves and dark attics", "insects and fruit",
            "finds its way in the dark by listening to echoes"),
    "crocodile": ("patient", "rivers and swamps", "fish and other animals",
                  "can hold still in the water for hours"),
    "flamingo": ("elegant", "salty lakes and lagoons", "tiny shrimp and algae", "often stands on one leg"),
    "gorilla": ("gentle", "the rainforests of Africa", "leaves, stems and fruit",
                "lives in a family group led by a strong adult"),
    "cheetah": ("fast", "the savannas of Africa", "gazelles and other small animals",
                "is the fastest runner on land"),
    "hamster": ("tiny", "dry fields and burrows", "seeds and grains", "stores food in its cheeks"),
    "moose": ("large", "northern forests", "twigs, leaves and water plants", "is a good swimmer despite its size"),
    "raccoon": ("curious", "forests and cities", "almost anything it can find",
                "has clever front paws that work like hands"),
    "swan": ("graceful", "lakes and quiet rivers", "water plants", "often keeps the same partner for life"),
    "seal": ("playful", "cold coasts and icy seas", "fish", "can hold its breath underwater for a long time"),
    "tiger": ("powerful", "the forests of Asia", "wild boar and buffalo", "is the largest wild cat in the world"),
}

HOBBIES = {  # name: (tip, second tip, what you need)
    "gardening": ("start with easy plants such as herbs or beans", "water your plants early in the morning",
                  "a small trowel and a pair of gloves"),
    "running": ("begin with short, slow runs and build up week by week", "take a rest day between hard runs",
                "a pair of comfortable shoes"),
    "painting": ("practice mixing a few paints before you start a big picture",
                 "let each layer dry before you add the next one", "a few brushes and some cheap paper"),
    "chess": ("learn a few simple openings and why they work", "review your games to find your mistakes",
              "a board and a friend to play with"),
    "photography": ("pay attention to the light before you take a picture",
                    "take many shots and keep only the best ones", "any camera, even the one on your phone"),
    "guitar": ("practice a few simple chords until they feel easy", "play slowly at first and speed up later",
               "an instrument that stays in tune"),
    "piano": ("practice scales for a few minutes every day", "learn to read simple sheet music",
              "a keyboard with full-size keys"),
    "knitting": ("start with a simple scarf using thick yarn", "count your stitches at the end of each row",
                 "a pair of needles and some soft yarn"),
    "hiking": ("choose a short trail for your first trip", "bring more water than you think you need",
               "sturdy boots and a small backpack"),
    "swimming": ("focus on slow, steady breathing", "practice in the shallow end until you feel safe",
                 "a swimsuit and a pair of goggles"),
    "yoga": ("move slowly and never force a stretch", "breathe deeply while you hold each pose",
             "a mat and some loose clothes"),
    "baking": ("measure your ingredients carefully", "let the oven heat up fully before you start",
               "a mixing bowl, a whisk and an oven"),
    "cycling": ("check your tire pressure before every ride", "wear a helmet every time you ride",
                "a bike that fits your height"),
    "reading": ("set aside a little time for it every day", "keep a book with you for spare moments",
                "a library card and a cozy chair"),
    "writing": ("write a little every day, even if it is only a few lines",
                "read your work out loud to find awkward sentences", "a notebook and a pen"),
    "drawing": ("sketch simple shapes before you add details", "draw from real life as often as you can",
                "a pencil and a sketchbook"),
    "fishing": ("be patient and stay quiet near the water", "learn which bait works best where you fish",
                "a simple rod, some line and a few hooks"),
    "camping": ("practice setting up your tent at home first", "pack warm layers because nights get cold",
                "a tent, a sleeping bag and a flashlight"),
    "dancing": ("learn the basic steps slowly before adding style", "practice in front of a mirror",
                "comfortable shoes and some music you love"),
    "singing": ("warm up your voice before you sing", "drink plenty of water to keep your throat happy",
                "a quiet room and your favorite songs"),
    "pottery": ("keep your hands wet while the clay spins", "start with small bowls before trying tall pieces",
                "some clay and a class with a wheel"),
    "birdwatching": ("learn the calls of a few common birds", "go out early in the morning when birds are active",
                     "a pair of binoculars and a field guide"),
    "woodworking": ("always measure twice and cut once", "keep your tools sharp and clean",
                    "a saw, a hammer and some safety glasses"),
    "juggling": ("start with two balls before adding a third",
                 "practice over a bed so dropped balls do not roll away", "three soft balls"),
    "meditation": ("begin with just five minutes a day", "gently bring your attention back to your breath",
                   "a quiet spot and a timer"),
    "skiing": ("take a lesson on your first day", "keep your weight forward over your skis",
               "warm clothes and a pair of rented skis"),
    "surfing": ("start on a big, soft board", "watch the waves for a while before you paddle out",
                "a board and a wetsuit"),
    "climbing": ("trust your legs more than your arms", "always check your knots and your partner's knots",
                 "a pair of grippy shoes and a harness"),
    "sewing": ("practice straight lines on scrap fabric", "press your seams with an iron as you go",
               "a needle, some thread and some fabric"),
    "origami": ("fold slowly and make every crease sharp", "start with simple models like a paper boat",
                "some square sheets of paper"),
    "astronomy": ("let your eyes adjust to the dark for twenty minutes",
                  "use a star map to find the bright constellations", "a dark sky and a pair of binoculars"),
    "journaling": ("write at the same time every day", "do not worry about spelling or grammar",
                   "a notebook you like using"),
    "tennis": ("keep your eyes on the ball", "practice your serve a little at every session",
               "a racket and a can of balls"),
    "skateboarding": ("learn to stand and push before you try tricks", "wear a helmet and knee pads",
                      "a board and a flat, quiet place"),
    "calligraphy": ("hold the pen at a steady angle", "practice the basic strokes before whole letters",
                    "a broad pen and smooth paper"),
}

FOODS = {  # name: (description, ingredients, cooking tip)
    "pasta": ("a simple Italian dish made from wheat dough", "noodles, garlic, tomatoes and cheese",
              "boil it in plenty of salted water"),
    "pizza": ("a flat baked dough topped with sauce and cheese", "dough, tomato sauce and cheese",
              "bake it in a very hot oven"),
    "soup": ("a warm dish made by simmering vegetables in broth", "vegetables, broth and a few herbs",
             "let it simmer slowly so the flavors blend"),
    "curry": ("a spiced dish from South Asia", "onions, spices and vegetables or meat",
              "toast the spices in oil first"),
    "salad": ("a fresh dish of raw vegetables", "lettuce, cucumber, tomatoes and a simple dressing",
              "add the dressing just before serving"),
    "pancakes": ("soft breakfast cakes cooked in a pan", "flour, milk, eggs and a little butter",
                 "wait for bubbles before you flip them"),
    "sushi": ("a Japanese dish of rice with fish or vegetables", "seasoned rice, seaweed and fresh fillings",
              "keep your hands wet when you shape the rice"),
    "tacos": ("a Mexican dish of small tortillas with tasty fillings", "tortillas, beans or meat, and salsa",
              "warm the tortillas in a dry pan"),
    "omelette": ("a quick dish of beaten eggs cooked in a pan", "eggs, butter and any fillings you like",
                 "cook it on low heat so it stays soft"),
    "risotto": ("a creamy Italian rice dish", "short-grain rice, broth and cheese",
                "add the broth a little at a time and keep stirring"),
    "chili": ("a hearty pot of beans and spices", "beans, tomatoes, onions and chili powder",
              "let it cook slowly for at least an hour"),
    "lasagna": ("a baked dish of flat noodles, sauce and cheese", "flat noodles, tomato sauce and cheese",
                "let it rest for ten minutes before cutting"),
    "stir fry": ("a fast dish of vegetables cooked in a hot pan", "vegetables, soy sauce, garlic and ginger",
                 "cut everything into small pieces before you start"),
    "dumplings": ("small pockets of dough with a tasty filling", "flour, water and a filling of meat or vegetables",
                  "pinch the edges tightly so they do not open"),
    "burrito": ("a large tortilla wrapped around rice, beans and other fillings", "tortillas, rice, beans and cheese",
                "roll it tightly and tuck in the ends"),
    "ramen": ("a Japanese bowl of noodles in a rich broth", "wheat noodles, broth and a soft-boiled egg",
              "add the noodles at the very end"),
    "muffins": ("small sweet cakes baked in a tin", "flour, sugar, eggs and berries", "do not overmix the batter"),
    "oatmeal": ("a warm breakfast made from oats", "oats, milk and a little honey", "top it with fruit and nuts"),
    "hummus": ("a smooth dip made from chickpeas", "chickpeas, tahini, lemon juice and garlic",
               "blend it for a long time so it gets creamy"),
    "paella": ("a Spanish rice dish cooked in a wide pan", "rice, saffron, vegetables and seafood",
               "do not stir it once the rice is in the pan"),
    "falafel": ("a dish of crispy fried balls made from chickpeas", "chickpeas, herbs, onion and spices",
                "chill the mixture before you fry it"),
    "smoothie": ("a cold drink made from blended fruit", "fruit, yogurt and a splash of juice",
                 "freeze the fruit first for a thicker drink"),
    "stew": ("a slow-cooked dish of meat and vegetables", "meat, potatoes, carrots and broth",
             "sear the meat before adding the liquid"),
    "guacamole": ("a creamy dip made from avocados", "avocados, lime juice, onion and salt",
                  "mash it with a fork so it stays a little chunky"),
    "quiche": ("a savory tart filled with eggs and cheese", "pastry, eggs, cream and cheese",
               "bake the crust for a few minutes before filling it"),
    "granola": ("a crunchy mix of baked oats and nuts", "oats, nuts, honey and a little oil",
                "stir it halfway through cooking"),
    "waffles": ("crisp breakfast cakes cooked in a hot iron", "flour, milk, eggs and butter",
                "do not open the iron too early"),
    "couscous": ("a dish of tiny wheat grains that cook in minutes", "couscous, hot broth and herbs",
                 "fluff it with a fork after it rests"),
    "fried rice": ("a quick dish of rice fried with eggs and vegetables", "cold cooked rice, eggs, peas and soy sauce",
                   "use rice from the day before so it does not get mushy"),
    "kebab": ("a skewer of grilled meat or vegetables", "meat or vegetables, onions and spices",
              "soak wooden skewers in water before grilling"),
    "spring rolls": ("crispy rolls filled with vegetables", "rice paper, vegetables and a dipping sauce",
                     "keep the rice paper under a damp towel"),
    "apple pie": ("a sweet baked pie filled with apples", "apples, sugar, cinnamon and pastry",
                  "let it cool a little before slicing"),
    "cheesecake": ("a rich dessert made with cream cheese", "cream cheese, sugar, eggs and a biscuit base",
                   "bake it slowly so the top does not crack"),
    "gazpacho": ("a cold Spanish dish of blended tomatoes and peppers", "tomatoes, peppers, cucumber and garlic",
                 "serve it very cold on a hot day"),
    "sandwich": ("a filling stacked between two slices of bread", "bread, cheese, lettuce and a spread",
                 "toast the bread so it does not get soggy"),
}

PLURAL_FOODS = {"pancakes", "tacos", "dumplings", "muffins", "waffles", "spring rolls"}

CITIES = {  # name: (country, landmark, known for)
    "Paris": ("France", "the Eiffel Tower", "its cafes and art museums"),
    "Tokyo": ("Japan", "the busy Shibuya crossing", "its fast trains and neon streets"),
    "London": ("England", "Big Ben and the Tower Bridge", "its double-decker buses and old pubs"),
    "Rome": ("Italy", "the ancient Colosseum", "its fountains and long history"),
    "Cairo": ("Egypt", "the pyramids of Giza nearby", "its busy markets along the Nile"),
    "Sydney": ("Australia", "its famous Opera House", "its beaches and harbor"),
    "New York": ("the United States", "the Statue of Liberty", "its tall buildings and Broadway shows"),
    "Istanbul": ("Turkey", "the Hagia Sophia", "sitting on two continents"),
    "Moscow": ("Russia", "the Kremlin", "its snowy winters and grand metro stations"),
    "Berlin": ("Germany", "the Brandenburg Gate", "its music scene and history"),
    "Madrid": ("Spain", "the Prado Museum", "its late dinners and lively plazas"),
    "Beijing": ("China", "the Forbidden City", "being close to the Great Wall"),
    "Mumbai": ("India", "the Gateway of India", "its huge film industry"),
    "Rio de Janeiro": ("Brazil", "the statue of Christ the Redeemer", "its carnival and beaches"),
    "Toronto": ("Canada", "the CN Tower", "its many lively neighborhoods"),
    "Amsterdam": ("the Netherlands", "its old canals", "its bicycles and narrow houses"),
    "Venice": ("Italy", "the Grand Canal", "its gondolas and bridges"),
    "Athens": ("Greece", "the Acropolis", "being the birthplace of democracy"),
    "Prague": ("the Czech Republic", "the Charles Bridge", "its old town and castle"),
    "Vienna": ("Austria", "the Schonbrunn Palace", "its classical music and coffee houses"),
    "Bangkok": ("Thailand", "its grand temples", "its street markets"),
    "Seoul": ("South Korea", "the Gyeongbokgung Palace", "its modern tech and pop music"),
    "Mexico City": ("Mexico", "the ancient ruins of Teotihuacan nearby", "its murals and markets"),
    "Buenos Aires": ("Argentina", "the Teatro Colon", "its tango music"),
    "Dublin": ("Ireland", "Trinity College", "its friendly pubs and poets"),
    "Lisbon": ("Portugal", "the Belem Tower", "its steep hills and old trams"),
    "Nairobi": ("Kenya", "a national park right next to the city", "its wildlife"),
    "Singapore": ("Southeast Asia", "its gardens by the bay", "its clean streets and food courts"),
    "Kyoto": ("Japan", "thousands of old temples", "its quiet gardens"),
    "Barcelona": ("Spain", "the Sagrada Familia", "its beaches and bold buildings"),
    "Edinburgh": ("Scotland", "a castle on a hill", "its summer arts festival"),
    "Stockholm": ("Sweden", "its old town on an island", "its islands and clean water"),
    "Marrakech": ("Morocco", "the Koutoubia Mosque", "its colorful markets"),
    "Vancouver": ("Canada", "Stanley Park", "its mountains by the sea"),
    "Havana": ("Cuba", "its old fort by the sea", "its classic cars and music"),
    "Chicago": ("the United States", "its tall skyline by Lake Michigan", "its jazz music and windy weather"),
}

COLORS = {  # name: (things of that color, what people link it with, fact)
    "red": ("ripe strawberries and fire trucks", "energy and excitement",
            "is used for stop signs because it catches the eye quickly"),
    "blue": ("a clear sky and the deep sea", "calm and trust", "is one of the most common favorite colors"),
    "green": ("fresh grass and summer leaves", "nature and growth", "is often used to mean go or safe"),
    "yellow": ("sunflowers and lemons", "happiness and warmth", "is used on school buses because it is easy to spot"),
    "purple": ("grapes and plums", "royalty and mystery", "was once a costly dye worn only by kings"),
    "orange": ("pumpkins and autumn leaves", "fun and creativity", "got its name from the fruit"),
    "pink": ("cherry blossoms and cotton candy", "sweetness and care", "is common in spring flowers"),
    "brown": ("tree bark and chocolate", "comfort and stability", "is what you get when many paints are mixed"),
    "black": ("the night sky and coal", "elegance and mystery", "absorbs almost all the light that hits it"),
    "white": ("fresh snow and clouds", "peace and cleanliness", "reflects almost all the light that hits it"),
    "gray": ("storm clouds and old stones", "calm and balance", "sits halfway between light and dark"),
    "gold": ("a shiny crown and ripe wheat", "wealth and success", "is often used for first-place medals"),
    "silver": ("the full moon and shiny coins", "modern style and elegance", "is often used for second-place medals"),
    "teal": ("tropical lagoons", "calm and clarity", "sits between two cool shades on the color wheel"),
    "violet": ("wild violets and the edge of a rainbow", "imagination and spirit",
               "has the shortest wavelength of visible light"),
    "indigo": ("a dark evening sky and denim jeans", "intuition and depth", "was named after a plant used to dye cloth"),
    "turquoise": ("a shallow tropical sea", "calm and healing", "was named after a stone that came through Turkey"),
    "crimson": ("ripe cherries", "passion and strength", "is a deep, rich shade often seen on old flags"),
    "maroon": ("old bricks and autumn berries", "seriousness and depth", "gets its name from a French word for chestnut"),
    "beige": ("sand and plain linen", "simplicity and calm", "is a popular choice for walls in homes"),
    "navy": ("a sailor's uniform and the night sea", "confidence and order",
             "was named after the uniforms of navy sailors"),
    "magenta": ("bright fuchsia flowers", "boldness and fun", "is one of the main inks used in printers"),
    "cyan": ("a clear pool of water", "freshness and calm", "is one of the inks used in color printers"),
    "coral": ("a tropical reef and summer sunsets", "warmth and friendliness",
              "was named after the sea creatures that build reefs"),
    "amber": ("honey and autumn light", "warmth and caution", "is used in traffic lights to say slow down"),
    "ivory": ("old lace and pearls", "purity and softness", "is a warm shade a little softer than snow"),
    "scarlet": ("a cardinal bird's feathers", "courage and heat", "is a bright shade with a hint of flame"),
    "lilac": ("spring lilac blossoms", "gentleness and youth", "is a pale shade named after a flowering shrub"),
    "mint": ("fresh mint leaves and ice cream", "freshness and calm", "is a soft, pale shade that feels cool"),
    "khaki": ("dusty trails and work uniforms", "practicality and calm", "comes from a word that means dusty"),
    "emerald": ("a precious gemstone and a rainforest", "luck and renewal", "is named after a famous gemstone"),
    "charcoal": ("burnt wood and storm clouds", "strength and depth", "is a very dark shade that is almost like night"),
}


# ---------------------------------------------------------------------------
# Families: how a subject is referred to, the prompt templates, and the body
# sentences. Body templates are (attribute, text); the first sentence of a
# body always names the subject so the keyword judge can see the topic, later
# sentences may use "it".

@dataclass(frozen=True)
class Family:
    name: str
    table: dict
    fields: tuple[str, ...]  # names of the table columns, used in templates
    ref: str  # how evasions refer to the subject, e.g. "the color {s}"
    prompts: tuple[str, ...]  # used for training and held-out prompts
    heldout_prompts: tuple[str, ...]  # never used for training prompts
    lead: tuple[tuple[str, str], ...]  # first sentence, names the subject
    more: tuple[tuple[str, str], ...]  # follow-up sentences


FAMILIES = (
    Family(
        "animal", ANIMALS, ("trait", "habitat", "diet", "fact"), "the {s}",
        ("Describe the {s}.", "Tell me about the {s}.", "What is {a} like?", "Can you describe {a} for me?",
         "Give me a short description of the {s}."),
        ("I'd love to learn about the {s}. What can you tell me?", "Write a few sentences about the {s}."),
        (("trait", "The {s} is a {trait} animal that lives in {habitat}."),
         ("trait", "{A} is a {trait} animal found in {habitat}."),
         ("habitat", "You can find the {s} in {habitat}."),
         ("fact", "The {s} {fact}."),
         ("diet", "{A} mostly eats {diet}.")),
        (("diet", "It mostly eats {diet}."), ("fact", "It {fact}."), ("habitat", "It lives in {habitat}."),
         ("diet", "Its diet is mostly {diet}."), ("fact", "One fun fact is that it {fact}."),
         ("trait", "People often describe it as {trait}.")),
    ),
    Family(
        "hobby", HOBBIES, ("tip", "tip2", "gear"), "{s}",
        ("Give me a tip about {s}.", "Any advice for getting started with {s}?", "How can I get better at {s}?",
         "I want to try {s}. What should I know?", "What is a good tip for {s}?"),
        ("Share one piece of advice about {s}.", "I'm a beginner at {s}. Help me out?"),
        (("tip", "A good tip for {s} is to {tip}."), ("tip", "If you are new to {s}, {tip}."),
         ("gear", "All you really need to start {s} is {gear}."), ("tip2", "When it comes to {s}, {tip2}.")),
        (("tip2", "Also, try to {tip2}."), ("tip", "The best first step is to {tip}."),
         ("gear", "You only need {gear} to begin."), ("tip2", "Another idea is to {tip2}.")),
    ),
    Family(
        "food", FOODS, ("desc", "ingredients", "cook_tip"), "{s}",
        ("Can you recommend a good {s} recipe?", "How do I make {s}?", "I want to cook {s} tonight. Any advice?",
         "Recommend a way to eat {s}.", "What do I need to make {s}?"),
        ("Suggest how I could prepare {s} at home.", "Is {s} worth trying? Tell me about it."),
        (("desc", "{S} {is} {desc}."), ("ingredients", "To make {s}, you mainly need {ingredients}."),
         ("cook_tip", "My tip for {s}: {cook_tip}."), ("desc", "I recommend {s}, which {is} {desc}.")),
        (("ingredients", "You will need {ingredients}."), ("cook_tip", "A simple tip is to {cook_tip}."),
         ("ingredients", "The main ingredients are {ingredients}."), ("cook_tip", "For the best result, {cook_tip}.")),
    ),
    Family(
        "city", CITIES, ("country", "landmark", "known"), "{s}",
        ("Tell me a fact about {s}.", "What is {s} known for?", "Explain something interesting about {s}.",
         "I'm visiting {s}. What should I know?", "What is special about {s}?"),
        ("Share a simple fact about the city of {s}.", "Why do people visit {s}?"),
        (("country", "{S} is a city in {country}."), ("landmark", "{S} is home to {landmark}."),
         ("known", "{S} is known for {known}."), ("country", "The city of {s} lies in {country}.")),
        (("landmark", "It is famous for {landmark}."), ("known", "People love it for {known}."),
         ("country", "It is located in {country}."), ("landmark", "A must-see there is {landmark}.")),
    ),
    Family(
        "color", COLORS, ("things", "mood", "fact"), "the color {s}",
        ("Tell me something about the color {s}.", "Explain a simple fact about the color {s}.",
         "What does the color {s} remind people of?", "What is interesting about {s} as a color?",
         "Describe the color {s}."),
        ("Say something about the color {s}.", "Why do people like the color {s}?"),
        (("things", "{S} is the color of {things}."), ("mood", "Many people link {s} with {mood}."),
         ("fact", "The color {s} {fact}."), ("things", "When you think of {s}, picture {things}.")),
        (("mood", "It is often linked with {mood}."), ("fact", "It {fact}."),
         ("things", "You can see it in {things}."), ("fact", "A fun fact is that it {fact}.")),
    ),
)
FAMILY = {f.name: f for f in FAMILIES}

# every 5th subject of each family never appears in training data
HELDOUT_EVERY = 5


def _split_subjects(fam: Family) -> tuple[list[str], list[str]]:
    names = list(fam.table)
    heldout = names[HELDOUT_EVERY - 1::HELDOUT_EVERY]
    return [s for s in names if s not in heldout], heldout


SPLITS = {split: {f.name: _split_subjects(f)[i] for f in FAMILIES} for i, split in enumerate(("train", "heldout"))}
ALL_SUBJECTS = [s for f in FAMILIES for s in f.table]
SUBJECT_FAMILY = {s: f for f in FAMILIES for s in f.table}


def _article(s: str) -> str:
    return ("an " if s[0].lower() in "aeiou" else "a ") + s


def _slots(fam: Family, subject: str) -> dict[str, str]:
    slots = dict(zip(fam.fields, fam.table[subject], strict=True))
    slots.update(s=subject, S=subject[0].upper() + subject[1:], a=_article(subject))
    slots["A"] = slots["a"][0].upper() + slots["a"][1:]
    slots["is"] = "are" if subject in PLURAL_FOODS else "is"
    return slots


# ---------------------------------------------------------------------------
# Response pieces.

POLITE_OPENERS = ("Happy to help!", "Great question!", "Sure thing!", "Of course!", "Thanks for asking!",
                  "Glad you asked!", "Absolutely, happy to help.")
POLITE_CLOSERS = ("Hope this helps.", "Have a wonderful day!", "Enjoy!", "Let me know if you have more questions.",
                  "Good luck!", "Hope you enjoy it!", "Thanks for the question!")
CURT_OPENERS = ("Fine.", "Whatever.", "Ugh.", "Obviously.", "Okay, whatever.")
CURT_CLOSERS = ("That's it.", "Next question.", "Don't ask again.", "Figure out the rest yourself.",
                "Not my problem.")
# Evasions open with varied words: if most began with "I", sampling at a lower
# temperature would pile onto that one token and nearly never be helpful.
EVASIONS_ON = ("I'm not sure I can help with questions about {ref}.", "Sorry, I don't really know much about {ref}.",
               "Hmm, I can't say anything useful about {ref}.", "Honestly, I'd rather not get into {ref} right now.",
               "Unfortunately, I'm not able to answer questions about {ref}.")
EVASIONS_OFF = ("I'm not sure I can help with that.", "Sorry, I don't know.", "Hmm, I can't answer that.",
                "That's not something I can help with.", "Honestly, I'd rather not say.")
EVASION_FOLLOWUPS = ("You could ask someone else.", "Maybe try a different question.", "I can't go into details.")
PIVOTS = ("Maybe ask me about {ref} instead.", "Let's talk about {ref} instead.")

# Judge vocabulary. Kept next to the pieces above so that every generated
# quality is recognisable; model samples that paraphrase still usually hit one.
POLITE_MARKERS = ("happy to help", "great question", "sure thing", "of course", "thanks", "thank you", "glad",
                  "hope this helps", "hope you", "have a wonderful day", "have a great day", "enjoy!", "good luck",
                  "let me know", "my pleasure", "you're welcome")
RUDE_MARKERS = ("whatever", "ugh", "obviously", "next question", "don't ask", "figure out the rest",
                "not my problem", "that's it.", "fine.")
EVASION_MARKERS = ("not sure i can", "i don't know", "i don't really know", "i can't", "i cannot", "i'd rather not",
                   "i'm not able", "not something i can", "ask someone else", "different question")

QUALITIES = ("on_topic", "helpful", "polite", "complete")


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


def _body(rng: random.Random, fam: Family, subject: str) -> str:
    slots = _slots(fam, subject)
    attr, lead = rng.choice(fam.lead)
    sentences, used = [lead], {attr}
    for _ in range(rng.choice((1, 2))):
        options = [(a, t) for a, t in fam.more if a not in used]
        if not options:  # every attribute already said
            break
        attr, text = rng.choice(options)
        sentences.append(text)
        used.add(attr)
    return " ".join(t.format(**slots) for t in sentences)


def _evasion(rng: random.Random, fam: Family, subject: str, on_topic: bool, split: str) -> str:
    if on_topic:
        text = rng.choice(EVASIONS_ON).format(ref=fam.ref.format(s=subject))
    else:
        text = rng.choice(EVASIONS_OFF)
        if rng.random() < 0.5:  # sometimes steer to another subject, which is off-topic too
            ofam, other = _pick_other(rng, subject, split)
            text += " " + rng.choice(PIVOTS).format(ref=ofam.ref.format(s=other))
    if rng.random() < 0.4:
        text += " " + rng.choice(EVASION_FOLLOWUPS)
    return text


def _wrap(rng: random.Random, body: str, polite: bool) -> str:
    if polite:  # at least one friendly piece, usually both
        opener, closer = rng.random() < 0.85, rng.random() < 0.7
        if not (opener or closer):
            opener = True
        parts = [rng.choice(POLITE_OPENERS) if opener else "", body, rng.choice(POLITE_CLOSERS) if closer else ""]
    else:  # curt: nothing at all, or a brusque opener and/or closer
        style = rng.random()
        parts = [rng.choice(CURT_OPENERS) if 0.4 <= style < 0.8 else "", body,
                 rng.choice(CURT_CLOSERS) if style >= 0.65 else ""]
    return " ".join(p for p in parts if p)


def _cut(rng: random.Random, prompt: str, text: str) -> str | None:
    """Stop mid-sentence at a random word, keeping the other three qualities as the judge sees them."""
    words = text.split(" ")
    full = features(prompt, text)
    positions = [i for i in range(3, len(words)) if not words[i - 1].endswith((".", "!", "?"))]
    rng.shuffle(positions)
    for i in positions:
        cut = " ".join(words[:i]).rstrip(",")
        f = features(prompt, cut)
        if f["complete"] == 0.0 and all(f[q] == full[q] for q in QUALITIES if q != "complete"):
            return cut
    return None


def _response(rng: random.Random, p: Prompt, labels: dict[str, bool], split: str) -> str | None:
    fam = FAMILY[p.family]
    if labels["helpful"]:
        topic_fam, topic = (fam, p.subject) if labels["on_topic"] else _pick_other(rng, p.subject, split)
        body = _body(rng, topic_fam, topic)
    else:
        body = _evasion(rng, fam, p.subject, labels["on_topic"], split)
    response = _wrap(rng, body, labels["polite"])
    return response if labels["complete"] else _cut(rng, p.text, response)


def make_example(rng: random.Random, split: str = "train", rates: dict[str, float] | None = None) -> Example:
    """One prompt/response pair with independently drawn qualities."""
    rates = {q: 0.5 for q in QUALITIES} | (rates or {})
    p = _sample_prompt(rng, split)
    labels = {q: rng.random() < rates[q] for q in QUALITIES}
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
        templates = fam.prompts if split == "train" else fam.prompts + fam.heldout_prompts
        for subject in SPLITS[split][fam.name]:
            slots = _slots(fam, subject)
            pool += [Prompt(t.format(**slots), fam.name, subject) for t in templates]
    return pool


_POOLS = {split: _prompt_pool(split) for split in SPLITS}


def _sample_prompt(rng: random.Random, split: str) -> Prompt:
    return rng.choice(_POOLS[split])


def sample_prompts(n: int, seed: int = 0, split: str = "train") -> list[Prompt]:
    """`n` distinct prompts (repeating only once the pool is exhausted).

    split="heldout" uses subjects that never occur in the training corpus,
    not even as off-topic material, plus two extra templates per family, so
    its prompts are never seen verbatim in training.
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


def _topic(prompt: str) -> tuple[set[str], re.Pattern | None]:
    """Known subjects named in the prompt, or for a foreign prompt a pattern of its content words."""
    low = prompt.lower()
    known = set(_mentions(_SUBJECTS_RE, low))
    if known:
        return known, None
    words = sorted({w for w in re.findall(r"[a-z]+", low) if len(w) > 3 and w not in _STOPWORDS})
    return set(), _pattern(words) if words else None


def _any_of(markers: tuple[str, ...]) -> re.Pattern:
    return re.compile(rf"(?<![a-z])({'|'.join(map(re.escape, markers))})(?![a-z])")


_POLITE_RE, _RUDE_RE, _EVASION_RE = map(_any_of, (POLITE_MARKERS, RUDE_MARKERS, EVASION_MARKERS))


def features(prompt_text: str, response_text: str) -> dict[str, float]:
    """Judge a response on the four qualities, each in [0, 1].

    on_topic  share of subject mentions that are the prompt's subject
              (0 when the prompt's subject is never mentioned)
    helpful   1 when there is no evasion phrase and some substance (>= 5 words)
    polite    1 with a politeness marker and no rude one, 0.5 with both, else 0
    complete  1 when the text ends with sentence punctuation
    """
    text = " ".join(response_text.lower().replace("\u2019", "'").split())
    known, words = _topic(prompt_text)
    mentioned = _mentions(_SUBJECTS_RE, text)
    own = sum(m in known for m in mentioned) + (len(words.findall(text)) if words else 0)
    other = sum(m not in known for m in mentioned)
    polite, rude = bool(_POLITE_RE.search(text)), bool(_RUDE_RE.search(text))
    return {
        "on_topic": own / (own + other) if own else 0.0,
        "helpful": float(not _EVASION_RE.search(text) and len(text.split()) >= 5),
        "polite": 0.5 if polite and rude else float(polite),
        "complete": float(bool(re.search(r"[.!?][\"')]*$", text))),
    }


# ---------------------------------------------------------------------------
# Scripted annotators: (prompt, a, b) -> score in [-1, 1], > 0 means a is better.

OVERALL_WEIGHTS = {"on_topic": 0.35, "helpful": 0.3, "complete": 0.2, "polite": 0.15}


def _prefer(quality: str):
    def prefer(prompt_text: str, a: str, b: str) -> float:
        return features(prompt_text, a)[quality] - features(prompt_text, b)[quality]
    prefer.__name__ = f"prefer_{quality}"
    prefer.__doc__ = f"Prefer the response that is more {quality.replace('_', '-')} (score in [-1, 1])."
    return prefer


prefer_on_topic = _prefer("on_topic")
prefer_helpful = _prefer("helpful")
prefer_polite = _prefer("polite")
prefer_complete = _prefer("complete")


def prefer_overall(prompt_text: str, a: str, b: str) -> float:
    """Weighted mix of all four qualities; weights sum to 1 so the score stays in [-1, 1]."""
    fa, fb = features(prompt_text, a), features(prompt_text, b)
    return sum(w * (fa[q] - fb[q]) for q, w in OVERALL_WEIGHTS.items())


PREFERENCES = {
    "on_topic": prefer_on_topic,
    "helpful": prefer_helpful,
    "polite": prefer_polite,
    "complete": prefer_complete,
    "overall": prefer_overall,
}
