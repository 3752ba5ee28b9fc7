"""Vocabulary for the synthetic catalog: titles, networks, genres, release groups, trackers."""

from __future__ import annotations

from dataclasses import dataclass

ADJECTIVES = (
    "Silent",
    "Crimson",
    "Hidden",
    "Broken",
    "Golden",
    "Hollow",
    "Northern",
    "Burning",
    "Frozen",
    "Savage",
    "Quiet",
    "Wild",
    "Lost",
    "Bright",
    "Dark",
    "Iron",
    "Velvet",
    "Electric",
    "Distant",
    "Final",
    "Secret",
    "Scarlet",
    "Midnight",
    "Emerald",
    "Shattered",
    "Restless",
    "Fallen",
    "Rising",
    "Endless",
    "Wicked",
    "Gentle",
    "Lonely",
    "Sudden",
    "Brave",
    "Cold",
    "Sacred",
    "Faded",
    "Twisted",
    "Bitter",
    "Lucky",
    "Copper",
    "Silver",
    "Paper",
    "Glass",
    "Stone",
    "Neon",
    "Atomic",
    "Royal",
    "Lunar",
    "Solar",
    "Rogue",
    "Phantom",
    "Crooked",
    "Empty",
    "Open",
    "Heavy",
    "Little",
    "Young",
    "Last",
    "First",
    "Pale",
    "Hungry",
)

NOUNS = (
    "Harbor",
    "Protocol",
    "Empire",
    "Valley",
    "Signal",
    "Kingdom",
    "Frontier",
    "Station",
    "Witness",
    "Garden",
    "Horizon",
    "River",
    "Crown",
    "Circuit",
    "Orchard",
    "Bridge",
    "Harvest",
    "Lighthouse",
    "Verdict",
    "Cartel",
    "Academy",
    "Republic",
    "Dynasty",
    "Precinct",
    "Hospital",
    "Colony",
    "Outpost",
    "Island",
    "Mountain",
    "Desert",
    "Forest",
    "Ocean",
    "Tower",
    "Castle",
    "Palace",
    "Motel",
    "Diner",
    "Ranch",
    "Summit",
    "Border",
    "Canyon",
    "Ledger",
    "Archive",
    "Compass",
    "Engine",
    "Legacy",
    "Reckoning",
    "Paradox",
    "Mirage",
    "Echo",
    "Shadow",
    "Cipher",
    "Anthem",
    "Covenant",
    "Inheritance",
    "Vendetta",
    "Tide",
    "Storm",
    "Ember",
    "Voyage",
    "Mission",
    "Agency",
    "Bureau",
    "Syndicate",
    "Society",
    "Company",
    "Family",
    "Heist",
    "Country",
    "Season",
    "Highway",
    "Quarter",
    "District",
    "Parish",
    "Orbit",
    "Current",
    "Meridian",
    "Testament",
    "Line",
    "Hour",
)

TITLE_PATTERNS = (
    "The {a} {n}",
    "{a} {n}",
    "A {a} {n}",
    "Beyond the {a} {n}",
    "The {n}: {a}",
    "{n} of the {a}",
)

EPISODE_WORDS = (
    "Pilot",
    "Homecoming",
    "The Long Night",
    "Crossroads",
    "Fault Lines",
    "Aftermath",
    "Ghosts",
    "The Offer",
    "Blood Ties",
    "Old Friends",
    "Exit Strategy",
    "Dead Reckoning",
    "The Reveal",
    "Point of No Return",
    "Open Water",
    "Collateral",
    "The Hunt",
    "Safe Harbor",
    "Ashes",
    "New Blood",
    "Checkmate",
    "Sunrise",
    "Undertow",
    "The Deal",
    "Wildfire",
)


@dataclass(frozen=True, slots=True)
class Network:
    """A broadcaster: its ids on TMDB and TVMaze and the timezone its air times are in."""

    tmdb_id: int
    tvmaze_id: int
    name: str
    country: str
    country_name: str
    timezone: str
    local_times: tuple[str, ...]


NETWORKS = (
    Network(6, 1, "NBC", "US", "United States", "America/New_York", ("20:00", "21:00", "22:00")),
    Network(
        16,
        2,
        "CBS",
        "US",
        "United States",
        "America/New_York",
        ("20:00", "20:30", "21:00", "22:00"),
    ),
    Network(2, 3, "ABC", "US", "United States", "America/New_York", ("20:00", "21:00", "22:00")),
    Network(19, 4, "FOX", "US", "United States", "America/New_York", ("20:00", "21:00")),
    Network(174, 20, "AMC", "US", "United States", "America/New_York", ("21:00", "22:00")),
    Network(49, 8, "HBO", "US", "United States", "America/New_York", ("21:00", "22:00")),
    Network(88, 13, "FX", "US", "United States", "America/New_York", ("22:00", "22:30")),
    Network(4, 12, "BBC One", "GB", "United Kingdom", "Europe/London", ("20:00", "21:00")),
    Network(9, 35, "ITV1", "GB", "United Kingdom", "Europe/London", ("21:00",)),
    Network(26, 45, "Channel 4", "GB", "United Kingdom", "Europe/London", ("22:00", "21:00")),
    Network(31, 58, "ZDF", "DE", "Germany", "Europe/Berlin", ("20:15",)),
    Network(290, 135, "TF1", "FR", "France", "Europe/Paris", ("21:10",)),
    Network(98, 89, "TV Tokyo", "JP", "Japan", "Asia/Tokyo", ("23:00", "00:30", "01:00")),
    Network(56, 144, "CBC", "CA", "Canada", "America/Toronto", ("20:00", "21:00")),
    Network(18, 256, "ABC TV", "AU", "Australia", "Australia/Sydney", ("19:30", "20:30")),
)

TV_GENRES = (
    (18, "Drama"),
    (80, "Crime"),
    (9648, "Mystery"),
    (35, "Comedy"),
    (10765, "Sci-Fi & Fantasy"),
    (10759, "Action & Adventure"),
    (99, "Documentary"),
    (10751, "Family"),
    (37, "Western"),
    (16, "Animation"),
)

MOVIE_GENRES = (
    (28, "Action"),
    (12, "Adventure"),
    (878, "Science Fiction"),
    (18, "Drama"),
    (35, "Comedy"),
    (53, "Thriller"),
    (27, "Horror"),
    (10749, "Romance"),
    (80, "Crime"),
    (14, "Fantasy"),
)

LANGUAGE_NAMES = {
    "en": "English",
    "ja": "Japanese",
    "de": "German",
    "fr": "French",
    "es": "Spanish",
    "it": "Italian",
}

COUNTRY_LANGUAGE = {
    "US": "en",
    "GB": "en",
    "CA": "en",
    "AU": "en",
    "DE": "de",
    "FR": "fr",
    "JP": "ja",
}

# Release groups by source; "junk" groups put out CAM/TS rips and low-effort encodes.
WEB_GROUPS = ("NTb", "FLUX", "EDITH", "SuccessfulCrab", "CAKES", "GGEZ", "NOSiViD", "TEPES")
HDTV_GROUPS = ("CTU", "SYNCOPY", "FQM", "KILLERS", "LOL", "DIMENSION")
BLURAY_GROUPS = ("RARBG", "SPARKS", "GECKOS", "AMIABLE", "DRONES", "FraMeSToR", "HiFi")
JUNK_GROUPS = ("C1NEM4", "NoGroup", "mSD", "YIFY", "TGx", "HQMic")

TRACKERS = (
    "ThePirateBay",
    "1337x",
    "TorrentGalaxy",
    "EZTV",
    "YTS",
    "KickassTorrents",
    "MagnetDL",
    "RARBG",
)

ANNOUNCE_URLS = (
    "udp://tracker.opentrackr.org:1337/announce",
    "udp://open.stealth.si:80/announce",
    "udp://tracker.torrent.eu.org:451/announce",
    "udp://exodus.desync.com:6969/announce",
)

LANGUAGE_FLAGS = {
    "en": "🇬🇧",
    "es": "🇪🇸",
    "fr": "🇫🇷",
    "de": "🇩🇪",
    "it": "🇮🇹",
    "ja": "🇯🇵",
    "multi": "🌎",
}


def title_for(combo: int) -> str:
    """The ``combo``-th title of the (pattern, adjective, noun) space, with a suffix past it."""
    space = len(TITLE_PATTERNS) * len(ADJECTIVES) * len(NOUNS)
    lap, rest = divmod(combo, space)
    pattern_i, rest = divmod(rest, len(ADJECTIVES) * len(NOUNS))
    adjective_i, noun_i = divmod(rest, len(NOUNS))
    title = TITLE_PATTERNS[pattern_i].format(a=ADJECTIVES[adjective_i], n=NOUNS[noun_i])
    return title if lap == 0 else f"{title} {_roman(lap + 1)}"


def title_space() -> int:
    return len(TITLE_PATTERNS) * len(ADJECTIVES) * len(NOUNS)


def _roman(number: int) -> str:
    numerals = ((10, "X"), (9, "IX"), (5, "V"), (4, "IV"), (1, "I"))
    out = []
    for value, letters in numerals:
        while number >= value:
            out.append(letters)
            number -= value
    return "".join(out)


def dotted(title: str) -> str:
    """``The Silent Harbor: Rising`` -> ``The.Silent.Harbor.Rising`` (scene naming)."""
    kept = "".join(ch for ch in title if ch.isalnum() or ch in " -")
    return ".".join(kept.split())


def slug(title: str) -> str:
    return "-".join("".join(ch for ch in title.lower() if ch.isalnum() or ch == " ").split())
