"""The benchmarks' corpus: seeded atom texts and questions over one vocabulary.

Two styles:

* ``short`` (the engine benchmark's original corpus): 5-16 content words per payload from a
  6,000-word vocabulary with a Zipf-like distribution, stopwords sprinkled in, sometimes a
  number with a unit; questions of 2-5 content words.
* ``chat``: chat-length memories, 10-30 words drawn from one Zipf-Mandelbrot distribution
  (1 / (rank + 2.7)) over a 20,000-word vocabulary whose head is everyday English (function
  words, verbs, time words), then the ops/product domain, people's names and a long tail of
  rare words; questions of 3-8 words of the same distribution behind a question start. Common
  words are common in payloads *and* questions, as they are in what users really store and
  ask, which makes lexical search work for its answers.
"""

from __future__ import annotations

import functools
import random
from typing import Any

CORPORA = ("short", "chat")

_DOMAIN = """
checkout latency payment deploy rollback cache miss disk queue retry timeout worker node shard
replica index vacuum lock spike error budget alert customer invoice refund order cart search
login session token password email notification webhook billing plan subscription trial
upgrade downgrade account tenant region cluster pod container image build pipeline release
canary feature flag experiment metric dashboard incident postmortem outage degraded recovery
failover backup restore snapshot migration schema table column query planner memory leak cpu
throttle bandwidth packet loss dns certificate expiry firewall gateway proxy balancer upstream
downstream service api endpoint request response header payload json parser encoder batch
stream consumer producer topic partition offset lag backlog scheduler cron job task ticket
escalation pager oncall runbook owner team review approval merge branch commit test flaky
coverage lint warning exception traceback stack heap garbage collector thread pool connection
socket handshake retry jitter backoff quota limit burst rate usage cost forecast capacity
storage bucket object blob archive retention policy compliance audit log trace span sampler
profile latency throughput p95 p99 median regression improvement baseline benchmark agent
reflection plan action observation message user assistant tool call answer question memory
summary context prompt model embedding vector similarity ranking relevance recall precision
europe america asia frankfurt virginia tokyo monday tuesday wednesday thursday friday weekend
morning evening night sprint quarter roadmap milestone deadline launch partner vendor contract
support chat call meeting standup note decision risk mitigation fix patch hotfix version
"""

_STOP_WORDS = (
    "the a an of to in on for with after before during at by from and or but is was were "
    "are has had have be been it its this that these those our their we they he she"
)
_STOP = tuple(_STOP_WORDS.split())

_UNITS = ("ms", "s", "%", "MB", "GB", "req/s", "errors", "users", "EUR", "USD")
_STARTS = ("", "", "", "why is ", "what happened to ", "when did ", "how many ", "who owns ")


def _pseudo_words(rng: random.Random, n: int, taken: set[str]) -> list[str]:
    consonants, vowels = "bcdfghjklmnprstvwz", "aeiou"
    out: list[str] = []
    while len(out) < n:
        word = "".join(
            rng.choice(consonants) + rng.choice(vowels) for _ in range(rng.randint(2, 4))
        )
        if word not in taken:
            taken.add(word)
            out.append(word)
    return out


# Everyday English, roughly by frequency (the head of the chat vocabulary).
_ENGLISH = """
the i to and a you of it is that in we was for on have be this my with but not so are just
me do at what they if he can all about like from get it's don't was going there know think
out one up will would or your she her his him as an by no yes our them then when time there's
been had some now how more were did because well really need yeah want see go got today
make said could also back still going thanks ok okay good new week day tomorrow yesterday
people work after before last next right should us which who why where their let me check
sure sounds great maybe again look looks first already other much any too very thing things
tell said says asked told call called send sent meeting team issue fix fixed working problem
help try tried trying use using used find found start started stop stopped morning afternoon
night since still over into around same only little long down off because while lot lots
"""

_NAMES = """
maria john priya chen ahmed sofia lukas emma noah olivia liam ava mia lucas aisha omar
yuki kenji ana pedro ines tom sara david laura mark anna paul julia max lea nina ivan
"""


@functools.cache
def chat_vocabulary(size: int = 20_000) -> tuple[list[str], list[float]]:
    """The chat corpus's ranked vocabulary and its cumulative Zipf-Mandelbrot weights.

    One language for every chat corpus (a fixed seed, built once per process): a corpus's own
    seed decides what is said, not which words exist.
    """
    rng = random.Random(_CHAT_VOCABULARY_SEED)
    english = list(dict.fromkeys(_ENGLISH.split()))
    taken = set(english)
    domain = [w for w in dict.fromkeys(_DOMAIN.split()) if w not in taken]
    rng.shuffle(domain)
    taken.update(domain)
    names = [w for w in dict.fromkeys(_NAMES.split()) if w not in taken]
    taken.update(names)
    head = english + domain[:80] + names + domain[80:]
    words = head + _pseudo_words(rng, max(0, size - len(head)), taken)
    cum: list[float] = []
    total = 0.0
    for rank in range(len(words)):
        total += 1.0 / (rank + 2.7)
        cum.append(total)
    return words, cum


_CHAT_VOCABULARY_SEED = 20240602
# The short corpus's vocabulary depends on its seed; built once per (seed, size) and the
# generator's state after building kept, so a cached build draws exactly what a fresh one does.
_SHORT_VOCABULARIES: dict[tuple[int, int], tuple[list[str], list[float], Any]] = {}


_CHAT_STARTS = ("", "what did ", "when did ", "why did ", "who said ", "how did ", "what is ")


class Corpus:
    """Seeded generator of atom texts and questions over one vocabulary (``style``: short|chat)."""

    def __init__(self, seed: int, vocabulary: int = 6000, style: str = "short") -> None:
        if style not in CORPORA:
            raise ValueError(f"corpus style {style!r}: expected one of {', '.join(CORPORA)}")
        self.style = style
        self.rng = random.Random(seed)
        if style == "chat":
            self.words, self.cum = chat_vocabulary()
            return
        cached = _SHORT_VOCABULARIES.get((seed, vocabulary))
        if cached is not None:
            self.words, self.cum, state = cached
            self.rng.setstate(state)
            return
        domain = list(dict.fromkeys(_DOMAIN.split()))
        self.rng.shuffle(domain)
        tail = _pseudo_words(self.rng, max(0, vocabulary - len(domain)), set(domain))
        self.words = domain + tail
        # Zipf-Mandelbrot: a few common words, a long tail of rare ones (names, ids, jargon).
        weights = [1.0 / (rank + 10) for rank in range(len(self.words))]
        self.cum = []
        total = 0.0
        for w in weights:
            total += w
            self.cum.append(total)
        _SHORT_VOCABULARIES[(seed, vocabulary)] = (self.words, self.cum, self.rng.getstate())

    def _draw(self, k: int) -> list[str]:
        return self.rng.choices(self.words, cum_weights=self.cum, k=k)

    def sentence(self) -> str:
        rng = self.rng
        if self.style == "chat":
            words = self._draw(rng.randint(10, 30))
            if rng.random() < 0.3:
                words.insert(rng.randrange(len(words) + 1), str(rng.randint(1, 5000)))
            return " ".join(words)
        content = self._draw(rng.randint(5, 16))
        out: list[str] = []
        for w in content:
            if rng.random() < 0.35:
                out.append(rng.choice(_STOP))
            out.append(w)
        if rng.random() < 0.4:
            out.insert(rng.randrange(len(out) + 1), f"{rng.randint(1, 5000)} {rng.choice(_UNITS)}")
        return " ".join(out)

    def question(self) -> str:
        if self.style == "chat":
            words = self._draw(self.rng.randint(3, 8))
            return self.rng.choice(_CHAT_STARTS) + " ".join(words) + "?"
        words = self._draw(self.rng.randint(2, 5))
        return self.rng.choice(_STARTS) + " ".join(words) + "?"

    def new_atoms(self, n: int, world: str) -> list[dict[str, Any]]:
        rng = self.rng
        kinds = ("observation", "observation", "observation", "reflection", "action", "message")
        return [
            {
                "world": world,
                "worker": f"agent-{rng.randrange(20)}",
                "kind": rng.choice(kinds),
                "importance": round(rng.random(), 3),
                "payload": {"text": self.sentence()},
                "labels": [rng.choice(("ops", "support", "billing", "infra"))],
            }
            for _ in range(n)
        ]
