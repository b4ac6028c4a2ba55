"""The user an agent talks with in a conversational task (core.user_sim for the rules): scripted turns,
or a user simulator, a model called on its own client (its tokens and cost are the user's, recorded
apart from the agent's: they are not what a cascade pays for)."""

from __future__ import annotations

import time
from typing import Any

import orjson

from cascade_studio.core.episode import Step, conversation
from cascade_studio.core.tiers import Tier
from cascade_studio.core.trajectory import Usage, cost_of
from cascade_studio.core.user_sim import simulator_messages
from cascade_studio.services.clients import describe_error, make_async_client
from cascade_studio.services.secrets import SecretStore
from cascade_studio.store.tiers import TierRepository
from cascade_studio.store.workspace import Workspace


class UserFailed(Exception):
    """The user simulator gave no usable turn (in words)."""


def user_turns_said(steps: list[Step]) -> int:
    return sum(len(s.user_turns) for s in steps)


class ConversationUser:
    """One task's user for one episode. `reply` gives the user's next turn (a user message; a
    simulated one carries its usage under `_usage`: [prompt tokens, completion tokens, cost micro-USD]),
    or None when a scripted user has nothing more to say."""

    def __init__(self, spec: dict[str, Any], ws: Workspace, agent_tier: Tier, secrets: SecretStore) -> None:
        self.spec = spec
        self.ws, self.agent_tier, self.secrets = ws, agent_tier, secrets
        self._client: Any = None
        self._tier: Tier | None = None

    def _simulator_tier(self) -> Tier:
        tier = self.agent_tier
        if self.spec.get("tier") is not None:
            found = TierRepository(self.ws).get(int(self.spec["tier"]))
            if found is None:
                raise UserFailed(f"the task's user simulator names tier {self.spec['tier']}, which is not defined")
            tier = found
        if self.spec.get("model"):
            tier = tier.replace(model=str(self.spec["model"]))
        return tier

    async def reply(self, prompt: list[dict[str, Any]], steps: list[Step]) -> dict[str, Any] | None:
        if "turns" in self.spec:
            n = user_turns_said(steps)
            turns = self.spec["turns"]
            return {"role": "user", "content": turns[n]} if n < len(turns) else None
        if self._client is None:
            self._tier = self._simulator_tier()
            try:
                self._client = make_async_client(self._tier, self.secrets, max_retries=4)
            except Exception as exc:  # noqa: BLE001 - in words
                raise UserFailed(f"the user simulator cannot start: {describe_error(exc, self._tier)[1]}") from exc
        tier = self._tier
        assert tier is not None
        body = {"model": tier.model, "messages": simulator_messages(self.spec, conversation(prompt, steps)),
                "temperature": tier.temperature}
        t0 = time.perf_counter()
        try:
            raw = await self._client.post("/chat/completions", body=body, cast_to=bytes)
            data = orjson.loads(raw)
            message = data["choices"][0]["message"]
        except (orjson.JSONDecodeError, KeyError, IndexError, TypeError) as exc:
            raise UserFailed(f"the user simulator's answer is not a chat completion ({type(exc).__name__})") from exc
        except Exception as exc:  # noqa: BLE001 - in words (a cancel is not an Exception: it goes on up)
            raise UserFailed(f"the user simulator failed: {describe_error(exc, tier)[1]}") from exc
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(content, str) or not content.strip():
            raise UserFailed("the user simulator answered with no text")
        usage = Usage.from_json(data.get("usage"))
        return {"role": "user", "content": content.strip(),
                "_usage": [usage.prompt_tokens, usage.completion_tokens, cost_of(usage, tier),
                           round((time.perf_counter() - t0) * 1000, 1)]}

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()
