"""A default argument binds the context into a lambda (to dodge late binding), then sends it whole."""

from rlm.subcalls import parallel_map, semantic_subcall

CHECKS = ["Is it signed?", "Is it dated?"]


def contract_checks(context):
    """Yes/no checks on a contract."""
    answers = parallel_map(lambda q, doc=context: semantic_subcall(q, doc), CHECKS)  # expect: rule1
    return {"checks": dict(zip(CHECKS, answers))}
