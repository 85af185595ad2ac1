package main

// Word lists and sentence templates for the generated prompts (prompts.go).
// Everyday English, chosen so that any combination reads as a question a
// person could plausibly ask a chat assistant about home, hobbies or work.
//
// things, places and qualities are the three slots every generated
// conversation fills from its id (see promptGen.slots): they must stay free
// of duplicates, and no word may be in two of them, so that different ids
// give different texts.

// things are what a conversation is about.
var things = []string{
	"bicycle", "laptop", "spreadsheet", "garden bed", "sourdough starter", "kitchen drawer", "resume", "bookshelf",
	"washing machine", "dishwasher", "coffee grinder", "espresso machine", "rice cooker", "slow cooker", "air fryer",
	"cast iron pan", "chef's knife", "cutting board", "blender", "toaster oven", "microwave", "refrigerator", "freezer",
	"water heater", "thermostat", "ceiling fan", "space heater", "dehumidifier", "humidifier", "air purifier",
	"vacuum cleaner", "robot vacuum", "lawn mower", "leaf blower", "pressure washer", "garden hose", "compost bin",
	"raised planter", "tomato plant", "herb garden", "rose bush", "lemon tree", "fiddle leaf fig", "succulent",
	"orchid", "houseplant", "bird feeder", "chicken coop", "fish tank", "hamster cage", "dog crate", "cat litter box",
	"scratching post", "dog leash", "saddle", "skateboard", "snowboard", "pair of skis", "hiking boots", "tent",
	"sleeping bag", "camping stove", "backpack", "kayak", "canoe", "fishing rod", "tackle box", "climbing harness",
	"yoga mat", "treadmill", "rowing machine", "exercise bike", "kettlebell", "pull-up bar", "running shoes",
	"smartwatch", "fitness tracker", "phone charger", "wireless router", "mesh network", "network switch",
	"printer", "scanner", "external hard drive", "backup drive", "home server", "raspberry pi", "gaming console",
	"television", "soundbar", "turntable", "record collection", "guitar", "ukulele", "keyboard piano", "violin",
	"drum kit", "microphone", "audio interface", "webcam", "ring light", "camera lens", "tripod", "drone",
	"telescope", "microscope", "sewing machine", "knitting project", "quilt", "embroidery hoop", "pottery wheel",
	"kiln", "woodworking bench", "table saw", "cordless drill", "socket set", "toolbox", "ladder", "workbench",
	"shed", "fence", "deck", "patio", "gutter", "roof tile", "chimney", "fireplace", "wood stove", "garage door",
	"front door lock", "doorbell camera", "smoke detector", "security system", "window blinds", "curtain rod",
	"area rug", "sofa", "recliner", "mattress", "bed frame", "crib", "high chair", "stroller", "car seat",
	"dining table", "office chair", "standing desk", "monitor arm", "mechanical keyboard", "computer mouse",
	"filing cabinet", "label maker", "whiteboard", "planner", "calendar", "budget", "tax return", "invoice",
	"expense report", "cover letter", "job application", "grant proposal", "business plan", "marketing email",
	"newsletter", "blog post", "podcast episode", "slide deck", "presentation", "meeting agenda", "project timeline",
	"product roadmap", "customer survey", "feedback form", "training manual", "onboarding guide", "style guide",
	"wedding speech", "eulogy", "birthday card", "thank-you note", "apology letter", "complaint letter",
	"rental agreement", "lease renewal", "insurance claim", "warranty claim", "mortgage application",
	"retirement account", "savings plan", "emergency fund", "credit card debt", "student loan", "car loan",
	"used car", "electric car", "car battery", "tire", "windshield wiper", "motorcycle", "scooter", "e-bike",
	"bike chain", "brake pad", "roof rack", "trailer", "camper van", "boat trailer", "sailboat", "paddleboard",
	"suitcase", "carry-on bag", "passport application", "travel itinerary", "roof box", "packing list",
	"photo album", "family tree", "scrapbook", "jigsaw puzzle", "board game collection", "chess set",
	"model railway", "lego set", "comic collection", "stamp collection", "coin collection", "vinyl shelf",
	"wine rack", "home bar", "spice rack", "pantry", "meal plan", "grocery list", "lunch box", "water bottle",
	"thermos", "picnic basket", "barbecue grill", "smoker", "pizza oven", "fire pit", "hot tub", "swimming pool",
	"pool filter", "sprinkler system", "rain barrel", "solar panel", "battery bank", "generator", "extension cord",
	"light fixture", "dimmer switch", "smart plug", "smart speaker", "baby monitor", "night light", "aquarium heater",
	"bathroom fan", "shower head", "toilet tank", "kitchen sink", "garbage disposal", "faucet", "tile grout",
	"drywall patch", "paint job", "wallpaper", "hardwood floor", "laminate floor", "carpet", "staircase",
	"handrail", "closet", "walk-in closet", "attic", "basement", "crawl space", "foundation crack", "sump pump",
	"well pump", "septic tank", "mailbox", "driveway", "walkway", "retaining wall", "hedge", "oak tree", "stump",
	"vegetable patch", "strawberry bed", "blueberry bush", "potato crop", "pumpkin patch", "beehive",
	"ant problem", "mouse problem", "mold spot", "leaky window", "drafty door", "squeaky floorboard",
	"noisy radiator", "cracked phone screen", "slow laptop", "old tablet", "e-reader", "password manager",
	"email inbox", "photo library", "cloud backup", "home network", "video call setup", "podcast microphone",
	"language course", "piano lesson", "math homework", "science fair project", "history essay", "book report",
	"research paper", "thesis outline", "lab notebook", "reading list", "study schedule", "exam plan",
	"flashcard deck", "vocabulary list", "coding project", "website", "online shop", "mobile app", "database",
	"shell script", "python script", "unit test", "pull request", "bug report", "deployment pipeline",
	"server migration", "log file", "dashboard", "data pipeline", "chatbot", "recommendation engine",
}

// places are where, or for what, the thing is needed.
var places = []string{
	"small bakery", "home office", "studio apartment", "camping trip", "book club", "community garden",
	"first marathon", "remote team", "family reunion", "school play", "summer camp", "wedding reception",
	"birthday party", "garage sale", "farmers market stall", "food truck", "coffee shop", "dental practice",
	"veterinary clinic", "yoga studio", "climbing gym", "dance school", "music school", "art class",
	"pottery studio", "woodworking club", "chess club", "robotics team", "debate team", "soccer team",
	"basketball league", "swim team", "running club", "cycling club", "hiking group", "scout troop",
	"church choir", "volunteer group", "animal shelter", "food bank", "public library", "primary school",
	"high school class", "university course", "night class", "language exchange", "coworking space",
	"startup", "consulting firm", "law office", "accounting firm", "real estate agency", "hair salon",
	"barber shop", "nail salon", "florist", "bookstore", "record store", "bike shop", "hardware store",
	"pet store", "toy store", "thrift store", "antique shop", "gallery", "museum exhibit", "theater group",
	"film club", "photography class", "podcast", "youtube channel", "newsletter business", "online course",
	"craft fair", "holiday market", "christmas dinner", "thanksgiving meal", "new year party", "baby shower",
	"retirement party", "housewarming", "graduation party", "dinner party", "potluck", "barbecue", "picnic",
	"beach day", "ski weekend", "fishing weekend", "road trip", "cross-country move", "house move",
	"kitchen renovation", "bathroom remodel", "basement conversion", "attic conversion", "guest room",
	"nursery", "teenager's bedroom", "shared flat", "dorm room", "tiny house", "houseboat", "cabin",
	"farmhouse", "allotment", "balcony garden", "rooftop terrace", "backyard", "front yard", "side yard",
	"vacation rental", "bed and breakfast", "small hotel", "restaurant kitchen", "pizza place", "brewery",
	"winery", "cheese shop", "butcher shop", "catering business", "cleaning business", "landscaping business",
	"plumbing business", "electrician business", "roofing company", "moving company", "daycare", "preschool",
	"tutoring service", "driving school", "gym", "physiotherapy clinic", "pharmacy", "hospital ward",
	"nursing home", "hospice", "research lab", "field study", "science museum", "zoo", "aquarium visit",
	"farm", "orchard", "vineyard", "ranch", "stable", "kennel", "cattery", "pet sitting business",
	"dog walking business", "grooming salon", "repair cafe", "maker space", "hackathon", "game jam",
	"conference talk", "trade show", "sales meeting", "board meeting", "team retreat", "offsite workshop",
	"quarterly review", "product launch", "fundraiser", "charity run", "silent auction", "raffle",
	"neighborhood association", "homeowners association", "tenant meeting", "city council meeting",
	"election campaign", "protest march", "clean-up day", "tree planting day", "open house", "job interview",
	"performance review", "first day at work", "parental leave", "sabbatical", "gap year", "semester abroad",
	"exchange program", "internship", "apprenticeship", "night shift", "weekend job", "side business",
	"freelance practice", "etsy shop", "ebay store", "subscription box", "meal kit service", "delivery route",
	"taxi service", "tour company", "travel blog", "hostel", "campsite", "marina", "ski lodge", "golf club",
	"tennis club", "sailing club", "rowing club", "surf school", "diving school", "flight school",
	"chemistry class", "biology lab", "physics project", "engineering team", "design studio", "print shop",
	"newspaper", "radio station", "television studio", "recording studio", "band rehearsal", "orchestra",
	"jazz trio", "wedding band", "drama club", "comedy night", "poetry reading", "writing group",
	"family budget", "household", "grandparents' house", "holiday cottage", "shared garden", "apartment block",
}

// qualities describe the thing.
var qualities = []string{
	"old", "cheap", "noisy", "second-hand", "lightweight", "waterproof", "handmade", "cracked", "overheating",
	"slow", "oversized", "tiny", "brand-new", "refurbished", "vintage", "inherited", "borrowed", "rented",
	"leaky", "rusty", "wobbly", "sticky", "dusty", "moldy", "faded", "scratched", "dented", "bent", "warped",
	"loose", "stiff", "squeaky", "rattling", "flickering", "unreliable", "temperamental", "overpriced",
	"low-budget", "premium", "basic", "advanced", "complicated", "simple", "modular", "foldable", "portable",
	"heavy", "fragile", "sturdy", "durable", "flimsy", "wooden", "metal", "plastic", "ceramic", "glass",
	"leather", "canvas", "bamboo", "recycled", "organic", "local", "imported", "custom", "standard",
	"unfinished", "half-finished", "abandoned", "neglected", "overgrown", "crowded", "empty", "messy",
	"cluttered", "tidy", "outdated", "modern", "classic", "traditional", "experimental", "temporary",
	"permanent", "shared", "personal", "secondary", "spare", "backup", "replacement", "original",
	"discounted", "donated", "gifted", "unused", "overused", "worn-out", "patched", "repaired", "restored",
	"repainted", "upgraded", "downgraded", "mismatched", "matching", "colorful", "plain", "bright", "dark",
	"damp", "dry", "frozen", "sunburnt", "waterlogged", "drafty", "stuffy", "cramped", "spacious", "narrow",
	"wide", "tall", "short", "long", "round", "square", "curved", "flat", "steep", "uneven", "slippery",
	"smelly", "greasy", "stained", "chipped", "peeling", "tangled", "knotted", "frayed", "torn", "soggy",
	"brittle", "flaky", "crumbly", "bumpy", "wet", "muddy", "sandy", "salty", "sour", "bitter", "bland",
	"spicy", "sweet", "overcooked", "undercooked", "expired", "seasonal", "weekly", "monthly", "yearly",
	"overdue", "late", "rushed", "delayed", "urgent", "important", "minor", "major", "tricky", "awkward",
	"confusing", "boring", "tedious", "exhausting", "expensive", "affordable", "free", "mandatory",
	"optional", "quiet", "loud", "crooked", "hollow", "solid", "sharp", "dull", "blunt", "shiny",
}

// verb is an action in the forms the templates need.
type verb struct{ base, ing, past string }

var actions = []verb{
	{"fix", "fixing", "fixed"}, {"clean", "cleaning", "cleaned"}, {"choose", "choosing", "chose"},
	{"organize", "organizing", "organized"}, {"store", "storing", "stored"}, {"compare", "comparing", "compared"},
	{"replace", "replacing", "replaced"}, {"plan", "planning", "planned"}, {"set up", "setting up", "set up"},
	{"maintain", "maintaining", "maintained"}, {"repair", "repairing", "repaired"}, {"paint", "painting", "painted"},
	{"measure", "measuring", "measured"}, {"move", "moving", "moved"}, {"test", "testing", "tested"},
	{"sell", "selling", "sold"}, {"buy", "buying", "bought"}, {"rebuild", "rebuilding", "rebuilt"},
	{"upgrade", "upgrading", "upgraded"}, {"insure", "insuring", "insured"}, {"protect", "protecting", "protected"},
	{"label", "labelling", "labelled"}, {"sort out", "sorting out", "sorted out"}, {"design", "designing", "designed"},
	{"document", "documenting", "documented"}, {"schedule", "scheduling", "scheduled"}, {"prepare", "preparing", "prepared"},
	{"finish", "finishing", "finished"}, {"start", "starting", "started"}, {"review", "reviewing", "reviewed"},
	{"rearrange", "rearranging", "rearranged"}, {"seal", "sealing", "sealed"}, {"sand", "sanding", "sanded"},
	{"tune", "tuning", "tuned"}, {"adjust", "adjusting", "adjusted"}, {"calibrate", "calibrating", "calibrated"},
	{"restore", "restoring", "restored"}, {"refinish", "refinishing", "refinished"}, {"declutter", "decluttering", "decluttered"},
	{"inspect", "inspecting", "inspected"}, {"winterize", "winterizing", "winterized"}, {"waterproof", "waterproofing", "waterproofed"},
	{"assemble", "assembling", "assembled"}, {"take apart", "taking apart", "took apart"}, {"reuse", "reusing", "reused"},
	{"recycle", "recycling", "recycled"}, {"donate", "donating", "donated"}, {"price", "pricing", "priced"},
	{"budget for", "budgeting for", "budgeted for"}, {"explain", "explaining", "explained"}, {"teach", "teaching", "taught"},
	{"photograph", "photographing", "photographed"}, {"pack", "packing", "packed"}, {"ship", "shipping", "shipped"},
	{"rent out", "renting out", "rented out"}, {"share", "sharing", "shared"}, {"split", "splitting", "split"},
	{"speed up", "speeding up", "sped up"}, {"simplify", "simplifying", "simplified"}, {"secure", "securing", "secured"},
	{"back up", "backing up", "backed up"}, {"troubleshoot", "troubleshooting", "troubleshot"}, {"debug", "debugging", "debugged"},
	{"rewrite", "rewriting", "rewrote"}, {"proofread", "proofreading", "proofread"}, {"shorten", "shortening", "shortened"},
	{"translate", "translating", "translated"}, {"automate", "automating", "automated"}, {"track", "tracking", "tracked"},
}

// shortTemplates are single questions of about 15 tokens. Placeholders:
// {Q} quality, {aQ} the quality with "a" or "an", {T} thing, {S} setting
// (the id's slots); {V}, {Ving}, {Ved} a random action; {tail} an optional
// random ending (may be empty).
var shortTemplates = []string{
	"How do I {V} {aQ} {T} for my {S}{tail}?",
	"What is the best way to {V} {aQ} {T} before the {S}{tail}?",
	"Can you suggest {aQ} {T} that would work well for {aS}{tail}?",
	"Why does my {Q} {T} keep causing trouble at the {S}?",
	"Is it worth it to {V} {aQ} {T} for our {S}, or should I buy new?",
	"What should I check before I {V} the {Q} {T} at my {S}?",
	"Give me three tips to {V} {aQ} {T} for {aS}{tail}.",
	"How long does it take to {V} {aQ} {T} for {aS}{tail}?",
	"Which tools do I need to {V} {aQ} {T} at the {S}?",
	"Explain how to {V} {aQ} {T} for someone running {aS}.",
	"What are common mistakes when people {V} {aQ} {T} for {aS}?",
	"How much should I budget to {V} {aQ} {T} for my {S}?",
	"Should I {V} the {Q} {T} myself or hire someone for the {S}?",
	"Write a short checklist for {Ving} {aQ} {T} at {aS}.",
	"What's a safe way to {V} {aQ} {T} around the {S}{tail}?",
	"I {Ved} {aQ} {T} for the {S}; what should I do next?",
	"Any advice on {Ving} {aQ} {T} for {aS}{tail}?",
	"Is {aQ} {T} a good idea for {aS}{tail}?",
}

var tails = []string{
	"", "", "", "", "", "", "", "", "", "", "", "", " on a tight budget", " without special tools", " in under an hour", " as a complete beginner",
	" this weekend", " without making a mess", " in a small space", " when it is raining", " by myself",
	" before winter", " with kids around", " on a Sunday afternoon", " in an old house", " with basic skills",
}

// Background sentences add context to a request; they use random words only
// ({X} a thing, {Z} a quality, {Y} a setting, {V}/{Ving}/{Ved} an action,
// {N} a small number, {N2} a larger one, {P} a person, {W} a time of day,
// {D} a weekday).
var backgrounds = []string{
	"It is about {N} years old and worked fine until last month.",
	"We use it almost every day, usually for about {N} minutes at a time.",
	"I already tried to {V} it once, but the result was worse than before.",
	"The manual that came with it only mentions the {X} and says nothing useful about this.",
	"A friend who runs {aY} told me to {V} the {X} first, but I am not sure that applies here.",
	"Money is a bit tight this month, so I would rather not spend more than {N2} dollars.",
	"I live in {aZ} apartment with very little storage and no garage.",
	"I have some experience with {aZ} {X}, but I have never had to deal with anything like this.",
	"The problem usually starts in the {W}, and it gets worse when the weather is humid.",
	"My {P} suggested I {V} the whole thing, which sounds like overkill to me.",
	"I watched a couple of videos, but they all assume you have {aZ} {X} at hand.",
	"There are {N} people in my household, and most of them are not very careful with it.",
	"We are planning {aY} in about {N} weeks, so I need a solution before then.",
	"I would prefer something that is easy to {V} again later if needed.",
	"I care more about it lasting a long time than about how it looks.",
	"Safety matters to me because there are small children and a dog in the house.",
	"I found {aZ} {X} in the basement that might be useful for this.",
	"The store where I bought it is closed until {D}, so returning it is not an option right now.",
	"I have read mixed opinions online, and some of them contradict each other.",
	"Ideally I would like to finish this over the weekend without asking anyone for help.",
	"Last time something similar happened with my {X}, I ended up {Ving} it completely.",
	"My {P} and I disagree about whether to {V} it or just leave it as it is.",
	"I am not very handy, so clear and simple steps would help a lot.",
	"It has to fit next to {aZ} {X} that takes up most of the room.",
	"I noticed the issue right after I {Ved} the {X} on {D}.",
	"I asked at the {Y} down the street, but nobody there had a good answer.",
	"Time is the real constraint: I only have about {N} hours a week for projects like this.",
	"Whatever I do has to be easy to explain to my {P}, who will use it most.",
	"I keep a small notebook of what I have tried so far, and nothing has worked for long.",
	"The last repair cost almost {N2} dollars, and I do not want to pay that again.",
}

var questions = []string{
	"What steps would you recommend, and in what order should I do them?",
	"Could you explain the options and the trade-offs between them?",
	"What would you do in my situation, and why?",
	"Is there anything I should avoid so that I do not make it worse?",
	"How can I tell whether this is something I can handle myself?",
	"Which option gives the best result for the least money?",
	"What questions should I ask before I spend anything on it?",
	"Can you walk me through a plan I could start on tomorrow?",
}

var formats = []string{
	"", "", "Please keep the answer short and practical.", "A numbered list would be ideal.",
	"Explain it as if I were new to this.", "Mention rough costs if you can.", "Keep it under two hundred words.",
}

var openings = []string{
	"I have {aQ} {T} that I use for my {S}.",
	"I'm trying to {V} {aQ} {T} for our {S}.",
	"My partner and I recently bought {aQ} {T} for the {S}.",
	"At work I am responsible for {aQ} {T} at the {S}.",
	"I need to {V} {aQ} {T} before the {S} next month.",
	"For the {S} I volunteered to look after {aQ} {T}.",
}

// Assistant answers: advice sentences and numbered steps.
var advice = []string{
	"Start by checking the {X}: if it looks {Z}, that is most likely the cause.",
	"Before you {V} anything, unplug it and let it rest for at least {N} minutes.",
	"A {Z} {X} usually costs between {N} and {N2} dollars, so it is worth comparing a few shops.",
	"Many people skip this step, but it makes the result last much longer.",
	"If you are {Ving} it for {aY}, plan for some extra time in case something goes wrong.",
	"It also helps to write down what you change, so you can undo it later.",
	"Ask at a local {Y}; people there often have {aZ} {X} they can lend you.",
	"Do not rush the drying or curing time, even if the surface feels ready.",
	"If the problem comes back within {N} days, the {X} is probably the real culprit.",
	"For a first attempt, {aZ} approach is safer than anything clever.",
	"Check the warranty before you {V} it yourself, because some repairs void it.",
	"Most of the cost is in the {X}, so that is where a better choice pays off.",
	"Keep the old parts until you are sure the new setup works.",
	"If your {P} will use it most, involve them early so the result suits them.",
	"A quick test on a small area will tell you more than any guide can.",
}

var steps = []string{
	"{V} the {X} and check that it is not {Z}.",
	"Clear the area around it and lay down an old towel.",
	"Take a photo of everything before you {V} it.",
	"Measure twice, then write the numbers down.",
	"{V} one part at a time rather than everything at once.",
	"Let it sit for {N} minutes and look again.",
	"Compare at least {N} options online before you buy.",
	"Ask your {P} to hold it steady while you work.",
	"Clean up and store the {Z} {X} somewhere dry.",
	"Test it for a day before you call it finished.",
}

var followUps = []string{
	"Thanks, that helps. What if the {X} is also {Z}?",
	"I tried what you suggested, but the {X} still seems {Z}. Should I {V} it instead?",
	"Good point about the {X}. How would this change if I were doing it for {aY}?",
	"Could you go into more detail about step {N3}?",
	"My {P} says we should just {V} the whole thing. Is that a bad idea?",
	"That makes sense. How do I know when it is time to give up and {V} it?",
	"I did not expect that. Is {aZ} {X} really necessary for this?",
	"Okay, I {Ved} it as you described. What should I look out for over the next few days?",
	"What would change if my budget were closer to {N2} dollars?",
	"Is there a way to do this without {Ving} the {X}?",
}

var persons = []string{"partner", "neighbor", "sister", "brother", "landlord", "roommate", "boss", "colleague",
	"father", "mother", "uncle", "aunt", "grandmother", "grandfather", "friend", "son", "daughter", "teacher"}

var timesOfDay = []string{"morning", "afternoon", "evening", "night", "early morning", "late evening"}

var weekdays = []string{"Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"}

// systemPrompts are the applications a long conversation belongs to; each
// run of the harness sends these few, as real applications do.
var systemPrompts = []string{
	"You are a patient and practical home improvement assistant. Answer in plain English, avoid jargon unless " +
		"you explain it, and always mention safety precautions when tools, electricity, heights or chemicals are " +
		"involved. If a task needs a licensed professional, say so clearly. Prefer inexpensive solutions, and give " +
		"rough costs in dollars when you can. Keep answers focused: a short explanation, then concrete steps.",
	"You are the support assistant of a community workshop. Members ask about projects, tools and materials. " +
		"Be friendly and concise. Suggest the simplest approach first and more advanced options after it. Do not " +
		"recommend specific brands. When you are unsure, say what information you would need to give a better answer.",
	"You are a helpful assistant for small business owners. You give practical, step-by-step advice on running " +
		"day-to-day operations, equipment, planning and customer communication. Be direct, use short paragraphs, " +
		"and point out risks and hidden costs. If the question involves legal or tax matters, recommend checking " +
		"with a qualified professional in the owner's country.",
	"You are a study and productivity coach. Help the user plan, organize and finish their projects. Ask at most " +
		"one clarifying question when something essential is missing, otherwise make reasonable assumptions and say " +
		"what they are. Prefer checklists and schedules the user can follow, and keep a warm, encouraging tone.",
	"You are an assistant for hobbyists: gardening, cooking, music, sports and crafts. Give advice that a beginner " +
		"can follow with ordinary household items, explain why each step matters, and warn about common mistakes. " +
		"Keep answers under three hundred words unless the user asks for more detail.",
}
