package guard

// Word lists of the guard. They are general English (and, for the language
// rule, a few other languages') function words and pairs, not words taken
// from any evaluation set.

// stopWords are the words that frame a question rather than carry its
// subject: articles, auxiliaries, pronouns, prepositions, question words,
// and the verbs of a request ("tell me", "give me", "I want"). They never
// count as a differing slot (rule "substitution") nor as a named entity when
// capitalised.
var stopWords = setOf(
	"a", "an", "the", "is", "are", "was", "were", "be", "been", "being", "am",
	"do", "does", "did", "doing", "have", "has", "had", "having",
	"i", "me", "my", "mine", "myself", "you", "your", "yours", "we", "us", "our",
	"he", "him", "his", "she", "her", "it", "its", "they", "them", "their",
	"this", "that", "these", "those", "there", "here",
	"what", "which", "who", "whom", "whose", "when", "where", "why", "how",
	"can", "could", "should", "would", "will", "shall", "may", "might", "must",
	"of", "to", "in", "on", "at", "by", "for", "with", "about", "from", "into",
	"onto", "as", "and", "or", "but", "if", "so", "than", "then", "some", "any",
	"just", "also", "very", "really", "much", "many", "like", "please", "tell",
	"give", "show", "let", "want", "need", "know", "help", "hi", "hello", "hey",
	"thanks", "thank", "ok", "okay", "one", "s", "re", "ve", "ll", "d", "m", "t",
	"not", "no", "never", "don", "doesn", "didn", "isn", "aren", "wasn", "weren",
	"can't", "cannot", "won", "wouldn", "shouldn", "couldn", "haven", "hasn", "hadn",
)

// negations are the words whose presence in one prompt but not the other
// flips the question ("words ending in n't" are recognised separately).
var negations = setOf(
	"not", "no", "never", "without", "nor", "none", "nobody", "nothing",
	"nowhere", "neither", "cannot", "dont", "doesnt", "didnt", "isnt",
	"arent", "wasnt", "werent", "wont", "cant", "couldnt", "shouldnt", "wouldnt",
	"havent", "hasnt", "hadnt",
)

// antonyms are opposites common in questions, by stem, both ways. A prompt holding one side
// of a pair and not the other, against a prompt holding the other side and
// not the first, is refused. Compared by stem, so inflections match
// ("increasing" against "decreases").
var antonyms = stemPairs(
	"increase", "decrease", "add", "remove", "enable", "disable",
	"encrypt", "decrypt", "compress", "decompress", "install", "uninstall",
	"min", "max", "minimum", "maximum", "before", "after", "above", "below",
	"buy", "sell", "import", "export", "upload", "download", "push", "pull",
	"open", "close", "start", "stop", "win", "lose", "hot", "cold",
	"hard", "soft", "boiling", "freezing", "best", "worst", "more", "less",
	"most", "least", "higher", "lower", "high", "low", "faster", "slower",
	"fast", "slow", "cheap", "expensive", "big", "small", "large", "small",
	"long", "short", "early", "late", "first", "last", "left", "right",
	"up", "down", "true", "false", "positive", "negative",
	"advantages", "disadvantages", "pros", "cons", "safe", "dangerous",
	"legal", "illegal", "allow", "deny", "accept", "reject",
	"include", "exclude", "inner", "outer", "ascending", "descending",
	"male", "female", "north", "south", "east", "west", "day", "night",
	"summer", "winter", "input", "output", "client", "server",
	"read", "write", "public", "private", "sync", "async",
	"synchronous", "asynchronous", "frontend", "backend", "create", "delete",
	"insert", "delete", "merge", "split", "join", "split", "encode", "decode",
	"lock", "unlock", "connect", "disconnect", "subscribe", "unsubscribe",
	"follow", "unfollow", "old", "young", "rich", "poor", "wet", "dry",
	"light", "dark", "light", "heavy", "strong", "weak", "gain", "lose",
	"benefits", "risks", "love", "hate", "success", "failure", "pass", "fail",
)

func stemPairs(words ...string) map[string][]string {
	out := make(map[string][]string, len(words))
	for i := 0; i+1 < len(words); i += 2 {
		x, y := stem(words[i]), stem(words[i+1])
		out[x] = append(out[x], y)
		out[y] = append(out[y], x)
	}
	return out
}

// numberWords are number words read as their digits, so "three" equals "3".
// "one" is left out: it is far more often a pronoun ("which one", "one of")
// than a count, and counting it would refuse "what's one way" against "what's
// a way".
var numberWords = map[string]int64{
	"zero": 0, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
	"seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12,
	"thirteen": 13, "fourteen": 14, "fifteen": 15, "sixteen": 16,
	"seventeen": 17, "eighteen": 18, "nineteen": 19, "twenty": 20,
	"thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70,
	"eighty": 80, "ninety": 90, "hundred": 100, "thousand": 1000,
	"million": 1000000, "billion": 1000000000, "dozen": 12,
}

// units maps unit and currency words, when they follow a number, to one
// canonical name, so "5 km" equals "5 kilometres" but not "5 miles".
var units = map[string]string{
	"km": "km", "kilometer": "km", "kilometers": "km", "kilometre": "km", "kilometres": "km", "kms": "km",
	"mi": "mi", "mile": "mi", "miles": "mi",
	"m": "m", "meter": "m", "meters": "m", "metre": "m", "metres": "m",
	"cm": "cm", "centimeter": "cm", "centimeters": "cm", "centimetre": "cm", "centimetres": "cm",
	"mm": "mm", "millimeter": "mm", "millimeters": "mm", "millimetre": "mm", "millimetres": "mm",
	"in": "in", "inch": "in", "inches": "in", "ft": "ft", "foot": "ft", "feet": "ft",
	"yd": "yd", "yard": "yd", "yards": "yd",
	"kg": "kg", "kilogram": "kg", "kilograms": "kg", "kilo": "kg", "kilos": "kg",
	"g": "g", "gram": "g", "grams": "g", "mg": "mg", "milligram": "mg", "milligrams": "mg",
	"lb": "lb", "lbs": "lb", "pound": "lb", "pounds": "lb", "oz": "oz", "ounce": "oz", "ounces": "oz",
	"l": "l", "liter": "l", "liters": "l", "litre": "l", "litres": "l",
	"ml": "ml", "milliliter": "ml", "milliliters": "ml", "millilitre": "ml", "millilitres": "ml",
	"gallon": "gal", "gallons": "gal", "gal": "gal", "cup": "cup", "cups": "cup",
	"c": "degc", "°c": "degc", "celsius": "degc", "f": "degf", "°f": "degf", "fahrenheit": "degf",
	"kelvin": "kelvin", "°": "deg", "degree": "deg", "degrees": "deg",
	"s": "s", "sec": "s", "secs": "s", "second": "s", "seconds": "s",
	"ms": "ms", "millisecond": "ms", "milliseconds": "ms",
	"min": "min", "mins": "min", "minute": "min", "minutes": "min",
	"h": "h", "hr": "h", "hrs": "h", "hour": "h", "hours": "h",
	"day": "day", "days": "day", "week": "week", "weeks": "week",
	"month": "month", "months": "month", "year": "year", "years": "year",
	"kb": "kb", "mb": "mb", "gb": "gb", "tb": "tb", "kib": "kib", "mib": "mib", "gib": "gib",
	"k": "k", "x": "x", "%": "pct", "percent": "pct", "pct": "pct",
	"mph": "mph", "kph": "kph", "kmh": "kph", "hz": "hz", "khz": "khz", "mhz": "mhz", "ghz": "ghz",
	"w": "w", "watt": "w", "watts": "w", "kw": "kw", "kwh": "kwh", "v": "volt", "volt": "volt", "volts": "volt",
	"calorie": "kcal", "calories": "kcal", "kcal": "kcal", "cal": "kcal",
	"$": "usd", "usd": "usd", "dollar": "usd", "dollars": "usd", "bucks": "usd",
	"€": "eur", "eur": "eur", "euro": "eur", "euros": "eur",
	"£": "gbp", "gbp": "gbp", "quid": "gbp", "sterling": "gbp",
	"¥": "jpy", "jpy": "jpy", "yen": "jpy", "₹": "inr", "inr": "inr", "rupee": "inr", "rupees": "inr",
	"btc": "btc", "bitcoin": "btc", "bitcoins": "btc", "cad": "cad", "aud": "aud", "chf": "chf", "cny": "cny", "yuan": "cny",
	"token": "token", "tokens": "token", "st": "ord", "nd": "ord", "rd": "ord", "th": "ord",
}

// langWords are frequent function words of a few languages written in the
// Latin script, each with the bit set of the languages (langNames) it
// belongs to; a prompt's language is the one with the most hits (at least
// two, and strictly more than any other).
var langNames = [...]string{"en", "es", "fr", "de", "it", "pt", "nl"}

var langWords = func() map[string]uint8 {
	lists := [len(langNames)][]string{
		{"the", "is", "are", "and", "of", "to", "in", "what", "how", "i", "you", "a", "for", "with", "my", "do", "does", "can", "it", "this", "that", "why", "which", "who", "should", "me", "on", "be"},
		{"el", "la", "los", "las", "es", "y", "de", "que", "en", "por", "para", "cómo", "como", "qué", "un", "una", "mi", "con", "se", "del", "al", "puedo", "cuál", "está"},
		{"le", "la", "les", "est", "et", "de", "des", "que", "un", "une", "pour", "dans", "comment", "je", "mon", "avec", "ce", "du", "au", "quel", "quelle", "qu'est-ce", "pourquoi", "sur"},
		{"der", "die", "das", "ist", "und", "ich", "wie", "was", "ein", "eine", "nicht", "mit", "für", "mein", "zu", "den", "dem", "auf", "kann", "warum", "welche", "sind", "im"},
		{"il", "lo", "la", "è", "e", "di", "che", "come", "un", "una", "per", "con", "mio", "sono", "gli", "del", "della", "posso", "perché", "qual"},
		{"o", "os", "é", "e", "de", "que", "como", "um", "uma", "para", "com", "meu", "não", "em", "do", "da", "posso", "qual", "por", "quê"},
		{"de", "het", "een", "is", "en", "van", "ik", "hoe", "wat", "niet", "met", "voor", "mijn", "op", "zijn", "waarom", "welke", "kan"},
	}
	m := map[string]uint8{}
	for i, l := range lists {
		for _, w := range l {
			m[w] |= 1 << i
		}
	}
	return m
}()

func setOf(words ...string) map[string]bool {
	m := make(map[string]bool, len(words))
	for _, w := range words {
		m[w] = true
	}
	return m
}

// bareContractions are contractions written without their apostrophe, as
// casual text does ("whats", "im"), with the word they stand for.
var bareContractions = map[string]string{
	"whats": "what", "hows": "how", "wheres": "where", "whos": "who",
	"whens": "when", "whys": "why", "thats": "that", "theres": "there",
	"heres": "here", "im": "i", "ive": "i", "youre": "you", "youve": "you",
	"theyre": "they", "weve": "we", "hes": "he", "shes": "she", "lets": "let",
}

// freeWords need no partner in the other prompt: greetings, thanks,
// fillers, slang, hedges and the verbs of a request ("explain X" asks what
// "what is X" asks). General English, not taken from any evaluation set.
var freeWords = setOf(
	"hi", "hello", "hey", "hiya", "greetings", "thanks", "thank", "thx", "ty",
	"cheers", "please", "pls", "plz", "sorry", "appreciate", "appreciated",
	"advance", "kindly", "dear", "folks", "guys", "everyone", "anyone", "someone",
	"honestly", "basically", "actually", "really", "seriously", "literally",
	"question", "wondering", "wonder", "curious", "confused",
	"lol", "tf", "heck", "hell", "damn", "btw", "fyi", "imo", "ur", "u", "r",
	"gonna", "wanna", "gotta", "kinda", "sorta", "stuff", "lemme", "gimme",
	"explain", "describe", "tell", "list", "give", "show", "suggest", "provide",
	"share", "name", "outline", "summarize", "summarise", "clarify", "define",
	"know", "want", "need", "help", "like", "would", "could", "possible",
	"exactly", "specifically", "briefly", "simply", "okay", "ok", "yes", "yeah",
	"assist", "answer", "let", "mind", "wanted", "ask", "asking",
	"between", "up", "out", "away", "off", "down", "together",
	"vs", "versus", "way", "proper", "properly", "correct", "correctly",
	"anyway", "even", "yo", "rn", "w", "recommend", "go", "about", "so",
)

// hedgeWords follow a negation that speaks about the asker, not the
// question: "I don't know how to", "not sure", "no idea".
var hedgeWords = setOf(
	"know", "sure", "understand", "remember", "idea", "certain", "clear",
	"figure", "recall", "get", "quite",
)

// howMuch are the words after "how" that ask for an amount or a measure.
var howMuch = setOf(
	"many", "much", "long", "old", "far", "often", "big", "tall", "high",
	"fast", "large", "small", "deep", "wide", "heavy", "soon", "late",
	"early", "frequently", "expensive", "cheap",
)

// particleWords are the particles of phrasal verbs ("zoom in", "log out").
var particleWords = setOf(
	"in", "out", "up", "down", "on", "off", "back", "away", "over", "through",
)

// prepositionLike particles are mostly prepositions.
var prepositionLike = setOf("in", "on", "over", "through")

// markerGroups are the words that mark a direction or a role, by group:
// "to" and "into" mark the same role.
var markerGroups = map[string]uint8{
	"to": 1, "into": 1, "onto": 1, "toward": 1, "towards": 1,
	"from": 2,
	"than": 3,
	"vs":   3, "versus": 3, "against": 3,
	"over":    5,
	"of":      6,
	"instead": 7,
	"by":      8,
	"for":     9,
	"with":    10,
	"in":      11,
}

// maxDirection: marker groups up to it mark a direction ("to", "from",
// "than", "vs"); a word governed by one in a prompt and by another in the
// other has changed its role.
const maxDirection = 3

// argGlue may stand between a marker and its argument: articles,
// possessives, determiners.
var argGlue = setOf(
	"a", "an", "the", "my", "your", "our", "their", "his", "her", "its",
	"this", "that", "these", "those", "some", "any", "each", "every",
)

// requestVerbs open a request: a sentence that starts with one asks for
// something, whatever its punctuation.
var requestVerbs = setOf(
	"write", "give", "list", "explain", "tell", "make", "create", "convert",
	"calculate", "compute", "suggest", "translate", "summarize", "summarise",
	"draft", "show", "keep", "use", "include", "answer", "respond", "format",
	"describe", "compare", "recommend", "find", "plan", "generate", "rewrite",
	"edit", "fix", "help", "design", "outline", "name", "provide", "send",
	"add", "remove", "avoid", "focus", "limit", "only", "don't", "do", "be",
	"make", "put", "return", "output", "reply", "sort", "solve", "check",
	"proofread", "define", "state", "walk", "let", "assume", "imagine",
)

// greetingWords open a sentence of courtesy ("Hi, hope you're well.").
var greetingWords = setOf(
	"hi", "hello", "hey", "morning", "evening", "afternoon", "greetings",
	"thanks", "thank", "cheers", "hiya", "howdy", "dear", "good",
)

// frameVerbs, opening a sentence, frame a request for an answer that a
// question would get as well: "Calculate 2 to the power of 10." asks what
// "What is 2 to the power of 10?" asks.
var frameVerbs = setOf(
	"calculate", "compute", "determine", "find", "state", "identify",
	"walk", "guide", "teach",
)
