"""Demo batches for `make seed`, added through the public API (gateway) as the seeding admin,
a few of them walked through production. Idempotent: a batch number that exists already (409)
is skipped together with its walk."""

from __future__ import annotations

import requests

# (batch number, product, planned quantity, unit, how far to walk it)
DEMO_BATCHES = [
    ("PCM500-2611-001", "Paracetamol 500 mg tablets", 250_000, "tablets", "completed"),
    ("PCM500-2611-002", "Paracetamol 500 mg tablets", 250_000, "tablets", "released"),
    ("PCM500-2611-003", "Paracetamol 500 mg tablets", 250_000, "tablets", "compression"),
    ("IBU200-2611-001", "Ibuprofen 200 mg film-coated tablets", 180_000, "tablets", "coating"),
    ("IBU200-2611-002", "Ibuprofen 200 mg film-coated tablets", 180_000, "tablets", "rejected"),
    ("AMX500-2611-001", "Amoxicillin 500 mg capsules", 120_000, "capsules", "qa_hold"),
    ("AMX500-2611-002", "Amoxicillin 500 mg capsules", 120_000, "capsules", "granulation"),
    ("MET850-2611-001", "Metformin 850 mg tablets", 300_000, "tablets", "completed"),
    ("MET850-2611-002", "Metformin 850 mg tablets", 300_000, "tablets", "planned"),
    ("ORS-2611-001", "Oral rehydration salts", 900, "kg", "planned"),
]
STAGES = ["granulation", "compression", "coating", "packaging"]


def _walk(goal: str) -> list[dict]:
    """The transition bodies that take a planned batch to `goal` (a stage or a status)."""
    steps: list[dict] = [{"status": "in_progress", "reason": "Line cleared, materials issued"}]
    if goal == "planned":
        return []
    for stage in STAGES:
        steps.append({"stage": stage, "reason": f"{stage.title()} started"})
        if goal == stage:
            return steps
    if goal == "rejected":
        return steps[:3] + [
            {"status": "qa_hold", "reason": "Hardness out of specification"},
            {"status": "rejected", "reason": "OOS confirmed by QA"},
        ]
    steps.append({"status": "qa_hold", "reason": "Batch record review"})
    if goal == "qa_hold":
        return steps
    steps.append({"status": "released", "reason": "QA release, certificate issued"})
    if goal == "completed":
        steps.append({"status": "completed", "reason": "Transferred to warehouse"})
    return steps


def run(http: requests.Session, base_url: str) -> None:
    for number, product, quantity, unit, goal in DEMO_BATCHES:
        resp = http.post(
            f"{base_url}/api/batches",
            timeout=30,
            json={
                "batch_number": number,
                "product": product,
                "planned_quantity": quantity,
                "unit": unit,
            },
        )
        if resp.status_code == 409:
            continue
        resp.raise_for_status()
        batch_id = resp.json()["id"]
        for step in _walk(goal):
            if step.get("status") == "completed":
                step = {**step, "actual_quantity": round(quantity * 0.985, 3)}
            moved = http.post(
                f"{base_url}/api/batches/{batch_id}/transitions", json=step, timeout=30
            )
            moved.raise_for_status()
