"""Where push_envelope used to live: tests/integration/test_front_door.py still imports it here.

New tests import it from devstack.pubsub, and the rest from tests/kit.
"""

from devstack.pubsub import push_envelope

__all__ = ["push_envelope"]
