"""KRK demo register (``krk.csv``, the format of store/krk.py and docs/krk.md) for the synthetic population.

Every 2024 kommune is covered. Walking the kommuner of each fylke in number order, about one in six
(outside the five bydel cities) hosts an inter-municipal arrangement that also covers the next one to
three kommuner of its fylke; the rest have a contact of their own. Oslo, Bergen, Trondheim and Stavanger
also get contacts for two or three of their bydeler (Drammen's bydeler have no names in the project's
geography, so it gets none). A contact's doctors are one or two GPs of the host kommune from
``flr.jsonl`` when it has any. Addresses are generic and under ``pregbridge.invalid``; phone numbers are
8-digit landline-shaped numbers starting with ``0`` (not valid Norwegian numbers, on purpose); about
60 % have a nødnett ISSI.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from store import geo
from store.krk import BYDEL_KOMMUNER, HEADER
from store.normalize import name_key

__all__ = ["write_krk"]


def _gps_by_kommune(flr_file: Path) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    if not flr_file.is_file():
        return out
    with flr_file.open(encoding="utf-8") as f:
        for line in f:
            rec = json.loads(line)
            if rec.get("kommune") and rec.get("gpHprNumber"):
                out.setdefault(rec["kommune"], []).append(int(rec["gpHprNumber"]))
    return out


def _slug(name: str) -> str:
    return name_key(name.split(" (")[0]).replace(" ", "-")


def write_krk(out_dir: Path, rng: random.Random, *, flr_file: Path | None = None) -> int:
    """Write ``out_dir/krk.csv``; returns the number of contacts."""
    gps = _gps_by_kommune(flr_file or out_dir / "flr.jsonl")
    lines = [";".join(HEADER)]

    def contact(kommune: geo.Kommune, bydel: geo.Bydel | None, covers: list[str]) -> None:
        doctors = sorted(set(rng.sample(gps[kommune.nummer], min(len(gps[kommune.nummer]), rng.choice((1, 1, 2))))
                             if gps.get(kommune.nummer) else ()))
        where = _slug(kommune.navn) + (f"-{_slug(bydel.navn)}" if bydel else "")
        box = rng.choice(("kommuneoverlege", "smittevern", "kommunelege", "postmottak"))
        issi = str(rng.randrange(2_000_000, 9_000_000)) if rng.random() < 0.6 else ""
        lines.append(";".join((kommune.nummer, bydel.nummer if bydel else "", "", f"{box}@{where}.pregbridge.invalid",
                               f"0{rng.randrange(10_000_000):07d}", issi, " ".join(map(str, doctors)),
                               " ".join(covers))))

    by_fylke: dict[str, list[geo.Kommune]] = {}
    for k in geo.kommuner():
        by_fylke.setdefault(k.fylkesnummer, []).append(k)
    for kommuner in by_fylke.values():
        i = 0
        while i < len(kommuner):
            k = kommuner[i]
            free: list[geo.Kommune] = []
            for x in kommuner[i + 1:i + 4]:  # a run of neighbours in number order, none a bydel city
                if x.nummer in BYDEL_KOMMUNER:
                    break
                free.append(x)
            if k.nummer not in BYDEL_KOMMUNER and free and rng.random() < 1 / 6:
                covered = free[:rng.randint(1, len(free))]
                contact(k, None, [x.nummer for x in covered])
                i += 1 + len(covered)
                continue
            contact(k, None, [])
            bydeler = geo.bydeler(k.nummer)
            for b in sorted(rng.sample(bydeler, min(len(bydeler), rng.choice((2, 3)))), key=lambda b: b.nummer):
                contact(k, b, [])
            i += 1
    (out_dir / "krk.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return len(lines) - 1
