"""Synthetic Text-to-SQL: templated questions about one small generated SQLite table, answered with a query.

    Q: how many people in oslo are older than 41? SQL:  ->  SELECT COUNT(*) FROM people WHERE city = 'oslo' AND age > 41

The table `people(name, age, city, pets)` is drawn from the spec's seed; every row carries it as the SQL text
that creates it (`database`), so a query can be run anywhere, in the sandbox, without a file. Several queries give
the same rows (`41 < age`, `COUNT(name)`, the two conditions swapped): the pre-training corpus shows several
forms (`solution`), `answer` keeps one reference query, and graders compare result sets (the `sql_match` reward,
the `sql_result` extractor). Rows are `{"id", "prompt", "answer", "solution", "database"}`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

CITIES = ("oslo", "rome", "lima", "cairo", "paris", "quito", "seoul", "perth", "dakar", "tunis")
NAMES = ("ana", "ben", "cai", "dev", "eli", "fay", "gus", "hal", "ida", "jon", "kim", "lea", "max", "nia", "oto",
         "pia", "raj", "sue", "tom", "uma", "val", "wes", "yan", "zoe")  # fmt: skip


@dataclass
class SqlSpec:
    """Questions about one generated table of `people` rows."""

    people: int = 60
    """Rows of the table."""
    n_train: int = 500
    n_pool: int = 500
    n_test: int = 200
    n_pretrain: int = 2500
    variant_share: float = 0.5
    """Fraction of rows whose solution is another query with the same result, not the reference."""
    seed: int = 0


def table_sql(spec: SqlSpec) -> str:
    """The SQL text creating the table (the `database` of every row)."""
    rng = random.Random(f"table-{spec.seed}")
    rows = [(f"{rng.choice(NAMES)}{i}", rng.randint(18, 80), rng.choice(CITIES), rng.randint(0, 4))
            for i in range(spec.people)]  # fmt: skip
    values = ",".join(f"('{n}',{a},'{c}',{p})" for n, a, c, p in rows)
    return f"CREATE TABLE people (name TEXT, age INTEGER, city TEXT, pets INTEGER);INSERT INTO people VALUES {values};"


def _where(conds: list[str]) -> str:
    return " WHERE " + " AND ".join(conds) if conds else ""


def question(rng: random.Random) -> tuple[str, str, list[str]]:
    """(question, reference query, other queries with the same result)."""
    city, n, m, k = rng.choice(CITIES), rng.randint(15, 85), rng.randint(15, 85), rng.randint(0, 4)
    lo, hi = min(n, m), max(n, m) + 1
    in_city, older, younger = f"city = '{city}'", f"age > {n}", f"age < {n}"
    kind = rng.randrange(7)
    if kind == 0:
        q, conds, alt = f"names of people in {city} older than {n}", [in_city, older], [f"{n} < age", in_city]
        col = "name"
    elif kind == 1:
        q, conds, alt = f"names of people in {city} younger than {n}", [in_city, younger], [f"{n} > age", in_city]
        col = "name"
    elif kind == 2:
        q, conds = f"how many people in {city} are older than {n}", [in_city, older]
        alt, col = [older, in_city], "COUNT(*)"
    elif kind == 3:
        q, conds = f"how many people are between {lo} and {hi} years old", [f"age >= {lo}", f"age <= {hi}"]
        alt, col = [f"age BETWEEN {lo} AND {hi}"], "COUNT(*)"
    elif kind == 4:
        q, conds, alt, col = (
            f"names of people with {k} pets in {city}",
            [f"pets = {k}", in_city],
            [in_city, f"pets = {k}"],
            "name",
        )
    elif kind == 5:
        q, conds, alt, col = f"total pets of people older than {n}", [older], [f"{n} < age"], "SUM(pets)"
    else:
        q, conds, alt, col = (
            f"how many people in {city} have {k} pets",
            [in_city, f"pets = {k}"],
            [f"pets = {k}", in_city],
            "COUNT(*)",
        )
    ref = f"SELECT {col} FROM people{_where(conds)}"
    other_col = "COUNT(name)" if col == "COUNT(*)" else col
    others = [f"SELECT {other_col} FROM people{_where(alt)}", f"SELECT {col} FROM people{_where(alt)}"]
    return f"Q: {q}? SQL: ", ref, [o for o in others if o != ref]


def check_spec(spec: SqlSpec) -> None:
    if not 5 <= spec.people <= 1000:
        raise ValueError(f"sql.people: in 5..1000, got {spec.people}")
    if not 0.0 <= spec.variant_share <= 1.0:
        raise ValueError(f"sql.variant_share: a fraction in [0, 1], got {spec.variant_share}")


def make_splits(spec: SqlSpec) -> dict[str, list[dict]]:
    """Disjoint splits (no question in two of them), deterministic under `spec.seed`, held-out ones first."""
    check_spec(spec)
    database = table_sql(spec)
    sizes = {"test": spec.n_test, "train": spec.n_train, "pool": spec.n_pool, "pretrain": spec.n_pretrain}
    rng, style, seen, splits = random.Random(spec.seed), random.Random(f"style-{spec.seed}"), set(), {}
    for name, size in sizes.items():
        rows, tries = [], 0
        while len(rows) < size:
            tries += 1
            if tries > 100 * (size + 10):
                raise ValueError(f"sql: could not draw {size} distinct {name} questions; shrink the splits")
            prompt, ref, others = question(rng)
            if prompt in seen:
                continue
            seen.add(prompt)
            solution = style.choice(others) if others and style.random() < spec.variant_share else ref
            rows.append({"id": len(rows), "prompt": prompt, "answer": ref, "solution": solution, "database": database})
        splits[name] = rows
    return splits


def tokenizer_text(row: dict) -> str:
    """What the dataset's tokenizer learns from a pretrain row (the question and the written query)."""
    return row["prompt"] + row["solution"]
