"""Named workloads: the entity files a benchmark submits, and when."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Entity = dict[str, Any]


def advertiser(key: str) -> Entity:
    return {
        "key": key,
        "type": "advertisers",
        "payload": {"name": key, "domain": f"{key}.example", "currency": "USD"},
    }


def creative(key: str, parent: str) -> Entity:
    return {
        "key": key,
        "type": "creatives",
        "payload": {
            "advertiser_id": {"$ref": parent},
            "name": key,
            "format": "video",
            "click_url": f"https://{parent}.example/{key}",
            "asset_url": f"https://cdn.{parent}.example/{key}.mp4",
        },
    }


def campaign(key: str, parent: str) -> Entity:
    return {
        "key": key,
        "type": "campaigns",
        "payload": {
            "advertiser_id": {"$ref": parent},
            "name": key,
            "budget": {"amount": 1000, "currency": "USD"},
            "start_date": "2027-03-01",
            "end_date": "2027-05-31",
        },
    }


def ad_group(key: str, parent: str, creatives: list[str]) -> Entity:
    return {
        "key": key,
        "type": "ad_groups",
        "payload": {
            "campaign_id": {"$ref": parent},
            "name": key,
            "bid_cpm": 2.5,
            "creative_ids": [{"$ref": c} for c in creatives],
        },
    }


@dataclass(frozen=True)
class Phase:
    """A batch submitted once `after` says so (given the DSP requests seen so far)."""

    batch: str
    entities: list[Entity]
    after: Callable[[int], bool] = field(default=lambda _requests: True)


@dataclass(frozen=True)
class Workload:
    name: str
    phases: list[Phase]
    review_seconds: float
    description: str


def backlog(limit: int, windows: int = 6, prefix: str = "bl") -> Workload:
    """`windows` windows of work at once, one request each (advertisers are active at once)."""
    count = limit * windows
    return Workload(
        "backlog",
        [Phase(f"{prefix}-adv", [advertiser(f"{prefix}-a{i}") for i in range(count)])],
        review_seconds=1.0,
        description=f"{count} advertisers submitted at once (1 request each, {windows} windows)",
    )


def review(limit: int, creatives: int = 200, newcomers: int | None = None) -> Workload:
    """Hundreds of creatives under a review that outlasts the run, then new entities arrive:
    do they get their share, and how many polls does each creative cost?"""
    newcomers = newcomers if newcomers is not None else 3 * limit
    parent = "rv-parent"
    under_review = [creative(f"rv-c{i}", parent) for i in range(creatives)]
    return Workload(
        "review",
        [
            Phase("rv-creatives", [advertiser(parent), *under_review]),
            Phase(
                "rv-newcomers",
                [advertiser(f"rv-a{i}") for i in range(newcomers)],
                after=lambda requests: requests >= creatives + 1 + 2 * limit,
            ),
        ],
        review_seconds=3600.0,
        description=(
            f"{creatives} creatives in a 1 h review; once they are submitted and polled for "
            f"a while, {newcomers} new advertisers arrive"
        ),
    )


def advertiser_trees(prefix: str, count: int) -> list[Entity]:
    """`count` trees of five: an advertiser, its campaign, two creatives and an ad group
    using both."""
    entities: list[Entity] = []
    for i in range(count):
        a = f"{prefix}-a{i}"
        creatives = [f"{a}-c{j}" for j in range(2)]
        entities += [advertiser(a), campaign(f"{a}-cp", a)]
        entities += [creative(c, a) for c in creatives]
        entities.append(ad_group(f"{a}-ag", f"{a}-cp", creatives))
    return entities


def dag(limit: int, advertisers: int | None = None) -> Workload:
    """Parents with dependants and leaves: each advertiser has a campaign, two creatives and
    an ad group using both."""
    advertisers = advertisers if advertisers is not None else max(2, limit // 2)
    entities = advertiser_trees("dg", advertisers)
    return Workload(
        "dag",
        [Phase("dg", entities)],
        review_seconds=3.0,
        description=f"{advertisers} advertiser trees (advertiser, campaign, 2 creatives, ad group)",
    )


FANOUT_PARENT = "fo-parent"
FANOUT_LEAF_PREFIX = "fo-a"


def fanout(
    limit: int, windows: int = 6, children: int | None = None, grandchildren: int = 0
) -> Workload:
    """A backlog of leaves is being submitted when a parent with `children` campaigns
    (each with `grandchildren` ad groups) arrives as a separate batch: does the parent wait
    behind the backlog?"""
    children = children if children is not None else limit // 2
    leaves = [advertiser(f"{FANOUT_LEAF_PREFIX}{i}") for i in range(limit * windows)]
    tree = [advertiser(FANOUT_PARENT)]
    for i in range(children):
        cp = f"{FANOUT_PARENT}-cp{i}"
        tree.append(campaign(cp, FANOUT_PARENT))
        tree += [ad_group(f"{cp}-ag{j}", cp, []) for j in range(grandchildren)]
    return Workload(
        "fanout",
        [
            Phase("fo-leaves", leaves),
            # One window in: the rest of the backlog is queued at the DSP task queue.
            Phase("fo-parent", tree, after=lambda requests: requests >= limit),
        ],
        review_seconds=1.0,
        description=(
            f"{len(leaves)} leaf advertisers ({windows} windows); once {limit} requests went "
            f"out, an advertiser with {children} campaigns waiting for it"
            + (f" ({grandchildren} ad group(s) under each)" if grandchildren else "")
        ),
    )


WORKLOADS: dict[str, Callable[[int], Workload]] = {
    "backlog": backlog,
    "review": review,
    "dag": dag,
    "fanout": fanout,
}
