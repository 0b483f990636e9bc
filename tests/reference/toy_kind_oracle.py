"""The oracle of the toy kind of ``tests/toy_kind.py`` (non-leaky integrate-and-fire), written
with the oracle's own scalar arithmetic."""

from tests.reference import oracle


def if_step(o, p, i, n, e, ng) -> bool:
    n.v = o.add(o.add(n.v, o.syn(e - ng)), o.value(p, "i_offset", i))
    z = o.fire(n.v, o.value(p, "threshold", i))
    if z:
        n.v = o.sub(n.v, o.value(p, "threshold", i)) if p.params["reset"] == "reset_by_subtraction" \
            else o.value(p, "v_reset", i)
    return z


def register():
    oracle.register_step("if_toy", if_step)
