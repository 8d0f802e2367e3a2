"""Rank allocation under one global parameter budget (NumPy only, no torch).

The allocator sees each matrix (or each group of matrices that share one basis) as a *block*: a
curve ``losses[k]``, the predicted loss when the block keeps rank ``k``, a cost per unit of rank
(``m + n`` for one matrix, ``n + sum(m_j)`` for matrices sharing an input-side basis) and the
cost of keeping the block dense (loss zero). Blocks are gathered into *units*: the matrices that
read the same input may be stored separately or share bases in several ways, and each way is a
*configuration* of the unit (a list of blocks). The allocator picks one configuration per unit
and one rank (or dense) per block so that the total cost fits the budget and the summed loss is
as small as it can make it.

Why a Lagrangian: the curves are non-increasing but the dense option and the choice between
configurations make the problem non-convex, so a greedy "cheapest next component" walk can
strand budget. Minimising ``loss + lam * cost`` for one multiplier ``lam`` is separable (each
block and each unit on its own, exactly), and the total cost is non-increasing in ``lam``; a
bisection on ``lam`` finds the allocation on the lower convex hull of the global trade-off that
fits the budget, and a greedy pass then spends what the hull step left over. The CLI's
``--target`` uses the same core, so it stays free of torch.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

import numpy as np

__all__ = ["DENSE", "Block", "Unit", "allocate", "ranks_for_tolerance"]

#: Rank value that means "keep this block as a dense matrix".
DENSE = -1


@dataclass
class Block:
    """One factorisation: a loss curve over ranks, a cost per rank and a dense cost.

    ``losses[k]`` is the predicted loss at rank ``k`` for ``k = 0 .. len(losses) - 1``;
    it must be non-increasing. ``min_rank`` is the smallest rank the block may take when
    factored.
    """

    losses: np.ndarray
    rank_cost: int
    dense_cost: int
    min_rank: int = 1
    name: str = ""

    def __post_init__(self) -> None:
        losses = np.asarray(self.losses, dtype=np.float64)
        # A curve computed from tails of eigenvalues can wiggle by rounding; the allocator
        # relies on monotonicity, so the running minimum is taken (never raises a loss).
        self.losses = np.minimum.accumulate(np.maximum(losses, 0.0))
        self.min_rank = min(self.min_rank, len(self.losses) - 1)

    @property
    def max_rank(self) -> int:
        return len(self.losses) - 1

    def cost(self, rank: int) -> int:
        return self.dense_cost if rank == DENSE else rank * self.rank_cost

    def loss(self, rank: int) -> float:
        return 0.0 if rank == DENSE else float(self.losses[rank])

    def best(self, lam: float) -> tuple[int, float, int]:
        """The rank minimising ``loss + lam * cost``: (rank, objective, cost)."""
        ks = np.arange(self.min_rank, len(self.losses))
        obj = self.losses[self.min_rank :] + lam * self.rank_cost * ks
        i = int(np.argmin(obj))
        rank, value = int(ks[i]), float(obj[i])
        dense_value = lam * self.dense_cost
        # Ties go to the factored form only when it is strictly cheaper.
        if dense_value < value or (
            dense_value == value and self.dense_cost <= rank * self.rank_cost
        ):
            return DENSE, dense_value, self.dense_cost
        return rank, value, rank * self.rank_cost


@dataclass
class Unit:
    """The alternative configurations of one set of matrices (each a list of blocks)."""

    configurations: list[list[Block]]
    name: str = ""
    labels: list[str] = field(default_factory=list)


@dataclass
class Allocation:
    """The allocator's answer: per unit the configuration index and one rank per block."""

    configuration: list[int]
    ranks: list[list[int]]
    cost: int
    loss: float


def _solve(units: list[Unit], lam: float) -> tuple[list[int], list[list[int]], int, float]:
    config, ranks, cost, loss = [], [], 0, 0.0
    for unit in units:
        best = None
        for c, blocks in enumerate(unit.configurations):
            picks = [b.best(lam) for b in blocks]
            value = sum(p[1] for p in picks)
            ccost = sum(p[2] for p in picks)
            if best is None or value < best[0] or (value == best[0] and ccost < best[2]):
                best = (value, c, ccost, [p[0] for p in picks])
        _, c, ccost, rk = best
        config.append(c)
        ranks.append(rk)
        cost += ccost
        loss += sum(b.loss(r) for b, r in zip(unit.configurations[c], rk, strict=True))
    return config, ranks, cost, loss


def _fill(units: list[Unit], config: list[int], ranks: list[list[int]], room: int) -> int:
    """Spend ``room`` parameters on the rank increments with the best loss drop per parameter."""
    heap: list[tuple[float, int, int, int]] = []

    def push(u: int, j: int) -> None:
        block = units[u].configurations[config[u]][j]
        r = ranks[u][j]
        if r == DENSE or r >= block.max_rank:
            return
        gain = block.losses[r] - block.losses[r + 1]
        if gain > 0:
            heapq.heappush(heap, (-gain / block.rank_cost, u, j, r))

    for u in range(len(units)):
        for j in range(len(ranks[u])):
            push(u, j)
    while heap:
        _, u, j, r = heapq.heappop(heap)
        block = units[u].configurations[config[u]][j]
        if ranks[u][j] != r or block.rank_cost > room:
            continue
        # Going one rank further must not cost more than keeping the block dense.
        if (r + 1) * block.rank_cost >= block.dense_cost:
            extra = block.dense_cost - r * block.rank_cost
            if extra <= room:
                ranks[u][j] = DENSE
                room -= extra
            continue
        ranks[u][j] = r + 1
        room -= block.rank_cost
        push(u, j)
    return room


def allocate(units: list[Unit], budget: float) -> Allocation:
    """Choose configurations and ranks that fit ``budget`` with the least summed loss.

    Parameters
    ----------
    units : list of Unit
        The matrices to allocate, grouped by the input they share.
    budget : float
        Total number of parameters allowed for all blocks together.

    Returns
    -------
    Allocation
        ``configuration[u]`` and ``ranks[u][j]`` (:data:`DENSE` for a dense block), the total
        cost (at most ``budget``) and the summed predicted loss.

    Raises
    ------
    ValueError
        If even the cheapest choice of every block exceeds ``budget``.

    Examples
    --------
    >>> import numpy as np
    >>> from sparselin.linalg._allocation import Block, Unit, allocate
    >>> a = Block(losses=np.array([9.0, 4.0, 1.0, 0.0]), rank_cost=10, dense_cost=25)
    >>> b = Block(losses=np.array([1.0, 0.5, 0.2, 0.0]), rank_cost=10, dense_cost=25)
    >>> result = allocate([Unit([[a]]), Unit([[b]])], budget=30)
    >>> result.ranks, result.cost
    ([[2], [1]], 30)
    """
    floor = 0
    for unit in units:
        floor += min(
            sum(min(b.min_rank * b.rank_cost, b.dense_cost) for b in blocks)
            for blocks in unit.configurations
        )
    if floor > budget:
        raise ValueError(
            f"target cannot be met: the smallest allowed ranks already cost {floor} "
            f"parameters, more than the budget of {int(budget)}"
        )
    # Bracket the multiplier: at lam_hi every block takes its cheapest option.
    scale = max(
        (
            float(b.losses[0]) / max(b.rank_cost, 1)
            for u in units
            for c in u.configurations
            for b in c
        ),
        default=1.0,
    )
    lam_lo, lam_hi = 0.0, max(scale, 1e-300) * 4.0
    sol = _solve(units, lam_hi)
    while sol[2] > budget:
        lam_hi *= 4.0
        sol = _solve(units, lam_hi)
    best = sol
    lo_sol = _solve(units, lam_lo)
    if lo_sol[2] <= budget:
        best = lo_sol
    else:
        for _ in range(100):
            mid = 0.5 * (lam_lo + lam_hi) if lam_lo > 0 else lam_hi * 1e-12
            if lam_lo > 0 and lam_hi / lam_lo < 1.0 + 1e-12:
                break
            cur = _solve(units, mid)
            if cur[2] <= budget:
                lam_hi, best = mid, cur
            else:
                lam_lo = mid
    config, ranks, cost, _ = best
    ranks = [list(r) for r in ranks]
    room = _fill(units, config, ranks, int(budget) - cost)
    cost = int(budget) - room
    loss = sum(
        b.loss(r)
        for unit, c, rk in zip(units, config, ranks, strict=True)
        for b, r in zip(unit.configurations[c], rk, strict=True)
    )
    return Allocation(configuration=list(config), ranks=ranks, cost=cost, loss=float(loss))


def ranks_for_tolerance(block: Block, energy: float, tol: float) -> int:
    """Smallest rank whose relative loss ``sqrt(losses[k] / energy)`` is at most ``tol``.

    Returns :data:`DENSE` when that rank would cost at least as much as the dense block.

    Examples
    --------
    >>> import numpy as np
    >>> from sparselin.linalg._allocation import Block, ranks_for_tolerance
    >>> block = Block(losses=np.array([1.0, 0.09, 0.0004, 0.0]), rank_cost=4, dense_cost=9)
    >>> ranks_for_tolerance(block, energy=1.0, tol=0.05)
    2
    >>> ranks_for_tolerance(block, energy=1.0, tol=0.001)
    -1
    """
    if energy <= 0:
        return min(block.min_rank, block.max_rank)
    ok = np.flatnonzero(np.sqrt(block.losses / energy) <= tol)
    rank = max(int(ok[0]) if ok.size else block.max_rank, block.min_rank)
    if rank * block.rank_cost >= block.dense_cost or not ok.size:
        return DENSE
    return rank
