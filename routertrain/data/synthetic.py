"""The embedded demo benchmark: a synthetic routing dataset generated deterministically from a seed.

It is a test bed, not a real benchmark. Each query is written from a domain, a subtopic and a
difficulty level, all three readable from its text (subtopic keywords, difficulty phrases). Each
simulated model has a skill per (domain, subtopic) and a sensitivity to difficulty, so its
probability of answering correctly is a known function of the query text. That makes the best
achievable routing accuracy known: the Bayes router picks argmax_m p(correct | query, m).
Labels are Bernoulli draws from those probabilities.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from routertrain.data.dataset import SPLITS

DOMAINS: dict[str, dict[str, list[str]]] = {
    "math": {
        "algebra": ["quadratic equation", "polynomial roots", "linear system", "matrix inverse"],
        "geometry": ["inscribed circle", "triangle area", "polygon angles", "sphere volume"],
        "probability": ["conditional probability", "dice outcomes", "binomial draw", "expected value"],
        "calculus": ["definite integral", "chain rule", "Taylor series", "limit at infinity"],
        "number theory": ["prime factorisation", "modular inverse", "greatest common divisor", "Diophantine equation"],
    },
    "code": {
        "python": ["list comprehension", "Python decorator", "generator function", "asyncio event loop"],
        "sql": ["LEFT JOIN", "window function", "GROUP BY clause", "SQL index"],
        "algorithms": ["binary search", "Dijkstra shortest path", "dynamic programming table", "merge sort"],
        "web": ["REST endpoint", "CSS flexbox", "HTTP caching header", "JavaScript promise"],
        "systems": ["mutex deadlock", "virtual memory page", "Linux file descriptor", "TCP handshake"],
    },
    "science": {
        "chemistry": ["oxidation state", "buffer solution", "covalent bond", "reaction enthalpy"],
        "physics": ["projectile motion", "Ohm's law circuit", "angular momentum", "thermal expansion"],
        "biology": ["mitochondrial respiration", "DNA transcription", "enzyme kinetics", "cell membrane transport"],
        "astronomy": ["red giant star", "orbital period", "cosmic microwave background", "exoplanet transit"],
        "geology": ["tectonic plate boundary", "sedimentary rock", "earthquake magnitude", "volcanic eruption"],
    },
    "law": {
        "contracts": ["breach of contract", "consideration doctrine", "liquidated damages clause", "offer and acceptance"],
        "criminal": ["mens rea", "self-defence claim", "burden of proof", "plea bargain"],
        "property": ["easement by necessity", "adverse possession", "landlord duty", "fee simple estate"],
        "constitutional": ["freedom of speech", "equal protection", "separation of powers", "due process"],
        "tort": ["negligence claim", "strict liability", "duty of care", "defamation suit"],
    },
    "health": {
        "cardiology": ["atrial fibrillation", "blood pressure medication", "cholesterol level", "heart murmur"],
        "nutrition": ["vitamin D deficiency", "dietary fibre", "protein intake", "iron absorption"],
        "pharmacology": ["drug half-life", "antibiotic resistance", "dose adjustment", "drug interaction"],
        "neurology": ["migraine aura", "nerve conduction", "stroke symptoms", "sleep cycle"],
        "immunology": ["vaccine response", "autoimmune disorder", "allergic reaction", "antibody titre"],
    },
    "humanities": {
        "history": ["French Revolution", "Roman Republic", "Industrial Revolution", "Cold War"],
        "philosophy": ["categorical imperative", "utilitarian calculus", "Cartesian doubt", "social contract"],
        "literature": ["unreliable narrator", "Shakespearean sonnet", "magical realism", "epistolary novel"],
        "economics": ["price elasticity", "inflation target", "comparative advantage", "marginal cost"],
        "linguistics": ["phoneme inventory", "verb conjugation", "syntax tree", "loanword borrowing"],
    },
}

# (phrase variants, difficulty level): the level shifts every model's chance of success
DIFFICULTY = [
    (["in one sentence", "briefly", "in simple words", "quickly"], 0),
    (["with a worked example", "step by step", "and explain why", "in detail"], 1),
    (["with a rigorous proof of every step", "covering all edge cases formally", "deriving it from first principles", "with a precise formal argument"], 2),
]

TEMPLATES = [
    "Explain the {kw} {diff}.",
    "How does a {kw} work? Answer {diff}.",
    "Can you describe the {kw} {diff}?",
    "I am studying the {kw}; explain it {diff}.",
    "What should I know about the {kw}? Please answer {diff}.",
    "Give me an overview of the {kw} {diff}.",
    "Solve this question about the {kw} {diff}.",
    "Why does the {kw} matter? Reply {diff}.",
]

# name, base skill (logit), cost per query, specialist domains, difficulty sensitivity
MODEL_SPECS = [
    ("sim-large-generalist", 0.9, 10.0, (), 0.7),
    ("sim-small-generalist", -0.2, 1.0, (), 1.2),
    ("sim-math-code-specialist", -0.4, 3.0, ("math", "code"), 0.8),
    ("sim-science-health-specialist", -0.4, 3.0, ("science", "health"), 0.8),
    ("sim-law-humanities-specialist", -0.4, 3.0, ("law", "humanities"), 0.8),
    ("sim-medium-generalist", 0.3, 4.0, (), 0.9),
    ("sim-tiny", -1.0, 0.3, (), 1.4),
    ("sim-reasoner", 0.0, 6.0, ("math",), 0.3),
]


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


CHUNK = 50_000  # rows made at a time by ``rows``: bounds memory whatever the dataset's size


@dataclass
class Plan:
    """Everything drawn before the labels, as compact arrays (a few bytes per query): the per-cell
    skills, each row's cell, level, keyword, phrase and template, and the generator's state after
    them, from which the labels are drawn row by row in order."""

    skill: np.ndarray
    sensitivity: np.ndarray
    cells: list
    choices: np.ndarray  # (rows, 5): cell, level, keyword, phrase, template
    label_state: dict
    bounds: dict
    models: list
    costs: list


def plan(seed: int, n_train: int, n_validation: int, n_test: int, n_models: int) -> Plan:
    """Draw everything but the labels (see ``Plan``). Pure: the same arguments give the same plan."""
    if not 2 <= n_models <= len(MODEL_SPECS):
        raise ValueError(f"data.synthetic.n_models must be between 2 and {len(MODEL_SPECS)}, got {n_models}")
    rng = np.random.default_rng(seed)
    specs = MODEL_SPECS[:n_models]
    cells = [(d, s) for d, subs in DOMAINS.items() for s in subs]
    # skill of each model on each (domain, subtopic) cell: base + specialty + a per-cell deviation
    skill = np.zeros((len(cells), n_models))
    for j, (_, base, _, special, _) in enumerate(specs):
        for i, (domain, _) in enumerate(cells):
            skill[i, j] = base + (1.3 if domain in special else 0.0)
    skill += rng.normal(0.0, 0.8, size=skill.shape)
    sensitivity = np.array([spec[4] for spec in specs])

    total = n_train + n_validation + n_test
    choices = np.empty((total, 5), dtype=np.int16)
    choices[:, 0] = rng.integers(0, len(cells), size=total)
    choices[:, 1] = rng.integers(0, len(DIFFICULTY), size=total)
    for row in choices:  # the per-query draws, in the order the first version of this generator made them
        row[2], row[3], row[4] = rng.integers(0, 4), rng.integers(0, 4), rng.integers(0, len(TEMPLATES))
    ends = np.cumsum([n_train, n_validation, n_test])
    bounds = {name: (int(end - size), int(end)) for name, end, size in zip(SPLITS, ends, (n_train, n_validation, n_test))}
    return Plan(skill, sensitivity, cells, choices, rng.bit_generator.state, bounds, [s[0] for s in specs], [s[2] for s in specs])


def rows(p: Plan, split: str, chunk: int = CHUNK):
    """Yield ``split``'s columns (``query``, ``task``, ``labels``, ``p_correct``) ``chunk`` rows at a
    time, without holding the split in memory."""
    lo, hi = p.bounds[split]
    n_models = p.skill.shape[1]
    rng = np.random.default_rng()
    rng.bit_generator.state = p.label_state
    for start in range(0, lo, chunk):  # the labels of earlier splits come first in the stream
        rng.random((min(chunk, lo - start), n_models))
    for start in range(lo, hi, chunk):
        c = p.choices[start : min(hi, start + chunk)].astype(np.int64)
        logits = p.skill[c[:, 0]] - (c[:, 1:2] - 0.5) * p.sensitivity[None, :]
        prob = _sigmoid(logits).astype(np.float32)
        labels = (rng.random(prob.shape) < prob).astype(np.float32)
        queries, tasks = [], []
        for cell, level, kw, diff, template in c.tolist():
            domain, sub = p.cells[cell]
            queries.append(TEMPLATES[template].format(kw=DOMAINS[domain][sub][kw], diff=DIFFICULTY[level][0][diff]))
            tasks.append(domain)
        yield {"query": queries, "task": tasks, "labels": labels.tolist(), "p_correct": prob.tolist()}


def generate(seed: int, n_train: int, n_validation: int, n_test: int, n_models: int) -> dict:
    """Generate the benchmark in memory. Returns split -> columns, plus the model pool and its costs.

    Columns per split: ``query``, ``task`` (the domain), ``labels`` (0/1 per model) and
    ``p_correct`` (the true probability per model). Pure: the same arguments give the same data.
    Large sizes should stream instead: ``plan`` then ``rows`` per split.
    """
    p = plan(seed, n_train, n_validation, n_test, n_models)
    splits = {}
    for name in SPLITS:
        cols = {"query": [], "task": [], "labels": [], "p_correct": []}
        for part in rows(p, name):
            for key, values in part.items():
                cols[key].extend(values)
        splits[name] = cols
    return {"splits": splits, "models": p.models, "costs": p.costs}


def bayes_accuracy(p_correct: np.ndarray, labels: np.ndarray) -> dict:
    """The Bayes router's accuracy: pick argmax of the true probabilities.

    ``expected`` is the mean of the per-query maximum probability (the ceiling in expectation);
    ``realized`` is the mean observed label of the Bayes choice on these very draws, directly
    comparable with a router's routing accuracy on the same split.
    """
    choice = p_correct.argmax(axis=1)
    return {
        "expected": float(p_correct.max(axis=1).mean()),
        "realized": float(labels[np.arange(len(labels)), choice].mean()),
    }
