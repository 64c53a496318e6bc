"""Entity files for the integration tests and benchmarks: a DAG with known outcomes."""

from __future__ import annotations

from typing import Any


def ref(key: str) -> dict[str, str]:
    return {"$ref": key}


def advertiser(key: str) -> dict[str, Any]:
    return {
        "key": key,
        "type": "advertisers",
        "payload": {"name": f"Advertiser {key}", "domain": f"{key}.example", "currency": "USD"},
    }


def campaign(key: str, advertiser_key: str, *, fail: bool = False) -> dict[str, Any]:
    return {
        "key": key,
        "type": "campaigns",
        "payload": {
            "advertiser_id": ref(advertiser_key),
            "name": f"Campaign {key}" + (" [fail]" if fail else ""),
            "budget": {"amount": 1000, "currency": "USD"},
            "start_date": "2027-03-01",
            "end_date": "2027-05-31",
        },
    }


def creative(key: str, advertiser_key: str, *, reject: bool = False) -> dict[str, Any]:
    return {
        "key": key,
        "type": "creatives",
        "payload": {
            "advertiser_id": ref(advertiser_key),
            "name": f"Creative {key}" + (" [reject]" if reject else ""),
            "format": "display",
            "width": 300,
            "height": 250,
            "click_url": f"https://{advertiser_key}.example/landing",
            "asset_url": f"https://cdn.{advertiser_key}.example/{key}.png",
        },
    }


def ad_group(key: str, campaign_key: str, creative_keys: list[str]) -> dict[str, Any]:
    return {
        "key": key,
        "type": "ad_groups",
        "payload": {
            "campaign_id": ref(campaign_key),
            "name": f"Ad group {key}",
            "bid_cpm": 2.5,
            "creative_ids": [ref(k) for k in creative_keys],
        },
    }


def launch_dag(prefix: str, advertisers: int = 3) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """Per advertiser: a campaign, two creatives and two ad groups (7 entities). The first
    advertiser's second creative is rejected, so its ad group ends blocked, and so does an
    extra ad group that only `depends_on` that one. Returns the entities and the statuses
    each must end in."""
    entities: list[dict[str, Any]] = []
    expected: dict[str, str] = {}
    for a in range(advertisers):
        adv, cmp = f"{prefix}-adv{a}", f"{prefix}-cmp{a}"
        cr1, cr2 = f"{prefix}-cr{a}a", f"{prefix}-cr{a}b"
        ag1, ag2 = f"{prefix}-ag{a}a", f"{prefix}-ag{a}b"
        rejected = a == 0
        entities += [
            advertiser(adv),
            campaign(cmp, adv),
            creative(cr1, adv),
            creative(cr2, adv, reject=rejected),
            ad_group(ag1, cmp, [cr1]),
            ad_group(ag2, cmp, [cr1, cr2]),
        ]
        expected.update({adv: "succeeded", cmp: "succeeded", cr1: "succeeded", ag1: "succeeded"})
        expected[cr2] = "rejected" if rejected else "succeeded"
        expected[ag2] = "blocked" if rejected else "succeeded"
    follower = {**ad_group(f"{prefix}-ag-follow", f"{prefix}-cmp0", [f"{prefix}-cr0a"])}
    follower["depends_on"] = [f"{prefix}-ag0b"]
    entities.append(follower)
    expected[follower["key"]] = "blocked"
    return entities, expected
