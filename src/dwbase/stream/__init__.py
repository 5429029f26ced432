"""In-process publish/subscribe for observe."""

from .hub import Hub, Subscription, SubscriptionStats

__all__ = ["Hub", "Subscription", "SubscriptionStats"]
