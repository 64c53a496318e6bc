"""The dependency graph of a file's entities: cycles and a parents-first order.

Only edges between entities of the same file count: a dependency on an entity stored by an
earlier submission cannot close a cycle, since that entity was checked when it was stored.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Sequence

from dsp_integration.entities.model import EntitySpec
from dsp_integration.entities.refs import dependencies_of

MAX_CYCLES_PER_TANGLE = 20


def dependency_edges(entities: Sequence[EntitySpec]) -> dict[str, list[str]]:
    """key -> the keys of the same file it depends on (self-references left out). With
    duplicate keys the first entity wins; duplicates are refused before this matters."""
    edges: dict[str, list[str]] = {spec.key: [] for spec in entities}
    done: set[str] = set()
    for spec in entities:
        if spec.key in done:
            continue
        done.add(spec.key)
        edges[spec.key] = [
            dep
            for dep in dependencies_of(spec.payload, spec.depends_on)
            if dep in edges and dep != spec.key
        ]
    return edges


def strongly_connected(edges: dict[str, list[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative; components of more than one key, in discovery order."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    for root in edges:
        if root in index:
            continue
        work = [(root, 0)]
        while work:
            node, child_at = work[-1]
            if child_at == 0:
                index[node] = low[node] = len(index)
                stack.append(node)
                on_stack.add(node)
            children = edges[node]
            if child_at < len(children):
                work[-1] = (node, child_at + 1)
                child = children[child_at]
                if child not in index:
                    work.append((child, 0))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    components.append(component)
    return components


def _shortest_cycle_through(
    start: str, edges: dict[str, list[str]], allowed: set[str]
) -> list[str]:
    came_from: dict[str, str] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for child in edges[node]:
            if child == start:
                path = [node]
                while path[-1] != start:
                    path.append(came_from[path[-1]])
                return path[::-1]
            if child in allowed and child not in came_from:
                came_from[child] = node
                queue.append(child)
    return []


def find_cycles(entities: Sequence[EntitySpec]) -> list[list[str]]:
    """Each dependency cycle once, as its keys in order (`[a, b, c]` is a → b → c → a),
    starting at the key that comes first in the file. Within one tangle of entities that
    all depend on each other, cycles are listed until every member is named (at most
    MAX_CYCLES_PER_TANGLE)."""
    edges = dependency_edges(entities)
    order = {key: i for i, key in enumerate(edges)}
    cycles: list[list[str]] = []
    for component in strongly_connected(edges):
        members = set(component)
        uncovered = sorted(members, key=order.__getitem__)
        covered: set[str] = set()
        found: list[list[str]] = []
        for start in uncovered:
            if start in covered or len(found) >= MAX_CYCLES_PER_TANGLE:
                continue
            cycle = _shortest_cycle_through(start, edges, members)
            if not cycle:
                continue
            first = min(range(len(cycle)), key=lambda i: order[cycle[i]])
            found.append(cycle[first:] + cycle[:first])
            covered.update(cycle)
        cycles += found
    cycles.sort(key=lambda cycle: order[cycle[0]])
    return cycles


def topological_order(entities: Sequence[EntitySpec]) -> list[EntitySpec]:
    """Parents before children. Among entities that are ready at the same time, those with
    more dependants (direct or not) come first, then those earlier in the file, so the
    work that unblocks most is started first. Raises ValueError on a cycle."""
    edges = dependency_edges(entities)
    keys = list(edges)
    bit = {key: 1 << i for i, key in enumerate(keys)}
    children: dict[str, list[str]] = {key: [] for key in keys}
    waiting_on = {key: len(set(deps)) for key, deps in edges.items()}
    for key, deps in edges.items():
        for dep in set(deps):
            children[dep].append(key)

    parents_first: list[str] = []
    ready = deque(key for key in keys if waiting_on[key] == 0)
    remaining = dict(waiting_on)
    while ready:
        key = ready.popleft()
        parents_first.append(key)
        for child in children[key]:
            remaining[child] -= 1
            if remaining[child] == 0:
                ready.append(child)
    if len(parents_first) != len(keys):
        stuck = [key for key in keys if remaining[key] > 0]
        raise ValueError(f"dependency cycle among {', '.join(stuck[:10])}")

    descendants: dict[str, int] = {}
    for key in reversed(parents_first):
        mask = 0
        for child in children[key]:
            mask |= bit[child] | descendants[child]
        descendants[key] = mask

    position = {key: i for i, key in enumerate(keys)}
    heap = [
        (-descendants[key].bit_count(), position[key], key) for key in keys if waiting_on[key] == 0
    ]
    heapq.heapify(heap)
    ordered_keys: list[str] = []
    remaining = dict(waiting_on)
    while heap:
        _, _, key = heapq.heappop(heap)
        ordered_keys.append(key)
        for child in children[key]:
            remaining[child] -= 1
            if remaining[child] == 0:
                heapq.heappush(heap, (-descendants[child].bit_count(), position[child], child))

    by_key: dict[str, list[EntitySpec]] = {}
    for spec in entities:
        by_key.setdefault(spec.key, []).append(spec)
    return [spec for key in ordered_keys for spec in by_key[key]]
