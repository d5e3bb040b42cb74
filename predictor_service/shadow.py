"""Shadow routing: rides pushed by the shadow subscription are answered where riders never read.

A candidate revision gets the riders' rides through a push subscription of its own (the shadow
subscription). The predictor tells a shadow push from a rider's by the envelope's
`subscription` field, so the revision that was shadowed is the very one that serves once
traffic moves to it: no rebuild, no other setting. A shadow push's result goes to the shadow
results topic, and so does its failure (a message with `reason` and `error` attributes, as a
dead letter has): nothing a shadow push does reaches the results or dead-letter topics.
"""

from dataclasses import dataclass

from .publisher import ResultPublisher


@dataclass(frozen=True)
class ShadowSettings:
    subscription: str  # the shadow subscription's short name
    results_topic: str  # where shadow results and failures go; riders never read it


@dataclass(frozen=True)
class ShadowRoute:
    subscription: str
    publisher: ResultPublisher  # results and failures both to the shadow results topic

    def owns(self, subscription_path: str) -> bool:
        """Whether a push from `subscription_path` (full or short name) is a shadow push."""
        return short_name(subscription_path) == self.subscription


def short_name(subscription: str) -> str:
    """`projects/p/subscriptions/name` or `name`: the name."""
    return subscription.rpartition("/")[2]


def shadow_problems(
    subscription: str, results_topic: str, riders_topics: tuple[str, ...]
) -> list[str]:
    """What is wrong with the shadow settings (SHADOW_SUBSCRIPTION, SHADOW_RESULTS_TOPIC)."""
    if not subscription and not results_topic:
        return []
    if not subscription or not results_topic:
        return ["SHADOW_SUBSCRIPTION and SHADOW_RESULTS_TOPIC are set together or not at all"]
    if short_name(results_topic) in riders_topics:
        # A shadow result there would reach a waiting rider, or the riders' dead letters.
        return [f"SHADOW_RESULTS_TOPIC must not be a topic riders read, got {results_topic!r}"]
    return []
