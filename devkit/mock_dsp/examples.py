"""Valid request bodies of every entity type, for tests and demos of the mock."""

from __future__ import annotations

from typing import Any


def advertiser_body(name: str = "Acme", **changes: Any) -> dict[str, Any]:
    return {"name": name, "domain": "acme.example", "currency": "USD", **changes}


def campaign_body(advertiser_id: str, name: str = "Spring", **changes: Any) -> dict[str, Any]:
    return {
        "advertiser_id": advertiser_id,
        "name": name,
        "budget": {"amount": 5000, "currency": "USD"},
        "start_date": "2027-03-01",
        "end_date": "2027-05-31",
        **changes,
    }


def creative_body(advertiser_id: str, name: str = "Banner", **changes: Any) -> dict[str, Any]:
    return {
        "advertiser_id": advertiser_id,
        "name": name,
        "format": "display",
        "width": 300,
        "height": 250,
        "click_url": "https://acme.example/spring",
        "asset_url": "https://cdn.acme.example/banner.png",
        **changes,
    }


def ad_group_body(
    campaign_id: str, creative_ids: list[str], name: str = "Prospecting", **changes: Any
) -> dict[str, Any]:
    return {
        "campaign_id": campaign_id,
        "name": name,
        "bid_cpm": 2.5,
        "creative_ids": creative_ids,
        **changes,
    }
