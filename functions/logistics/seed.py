"""Demo packages for `make seed`, added through the public API (gateway) as the seeding admin,
each with a realistic scan history between European hubs, timed relative to now: some on
time, some late (delivered after the promise, or still on their way past it), exceptions
(one repeated), a cancelled and a returned package, a scan that arrives out of order, and an
impossible-speed pair (Lyon to Rome in 40 minutes) for the anomaly investigation. Idempotent:
a tracking number that exists already (409) is skipped together with its scans, and every scan
carries a fixed idempotency key."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import requests

from functions.logistics.model import new_tracking_number

# name: (lat, lon, region, address)
CITIES: dict[str, tuple[float, float, str, str]] = {
    "Berlin": (52.520, 13.405, "DE-BE", "Alexanderplatz 1, 10178 Berlin"),
    "Hamburg": (53.551, 9.994, "DE-HH", "Jungfernstieg 7, 20354 Hamburg"),
    "Munich": (48.137, 11.575, "DE-BY", "Marienplatz 8, 80331 Munich"),
    "Frankfurt": (50.110, 8.682, "DE-HE", "Zeil 90, 60313 Frankfurt"),
    "Paris": (48.857, 2.352, "FR-IDF", "1 Rue de Rivoli, 75001 Paris"),
    "Lyon": (45.764, 4.836, "FR-ARA", "10 Place Bellecour, 69002 Lyon"),
    "Madrid": (40.417, -3.704, "ES-MD", "Gran Via 28, 28013 Madrid"),
    "Barcelona": (41.387, 2.170, "ES-CT", "La Rambla 91, 08001 Barcelona"),
    "Milan": (45.464, 9.190, "IT-LOM", "Via Dante 2, 20121 Milan"),
    "Rome": (41.903, 12.496, "IT-LAZ", "Via del Corso 18, 00186 Rome"),
    "Amsterdam": (52.368, 4.904, "NL-NH", "Damrak 1, 1012 LG Amsterdam"),
    "Warsaw": (52.230, 21.012, "PL-MZ", "Nowy Swiat 15, 00-029 Warsaw"),
    "Vienna": (48.208, 16.373, "AT-9", "Graben 19, 1010 Vienna"),
}

# serial, sender, recipient, origin, destination, service level, weight, promise (hours after
# pickup), days ago the pickup was, scans [(kind, city, hours after pickup, note)], afterwards
Scan = tuple[str, str, float, str | None]
DEMO: list[tuple[int, str, str, str, str, str, float, float, float, list[Scan], str | None]] = [
    (
        10000001,
        "Berliner Buchhandel GmbH",
        "Camille Martin",
        "Berlin",
        "Paris",
        "express",
        1.2,
        48,
        6,
        [
            ("pickup", "Berlin", 0, None),
            ("departure", "Berlin", 2, None),
            ("arrival", "Frankfurt", 7, None),
            ("departure", "Frankfurt", 9, None),
            ("arrival", "Paris", 17, None),
            ("out_for_delivery", "Paris", 24, None),
            ("delivery", "Paris", 27.5, None),
        ],
        None,
    ),
    (
        10000002,
        "Hanse Elektronik KG",
        "Lukas Huber",
        "Hamburg",
        "Munich",
        "standard",
        4.8,
        24,
        5,
        [
            ("pickup", "Hamburg", 0, None),
            ("departure", "Hamburg", 3, None),
            ("arrival", "Frankfurt", 14, None),
            ("departure", "Frankfurt", 26, None),
            ("arrival", "Munich", 33, None),
            ("out_for_delivery", "Munich", 37, None),
            ("delivery", "Munich", 40, None),
        ],
        None,
    ),
    (
        10000003,
        "Mainufer Versand AG",
        "Lucia Garcia",
        "Frankfurt",
        "Madrid",
        "standard",
        12.0,
        96,
        1.5,
        [
            ("pickup", "Frankfurt", 0, None),
            ("departure", "Frankfurt", 2, None),
            ("arrival", "Lyon", 11, None),
            ("departure", "Lyon", 20, None),
        ],
        None,
    ),
    (
        10000004,
        "Grachten Design BV",
        "Giulia Rossi",
        "Amsterdam",
        "Milan",
        "express",
        0.8,
        36,
        1.2,
        [
            ("pickup", "Amsterdam", 0, None),
            ("departure", "Amsterdam", 1, None),
            ("arrival", "Frankfurt", 6, None),
            ("departure", "Frankfurt", 8, None),
            ("arrival", "Milan", 19, None),
            ("out_for_delivery", "Milan", 26, None),
        ],
        None,
    ),
    (
        10000005,
        "Wisla Meble Sp. z o.o.",
        "Jonas Schmidt",
        "Warsaw",
        "Berlin",
        "economy",
        31.5,
        120,
        3,
        [
            ("pickup", "Warsaw", 0, None),
            ("departure", "Warsaw", 4, None),
            ("arrival", "Berlin", 14, None),
            ("exception", "Berlin", 16, "Parcel damaged in transit; held for inspection"),
        ],
        None,
    ),
    (
        10000006,
        "Atelier Rive Gauche SARL",
        "Marco Bianchi",
        "Paris",
        "Rome",
        "express",
        2.1,
        48,
        4,
        [
            ("pickup", "Paris", 0, None),
            ("departure", "Paris", 2, None),
            ("arrival", "Lyon", 7, None),
            ("departure", "Lyon", 7.2, None),
            # 750 km in 40 minutes: a scanner reporting the wrong facility (or a cloned label)
            ("arrival", "Rome", 7.87, None),
            ("out_for_delivery", "Rome", 20, None),
            ("delivery", "Rome", 23, None),
        ],
        None,
    ),
    (
        10000007,
        "Wiener Kaffeehaus GmbH",
        "Anna Becker",
        "Vienna",
        "Hamburg",
        "standard",
        6.4,
        48,
        4,
        [
            ("pickup", "Vienna", 0, None),
            ("departure", "Vienna", 3, None),
            ("arrival", "Munich", 9, None),
            ("departure", "Munich", 60, None),
            ("arrival", "Frankfurt", 68, None),
        ],
        None,
    ),
    (
        10000008,
        "Costa Brava Olive Oil SL",
        "Felix Wagner",
        "Barcelona",
        "Berlin",
        "overnight",
        3.0,
        24,
        0.1,
        [],
        None,
    ),
    (
        10000009,
        "Bavaria Sport GmbH",
        "Elena Gruber",
        "Munich",
        "Vienna",
        "standard",
        2.2,
        48,
        2,
        [],
        "cancel",
    ),
    (
        10000010,
        "Navigli Moda Srl",
        "Daan de Vries",
        "Milan",
        "Amsterdam",
        "standard",
        1.7,
        72,
        6,
        [
            ("pickup", "Milan", 0, None),
            ("departure", "Milan", 2, None),
            ("arrival", "Frankfurt", 12, None),
            ("departure", "Frankfurt", 14, None),
            ("arrival", "Amsterdam", 21, None),
            ("out_for_delivery", "Amsterdam", 26, None),
            ("exception", "Amsterdam", 29, "Recipient unknown at address"),
        ],
        "return",
    ),
    (
        10000011,
        "Spree Optik GmbH",
        "Katarzyna Nowak",
        "Berlin",
        "Warsaw",
        "express",
        0.5,
        36,
        3,
        [
            ("pickup", "Berlin", 0, None),
            ("departure", "Berlin", 1.5, None),
            # the Warsaw hub's arrival scan is sent after the delivery: out of order
            ("out_for_delivery", "Warsaw", 15, None),
            ("delivery", "Warsaw", 18, None),
            ("arrival", "Warsaw", 9, None),
        ],
        None,
    ),
    (
        10000012,
        "Soie de Lyon SA",
        "Jordi Puig",
        "Lyon",
        "Barcelona",
        "standard",
        8.9,
        48,
        7,
        [
            ("pickup", "Lyon", 0, None),
            ("departure", "Lyon", 2, None),
            ("exception", "Lyon", 5, "Customs documents missing"),
            ("departure", "Lyon", 30, None),
            ("arrival", "Barcelona", 38, None),
            ("exception", "Barcelona", 40, "Delivery vehicle breakdown"),
            ("out_for_delivery", "Barcelona", 60, None),
            ("delivery", "Barcelona", 64, None),
        ],
        None,
    ),
]


def _place(city: str) -> dict[str, Any]:
    lat, lon, region, address = CITIES[city]
    return {"address": address, "lat": lat, "lon": lon, "region": region}


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def run(http: requests.Session, base_url: str) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    for (
        serial,
        sender,
        recipient,
        origin,
        destination,
        level,
        weight,
        promise_h,
        days_ago,
        scans,
        afterwards,
    ) in DEMO:
        number = new_tracking_number(serial)
        picked_up = now - timedelta(days=days_ago)
        resp = http.post(
            f"{base_url}/api/packages",
            timeout=30,
            json={
                "tracking_number": number,
                "sender": sender,
                "recipient": recipient,
                "origin": _place(origin),
                "destination": _place(destination),
                "service_level": level,
                "weight_kg": weight,
                "promised_by": _iso(picked_up + timedelta(hours=promise_h)),
            },
        )
        if resp.status_code == 409:
            continue
        resp.raise_for_status()
        package_id = resp.json()["id"]
        for i, (kind, city, hours, note) in enumerate(scans):
            lat, lon, _, _ = CITIES[city]
            sent = http.post(
                f"{base_url}/api/packages/{package_id}/events",
                timeout=30,
                json={
                    "kind": kind,
                    "location": f"{city} {'hub' if kind in ('arrival', 'departure') else 'depot'}",
                    "lat": lat,
                    "lon": lon,
                    "occurred_at": _iso(picked_up + timedelta(hours=hours)),
                    "idempotency_key": f"seed-{number}-{i}",
                    **({"note": note} if note else {}),
                },
            )
            sent.raise_for_status()
        if afterwards == "cancel":
            http.delete(f"{base_url}/api/packages/{package_id}", timeout=30).raise_for_status()
        elif afterwards == "return":
            http.put(
                f"{base_url}/api/packages/{package_id}", json={"status": "returned"}, timeout=30
            ).raise_for_status()
