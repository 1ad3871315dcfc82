"""A test-only shop adapter, registered only by tests/integration/adapters/conftest.py (never installed).

It proves the contract: an adapter is one package with its name, config model, secrets and default
mapping, found through the entry-point group, and no core file names it. Its shop speaks JSON lines:
the feed is one JSON object per line, and hand-offs are JSON files dropped into an inbox folder.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Sequence

from pydantic import Field, SecretStr

from adapters.base import (AdapterContext, AdapterSpec, FeedProblem, FeedRead, FeedUnavailable, HandoffError,
                           HandoffKind, MallChange, NewOrder, Secret, ShopOrderState)
from adapters.shared.sections import AdapterSection

HERE = Path(__file__).resolve().parent


class ToyShopConfig(AdapterSection):
    feed: Path = Path("feed.jsonl")
    inbox: Path = Path("inbox")
    api_key: SecretStr | None = None
    max_lines: int = Field(10_000, ge=1)


class ToyShopAdapter:
    name = "toy_shop"

    def __init__(self, config: ToyShopConfig, context: AdapterContext):
        self.config = config

    def read_feed(self, *, previous_fingerprint: str | None = None, wait_for_settle: bool = False) -> FeedRead:
        source = str(self.config.feed)
        try:
            with open(self.config.feed, "rb") as f:
                st = os.fstat(f.fileno())
                fingerprint = f"{st.st_mtime_ns}:{st.st_size}"
                if fingerprint == previous_fingerprint:
                    return FeedRead(unchanged=True, fingerprint=fingerprint)
                read = FeedRead(fingerprint=fingerprint)
                for n, raw in enumerate(f, 1):
                    if n > self.config.max_lines:
                        raise FeedUnavailable(f"{source}: more than {self.config.max_lines} lines (max_lines)")
                    try:
                        row = json.loads(raw)
                        oid = str(row["id"])
                        if not oid.isdigit() or int(oid) <= 0:
                            raise ValueError(f"id {oid!r} is not a positive whole number")
                        read.rows.append(ShopOrderState(int(oid), str(row["status"]),
                                                        tracking_number=row.get("tracking") or None, line=n))
                    except (ValueError, KeyError, TypeError) as e:
                        read.problems.append(FeedProblem(source, n, f"bad line: {e}"))
                return read
        except FileNotFoundError:
            raise FeedUnavailable(f"{source}: file not found") from None

    def _temp(self, name: str) -> Path:
        return self.config.inbox / f".{name}.json.tmp"

    def stage_handoff(self, name: str, kind: HandoffKind, records: Sequence[NewOrder] | Sequence[MallChange]) -> None:
        try:
            self.config.inbox.mkdir(parents=True, exist_ok=True)
            with open(self._temp(name), "w", encoding="utf-8") as f:
                json.dump({"kind": kind, "records": [asdict(r) for r in records]}, f)
                f.flush()
                os.fsync(f.fileno())
        except OSError as e:
            raise HandoffError(f"cannot write {self._temp(name)}: {e.strerror}") from None

    def publish_handoff(self, name: str) -> bool:
        try:
            os.replace(self._temp(name), self.config.inbox / f"{name}.json")
        except FileNotFoundError:
            return False
        return True

    def manual_steps(self, record: NewOrder | MallChange) -> str | None:
        return None


class ToyShopKit:
    """Its kit for the contract suite (adapters/shared/contract.py)."""

    def section(self, root: Path) -> dict:
        return {"feed": str(root / "feed.jsonl"), "inbox": str(root / "inbox")}

    def write_feed(self, section: dict, rows: Sequence[dict[str, str]]) -> list[int]:
        lines = [json.dumps({"id": r["mall_order_id"], "status": r["status"], "tracking": r.get("tracking_number")})
                 for r in rows]
        Path(section["feed"]).write_text("".join(line + "\n" for line in lines), encoding="utf-8")
        return [1 + i for i in range(len(rows))]

    def feed_source(self, section: dict) -> str:
        return section["feed"]

    def received(self, section: dict) -> list[dict[str, str]]:
        out = []
        for path in sorted(Path(section["inbox"]).glob("*.json")):
            batch = json.loads(path.read_text(encoding="utf-8"))
            out.extend({"kind": batch["kind"], "file": path.name, **{k: str(v) for k, v in r.items()}}
                       for r in batch["records"])
        return out


ADAPTER = AdapterSpec(
    name="toy_shop",
    description="test-only JSON-lines shop",
    config_model=ToyShopConfig,
    build=ToyShopAdapter,
    secrets=(Secret("api_key"),),
    paths=("feed", "inbox"),
    default_mapping=HERE / "mapping.toml",
    contract_kit="tests.integration.adapters.toy_shop:ToyShopKit",
)
