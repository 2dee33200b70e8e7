"""A pool of short TREC-style questions, each with one of the six TREC coarse labels.

Written for this benchmark from templates and slot lists (no external data).
The label of a question is fixed by the template it came from; it never
appears in the generated inputs, only in the side table the oracle and the
gold answers use. Templates of different labels share surface forms ("What
is the capital / population / origin of ...", "Which ...", "Name ...") so the
first word of a question does not give its label away.
"""

from __future__ import annotations

import functools
import random

__all__ = ["TREC_LABELS", "instance_labels", "instance_pool"]

#: The TREC coarse classes, in the order OOLONG names them.
TREC_LABELS = [
    "abbreviation",
    "entity",
    "description and abstract concept",
    "human being",
    "location",
    "numeric value",
]

_PER_LABEL = 360

_ACRONYMS = [
    "NASA", "UNESCO", "UNICEF", "NATO", "OPEC", "FIFA", "CPU", "GPU", "RAM", "DNA", "RNA", "HTML", "HTTP",
    "URL", "GPS", "LED", "LCD", "ATM", "PIN", "VIP", "CEO", "FAQ", "DIY", "RSVP", "AWOL", "SCUBA", "LASER",
    "RADAR", "SONAR", "IQ", "BBC", "CNN", "MIT", "UCLA", "NBA", "NFL", "IMF", "USSR", "AIDS", "HIV", "MRI",
    "ECG", "DVD", "USB", "PDF", "JPEG", "MP3", "SMS", "ASAP", "ETA", "POW", "MIA", "TNT", "PVC", "UFO", "AKA",
    "NIMBY", "RIP", "TBA", "UPC", "VAT", "GDP", "CIA", "KGB", "NAACP", "ACLU", "YMCA", "PBS", "NPR", "ESPN",
    "IBM", "BMW", "OECD", "ASEAN", "CERN", "NYSE", "SWAT", "RSI", "BMI", "PTA", "ISBN", "SIM", "SPF",
]
_LONG_FORMS = [
    "Doctor of Philosophy", "Bachelor of Arts", "post meridiem", "anno Domini", "et cetera", "for example",
    "versus", "Mister", "Saint", "Mount", "kilogram", "centimetre", "miles per hour", "Before Christ",
    "Master of Business Administration", "Greenwich Mean Time", "British thermal unit", "horsepower",
    "Esquire", "Junior", "Street", "Avenue", "Boulevard", "Professor", "Reverend", "Captain", "Lieutenant",
    "Sergeant", "television", "influenza", "laboratory", "mathematics", "advertisement", "gymnasium",
]
_COUNTRIES = [
    "France", "Brazil", "Japan", "Egypt", "Kenya", "Peru", "Norway", "Vietnam", "Iran", "Turkey", "Poland",
    "Chile", "Argentina", "Mexico", "Canada", "India", "China", "Thailand", "Greece", "Portugal", "Sweden",
    "Finland", "Hungary", "Morocco", "Nigeria", "Ethiopia", "Indonesia", "Pakistan", "Colombia", "Venezuela",
    "Cuba", "Ireland", "Denmark", "Austria", "Switzerland", "Belgium", "Iceland", "Mongolia", "Nepal",
    "Bolivia", "Ecuador", "Ghana", "Senegal", "Tanzania", "Uganda", "Zambia", "Madagascar", "Jordan", "Iraq",
    "Qatar", "Romania", "Bulgaria", "Serbia", "Croatia", "Ukraine", "Estonia", "Latvia", "Lithuania",
    "Armenia", "Kazakhstan", "Malaysia", "Cambodia", "Laos", "Myanmar", "Sri Lanka", "Bangladesh",
    "New Zealand", "Australia", "Fiji", "Jamaica", "Haiti", "Paraguay", "Uruguay", "Tunisia", "Algeria",
]
_THINGS_WITH_COLOUR = [
    "ripe banana", "flamingo", "ruby", "emerald", "canary", "lime", "plum", "carrot", "pumpkin", "raven",
    "polar bear", "sapphire", "tomato", "cherry", "lemon", "eggplant", "lump of coal", "fresh snowflake",
    "London bus", "school bus in Ohio", "robin's breast", "blue whale", "grizzly bear", "cardinal bird",
    "pink grapefruit", "lobster after cooking", "lobster before cooking", "chlorophyll molecule",
]
_MUSICIANS = [
    "Louis Armstrong", "Jimi Hendrix", "Yo-Yo Ma", "Ringo Starr", "Miles Davis", "Charlie Parker",
    "John Coltrane", "Itzhak Perlman", "Glenn Gould", "Jaco Pastorius", "Buddy Rich", "Lang Lang", "B.B. King",
    "Keith Moon", "Benny Goodman", "Chet Baker", "Thelonious Monk", "Dizzy Gillespie", "Andres Segovia",
    "Ravi Shankar", "Jacqueline du Pre", "Stan Getz",
]
_ATHLETES = [
    "Serena Williams", "Lionel Messi", "Tiger Woods", "Wayne Gretzky", "Michael Jordan", "Roger Federer",
    "Babe Ruth", "Pele", "Tom Brady", "Sachin Tendulkar", "Nadia Comaneci", "Michael Phelps", "Garry Kasparov",
    "Jack Nicklaus", "Martina Navratilova", "Diego Maradona", "Don Bradman", "Shaquille O'Neal",
]
_ANIMAL_NAMES = [
    "Bambi", "Dumbo", "Lassie", "Flipper", "Garfield", "Nemo", "Simba", "Baloo", "Shere Khan", "Bugs Bunny",
    "Daffy Duck", "Paddington", "Kermit", "Snoopy", "Tweety", "Rudolph", "Black Beauty", "Moby Dick",
    "Stuart Little", "Wilbur from Charlotte's Web", "Hedwig", "Scooby-Doo", "Babar", "Smokey",
]
_ANIMAL_GROUPS = ["bird", "snake", "fish", "insect", "mammal", "spider", "shark", "whale", "monkey", "lizard",
                  "frog", "dog breed", "cat breed", "butterfly"]
_SUPERLATIVES = ["fastest", "largest", "smallest", "loudest", "most venomous", "longest-lived", "heaviest",
                 "rarest"]
_GAMES = [
    "a shuttlecock", "a puck and two nets", "a cue and fifteen numbered balls", "thirty-two pieces on a checkered board",
    "tiles marked with pips", "a feathered dart and a round board", "an oval ball and goalposts shaped like an H",
    "a bat, a ball and two wickets", "stones on a grid of nineteen lines", "a large orange ball and two hoops",
    "mallets, balls and hoops on a lawn", "a deck of cards and a cribbage board",
]
_LANDMARKS = [
    "the Eiffel Tower", "Machu Picchu", "the Taj Mahal", "Angkor Wat", "the Colosseum", "Stonehenge", "Petra",
    "the Great Barrier Reef", "Mount Kilimanjaro", "the Alhambra", "Chichen Itza", "the Acropolis",
    "the Kremlin", "the Louvre", "Table Mountain", "Victoria Falls", "Uluru", "Big Ben",
    "the Golden Gate Bridge", "Mount Rushmore", "the Statue of Liberty", "the Leaning Tower of Pisa",
    "the Sagrada Familia", "Neuschwanstein Castle", "the Forbidden City", "Niagara Falls", "Lake Titicaca",
    "the Dead Sea", "the Atacama Desert", "the Blue Mosque", "the Hagia Sophia", "Mont Saint-Michel",
    "the Matterhorn", "the Serengeti", "Ayers Rock", "the Parthenon", "the Brandenburg Gate",
]
_RIVER_CITIES = [
    "Paris", "London", "Cairo", "Baghdad", "Vienna", "Budapest", "Rome", "Prague", "Lisbon", "Moscow",
    "Shanghai", "Bangkok", "Kyiv", "Warsaw", "Dublin", "Belgrade", "Khartoum", "Seville", "Florence",
    "Cologne", "New Orleans", "Montreal", "Buenos Aires", "Calcutta",
]
_US_CITIES = ["Denver", "Tulsa", "Boise", "Omaha", "Tucson", "Spokane", "Savannah", "Duluth", "Reno", "Akron",
              "Fresno", "Knoxville", "Wichita", "Lubbock", "Anchorage"]
_BOOKS = [
    "Hamlet", "War and Peace", "Don Quixote", "Moby-Dick", "Pride and Prejudice", "The Odyssey",
    "One Hundred Years of Solitude", "Crime and Punishment", "Les Miserables", "The Great Gatsby", "Ulysses",
    "Frankenstein", "Dracula", "The Divine Comedy", "Faust", "Madame Bovary", "Anna Karenina", "The Trial",
    "Beloved", "Things Fall Apart", "Brave New World", "Nineteen Eighty-Four", "The Hobbit", "Little Women",
    "Jane Eyre", "Wuthering Heights", "The Canterbury Tales", "Paradise Lost", "Leaves of Grass",
    "The Old Man and the Sea", "Middlemarch", "The Tale of Genji",
]
_PAINTINGS = [
    "the Mona Lisa", "The Starry Night", "Guernica", "The Last Supper", "The Night Watch", "The Scream",
    "Girl with a Pearl Earring", "The Birth of Venus", "The Persistence of Memory", "American Gothic",
    "The Kiss", "Water Lilies", "The Garden of Earthly Delights", "Las Meninas", "The Arnolfini Portrait",
    "Liberty Leading the People", "Nighthawks", "The Son of Man", "Christina's World", "The Hay Wain",
]
_INVENTIONS = [
    "telephone", "light bulb", "printing press", "steam engine", "telescope", "radio", "airplane",
    "phonograph", "sewing machine", "cotton gin", "dynamite", "safety pin", "ballpoint pen", "zipper",
    "jet engine", "World Wide Web", "polio vaccine", "television", "revolver", "hovercraft", "bicycle",
    "thermometer", "barometer", "stethoscope", "mechanical calculator",
]
_DISCOVERIES = [
    "penicillin", "radium", "the electron", "X-rays", "insulin", "the neutron", "oxygen", "Uranus",
    "the planet Neptune's moon Triton", "the structure of DNA", "pulsars", "the Higgs mechanism",
    "the circulation of blood", "the moons of Jupiter", "vitamin C", "the tomb of Tutankhamun",
]
_FEATS = [
    "walk on the Moon", "reach the South Pole", "climb Mount Everest", "fly solo across the Atlantic",
    "orbit the Earth", "swim the English Channel", "sail alone around the world", "run a mile in under four minutes",
    "win two Nobel Prizes", "split the atom", "reach the North Pole", "travel into space",
]
_PRODUCTS = ["iPhone", "PlayStation", "Model T", "Walkman", "Kindle", "ThinkPad", "Game Boy", "Beetle car",
             "Post-it note", "Big Mac"]
_WORKS = [
    "The Four Seasons", "The Magic Flute", "Swan Lake", "Bolero", "The Planets", "Carmen", "The Nutcracker",
    "Messiah", "The Rite of Spring", "Clair de Lune", "Rhapsody in Blue", "The Blue Danube", "Peer Gynt",
    "Eine kleine Nachtmusik", "The Barber of Seville", "La Traviata", "Aida", "Madama Butterfly",
    "the Moonlight Sonata", "the Goldberg Variations",
]
_FILMS = [
    "Psycho", "Jaws", "Casablanca", "Citizen Kane", "Vertigo", "Seven Samurai", "Spirited Away", "Metropolis",
    "Taxi Driver", "The Godfather", "Schindler's List", "Rashomon", "Modern Times", "Amelie", "Pulp Fiction",
    "The Seventh Seal", "Bicycle Thieves", "2001: A Space Odyssey",
]
_ORGS = ["the Red Cross", "Microsoft", "the Boy Scouts", "Amazon", "Wikipedia", "Ford Motor Company",
         "the Nobel Prize", "Greenpeace", "the Salvation Army", "Standard Oil", "the Olympic Games in modern form",
         "Harvard University"]
_WORDS = [
    "serendipity", "ephemeral", "ubiquitous", "quixotic", "melancholy", "nostalgia", "hubris", "schadenfreude",
    "zeitgeist", "wanderlust", "catharsis", "irony", "paradox", "metaphor", "allegory", "euphemism",
    "oxymoron", "satire", "epiphany", "karma", "nirvana", "deja vu", "gerrymandering", "filibuster",
    "diaspora", "utopia", "dystopia", "hyperbole", "onomatopoeia", "sonder", "petrichor", "hygge", "ennui",
    "limerence", "apathy", "empathy", "stoic", "laconic", "verbose", "pragmatic",
]
_CONCEPTS = [
    "inflation", "photosynthesis", "democracy", "a black hole", "entropy", "a recession", "osmosis",
    "an eclipse", "a sonnet", "plankton", "a haiku", "cubism", "stoicism", "capitalism", "a tsunami",
    "a monsoon", "the greenhouse effect", "supply and demand", "natural selection", "a placebo",
    "the Doppler effect", "impressionism", "a sonata", "a filibuster in the Senate",
]
_WHY = [
    "Why do leaves change colour in autumn?", "Why do cats purr?", "Why do onions make people cry?",
    "Why do stars twinkle?", "Why do birds migrate?", "Why does bread rise?", "Why does ice float on water?",
    "Why do people yawn?", "Why do zebras have stripes?", "Why do the tides rise and fall?",
    "Why do volcanoes erupt?", "Why do we dream?", "Why does the Moon have phases?", "Why is the sea salty?",
    "Why do knuckles crack?", "Why is the sky blue?", "Why do we get goosebumps?", "Why do dogs wag their tails?",
    "Why does popcorn pop?", "Why do we hiccup?", "Why did the Roman Empire fall?", "Why do boats float?",
    "Why do we have leap years?", "Why do fireflies glow?", "Why does metal feel colder than wood?",
]
_MACHINES = ["refrigerator", "jet engine", "microwave oven", "compass", "thermostat", "battery", "solar panel",
             "camera", "pressure cooker", "smoke detector", "elevator", "touch screen", "hearing aid",
             "lie detector", "espresso machine", "parachute", "submarine", "windmill", "hydraulic press",
             "fuel cell"]
_TASKS = ["tie a bowline knot", "make sourdough bread", "change a flat tyre", "brew green tea", "plant a tree",
          "fold a paper crane", "read a topographic map", "tune a guitar", "remove a red wine stain",
          "start a compost heap", "whistle with two fingers", "skip a stone across water", "train a puppy",
          "grow basil indoors", "juggle three balls"]
_ORIGINS = ["April Fools' Day", "the Olympic flame", "the handshake", "Halloween", "the wedding ring",
            "the Christmas tree", "the marathon", "the word salary", "the phrase break a leg",
            "birthday candles", "the high five", "the tooth fairy", "the weekend", "the necktie"]
_DIFFERENCES = ["weather and climate", "a virus and a bacterium", "a crocodile and an alligator",
                "affect and effect", "a comet and an asteroid", "a turtle and a tortoise", "a psychologist and a psychiatrist",
                "baking soda and baking powder", "a hurricane and a typhoon", "empathy and sympathy"]
_PEOPLE = [
    "Mozart", "Shakespeare", "Cleopatra", "Napoleon", "Gandhi", "Einstein", "Marie Curie", "Frida Kahlo",
    "Abraham Lincoln", "Queen Victoria", "Nelson Mandela", "Galileo", "Isaac Newton", "Charles Darwin",
    "Leonardo da Vinci", "Beethoven", "Jane Austen", "Mark Twain", "Julius Caesar", "Joan of Arc",
    "Catherine the Great", "Simon Bolivar", "Rosa Parks", "Ada Lovelace", "Nikola Tesla", "Pablo Picasso",
    "Florence Nightingale", "Harriet Tubman", "Genghis Khan", "Confucius",
]
_UNITS = [
    "How many days are there in a leap year?", "How many seconds are in an hour?", "How many ounces are in a pound?",
    "How many feet are in a mile?", "How many players are on a soccer team?", "How many keys does a piano have?",
    "How many bones are in the human body?", "How many teeth does an adult have?", "How many hearts does an octopus have?",
    "How many strings does a violin have?", "How many sides does a dodecagon have?", "How many squares are on a chessboard?",
    "How many time zones does Russia span?", "How many moons does Mars have?", "How many stripes are on the US flag?",
    "How many cards are in a standard deck?", "How many lines does a sonnet have?", "How many legs does a spider have?",
    "How many carats is pure gold?", "How many states are in Australia?", "How many chambers does the heart have?",
    "How many innings are in a baseball game?", "How many pints are in a gallon?", "How many degrees are in a circle?",
]
_EVENTS = [
    "the Berlin Wall fall", "the Titanic sink", "World War I begin", "humans first land on the Moon",
    "the French Revolution start", "Columbus reach the Americas", "the Great Fire of London happen",
    "the Wright brothers first fly", "the Magna Carta get signed", "the Soviet Union dissolve",
    "the Panama Canal open", "women in New Zealand win the vote", "the Suez Canal open", "Pompeii get buried",
    "the first Olympic Games of the modern era take place", "the Chernobyl accident happen",
    "the euro enter circulation", "Mount St. Helens erupt", "the Hubble telescope launch", "Hawaii become a state",
]
_TALL = ["the Eiffel Tower", "Big Ben", "Mount Kilimanjaro", "the Statue of Liberty", "the Leaning Tower of Pisa",
         "the Burj Khalifa", "the Empire State Building", "Mount Fuji", "the Great Pyramid of Giza", "K2",
         "Angel Falls", "a giraffe", "an adult African elephant", "the CN Tower", "Mount Olympus"]
_CITY_PAIRS = [("London", "Paris"), ("New York", "Boston"), ("Tokyo", "Osaka"), ("Sydney", "Melbourne"),
               ("Madrid", "Barcelona"), ("Berlin", "Munich"), ("Cairo", "Alexandria"), ("Delhi", "Mumbai"),
               ("Rome", "Naples"), ("Toronto", "Ottawa"), ("the Earth", "the Moon"), ("the Earth", "the Sun"),
               ("Lima", "Cusco"), ("Nairobi", "Mombasa"), ("Chicago", "Detroit")]
_ANIMALS = ["African elephant", "blue whale", "polar bear", "giraffe", "hippopotamus", "gorilla", "ostrich",
            "grizzly bear", "bald eagle", "Bengal tiger", "bottlenose dolphin", "emperor penguin", "moose",
            "koala", "red kangaroo", "anaconda", "walrus", "bison"]
_RIVERS = ["Nile", "Amazon", "Yangtze", "Mississippi", "Danube", "Rhine", "Thames", "Volga", "Ganges", "Mekong",
           "Congo", "Niger", "Zambezi", "Seine", "Tigris", "Yukon"]
_DEPTHS = ["the Pacific Ocean", "Lake Baikal", "the Mariana Trench", "Lake Superior", "the Grand Canyon",
           "Loch Ness", "the Red Sea", "Crater Lake", "the Black Sea", "Lake Tanganyika"]


def _abbreviation() -> list[str]:
    out = []
    for a in _ACRONYMS:
        out += [f"What does {a} stand for?", f"What is the full form of {a}?", f"What do the letters {a} mean?",
                f"{a} is short for what?"]
    for phrase in _LONG_FORMS:
        out += [f"How is {phrase} usually shortened?", f"What is the short form of {phrase}?",
                f"Which letters are written for {phrase} in short?"]
    return out


def _entity() -> list[str]:
    out = [f"What colour is a {t}?" for t in _THINGS_WITH_COLOUR]
    for c in _COUNTRIES:
        out += [f"What language is spoken in {c}?", f"What currency is used in {c}?",
                f"What is the national flower of {c}?"]
    out += [f"What instrument did {m} play?" for m in _MUSICIANS]
    out += [f"What sport did {a} play?" for a in _ATHLETES]
    out += [f"What kind of animal is {n}?" for n in _ANIMAL_NAMES]
    out += [f"Which {g} is the {s}?" for g in _ANIMAL_GROUPS for s in _SUPERLATIVES]
    out += [f"What game is played with {g}?" for g in _GAMES]
    return out


def _description() -> list[str]:
    out = [f"What does the word {w} mean?" for w in _WORDS]
    out += [f"What is meant by {w}?" for w in _WORDS]
    out += [f"What is {c}?" for c in _CONCEPTS]
    out += list(_WHY)
    out += [f"How does a {m} work?" for m in _MACHINES]
    out += [f"How do you {t}?" for t in _TASKS]
    out += [f"What is the origin of {o}?" for o in _ORIGINS]
    out += [f"What is the difference between {d}?" for d in _DIFFERENCES]
    out += [f"Name the main idea behind {c}." for c in _CONCEPTS]
    return out


def _human() -> list[str]:
    out = []
    for b in _BOOKS:
        out += [f"Who wrote {b}?", f"Who is the author of {b}?", f"Name the writer of {b}."]
    out += [f"Who painted {p}?" for p in _PAINTINGS]
    out += [f"Who invented the {i}?" for i in _INVENTIONS]
    out += [f"Who discovered {d}?" for d in _DISCOVERIES]
    out += [f"Who was the first person to {f}?" for f in _FEATS]
    out += [f"Name the first person to {f}." for f in _FEATS]
    out += [f"Which company makes the {p}?" for p in _PRODUCTS]
    out += [f"Who composed {w}?" for w in _WORKS]
    out += [f"Who directed {f}?" for f in _FILMS]
    out += [f"Who founded {o}?" for o in _ORGS]
    return out


def _location() -> list[str]:
    out = []
    for c in _COUNTRIES:
        out += [f"What is the capital of {c}?", f"What continent is {c} on?"]
    for landmark in _LANDMARKS:
        out += [f"Where is {landmark}?", f"In which country is {landmark}?"]
    out += [f"Which river flows through {c}?" for c in _RIVER_CITIES]
    out += [f"In what state is {c}?" for c in _US_CITIES]
    return out


def _numeric() -> list[str]:
    out = list(_UNITS)
    for p in _PEOPLE:
        out += [f"When was {p} born?", f"In what year did {p} die?"]
    out += [f"What year did {e}?" for e in _EVENTS]
    out += [f"How tall is {t}?" for t in _TALL]
    out += [f"How far is {a} from {b}?" for a, b in _CITY_PAIRS]
    out += [f"What is the population of {c}?" for c in _COUNTRIES]
    out += [f"How much does an adult {a} weigh?" for a in _ANIMALS]
    out += [f"How long is the {r}?" for r in _RIVERS]
    out += [f"How deep is {d}?" for d in _DEPTHS]
    return out


@functools.lru_cache(maxsize=1)
def instance_pool() -> dict[str, tuple[str, ...]]:
    """Label -> questions (at most a few hundred each, fixed order; the same on every machine)."""
    makers = [_abbreviation, _entity, _description, _human, _location, _numeric]
    rng = random.Random(20251231)
    pool: dict[str, tuple[str, ...]] = {}
    seen: set[str] = set()
    for label, make in zip(TREC_LABELS, makers):
        questions = sorted(set(make()))
        rng.shuffle(questions)
        questions = questions[:_PER_LABEL]
        clash = seen.intersection(questions)
        if clash:
            raise AssertionError(f"questions under two labels: {sorted(clash)[:3]}")
        seen.update(questions)
        pool[label] = tuple(questions)
    lowered = "\n".join(seen).lower()
    for label in TREC_LABELS:  # the text must never name a label
        if label in lowered:
            raise AssertionError(f"a question names the label {label!r}")
    return pool


@functools.lru_cache(maxsize=1)
def instance_labels() -> dict[str, str]:
    """The side table: question text -> its hidden label."""
    return {q: label for label, questions in instance_pool().items() for q in questions}
