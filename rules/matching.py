"""Maximum bipartite matching, for the few items rules and rule tests pair up."""

from __future__ import annotations

from collections.abc import Callable


def max_matching(n_left: int, n_right: int, ok: Callable[[int, int], bool]) -> dict[int, int]:
    """A maximum matching (Kuhn's augmenting paths): left index -> right index.

    Quadratic and recursive: meant for a handful of alerts, not for large graphs.
    """
    right_of: dict[int, int] = {}

    def augment(i: int, seen: set[int]) -> bool:
        for j in range(n_right):
            if j in seen or not ok(i, j):
                continue
            seen.add(j)
            if j not in right_of or augment(right_of[j], seen):
                right_of[j] = i
                return True
        return False

    for i in range(n_left):
        augment(i, set())
    return {i: j for j, i in right_of.items()}
